#!/usr/bin/env node
// Runs the compiled CLI when it has been built (npm install runs `prepare` → build), otherwise the
// TypeScript sources through tsx, so a fresh checkout works either way.
import { existsSync } from 'node:fs';

// DuckDB statements and file I/O share libuv's thread pool (4 threads by default): with more than
// four long queries running, every fs call of the local engines would queue behind them. The pool
// is sized before anything uses it; an explicit UV_THREADPOOL_SIZE wins.
process.env.UV_THREADPOOL_SIZE ??= '64';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
let cli;
if (existsSync(fileURLToPath(compiled))) {
  cli = await import(compiled.href);
} else {
  await import('tsx/esm');
  cli = await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
await cli.main(process.argv);
