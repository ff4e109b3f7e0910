#!/usr/bin/env node
// Entry point: the compiled CLI lives in dist/ (built by `npm ci` / `npm run build`).
const path = require('node:path');
const fs = require('node:fs');
const entry = path.join(__dirname, '..', 'dist', 'cli', 'index.js');
if (!fs.existsSync(entry)) {
  process.stderr.write(`prunewise: ${entry} is missing: run \`npm run build\` in ${path.dirname(__dirname)}\n`);
  process.exit(1);
}
require(entry)
  .main(process.argv)
  .then(() => process.exit(process.exitCode ?? 0));
