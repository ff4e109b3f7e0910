// Live updates over Server-Sent Events: one poll of SQLite's data_version (it changes whenever
// another connection — a worker's record activity — commits) for all open pages, a `change`
// event when it moved and a keep-alive comment every 15 s otherwise.
import type { Request, Response } from 'express';
import { dataVersion, type Db } from '../db';

const KEEP_ALIVE_MS = 15000;

export interface Live {
  /** GET /events: the stream */
  events(req: Request, res: Response): void;
  /** ends every stream and the poller */
  close(): void;
}

export function createLive(db: Db, pollMs = 500): Live {
  const listeners = new Set<Response>();
  let version = dataVersion(db);
  let sent = 0;
  const timer = setInterval(() => {
    if (listeners.size === 0) return;
    const v = dataVersion(db);
    const beat = Date.now() - sent > KEEP_ALIVE_MS;
    if (v === version && !beat) return;
    const msg = v !== version ? `event: change\ndata: ${JSON.stringify({ version: v })}\n\n` : ': keep-alive\n\n';
    version = v;
    sent = Date.now();
    for (const l of listeners) l.write(msg);
  }, pollMs);
  timer.unref();
  return {
    events(req, res) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
      res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ version })}\n\n`);
      listeners.add(res);
      req.on('close', () => listeners.delete(res));
    },
    close() {
      clearInterval(timer);
      for (const l of listeners) l.end();
      listeners.clear();
    },
  };
}
