/**
 * A wall-clock step on a single SQLite node (issue 12, item 8). Before the fix a step of +120 s
 * (the monotonic clock untouched) made the node's own lease reaper abort its running instance as
 * "node lost … (node <its own id>)" within 12 s and kill its processes: SQLite's `now`, which
 * writes and judges the leases, is the wall clock.
 *
 * The server runs as a child process under libfaketime (Debian package faketime): its wall clock
 * (Date.now, SQLite's julianday('now')) follows the offset in a file the test rewrites, its
 * monotonic clock (performance.now, libuv timers) is left alone. A Shell run live across the step
 * must not be reaped or fenced and must finish normally. Default lease settings (30 s lease,
 * heartbeat every 10 s, reaper every 1 s), so the reaper gets several passes before the heartbeat
 * renews the lease on the new clock.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { processesOfInstance, waitForInstanceProcesses } from '../helpers/processes.js';
import { ApiClient, PROJECT, spawnServer, tempDir, terminate, type ChildServer } from '../helpers/server.js';

function findLibFaketime(): string | undefined {
  const candidates = ['/usr/lib/faketime/libfaketime.so.1'];
  for (const entry of existsSync('/usr/lib') ? readdirSync('/usr/lib') : []) {
    candidates.push(join('/usr/lib', entry, 'faketime', 'libfaketime.so.1'));
  }
  return candidates.find((path) => existsSync(path));
}

const LIBFAKETIME = findLibFaketime();
const STEP_SECONDS = 120;
const RUN_SECONDS = 25;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('a wall-clock step on a single SQLite node', () => {
  const dirs: string[] = [];
  let server: ChildServer | undefined;
  after(async () => {
    if (server) await terminate(server);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it(
    `a step of +${STEP_SECONDS} s neither reaps nor fences a live run; it finishes normally`,
    { skip: LIBFAKETIME === undefined ? 'libfaketime is not installed (Debian package faketime)' : false },
    async () => {
      const dataDir = tempDir();
      const clockDir = tempDir('opendlf-clock-');
      dirs.push(dataDir, clockDir);
      const offsetFile = join(clockDir, 'offset');
      writeFileSync(offsetFile, '+0s');
      server = await spawnServer(dataDir, [], {
        env: {
          LD_PRELOAD: LIBFAKETIME!,
          FAKETIME_TIMESTAMP_FILE: offsetFile,
          // Re-read the offset on every call, so the step lands at once.
          FAKETIME_NO_CACHE: '1',
          FAKETIME_DONT_FAKE_MONOTONIC: '1',
        },
      });
      const api = new ApiClient(server.url, PROJECT);
      await api.createScript({
        name: 'steady',
        type: 'Shell',
        content: `sleep ${RUN_SECONDS} &\nwait\necho finished`,
        connectionName: 'local',
      });
      const id = await api.execute('steady');
      const pids = await waitForInstanceProcesses(id, 2);

      writeFileSync(offsetFile, `+${STEP_SECONDS}s`);
      // Past a heartbeat interval (10 s) with a reaper pass every second meanwhile.
      await sleep(12_000);
      const during = await api.result('steady', id);
      assert.equal(during.json.detailedStatus, 'RUNNING', during.text);
      assert.deepEqual(
        pids.filter((pid) => processesOfInstance(id).includes(pid)),
        pids,
        'a process of the live run was killed',
      );

      const done = await api.waitFor('steady', id, undefined, 60_000);
      assert.equal(done.json.status, 'FINISHED', done.text);
      assert.equal(done.json.detailedStatus, 'FINISHED', done.text);
      // Precondition, so the test cannot pass vacuously: the server's wall clock did step.
      const wallSeconds = (Date.parse(done.json.endTime) - Date.parse(done.json.startTime)) / 1000;
      assert.ok(
        wallSeconds > STEP_SECONDS,
        `the server's wall clock did not step (run took ${wallSeconds} s)`,
      );
      assert.equal(await metric(server.url, 'opendlf_instances_reaped_total'), 0);
      assert.equal(await metric(server.url, 'opendlf_runs_fenced_total'), 0);
    },
  );
});
