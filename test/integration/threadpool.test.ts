/**
 * The CLI entry sizes libuv's thread pool (UV_THREADPOOL_SIZE, default 64) before the pool starts:
 * bin/opendlf.js is CommonJS because an ES module entry is itself loaded through the pool, after
 * which the variable has no effect (the served process had 4 pool threads, not 64). The pool's
 * threads are counted in /proc/<pid>/task of the real `opendlf serve` process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/server.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Starts `node bin/opendlf.js serve`, reads its thread count once it answered a request, stops it. */
async function servedThreadCount(env: NodeJS.ProcessEnv): Promise<number> {
  const dataDir = tempDir();
  const child = spawn(
    process.execPath,
    [join(REPO, 'bin/opendlf.js'), 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        const match = /listening on (http:\/\/\S+)/.exec(out);
        if (match?.[1]) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`opendlf serve exited early (${code})`)));
    });
    // A request that reads the store: the pool has certainly been started by now.
    assert.equal((await fetch(`${url}/v1/p1/scripts`)).status, 200);
    return readdirSync(`/proc/${child.pid}/task`).length;
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('libuv thread pool of the served process', () => {
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;

  it('has the 64 pool threads the CLI asks for', async () => {
    const threads = await servedThreadCount(env);
    assert.ok(threads >= 64, `${threads} threads: the pool was not sized by bin/opendlf.js`);
  });

  it('keeps an explicit UV_THREADPOOL_SIZE', async () => {
    const threads = await servedThreadCount({ ...env, UV_THREADPOOL_SIZE: '6' });
    assert.ok(threads < 64, `${threads} threads with UV_THREADPOOL_SIZE=6`);
    assert.ok(threads >= 6, `${threads} threads: fewer than the pool alone`);
  });
});
