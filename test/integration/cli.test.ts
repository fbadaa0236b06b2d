import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { credentialsAddArgs } from '../helpers/credentials-cli.js';
import { spawnServer, tempDir, terminate } from '../helpers/server.js';

/** The id of the first credential a `credentials list` output names. */
const tokenIdOf = (listOutput: string): string =>
  (JSON.parse(listOutput.split('\n')[0] ?? '{}') as { id: string }).id;

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

  it('credentials add without --role grants admin in every workspace; removing the last one latches --auth none', async () => {
    const dir = tempDir();
    const token = 'cli-admin-token-S3cr3t-0000001';
    const project = 'p0000000000000000000000000000001';
    try {
      const added = await cli(...credentialsAddArgs(dir, { token }, '--project', project));
      assert.equal(added.code, 0, added.stderr);
      const listed = await cli('credentials', 'list', '--data-dir', dir);
      assert.deepEqual((JSON.parse(listed.stdout) as { grants: unknown }).grants, [
        { workspace: '*', role: 'admin' },
      ]);
      const refused = await cli(
        ...credentialsAddArgs(dir, { token }, '--project', project, '--workspace', 'w1'),
      );
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /--role per --workspace/);

      const server = await spawnServer(dir);
      try {
        assert.match(server.line, /auth: AK\/SK signatures and tokens/);
        // Admin in a workspace nobody named: it may write there.
        const created = await fetch(`${server.url}/v1/${project}/scripts`, {
          method: 'POST',
          headers: { 'x-auth-token': token, workspace: 'anywhere-else', 'content-type': 'application/json' },
          body: JSON.stringify({
            name: 'by_admin',
            type: 'DWSSQL',
            content: 'SELECT 1',
            connectionName: 'duckdb',
          }),
        });
        assert.equal(created.status, 204, await created.text());
      } finally {
        await terminate(server);
      }

      const removed = await cli(
        'credentials',
        'remove',
        '--data-dir',
        dir,
        '--token-id',
        tokenIdOf(listed.stdout),
      );
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(removed.stderr, /no credentials left/);
      const latched = await cli('serve', '--port', '0', '--data-dir', dir);
      assert.notEqual(latched.code, 0);
      assert.match(latched.stderr, /once enforced authentication.*--auth none/);
      const unauthenticated = await spawnServer(dir, ['--auth', 'none']);
      try {
        assert.match(unauthenticated.line, /auth: none, no credentials configured; loopback only/);
      } finally {
        await terminate(unauthenticated);
      }
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
