/**
 * Crash safety and graceful shutdown with a real server process: SIGKILL the server while
 * instances run, start it again on the same data directory, and check every instance is settled
 * and no process of theirs survived; SIGTERM settles running instances before the process exits.
 * A PostgreSQL statement of a killed server ends on the database without any restart (the
 * connection check the PostgreSQL engine's sessions ask for): what lets that engine store a run's
 * handle beside its first statement rather than before it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { processesOfInstance, waitForInstanceProcesses } from '../helpers/processes.js';
import { ApiClient, PROJECT, spawnServer, tempDir } from '../helpers/server.js';

const TREE =
  'sleep 300 &\n( sleep 300 & sleep 300; ) &\nnohup sleep 300 >/dev/null 2>&1 &\nwhile true; do sleep 1; done\n';

describe('restart recovery and shutdown', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('settles instances of a killed server and kills their leftover processes on restart', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const first = await spawnServer(dataDir, ['--max-concurrent-runs', '2']);
    const api = new ApiClient(first.url, PROJECT);
    await api.createScript({ name: 'tree', type: 'Shell', content: TREE, connectionName: 'local' });
    await api.createScript({
      name: 'sql',
      type: 'DWSSQL',
      content: 'SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3',
      connectionName: 'duckdb',
    });
    const running = [await api.execute('tree'), await api.execute('tree')];
    const queued = await api.execute('sql');
    for (const id of running) await waitForInstanceProcesses(id, 4);

    first.process.kill('SIGKILL');
    await first.exited;
    // Detached process groups outlive the server: that is what recovery must clean up.
    for (const id of running) assert.ok(processesOfInstance(id).length > 0, 'precondition: orphans exist');

    const second = await spawnServer(dataDir);
    try {
      const api2 = new ApiClient(second.url, PROJECT);
      for (const id of running) {
        assert.deepEqual(processesOfInstance(id), [], 'leftover processes survived the restart');
        const result = await api2.result('tree', id);
        assert.equal(result.json.status, 'FAILED');
        assert.equal(result.json.detailedStatus, 'ABORTED');
        assert.match(result.json.message, /restarted/);
      }
      const queuedResult = await api2.result('sql', queued);
      assert.equal(queuedResult.json.status, 'FAILED');
      assert.equal(queuedResult.json.detailedStatus, 'ABORTED');
      // The restarted server works normally.
      const fresh = await api2.execute('tree');
      await waitForInstanceProcesses(fresh, 2);
      assert.equal((await api2.stop('tree', fresh)).status, 204);
      assert.deepEqual(processesOfInstance(fresh), []);
    } finally {
      second.process.kill('SIGTERM');
      await second.exited;
    }
  });

  it('SIGTERM with no drain time ends running instances, settles them and exits cleanly', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const server = await spawnServer(dataDir, ['--drain-timeout-seconds', '0']);
    const api = new ApiClient(server.url, PROJECT);
    await api.createScript({ name: 'tree', type: 'Shell', content: TREE, connectionName: 'local' });
    const id = await api.execute('tree');
    await waitForInstanceProcesses(id, 4);
    server.process.kill('SIGTERM');
    const exit = await server.exited;
    assert.equal(exit.code, 0);
    assert.deepEqual(processesOfInstance(id), [], 'shutdown left processes running');

    const again = await spawnServer(dataDir);
    try {
      const result = await new ApiClient(again.url, PROJECT).result('tree', id);
      assert.equal(result.json.detailedStatus, 'ABORTED');
      assert.match(result.json.message, /shut down/);
    } finally {
      again.process.kill('SIGTERM');
      await again.exited;
    }
  });

  it('a PostgreSQL statement of a killed server is ended by the database itself, with no restart', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const marker = `odlf_crash_${randomBytes(6).toString('hex')}`;
    const observer = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
    observer.on('error', () => undefined);
    await observer.connect();
    const running = async () => {
      const { rows } = await observer.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
        [`%${marker}%`],
      );
      return rows[0]?.n ?? 0;
    };
    /** Polls until `done` (bounded only so that a broken guarantee fails instead of hanging). */
    const until = async (what: string, done: () => Promise<boolean>) => {
      const deadline = Date.now() + 60_000;
      while (!(await done())) {
        if (Date.now() > deadline) assert.fail(`gave up waiting until ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const server = await spawnServer(dataDir);
    try {
      const api = new ApiClient(server.url, PROJECT);
      const created = await api.request('POST', `/v1/${PROJECT}/connections`, {
        body: {
          name: 'pg',
          type: 'DWS',
          config: { ip: '127.0.0.1', port: '5432', userName: 'postgres', password: 'x', sslEnable: false },
        },
      });
      assert.equal(created.status, 204, created.text);
      await api.createScript({
        name: 'sleeps',
        type: 'DWSSQL',
        content: `SELECT pg_sleep(300) /* ${marker} */`,
        connectionName: 'pg',
      });
      await api.execute('sleeps');
      await until('the statement runs', async () => (await running()) === 1);

      server.process.kill('SIGKILL');
      await server.exited;
      // Nothing of opendlf runs now (no restart, no recovery, no stop): only PostgreSQL can end it.
      await until(
        'PostgreSQL ended the statement of the vanished client',
        async () => (await running()) === 0,
      );
    } finally {
      if (server.process.exitCode === null && server.process.signalCode === null) {
        server.process.kill('SIGKILL');
        await server.exited;
      }
      await observer
        .query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()',
          [`%${marker}%`],
        )
        .catch(() => undefined);
      await observer.end();
    }
  });
});
