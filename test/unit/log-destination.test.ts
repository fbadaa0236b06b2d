/**
 * The server's log on a full disk (observability/log-destination.ts): with stderr on /dev/full
 * (every write fails with ENOSPC, as a log file on a full disk does), a process logging through it
 * keeps running and exits normally. With pino's bare destination the same process died of the
 * unhandled 'error' event, and its exit flush then retried the write forever.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/observability/log-destination.ts', import.meta.url));

const PROGRAM = `
import pino from 'pino';
import { stderrLogDestination } from ${JSON.stringify(MODULE)};
const destination = stderrLogDestination();
const log = pino({ level: 'info' }, destination.stream);
for (let i = 0; i < 2000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'line');
setTimeout(() => console.log('alive, failed writes: ' + destination.failedWrites()), 200);
`;

describe('log destination on a full disk', () => {
  it('neither kills the process nor keeps it from exiting', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROGRAM], {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        stdio: ['ignore', 'pipe', full],
      });
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      // Generous: a hung exit flush is what this guards against, so the process is killed past it.
      const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.once('exit', (c, s) => resolve([c, s])),
      );
      clearTimeout(killer);
      assert.equal(signal, null, 'the process had to be killed: its exit hung');
      assert.equal(code, 0);
      const failed = /alive, failed writes: (\d+)/.exec(stdout);
      assert.ok(failed, `the process did not survive its failed log writes: ${stdout}`);
      assert.ok(Number(failed[1]) > 0, 'no log write failed: /dev/full did not stand in for a full disk');
    } finally {
      closeSync(full);
    }
  });
});
