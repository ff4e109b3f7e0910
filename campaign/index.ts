// Public surface of the campaign file format.
export * from './schema';
export * from './load';
