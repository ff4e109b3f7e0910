// Notes and tags per run: free text and labels people write on the dashboard's run page (the one
// thing the dashboard writes). Stored as given; every page shows them as text (Handlebars escapes).
import type { Db } from './connection';

/** Longest note kept, characters. */
export const NOTE_MAX_CHARS = 10_000;
/** At most this many tags per run, each at most TAG_MAX_CHARS characters. */
export const TAGS_MAX = 20;
export const TAG_MAX_CHARS = 40;

export interface RunNote {
  note: string;
  tags: string[];
  updatedAt: string | null;
}

/** A run's note and tags (empty when none were written). */
export function runNote(db: Db, runId: string): RunNote {
  const r = db.prepare(`SELECT note, tags, updated_at AS updatedAt FROM run_notes WHERE run_id = ?`).get(runId) as
    { note: string; tags: string; updatedAt: string } | undefined;
  return r ? { note: r.note, tags: splitTags(r.tags), updatedAt: r.updatedAt } : { note: '', tags: [], updatedAt: null };
}

/** Tags as stored (comma-separated) → list. */
export const splitTags = (s: string | null | undefined): string[] => (s ? s.split(',').filter(Boolean) : []);

/**
 * `a, b,,a` → ['a', 'b']: trimmed, empty and repeated tags dropped, inner whitespace collapsed.
 * @throws RangeError naming the limit when there are more than TAGS_MAX tags or one is longer than TAG_MAX_CHARS
 */
export function normaliseTags(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(',')) {
    const t = raw.trim().replace(/\s+/g, ' ');
    if (!t || out.includes(t)) continue;
    if (t.length > TAG_MAX_CHARS) throw new RangeError(`tags: "${t.slice(0, 20)}…" is longer than ${TAG_MAX_CHARS} characters`);
    out.push(t);
  }
  if (out.length > TAGS_MAX) throw new RangeError(`tags: ${out.length} tags, at most ${TAGS_MAX}`);
  return out;
}

/**
 * Writes a run's note and tags (replacing the previous ones). Returns false when the run does not exist.
 * @throws RangeError when the note is longer than NOTE_MAX_CHARS or the tags break their limits
 */
export function setRunNote(db: Db, runId: string, note: string, tagsText: string): boolean {
  if (note.length > NOTE_MAX_CHARS) throw new RangeError(`note: ${note.length} characters, at most ${NOTE_MAX_CHARS}`);
  const tags = normaliseTags(tagsText);
  if (!db.prepare(`SELECT 1 FROM runs WHERE id = ?`).get(runId)) return false;
  db.prepare(
    `INSERT INTO run_notes (run_id, note, tags, updated_at) VALUES (?, ?, ?, ?)
     ON CONFLICT(run_id) DO UPDATE SET note = excluded.note, tags = excluded.tags, updated_at = excluded.updated_at`,
  ).run(runId, note, tags.join(','), new Date().toISOString());
  return true;
}

/** Notes and tags of many runs at once (tables), keyed by run id; runs without one are absent. */
export function runNotes(db: Db, runIds: readonly string[]): Map<string, RunNote> {
  const out = new Map<string, RunNote>();
  if (runIds.length === 0) return out;
  const rows = db
    .prepare(`SELECT run_id AS runId, note, tags, updated_at AS updatedAt FROM run_notes WHERE run_id IN (SELECT value FROM json_each(?))`)
    .all(JSON.stringify(runIds)) as Array<{ runId: string; note: string; tags: string; updatedAt: string }>;
  for (const r of rows) out.set(r.runId, { note: r.note, tags: splitTags(r.tags), updatedAt: r.updatedAt });
  return out;
}
