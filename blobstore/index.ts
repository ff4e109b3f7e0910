// The content-addressed artifact store (local folder or S3-compatible): see store.ts.
export * from './backend';
export * from './store';
