/**
 * One server per data directory (issue 12, item 7). Before the fix a second `opendlf serve` on the
 * same data directory started without complaint, and its startup recovery aborted the first
 * server's running instance and killed its processes.
 *
 * Now the second server refuses to start, naming the directory, before any recovery runs: the first
 * server's Shell instance stays RUNNING with every process alive. The lock goes with its process:
 * after the first server is SIGKILLed a new server starts on the directory at once (no stale lock)
 * and, being the same node, ends the leftover run as recovery always did.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { processesOfInstance, waitForInstanceProcesses } from '../helpers/processes.js';
import { ApiClient, PROJECT, spawnServer, tempDir, terminate, type ChildServer } from '../helpers/server.js';

/** A process tree that stays as it is (no process comes and goes by itself). */
const TREE = 'sleep 300 &\n( sleep 300 & sleep 300; ) &\nwait\n';

describe('a second server on the same data directory', () => {
  const dirs: string[] = [];
  const servers: ChildServer[] = [];
  after(async () => {
    for (const server of servers) await terminate(server);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses to start and leaves the first server's running instance and processes alone", async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const first = await spawnServer(dataDir);
    servers.push(first);
    const api = new ApiClient(first.url, PROJECT);
    await api.createScript({ name: 'tree', type: 'Shell', content: TREE, connectionName: 'local' });
    const id = await api.execute('tree');
    await waitForInstanceProcesses(id, 4);
    const pidsBefore = processesOfInstance(id).sort((a, b) => a - b);

    // Twice: a refused start must not leave anything behind that changes the next attempt.
    const refusals: string[] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      const second = spawnServer(dataDir, [], { captureStderr: true });
      const outcome = await second.then(
        (server) => {
          servers.push(server);
          return 'started';
        },
        (error: Error) => error.message,
      );
      refusals.push(outcome);
    }
    assert.equal(refusals.length, 2);
    for (const refusal of refusals) {
      assert.match(refusal, /exited early with code 1/, refusal);
      assert.match(refusal, /data directory .* is in use by another opendlf server/, refusal);
    }

    const instance = await api.result('tree', id);
    assert.equal(instance.json.status, 'RUNNING', instance.text);
    assert.equal(instance.json.detailedStatus, 'RUNNING', instance.text);
    const pidsAfter = processesOfInstance(id).sort((a, b) => a - b);
    assert.deepEqual(
      pidsAfter.filter((pid) => pidsBefore.includes(pid)),
      pidsBefore,
      "a process of the first server's run was killed",
    );
    // The first server still works: a stop ends its run as usual.
    assert.equal((await api.stop('tree', id)).status, 204);
    assert.equal((await api.result('tree', id)).json.detailedStatus, 'STOPPED');
    assert.deepEqual(processesOfInstance(id), []);
  });

  it('is free again once the first server is gone, even after SIGKILL (no stale lock)', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const first = await spawnServer(dataDir);
    const api = new ApiClient(first.url, PROJECT);
    await api.createScript({ name: 'tree', type: 'Shell', content: TREE, connectionName: 'local' });
    const id = await api.execute('tree');
    await waitForInstanceProcesses(id, 4);
    first.process.kill('SIGKILL');
    await first.exited;

    const next = await spawnServer(dataDir);
    servers.push(next);
    const api2 = new ApiClient(next.url, PROJECT);
    // The same node: its recovery ends what the killed process left behind.
    assert.deepEqual(processesOfInstance(id), []);
    assert.equal((await api2.result('tree', id)).json.detailedStatus, 'ABORTED');
    await terminate(next);

    // And after a graceful stop, too.
    const again = await spawnServer(dataDir);
    servers.push(again);
    assert.equal((await new ApiClient(again.url, PROJECT).result('tree', id)).json.detailedStatus, 'ABORTED');
  });
});
