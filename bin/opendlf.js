#!/usr/bin/env node
// CommonJS on purpose (bin/package.json): libuv sizes its thread pool the first time anything uses
// it, and an ES module entry is loaded through that pool, so setting UV_THREADPOOL_SIZE from an ES
// module is too late (12 threads instead of 71, measured in /proc/<pid>/task). Here it runs first.
//
// DuckDB statements and file I/O share the pool (4 threads by default): with more than four long
// queries running, every fs call of the local engines would queue behind them. An explicit
// UV_THREADPOOL_SIZE wins.
process.env.UV_THREADPOOL_SIZE ??= '64';

const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

// Runs the compiled CLI when it has been built (npm run build), otherwise the TypeScript sources
// through tsx, so a fresh checkout works either way.
async function run() {
  const compiled = join(__dirname, '..', 'dist', 'cli', 'main.js');
  let cli;
  if (existsSync(compiled)) {
    cli = await import(pathToFileURL(compiled).href);
  } else {
    await import('tsx/esm');
    cli = await import(pathToFileURL(join(__dirname, '..', 'src', 'cli', 'main.ts')).href);
  }
  await cli.main(process.argv);
}

run().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
