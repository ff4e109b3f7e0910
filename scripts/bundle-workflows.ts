// Build step: bundles workflows/ once into dist/workflow-bundle.js so workers start fast
// (no webpack at start-up) and every worker runs byte-identical workflow code.
import { bundleWorkflowCode } from '@temporalio/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.js'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error },
  });
  const out = path.resolve(__dirname, '..', 'workflow-bundle.js'); // dist/workflow-bundle.js
  fs.writeFileSync(`${out}.tmp`, code);
  fs.renameSync(`${out}.tmp`, out);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
