// Schema migrations, applied in order; PRAGMA user_version holds how many have run.
// Never edit a released migration: append a new one.
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    spec_file TEXT NOT NULL,
    seed INTEGER NOT NULL,
    backend TEXT,
    tfjs_version TEXT,
    prunewise_version TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    k INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('baseline', 'run')),
    weights_json TEXT,
    state TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE INDEX runs_campaign ON runs(campaign_id, k);
  CREATE TABLE rounds (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    round INTEGER NOT NULL,
    state TEXT NOT NULL,
    objective REAL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, round)
  );
  CREATE TABLE stages (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    round INTEGER NOT NULL,
    stage TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER,
    ms REAL,
    resumed_from_step INTEGER,
    task_queue TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, round, stage)
  );
  CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    round INTEGER NOT NULL,
    stage TEXT NOT NULL,
    key TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, round, stage, key, step)
  );
  CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    round INTEGER NOT NULL,
    stage TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, round, stage, kind)
  );
  CREATE TABLE events (
    event_key TEXT NOT NULL UNIQUE,
    campaign_id TEXT NOT NULL,
    run_id TEXT,
    round INTEGER,
    stage TEXT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    at TEXT NOT NULL
  );
  CREATE INDEX events_campaign ON events(campaign_id);
  `,
  // 2: the Pareto analysis of each campaign (recomputed whenever a round completes)
  `
  CREATE TABLE pareto_points (
    campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    val_error REAL NOT NULL,
    accuracy REAL,
    bytes REAL NOT NULL,
    latency_ms REAL NOT NULL,
    energy_j REAL NOT NULL,
    energy_measured INTEGER NOT NULL DEFAULT 0,
    objective REAL,
    on_front INTEGER NOT NULL,
    on_front_2d INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, run_id, round)
  );
  CREATE TABLE pareto (
    campaign_id TEXT PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    points INTEGER NOT NULL,
    front INTEGER NOT NULL,
    front_distinct INTEGER NOT NULL,
    front_2d INTEGER NOT NULL,
    hypervolume REAL NOT NULL,
    reference_json TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  `,
  // 3: the dashboard's runs table — one row per run (its best round by J, front membership), kept
  // with the Pareto analysis so sorting, filtering and paging 10 000 runs is one indexed query
  `
  ALTER TABLE pareto_points ADD COLUMN violates TEXT NOT NULL DEFAULT '';
  CREATE INDEX pareto_points_run ON pareto_points(run_id, round);
  CREATE TABLE run_rows (
    campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    k INTEGER NOT NULL,
    rounds INTEGER NOT NULL DEFAULT 0,
    best_round INTEGER,
    accuracy REAL,
    best_accuracy REAL,
    val_error REAL,
    bytes REAL,
    latency_ms REAL,
    energy_j REAL,
    energy_measured INTEGER NOT NULL DEFAULT 0,
    objective REAL,
    on_front INTEGER NOT NULL DEFAULT 0,
    front_rounds INTEGER NOT NULL DEFAULT 0,
    rejected TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (campaign_id, run_id)
  );
  CREATE UNIQUE INDEX run_rows_k ON run_rows(campaign_id, k);
  INSERT INTO run_rows (campaign_id, run_id, k)
    SELECT campaign_id, id, k FROM runs WHERE kind = 'run';
  UPDATE run_rows SET
    rounds = (SELECT COUNT(*) FROM pareto_points p WHERE p.run_id = run_rows.run_id),
    best_accuracy = (SELECT MAX(accuracy) FROM pareto_points p WHERE p.run_id = run_rows.run_id),
    front_rounds = (SELECT COALESCE(SUM(on_front), 0) FROM pareto_points p WHERE p.run_id = run_rows.run_id),
    best_round = (SELECT round FROM pareto_points p WHERE p.run_id = run_rows.run_id ORDER BY objective IS NULL, objective, round LIMIT 1);
  UPDATE run_rows SET on_front = front_rounds > 0,
    (accuracy, val_error, bytes, latency_ms, energy_j, energy_measured, objective) =
    (SELECT accuracy, val_error, bytes, latency_ms, energy_j, energy_measured, objective FROM pareto_points p WHERE p.run_id = run_rows.run_id AND p.round = run_rows.best_round)
    WHERE best_round IS NOT NULL;
  `,
  // 4: the analysis is updated per new candidate (analysis/pareto.ts): indexes to read the fronts,
  // whether the stored hypervolume is an estimate, how many full recomputes are owed (a crashed
  // one is redone), and the constraints the stored flags were computed under
  `
  CREATE INDEX pareto_points_front ON pareto_points(campaign_id, on_front);
  CREATE INDEX pareto_points_front_2d ON pareto_points(campaign_id, on_front_2d);
  ALTER TABLE pareto ADD COLUMN hypervolume_approx INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE pareto ADD COLUMN pending_full INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE pareto ADD COLUMN constraints_json TEXT NOT NULL DEFAULT '';
  `,
  // 5: why a round ended as it did, for people: "rolled back (drop 3.10 pts > limit 2)"
  `
  ALTER TABLE rounds ADD COLUMN note TEXT;
  `,
  // 6: like with like: which variant a candidate deploys (8-bit weights or float32), so people
  // compare it with the baseline's same variant
  `
  ALTER TABLE pareto_points ADD COLUMN deployed_int8 INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE run_rows ADD COLUMN deployed_int8 INTEGER NOT NULL DEFAULT 0;
  `,
  // 7: the campaign's frozen latency table (ml/latency-table.ts): its sha256 (the file is an artifact of the baseline run)
  `
  ALTER TABLE campaigns ADD COLUMN latency_table_sha256 TEXT;
  `,
  // 8: notes and tags per run, written by people on the dashboard's run page (the one thing the dashboard writes)
  `
  CREATE TABLE run_notes (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    note TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
  );
  `,
  // 9: the database's identity (one owner of each database): a random id made once per file; the
  // store task queue is named after it (core/queues.ts storeQueue), so only a worker of this home
  // records this database's campaigns. Campaigns created before it used the shared `store` queue.
  `
  CREATE TABLE home (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL
  );
  INSERT INTO home (id, created_at) VALUES (lower(hex(randomblob(6))), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
  `,
  // 10: the artifact store (blobstore/): each artifact's key (sha256 of its tree) beside its name; rows
  // of homes from before the store get theirs when the CLI migrates the home's folders into the store
  // ('' when their files were gone by then)
  `
  ALTER TABLE artifacts ADD COLUMN key TEXT;
  `,
];
