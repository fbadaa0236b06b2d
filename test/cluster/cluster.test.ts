/**
 * Several nodes sharing one PostgreSQL store (issue 5), each a real `opendlf serve` process on
 * loopback with short leases (3 s) and a fast poll (200 ms). The database is created for this file
 * and dropped at the end.
 *
 *  - claims: 300 executions spread over 3 nodes run exactly once each, no node above its limit;
 *  - a stop sent to a node that does not own the instance ends the work on the owner (a shell
 *    process tree; a PostgreSQL backend);
 *  - a node SIGKILLed mid-run: its instances are settled "node lost" by the others, nothing else is
 *    disturbed, nothing runs twice, and its restart kills the leftover processes;
 *  - a node cut off from PostgreSQL fences itself (its run is killed) and the instance is settled once;
 *  - a node whose backends are terminated reconnects and keeps its runs and stops working;
 *  - SIGTERM drains: running instances may finish, the rest are ended after the drain timeout;
 *  - 100 concurrent creates of one script name over the nodes: exactly one succeeds.
 */
import { until } from '../helpers/assertions.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CLUSTER_SECRET_KEY,
  createClusterDatabase,
  startNode,
  stopNode,
  type ClusterDatabase,
  type ClusterNode,
} from '../helpers/cluster.js';
import { processesOfInstance, waitForInstanceProcesses } from '../helpers/processes.js';
import { ApiClient, PROJECT, spawnServer, tempDir } from '../helpers/server.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const LEASE_MS = 3_000;
const FOREVER = 'sleep 300 &\n( sleep 300 & sleep 300; ) &\nwhile true; do sleep 1; done\n';

