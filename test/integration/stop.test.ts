/**
 * The stop, end to end through the API: every phase (queued, launching, running, between
 * statements), every local engine, idempotency, and stop/finish races. "Gone" is checked from
 * outside the server: no process carrying the instance id in its environment remains (/proc).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { processesOfInstance, waitForInstanceProcesses } from '../helpers/processes.js';
import { startTestServer, type ApiClient, type TestServer } from '../helpers/server.js';

const TREE =
  'sleep 300 &\n( sleep 300 & sleep 300; ) &\nnohup sleep 300 >/dev/null 2>&1 &\nsleep 300 | cat &\n' +
  'bash -c "set -m; sleep 300 & wait" &\nwhile true; do sleep 1; done\n';
const TREE_PROCESSES = 8;

describe('stop through the API', () => {
  let server: TestServer;
  let api: ApiClient;

  before(async () => {
    server = await startTestServer({ maxConcurrentRuns: 2, stopGraceMs: 300 });
    api = server.client();
    await api.createScript({ name: 'tree', type: 'Shell', content: TREE, connectionName: 'local' });
    await api.createScript({
      name: 'stubborn',
      type: 'Shell',
      content: "trap '' TERM\n( trap '' TERM; sleep 300 ) &\nwhile true; do sleep 1; done\n",
      connectionName: 'local',
    });
    await api.createScript({
      name: 'py',
      type: 'PYTHON',
      content: 'import subprocess, time\nsubprocess.Popen(["sleep", "300"])\ntime.sleep(300)\n',
      connectionName: 'local',
    });
    await api.createScript({
      name: 'longsql',
      type: 'DWSSQL',
      content:
        'CREATE TABLE IF NOT EXISTS after_stop(a INTEGER);\n' +
        'SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3;\n' +
        'INSERT INTO after_stop VALUES (1);',
      connectionName: 'duckdb',
    });
    await api.createScript({ name: 'quick', type: 'Shell', content: 'echo hi', connectionName: 'local' });
    await api.createScript({
      name: 'count_after',
      type: 'DWSSQL',
      content: 'SELECT count(*) AS n FROM after_stop',
      connectionName: 'duckdb',
    });
  });
  after(() => server.close());

  it('stops a running shell script and its whole process tree', async () => {
    const id = await api.execute('tree');
    await waitForInstanceProcesses(id, TREE_PROCESSES);
    const stop = await api.stop('tree', id);
    assert.equal(stop.status, 204);
    assert.equal(stop.text, '');
    assert.deepEqual(processesOfInstance(id), [], 'processes of the run survived the stop');
    const result = await api.result('tree', id);
    assert.equal(result.json.status, 'FAILED');
    assert.equal(result.json.detailedStatus, 'STOPPED');
    assert.equal(result.json.message, 'The script instance is stopped.');
    assert.ok(result.json.stopRequestTime);
  });

  it('escalates to SIGKILL for a script that ignores SIGTERM', async () => {
    const id = await api.execute('stubborn');
    await waitForInstanceProcesses(id, 2);
    assert.equal((await api.stop('stubborn', id)).status, 204);
    assert.deepEqual(processesOfInstance(id), []);
    assert.equal((await api.result('stubborn', id)).json.detailedStatus, 'STOPPED');
  });

  it('stops a python script and the processes it started', async () => {
    const id = await api.execute('py');
    await waitForInstanceProcesses(id, 2);
    assert.equal((await api.stop('py', id)).status, 204);
    assert.deepEqual(processesOfInstance(id), []);
    assert.equal((await api.result('py', id)).json.detailedStatus, 'STOPPED');
  });

  it('interrupts a long DuckDB query and runs no further statement', async () => {
    const id = await api.execute('longsql');
    await api.waitFor('longsql', id, (b) => b.status === 'RUNNING');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await api.stop('longsql', id)).status, 204);
    const result = await api.result('longsql', id);
    assert.equal(result.json.detailedStatus, 'STOPPED');
    assert.equal(result.json.results.length, 1, 'only the CREATE TABLE completed');
    const check = await api.execute('count_after');
    const counted = await api.waitFor('count_after', check);
    assert.equal(counted.json.status, 'FINISHED');
    assert.deepEqual(counted.json.results[0].rows, [[0]], 'the INSERT after the stopped statement ran');
  });

  it('a queued instance stopped before it starts never runs', async () => {
    // Two slots: fill both, queue a third, stop it while queued.
    const busy = [await api.execute('tree'), await api.execute('tree')];
    await Promise.all(busy.map((id) => waitForInstanceProcesses(id, TREE_PROCESSES)));
    const queued = await api.execute('tree');
    const before = await api.result('tree', queued);
    assert.equal(before.json.status, 'LAUNCHING');
    assert.equal(before.json.detailedStatus, 'QUEUED');
    assert.equal((await api.stop('tree', queued)).status, 204);
    assert.equal((await api.result('tree', queued)).json.detailedStatus, 'STOPPED');
    for (const id of busy) assert.equal((await api.stop('tree', id)).status, 204);
    // The freed slots must not pick the stopped instance up.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(processesOfInstance(queued), []);
    const after = await api.result('tree', queued);
    assert.equal(after.json.detailedStatus, 'STOPPED');
    assert.equal(after.json.startTime, null, 'a stopped queued instance never started');
    for (const id of busy) assert.deepEqual(processesOfInstance(id), []);
  });

  it('stop right after execute (queued/launching phase) leaves nothing behind', async () => {
    for (let i = 0; i < 20; i++) {
      const id = await api.execute('tree');
      assert.equal((await api.stop('tree', id)).status, 204);
      const result = await api.result('tree', id);
      assert.equal(result.json.status, 'FAILED', `iteration ${i}: ${result.text}`);
      assert.equal(result.json.detailedStatus, 'STOPPED');
      assert.deepEqual(processesOfInstance(id), [], `iteration ${i}: processes left`);
    }
  });

  it('stop is idempotent and never changes a terminal state', async () => {
    const id = await api.execute('quick');
    const done = await api.waitFor('quick', id);
    assert.equal(done.json.status, 'FINISHED');
    assert.equal(done.json.exitCode, 0);
    for (let i = 0; i < 3; i++) assert.equal((await api.stop('quick', id)).status, 204);
    const after = await api.result('quick', id);
    assert.equal(after.json.status, 'FINISHED');
    assert.equal(after.json.stopRequestTime, null);
    assert.deepEqual(after.json.results, done.json.results);

    const running = await api.execute('tree');
    await waitForInstanceProcesses(running, 1);
    await Promise.all([api.stop('tree', running), api.stop('tree', running), api.stop('tree', running)]);
    assert.equal((await api.result('tree', running)).json.detailedStatus, 'STOPPED');
    assert.deepEqual(processesOfInstance(running), []);
  });

  it('stop/finish races: the first terminal state wins and never flips', async () => {
    const seen = { FINISHED: 0, STOPPED: 0 } as Record<string, number>;
    // Spread the stop across the whole life of a short run: 0–59 ms after the execute, then, on a
    // machine so loaded that no run finished by then, longer delays until both orders happened.
    for (let i = 0; i < 120; i++) {
      if (i >= 60 && (seen.FINISHED ?? 0) > 0 && (seen.STOPPED ?? 0) > 0) break;
      const id = await api.execute('quick');
      await new Promise((r) => setTimeout(r, i < 60 ? i : (i - 59) * 20));
      await api.stop('quick', id);
      const first = await api.waitFor('quick', id);
      const state = first.json.detailedStatus as string;
      assert.ok(state === 'FINISHED' || state === 'STOPPED', `iteration ${i}: ${state}`);
      seen[state] = (seen[state] ?? 0) + 1;
      await api.stop('quick', id);
      await new Promise((r) => setTimeout(r, 5));
      const later = await api.result('quick', id);
      assert.equal(later.json.detailedStatus, state, `iteration ${i}: terminal state flipped`);
      assert.equal(later.json.endTime, first.json.endTime);
      assert.deepEqual(processesOfInstance(id), []);
    }
    // Both orders must have happened, or the race was not exercised.
    assert.ok((seen.FINISHED ?? 0) > 0 && (seen.STOPPED ?? 0) > 0, JSON.stringify(seen));
  });
});

describe('instance timeout', () => {
  let server: TestServer;
  before(async () => {
    // 3 s, not 1: the test first sees two processes of the tree, which a loaded machine can take
    // longer than a second to start (the run would then end before it is looked at).
    server = await startTestServer({ instanceTimeoutSeconds: 3, stopGraceMs: 200 });
  });
  after(() => server.close());

  it('ends a run that exceeds the timeout, with its whole tree, as TIMED_OUT', async () => {
    const api = server.client();
    await api.createScript({ name: 'slow', type: 'Shell', content: TREE, connectionName: 'local' });
    const id = await api.execute('slow');
    await waitForInstanceProcesses(id, 2);
    const result = await api.waitFor('slow', id);
    assert.equal(result.json.status, 'FAILED');
    assert.equal(result.json.detailedStatus, 'TIMED_OUT');
    assert.match(result.json.message, /timeout/);
    assert.deepEqual(processesOfInstance(id), []);
  });
});
