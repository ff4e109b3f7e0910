// The package root and the prunewise version recorded with every result (read once from package.json).
// A leaf: imports nothing of ours, so every folder may use it.
import * as fs from 'node:fs';
import * as path from 'node:path';

function findPackageJson(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    const p = path.join(d, 'package.json');
    if (fs.existsSync(p) && JSON.parse(fs.readFileSync(p, 'utf8')).name === 'prunewise') return p;
    if (path.dirname(d) === d) throw new Error(`prunewise package.json not found above ${dir}`);
  }
}

export const PACKAGE_ROOT = path.dirname(findPackageJson(__dirname));
export const VERSION: string = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;
