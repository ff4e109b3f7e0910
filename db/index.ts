// The public surface of db/ (SQLite only; imports core only). One room per job:
// connection (open, migrate), write (the record contract), read (status, events), views (the
// dashboard's queries), pareto (the stored shape of the Pareto analysis; analysis/ computes it).
export * from './types';
export * from './connection';
export * from './write';
export * from './read';
export * from './views';
export * from './pareto';
export * from './notes';
