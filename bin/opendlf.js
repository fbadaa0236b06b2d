#!/usr/bin/env node
// Runs the compiled CLI when it has been built (npm install runs `prepare` → build), otherwise the
// TypeScript sources through tsx, so a fresh checkout works either way.
import { existsSync } from 'node:fs';
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
