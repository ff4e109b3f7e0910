// Measured energy where the machine has a sensor: Linux RAPL (powercap) package domains.
// Reads energy_uj of every top-level intel-rapl:N domain before and after a piece of work
// (wrap-around handled with max_energy_range_uj). Package energy includes everything else the
// CPU does meanwhile (idle power too): it is a measurement of the package, said so where shown.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface RaplDomain {
  name: string;
  energyFile: string;
  maxRangeUj: number;
}

/** The readable package domains (none on machines without RAPL, or without permission). */
export function raplDomains(root = process.env.PRUNEWISE_POWERCAP_DIR ?? '/sys/class/powercap'): RaplDomain[] {
  let names: string[];
  try {
    names = fs.readdirSync(root).filter((n) => /^intel-rapl:\d+$/.test(n));
  } catch {
    return [];
  }
  const out: RaplDomain[] = [];
  for (const n of names) {
    const energyFile = path.join(root, n, 'energy_uj');
    try {
      Number(fs.readFileSync(energyFile, 'utf8'));
      const maxRangeUj = Number(fs.readFileSync(path.join(root, n, 'max_energy_range_uj'), 'utf8'));
      out.push({ name: fs.existsSync(path.join(root, n, 'name')) ? fs.readFileSync(path.join(root, n, 'name'), 'utf8').trim() : n, energyFile, maxRangeUj });
    } catch {
      // unreadable (permissions): not a sensor we can use
    }
  }
  return out;
}

const read = (d: RaplDomain) => Number(fs.readFileSync(d.energyFile, 'utf8'));

/** Joules the package domains used while `work` ran. */
export async function measureJoules(domains: RaplDomain[], work: () => Promise<void>): Promise<number> {
  const before = domains.map(read);
  await work();
  const after = domains.map(read);
  let uj = 0;
  domains.forEach((d, i) => {
    const delta = after[i] - before[i];
    uj += delta >= 0 ? delta : delta + d.maxRangeUj; // the counter wrapped
  });
  return uj / 1e6;
}
