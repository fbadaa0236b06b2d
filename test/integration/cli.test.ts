import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from '../helpers/server.js';

const run = promisify(execFile);
const cli = (...args: string[]) =>
  run(process.execPath, ['bin/opendlf.js', ...args], { timeout: 60_000 }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

describe('opendlf command line', () => {
  it('prints help for the program and for serve', async () => {
    const top = await cli('--help');
    assert.equal(top.code, 0);
    assert.match(top.stdout, /serve/);
    const serve = await cli('serve', '--help');
    assert.match(serve.stdout, /--port <port>/);
    assert.match(serve.stdout, /--data-dir <dir>/);
    assert.match(serve.stdout, /--config <file>/);
  });

  it('refuses a non-loopback address without authentication unless asked', async () => {
    const dir = tempDir();
    try {
      const result = await cli('serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', dir);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /refusing to bind 0\.0\.0\.0/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a bad flag value clearly', async () => {
    const result = await cli('serve', '--port', 'eighty');
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /--port/);
  });

  it('refuses a lease that is not a number of seconds, and a shared store without the shared key', async () => {
    const lease = await cli('serve', '--lease-seconds', '2s');
    assert.notEqual(lease.code, 0);
    assert.match(lease.stderr, /--lease-seconds.*number of seconds/);
    const dir = tempDir();
    try {
      const { OPENDLF_SECRET_KEY: _unset, ...env } = process.env;
      const shared = await run(
        process.execPath,
        ['bin/opendlf.js', 'serve', '--store', 'postgres://postgres@127.0.0.1:5432/test', '--data-dir', dir],
        { timeout: 60_000, env },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.notEqual(shared.code, 0);
      assert.match(shared.stderr, /set OPENDLF_SECRET_KEY/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
