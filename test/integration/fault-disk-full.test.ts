/**
 * A full disk never takes the server down (issue 12, item 4). The data directory is a 20 MB tmpfs;
 * the server runs as a child process, so a crash shows as that process exiting, not as this runner
 * dying. Needs root (mount); skipped with the reason otherwise.
 *
 *  - a script whose output fills the disk FAILS with `storage_full`, the server stays up, a second
 *    run going on at the same time is still supervised (it can be stopped, nothing of it is left),
 *    and the space its output.log took is given back, so the next run works;
 *  - while something else (dd) fills the disk, create and execute answer OPENDLF.0507, never a 500,
 *    and /readyz is 503 naming the free space; once the filler is deleted the same calls work again
 *    without a restart;
 *  - a DuckDB CREATE TABLE AS that fills the disk fails its run with `storage_full`; the server stays
 *    up and the workspace's database works again once there is space.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { processesOfInstance } from '../helpers/processes.js';
import { ApiClient, PROJECT, spawnServer, terminate, type ChildServer } from '../helpers/server.js';

const TMPFS_SIZE = '20m';
/** The recipe: 30 MB of output, 100 characters a line, into a 20 MB file system. */
const FILL_OUTPUT = "head -c 30000000 /dev/zero | tr '\\0' x | fold -w 100";
const MIN_FREE_DISK_BYTES = 2 * 1024 * 1024;

function mountTmpfs(): { mountPoint?: string; skip?: string } {
  if (process.getuid?.() !== 0) return { skip: 'needs root to mount a tmpfs for the data directory' };
  const mountPoint = mkdtempSync(join(tmpdir(), 'opendlf-disk-full-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', mountPoint], {
    encoding: 'utf8',
  });
  if (mounted.status !== 0) {
    rmSync(mountPoint, { recursive: true, force: true });
    return { skip: `mount -t tmpfs failed: ${(mounted.stderr || mounted.error?.message || '').trim()}` };
  }
  return { mountPoint };
}

const { mountPoint, skip } = mountTmpfs();