interface InstanceBody {
  status: string;
  detailedStatus: string;
  message?: string;
  nodeId: string;
  endTime: string | null;
  results: { rawResult?: string }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A counter's value in a node's /metrics (0 when absent). */
async function counter(node: ClusterNode, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function instance(api: ApiClient, script: string, id: string): Promise<InstanceBody> {
  const response = await api.result(script, id);
  assert.equal(response.status, 200, response.text);
  return response.json as InstanceBody;
}

/** Long-polls (the waitSeconds extension) until the instance is terminal. */
async function settled(api: ApiClient, script: string, id: string): Promise<InstanceBody> {
  return until(
    `instance ${id} to settle`,
    async () => {
      const response = await api.request('GET', api.path(`/${script}/instances/${id}?waitSeconds=20`));
      assert.equal(response.status, 200, response.text);
      const body = response.json as InstanceBody;
      return body.status === 'FINISHED' || body.status === 'FAILED' ? body : undefined;
    },
    120_000,
  );
}

/**
 * Executes on `node` until an instance runs on that node (normally the first: the accepting node
 * claims at once, the others only after a notification). Instances claimed elsewhere are stopped.
 */
async function executeOwnedBy(node: ClusterNode, script: string): Promise<string> {
  const api = new ApiClient(node.url, PROJECT);
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const id = await api.execute(script);
    const owner = await until(`instance ${id} to be claimed`, async () => {
      const body = await instance(api, script, id);
      return body.detailedStatus === 'QUEUED' ? undefined : body.nodeId;
    });
    if (owner === node.nodeId) return id;
    await api.stop(script, id);
  }
  throw new Error(`no instance of ${script} landed on ${node.nodeId} in 20 attempts`);
}

describe('cluster: three nodes on one PostgreSQL store', () => {
  let db: ClusterDatabase;
  let nodes: ClusterNode[] = [];
  const logDir = tempDir('opendlf-cluster-log-');
  const api = (i: number) => new ApiClient(nodes[i % nodes.length]!.url, PROJECT);
  /** The `pg-sleep` script's column name, to find its statement in pg_stat_activity. */
  const marker = `cluster_${randomBytes(4).toString('hex')}`;
  const activeBackends = async () =>
    (
      await db.admin.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
        [marker],
      )
    ).rows;

  before(async () => {
    db = await createClusterDatabase();
    // The first node migrates; the other two start at once against the migrated store.
    const first = await startNode({ storeUrl: db.url, nodeId: 'node-a' });
    nodes = [
      first,
      ...(await Promise.all(['node-b', 'node-c'].map((nodeId) => startNode({ storeUrl: db.url, nodeId })))),
    ];
    await api(0).createScript({ name: 'forever', type: 'Shell', content: FOREVER, connectionName: 'local' });
  });

  after(async () => {
    await Promise.all(nodes.map((node) => stopNode(node)));
    await db.drop();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('300 executions over 3 nodes: each runs exactly once, no node runs more than its limit of 4', async () => {
    const log = join(logDir, 'claims.log');
    await api(0).createScript({
      name: 'claims',
      type: 'Shell',
      connectionName: 'local',
      // Each run records its number and its own start/end (ns) in one appended line.
      content: `s=$(date +%s%N); sleep 0.02; echo "\${n} $s $(date +%s%N)" >> ${log}\n`,
    });
    const ids: string[] = [];
    for (let batch = 0; batch < 10; batch += 1) {
      ids.push(
        ...(await Promise.all(
          Array.from({ length: 30 }, (_, k) =>
            api(batch * 30 + k).execute('claims', { n: String(batch * 30 + k) }),
          ),
        )),
      );
    }
    const owners = new Map<string, string>();
    for (const [i, id] of ids.entries()) {
      const body = await settled(api(i + 1), 'claims', id);
      assert.equal(body.status, 'FINISHED', `${id}: ${body.message ?? ''}`);
      owners.set(id, body.nodeId);
    }
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    const runs = lines.map((line) => {
      const [n, start, end] = line.split(' ');
      return { n: Number(n), start: BigInt(start!), end: BigInt(end!) };
    });
    assert.equal(runs.length, 300, 'every execution ran once, none twice');
    assert.deepEqual(
      runs.map((r) => r.n).sort((a, b) => a - b),
      Array.from({ length: 300 }, (_, i) => i),
    );
    // Concurrency per node, from the runs' own clocks: never more than 4 at once.
    const byNode = new Map<string, { start: bigint; end: bigint }[]>();
    for (const run of runs) {
      const node = owners.get(ids[run.n]!)!;
      byNode.set(node, [...(byNode.get(node) ?? []), run]);
    }
    assert.deepEqual([...byNode.keys()].sort(), ['node-a', 'node-b', 'node-c'], 'every node ran some');
    for (const [node, intervals] of byNode) {
      const events = intervals.flatMap((r) => [
        { at: r.start, delta: 1 },
        { at: r.end, delta: -1 },
      ]);
      events.sort((x, y) => (x.at === y.at ? x.delta - y.delta : x.at < y.at ? -1 : 1));
      let now = 0;
      let peak = 0;
      for (const e of events) {
        now += e.delta;
        peak = Math.max(peak, now);
      }
      assert.ok(peak <= 4, `${node} ran ${peak} instances at once (limit 4)`);
    }
  });

  it('a stop sent to a node that does not own the instance ends the shell process tree on the owner', async () => {
    const owner = nodes[1]!;
    const id = await executeOwnedBy(owner, 'forever');
    await waitForInstanceProcesses(id, 4);
    const other = new ApiClient(nodes[2]!.url, PROJECT);
    const stop = await other.stop('forever', id);
    assert.equal(stop.status, 204, stop.text);
    // The stop call answers after the work is gone on the owning node.
    assert.deepEqual(processesOfInstance(id), [], 'processes survived the stop');
    const body = await instance(other, 'forever', id);
    assert.equal(body.detailedStatus, 'STOPPED');
    assert.equal(body.nodeId, owner.nodeId);
  });

  it('a stop sent to a non-owning node cancels the PostgreSQL backend on the owner', async () => {
    const client = api(0);
    const create = await client.request('POST', `/v1/${PROJECT}/connections`, {
      body: {
        name: 'pg',
        type: 'DWS',
        config: {
          ip: '127.0.0.1',
          port: '5432',
          userName: 'postgres',
          password: 'x',
          sslEnable: false,
          database: db.name,
        },
      },
    });
    assert.equal(create.status, 204, create.text);
    await client.createScript({
      name: 'pg-sleep',
      type: 'DWSSQL',
      connectionName: 'pg',
      content: `SELECT pg_sleep(300) AS ${marker}`,
    });
    const owner = nodes[0]!;
    const id = await executeOwnedBy(owner, 'pg-sleep');
    await until('the query to reach the server', async () =>
      (await activeBackends()).length > 0 ? true : undefined,
    );
    const stop = await new ApiClient(nodes[1]!.url, PROJECT).stop('pg-sleep', id);
    assert.equal(stop.status, 204, stop.text);
    const body = await instance(client, 'pg-sleep', id);
    assert.equal(body.detailedStatus, 'STOPPED');
    const running = { rows: await activeBackends() };
    assert.deepEqual(running.rows, [], 'the statement still runs on the server');
  });

  it('stop/finish races across nodes: the stop answers after the instance settled; the first terminal state wins', async () => {
    await api(0).createScript({
      name: 'short-tree',
      type: 'Shell',
      content: '( sleep 0.05 ) &\nsleep 0.08\nwait\necho done\n',
      connectionName: 'local',
    });
    const executor = api(0);
    const stopper = api(1);
    const seen: Record<string, number> = {};
    // Spread the stop over the whole life of the run: queued, launching, running, finishing; on a
    // machine so loaded that every run was still going after 117 ms, on with longer delays until
    // both orders happened.
    for (let i = 0; i < 80; i += 1) {
      if (i >= 40 && (seen.FINISHED ?? 0) > 0 && (seen.STOPPED ?? 0) > 0) break;
      const id = await executor.execute('short-tree');
      await sleep(i < 40 ? i * 3 : (i - 39) * 40);
      const stop = await stopper.stop('short-tree', id);
      assert.equal(stop.status, 204, stop.text);
      const first = await instance(stopper, 'short-tree', id);
      assert.ok(
        first.detailedStatus === 'FINISHED' || first.detailedStatus === 'STOPPED',
        `iteration ${i}: ${first.detailedStatus} right after the stop answered`,
      );
      seen[first.detailedStatus] = (seen[first.detailedStatus] ?? 0) + 1;
      assert.deepEqual(processesOfInstance(id), [], `iteration ${i}: processes left`);
      await sleep(20);
      const later = await instance(executor, 'short-tree', id);
      assert.equal(later.detailedStatus, first.detailedStatus, `iteration ${i}: terminal state flipped`);
      assert.equal(later.endTime, first.endTime);
    }
    // Both orders must have happened, or the race was not exercised.
    assert.ok((seen.FINISHED ?? 0) > 0 && (seen.STOPPED ?? 0) > 0, JSON.stringify(seen));
  });

  it('an execute on a node with no free slot runs on another node; its result is readable from a third', async () => {
    const small = await startNode({
      storeUrl: db.url,
      nodeId: 'node-small',
      args: ['--max-concurrent-runs', '1'],
    });
    try {
      const busy = await executeOwnedBy(small, 'forever');
      await waitForInstanceProcesses(busy, 4);
      const accepting = new ApiClient(small.url, PROJECT);
      await accepting.createScript({
        name: 'elsewhere',
        type: 'Shell',
        content: 'echo ran',
        connectionName: 'local',
      });
      const id = await accepting.execute('elsewhere');
      const body = await settled(api(2), 'elsewhere', id);
      assert.equal(body.status, 'FINISHED', body.message);
      assert.notEqual(body.nodeId, 'node-small', 'the full node ran it');
      assert.match(body.results[0]?.rawResult ?? '', /ran/);
      assert.equal((await accepting.stop('forever', busy)).status, 204);
    } finally {
      await stopNode(small);
    }
  });

  it('a second process with a node id already in use refuses to start', async () => {
    const dataDir = tempDir('opendlf-node-');
    try {
      await assert.rejects(
        spawnServer(dataDir, ['--store', db.url, '--node-id', 'node-a'], {
          env: { OPENDLF_SECRET_KEY: CLUSTER_SECRET_KEY },
          captureStderr: true,
        }),
        /exited early with code 1: .*node id node-a is held by another live process/,
      );
      // The live node-a was not disturbed.
      assert.equal((await api(0).request('GET', '/readyz')).status, 200);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('100 concurrent creates of one script name over the three nodes: exactly one succeeds', async () => {
    const responses = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        api(i).request('POST', `/v1/${PROJECT}/scripts`, {
          body: { name: 'race', type: 'Shell', content: `echo ${i}`, connectionName: 'local' },
        }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 204).length, 1, `statuses: ${statuses.join(',')}`);
    for (const r of responses.filter((x) => x.status !== 204)) {
      assert.equal(r.status, 400);
      assert.equal(r.json.error_code, 'DLF.0202', r.text);
    }
  });

  it('a SIGKILLed node: its instances are settled "node lost" by the others, nothing else disturbed, nothing run twice', async () => {
    const dataDir = tempDir('opendlf-node-');
    const doomed = await startNode({ storeUrl: db.url, nodeId: 'node-doomed', dataDir });
    try {
      const lost = [await executeOwnedBy(doomed, 'forever'), await executeOwnedBy(doomed, 'forever')];
      const survivor = await executeOwnedBy(nodes[0]!, 'forever');
      for (const id of [...lost, survivor]) await waitForInstanceProcesses(id, 4);
      // A query of the doomed node on PostgreSQL (the `pg-sleep` script of the stop test above).
      const lostQuery = await executeOwnedBy(doomed, 'pg-sleep');
      await until('the query to reach the server', async () =>
        (await activeBackends()).length > 0 ? true : undefined,
      );

      doomed.process.kill('SIGKILL');
      await doomed.exited;
      const killedAt = Date.now();
      const observer = api(1);
      for (const id of lost) {
        const body = await settled(observer, 'forever', id);
        assert.equal(body.status, 'FAILED');
        assert.equal(body.detailedStatus, 'ABORTED');
        assert.match(body.message ?? '', /^node lost: .*\(node node-doomed\)$/);
      }
      const settledAfterMs = Date.now() - killedAt;
      // Its query would go on for 300 s after its client died: the reaping node ends it.
      const queryBody = await settled(observer, 'pg-sleep', lostQuery);
      assert.equal(queryBody.detailedStatus, 'ABORTED');
      assert.match(queryBody.message ?? '', /^node lost/);
      await until("the lost node's query to be ended on the server", async () =>
        (await activeBackends()).length === 0 ? true : undefined,
      );
      // For the record (no pass/fail on time): lease 3 s, reaper every second.
      process.stderr.write(
        `# node lost: instances settled ${settledAfterMs} ms after SIGKILL (lease ${LEASE_MS} ms)\n`,
      );

      const reapedCounts = await Promise.all(nodes.map((n) => counter(n, 'opendlf_instances_reaped_total')));
      assert.ok(reapedCounts.reduce((a, b) => a + b, 0) >= 3, `reaped counters ${reapedCounts.join(',')}`);
      // The other node's run is untouched, and nobody picked the lost instances up again.
      await sleep(2 * LEASE_MS);
      const other = await instance(observer, 'forever', survivor);
      assert.equal(other.detailedStatus, 'RUNNING');
      for (const id of lost) {
        assert.equal(
          (await instance(observer, 'forever', id)).detailedStatus,
          'ABORTED',
          'settled once, never re-run',
        );
      }
      assert.equal((await observer.stop('forever', survivor)).status, 204);

      // The killed node's process groups outlived it on this machine; its restart ends them.
      for (const id of lost) assert.ok(processesOfInstance(id).length > 0, 'precondition: orphans exist');
      const again = await startNode({ storeUrl: db.url, nodeId: 'node-doomed', dataDir });
      try {
        for (const id of lost)
          assert.deepEqual(processesOfInstance(id), [], 'leftovers survived the restart');
        for (const id of lost) {
          const body = await instance(observer, 'forever', id);
          assert.match(body.message ?? '', /^node lost/, 'recovery does not rewrite a settled instance');
        }
      } finally {
        await stopNode(again, false);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a node cut off from PostgreSQL survives a blip, then fences itself: its run is killed and the instance is settled once', async () => {
    const proxy = await startTcpProxy(5432);
    const storeUrl = `postgres://postgres@127.0.0.1:${proxy.port}/${db.name}`;
    const cutOff = await startNode({ storeUrl, nodeId: 'node-cut' });
    try {
      const id = await executeOwnedBy(cutOff, 'forever');
      await waitForInstanceProcesses(id, 4);
      // A blip shorter than a third of the lease costs at most one heartbeat: the run goes on.
      proxy.cut();
      await sleep(LEASE_MS / 6);
      proxy.restore();
      await sleep(2 * LEASE_MS);
      assert.equal((await instance(api(2), 'forever', id)).detailedStatus, 'RUNNING', 'a blip ended the run');
      assert.ok(processesOfInstance(id).length > 0, 'a blip killed the run');
      proxy.cut();
      // Fencing: the node ends its own run before its lease can expire, without any stop request.
      await until('the cut-off node to kill its run', () =>
        Promise.resolve(processesOfInstance(id).length === 0 ? true : undefined),
      );
      const observer = api(2);
      const body = await settled(observer, 'forever', id);
      assert.equal(body.detailedStatus, 'ABORTED');
      assert.match(body.message ?? '', /^node lost: .*\(node node-cut\)$/);

      proxy.restore();
      // Back on the network, the node works again and does not rewrite the settled instance.
      const fresh = new ApiClient(cutOff.url, PROJECT);
      await fresh.createScript({
        name: 'after-cut',
        type: 'Shell',
        content: 'echo back',
        connectionName: 'local',
      });
      const next = await until('the node to accept work again', async () => {
        const response = await fresh.request('POST', fresh.path('/after-cut/execute'), { body: {} });
        return response.status === 200 ? (response.json.instanceId as string) : undefined;
      });
      assert.equal((await settled(fresh, 'after-cut', next)).status, 'FINISHED');
      assert.ok((await counter(cutOff, 'opendlf_runs_fenced_total')) >= 1, 'the fenced run is counted');
      const again = await instance(observer, 'forever', id);
      assert.equal(again.detailedStatus, 'ABORTED');
      assert.equal(again.endTime, body.endTime, 'settled exactly once');
    } finally {
      await stopNode(cutOff);
      await proxy.close();
    }
  });

  it("a terminated store session is logged by the error's own fields, not the driver's client (cancel key)", async () => {
    const node = await startNode({ storeUrl: db.url, nodeId: 'node-logged', captureStderr: true });
    try {
      await db.admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
        [`opendlf node ${node.nodeId}`],
      );
      const line = await until('a store connection error logged', () =>
        Promise.resolve(node.stderr.find((l) => l.includes('store connection error'))),
      );
      assert.match(line, /"during":"(idle pooled connection|signal listener)"/);
      assert.match(line, /terminat/i);
      assert.doesNotMatch(line, /secretKey|connectionParameters|processID/);
    } finally {
      await stopNode(node);
    }
  });

  it('a node whose database sessions are terminated reconnects; its run goes on and a stop from another node still ends it', async () => {
    const owner = nodes[2]!;
    const id = await executeOwnedBy(owner, 'forever');
    await waitForInstanceProcesses(id, 4);
    const killed = await db.admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [`opendlf node ${owner.nodeId}`],
    );
    assert.ok(killed.rowCount !== null && killed.rowCount >= 2, 'the pool and the listener were terminated');
    // Two lease periods later the run is still there: heartbeats reconnected in time.
    await sleep(2 * LEASE_MS);
    const observer = api(0);
    assert.equal((await instance(observer, 'forever', id)).detailedStatus, 'RUNNING');
    assert.ok(processesOfInstance(id).length > 0);
    assert.equal((await observer.stop('forever', id)).status, 204);
    assert.deepEqual(processesOfInstance(id), []);
    assert.equal((await instance(observer, 'forever', id)).detailedStatus, 'STOPPED');
  });

  it('SIGTERM drains a node: a run that ends within the drain timeout finishes, the rest are ended', async () => {
    const draining = await startNode({
      storeUrl: db.url,
      nodeId: 'node-drain',
      args: ['--drain-timeout-seconds', '4'],
    });
    await api(0).createScript({
      name: 'short',
      type: 'Shell',
      content: 'sleep 2; echo done',
      connectionName: 'local',
    });
    const short = await executeOwnedBy(draining, 'short');
    const long = await executeOwnedBy(draining, 'forever');
    await waitForInstanceProcesses(long, 4);
    draining.process.kill('SIGTERM');
    const exit = await draining.exited;
    assert.equal(exit.code, 0);
    const observer = api(1);
    const shortBody = await instance(observer, 'short', short);
    assert.equal(shortBody.status, 'FINISHED', shortBody.message);
    assert.match(shortBody.results[0]?.rawResult ?? '', /done/);
    const longBody = await instance(observer, 'forever', long);
    assert.equal(longBody.detailedStatus, 'ABORTED');
    assert.match(longBody.message ?? '', /shut down/);
    assert.deepEqual(processesOfInstance(long), []);
    await stopNode(draining);
  });
});