function freeBytes(): number {
  const stats = statfsSync(mountPoint!);
  return stats.bavail * stats.bsize;
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Writes zeros into `file` until the file system refuses (dd then fails with ENOSPC). */
function fillDisk(file: string): void {
  const dd = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M'], { encoding: 'utf8' });
  assert.match(dd.stderr, /No space left on device/, `dd did not fill the disk: ${dd.stderr}`);
}

describe('a full data directory', { skip }, () => {
  let server: ChildServer;
  let api: ApiClient;
  const configFile = join(tmpdir(), `opendlf-disk-full-${process.pid}.json`);

  /** The server process is still running (it did not crash). */
  const alive = () => server.process.exitCode === null && server.process.signalCode === null;
  type ReadinessBody = { ready: boolean; checks: { name: string; ok: boolean; detail?: string }[] };
  const readyz = async () => {
    const response = await fetch(`${server.url}/readyz`);
    return { status: response.status, body: (await response.json()) as ReadinessBody };
  };

  before(async () => {
    writeFileSync(
      configFile,
      JSON.stringify({ minFreeDiskBytes: MIN_FREE_DISK_BYTES, maxConcurrentRuns: 4, stopGraceMs: 300 }),
    );
    server = await spawnServer(join(mountPoint!, 'data'), ['--config', configFile], { captureStderr: true });
    api = new ApiClient(server.url, PROJECT);
    await api.createScript({ name: 'fill', type: 'Shell', content: FILL_OUTPUT, connectionName: 'local' });
    await api.createScript({
      name: 'steady',
      type: 'Shell',
      content: 'echo started\nwhile true; do sleep 1; done\n',
      connectionName: 'local',
    });
    await api.createScript({ name: 'quick', type: 'Shell', content: 'echo quick', connectionName: 'local' });
  });

  after(async () => {
    if (server) await terminate(server);
    rmSync(configFile, { force: true });
    if (mountPoint) {
      spawnSync('umount', [mountPoint]);
      if (spawnSync('mountpoint', ['-q', mountPoint]).status === 0) spawnSync('umount', ['-l', mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });

  it('fails the run whose output fills the disk, keeps the server and the other run supervised', async () => {
    const steady = await api.execute('steady');
    await api.waitFor('steady', steady, (b) => b.detailedStatus === 'RUNNING');
    const fill = await api.execute('fill');
    const filled = (await api.waitFor('fill', fill)).json;
    assert.ok(alive(), `the server exited: ${server.stderr.slice(-5).join(' | ')}`);
    assert.equal(filled.detailedStatus, 'FAILED');
    assert.equal(filled.failureReason, 'storage_full');
    assert.match(filled.message, /no space left on device/i);
    assert.match(filled.message, /storage is full/);
    // The first bytes are still the run's result.
    assert.ok(filled.results[0].rows.length > 0);

    // The other run is still this server's: it answers a stop, and nothing of it is left.
    assert.deepEqual(
      (await api.result('steady', steady)).json.detailedStatus,
      'RUNNING',
      'the quiet run was ended by the full disk',
    );
    const stop = await api.stop('steady', steady);
    assert.equal(stop.status, 204);
    const stopped = (await api.waitFor('steady', steady)).json;
    assert.equal(stopped.detailedStatus, 'STOPPED');
    assert.deepEqual(processesOfInstance(steady), []);

    // The space the filling run's output.log took is free again: the next run works.
    const log = readFileSync(join(mountPoint!, 'data', 'runs', fill, 'output.log'), 'utf8');
    assert.match(log, /truncated .* the disk was full/);
    assert.ok(freeBytes() > 10 * 1024 * 1024, `${freeBytes()} bytes free after the failed run`);
    const quick = await api.execute('quick');
    assert.equal((await api.waitFor('quick', quick)).json.detailedStatus, 'FINISHED');
    assert.ok(alive());
  });

  it('answers OPENDLF.0507 and reports not ready while the disk is full, and recovers once it is freed', async () => {
    const filler = join(mountPoint!, 'filler');
    const accepted: string[] = [];
    fillDisk(filler);
    try {
      const ready = await readyz();
      assert.equal(ready.status, 503);
      const disk = ready.body.checks.find((check) => check.name === 'disk:dataDir');
      assert.equal(disk?.ok, false);
      assert.match(disk?.detail ?? '', /below minFreeDiskBytes/);

      // Executes until the store's spare room (what its WAL still holds) is used up: each one
      // answers 200 or OPENDLF.0507, never a 500; one accepted meanwhile must still end.
      const executed: number[] = [];
      for (let i = 0; i < 300 && !executed.includes(507); i++) {
        const response = await api.request('POST', api.path('/quick/execute'), { body: {} });
        executed.push(response.status);
        if (response.status === 200) accepted.push(response.json.instanceId as string);
        else assert.equal(response.json?.error_code, 'OPENDLF.0507', response.text);
      }
      assert.ok(executed.includes(507), `no execute was refused for the full disk: ${executed.join(',')}`);

      // The same for creates.
      const content = `echo ${'x'.repeat(64 * 1024)}`;
      const created: number[] = [];
      for (let i = 0; i < 300 && !created.includes(507); i++) {
        const response = await api.request('POST', api.path(), {
          body: { name: `while-full-${i}`, type: 'Shell', content, connectionName: 'local' },
        });
        created.push(response.status);
        if (response.status !== 204) assert.equal(response.json?.error_code, 'OPENDLF.0507', response.text);
      }
      assert.ok(created.includes(507), `no create was refused for the full disk: ${created.join(',')}`);

      assert.ok(alive(), `the server exited: ${server.stderr.slice(-5).join(' | ')}`);
    } finally {
      rmSync(filler, { force: true });
    }

    // Space is back: the same calls work, with no restart.
    await waitUntil('/readyz ready again', async () => (await readyz()).status === 200);
    await api.createScript({
      name: 'after-full',
      type: 'Shell',
      content: 'echo after',
      connectionName: 'local',
    });
    const after = await api.execute('after-full');
    assert.equal((await api.waitFor('after-full', after)).json.detailedStatus, 'FINISHED');
    // Every instance accepted while the disk was full ended: finished, or failed for the full disk.
    const outcomes = new Map<string, number>();
    for (const id of accepted) {
      const body = (await api.waitFor('quick', id)).json;
      const outcome = `${body.detailedStatus}/${body.failureReason ?? ''}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const unexpected = [...outcomes.keys()].filter((o) => o !== 'FINISHED/' && o !== 'FAILED/storage_full');
    assert.deepEqual(unexpected, [], JSON.stringify([...outcomes]));
    // The first one accepted started at once, while the disk was full: its script file could not be
    // written, and it says so.
    if (accepted.length > 0) {
      const first = (await api.result('quick', accepted[0]!)).json;
      assert.equal(first.failureReason, 'storage_full', JSON.stringify([...outcomes]));
      assert.match(first.message, /storage is full.*no space left on device/i);
    }
    assert.ok(alive());
  });

  it('fails a DuckDB CREATE TABLE AS that fills the disk, and the database works again with space', async () => {
    await api.createScript({
      name: 'ctas',
      type: 'DWSSQL',
      content:
        'CREATE OR REPLACE TABLE big AS SELECT x, md5(x::varchar) || md5((x + 1)::varchar) AS h FROM range(3000000) t(x);',
      connectionName: 'duckdb',
    });
    await api.createScript({
      name: 'small',
      type: 'DWSSQL',
      content:
        'CREATE OR REPLACE TABLE small AS SELECT 42 AS answer;\nCHECKPOINT;\nSELECT answer FROM small;',
      connectionName: 'duckdb',
    });
    // All but 4 MiB taken by a filler: the CREATE TABLE AS takes the rest. (The database file keeps
    // the size it grew to — DuckDB reuses that space, it does not shrink — so the space that comes
    // back later is the filler's.)
    const filler = join(mountPoint!, 'filler');
    const fillerMiB = Math.floor(freeBytes() / (1024 * 1024)) - 4;
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', `count=${fillerMiB}`]);
    try {
      const ctas = await api.execute('ctas');
      const failed = (await api.waitFor('ctas', ctas)).json;
      assert.ok(alive(), `the server exited: ${server.stderr.slice(-5).join(' | ')}`);
      assert.equal(failed.detailedStatus, 'FAILED');
      assert.equal(failed.failureReason, 'storage_full');
      assert.match(failed.message, /no space left on device/i);

      // Still full: the next write of the workspace's database fails the same way (a checkpoint that
      // fails like this leaves DuckDB's database unusable until it is reopened).
      const whileFull = await api.execute('small');
      const refused = (await api.waitFor('small', whileFull)).json;
      assert.equal(refused.detailedStatus, 'FAILED');
      assert.equal(refused.failureReason, 'storage_full', refused.message);
    } finally {
      rmSync(filler, { force: true });
    }

    const small = await api.execute('small');
    const body = (await api.waitFor('small', small)).json;
    assert.equal(body.detailedStatus, 'FINISHED', body.message);
    assert.deepEqual(body.results[2].rows, [[42]]);
    assert.ok(alive());
  });
});
