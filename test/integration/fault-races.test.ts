/**
 * Races and faults around the edges of a run (issue 12, items 3, 6 and 9), through the API of a
 * real server:
 *  - a queued instance whose stop is taken up before a claim never starts: each Shell script's
 *    first action is a marker file named after its instance, the queued ones' stops are sent in the
 *    same burst as the stops that free the slots, and an instance that started anyway must have been
 *    claimed before its stop request was recorded (its start time not after the request time);
 *  - deleting a script while executes of it arrive leaves no run behind: every execute either fails
 *    DLF.6201 or returns an instance whose processes are gone once the delete has answered;
 *  - a settle that throws (results too large to serialise) still settles the instance, FAILED with
 *    a reason, and the server keeps answering.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { processesOfInstance } from '../helpers/processes.js';
import type { ConfigOverrides } from '../../src/config.js';
import {
  CLUSTER_SECRET_KEY,
  createClusterDatabase,
  startNode,
  stopNode,
  type ClusterDatabase,
  type ClusterNode,
} from '../helpers/cluster.js';
import {
  ApiClient,
  PROJECT,
  spawnServer,
  startTestServer,
  tempDir,
  terminate,
  type ChildServer,
  type TestServer,
} from '../helpers/server.js';

/** A Shell script whose first action marks its instance as started, then runs for a long time. */
function markingScript(markers: string): string {
  return `touch '${markers}/'"$OPENDLF_INSTANCE_ID"\nsleep 300\n`;
}

/**
 * Requests sent together over connections opened beforehand, so they reach the server at the same
 * moment (fetch would open a new connection for each and spread them over milliseconds).
 */
class Burst {
  private readonly agent: Agent;

  constructor(
    private readonly baseUrl: string,
    private readonly size: number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: size });
  }

  /** Opens `size` connections (concurrent requests each need their own) and keeps them. */
  async warm(): Promise<void> {
    await Promise.all(Array.from({ length: this.size }, () => this.send('GET', '/healthz')));
  }

  post(path: string): Promise<number> {
    return this.send('POST', path);
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: string, path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, this.baseUrl), { method, agent: this.agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  }
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Rounds of: a long Shell script, `executes` executes of it sent over the `executors` in turn, and
 * a delete through `deleter` in the middle of them. Asserts that every execute got an instance or
 * DLF.6201, that no acknowledged run is alive when the delete answers, and none afterwards.
 */
async function deleteRace(
  executors: readonly ApiClient[],
  deleter: ApiClient,
  markers: string,
  rounds: number,
  executes: number,
): Promise<void> {
  const acknowledged: string[] = [];
  let refused = 0;
  for (let round = 0; round < rounds; round++) {
    const name = `doomed_${round}`;
    await deleter.createScript({
      name,
      type: 'Shell',
      content: markingScript(markers),
      connectionName: 'local',
    });
    const sent: Promise<void>[] = [];
    let deleteStatus: number | undefined;
    let deleted: Promise<void> | undefined;
    for (let i = 0; i < executes; i++) {
      const api = executors[i % executors.length] ?? deleter;
      sent.push(
        api.request('POST', api.path(`/${name}/execute`), { body: {} }).then((res) => {
          if (res.status === 200) {
            acknowledged.push(res.json.instanceId as string);
          } else {
            assert.equal(res.json?.error_code, 'DLF.6201', `execute: ${res.status} ${res.text}`);
            refused += 1;
          }
        }),
      );
      if (i === Math.floor(executes / 2)) {
        deleted = deleter.request('DELETE', deleter.path(`/${name}`)).then((res) => {
          deleteStatus = res.status;
          assert.equal(res.status, 204, res.text);
          // Answered: no run of the script may be alive from here on.
          const survivors = acknowledged.filter((id) => processesOfInstance(id).length > 0);
          assert.deepEqual(survivors, [], 'runs alive when the delete answered');
        });
      }
      // Spread the executes a little so some arrive on each side of the delete.
      if (i % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all([...sent, deleted]);
    assert.equal(deleteStatus, 204);
  }
  // Executes answered after the delete had answered: their work must never have started (or
  // must have been stopped with the script's other runs). A late start shows up here.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const survivors = acknowledged.filter((id) => processesOfInstance(id).length > 0);
  assert.equal(
    survivors.length,
    0,
    `${survivors.length} of ${acknowledged.length} acknowledged runs still alive`,
  );
  for (const id of acknowledged.slice(0, 20)) {
    const res = await deleter.result('doomed_0', id);
    assert.equal(res.json?.error_code, 'DLF.6201', res.text);
  }
  // Each execute either failed DLF.6201 or got an instance: nothing else happened.
  assert.equal(acknowledged.length + refused, rounds * executes);
}

/** Both stores: the embedded SQLite file, and PostgreSQL (a database of this test's own). */
const STORES = ['SQLite', 'PostgreSQL'] as const;
type StoreKind = (typeof STORES)[number];

/** A server on the given store; `close` also drops the PostgreSQL database. */
async function startServerOn(kind: StoreKind, overrides: ConfigOverrides): Promise<TestServer> {
  if (kind === 'SQLite') return startTestServer(overrides);
  const database = await createClusterDatabase('opendlf_races');
  // A PostgreSQL store needs the key every node of the deployment shares.
  process.env.OPENDLF_SECRET_KEY ??= CLUSTER_SECRET_KEY;
  let server: TestServer | undefined;
  try {
    server = await startTestServer({ ...overrides, store: database.url });
  } catch (error) {
    await database.drop();
    throw error;
  }
  return {
    ...server,
    client: (...args) => server.client(...args),
    async close() {
      await server?.close();
      await database.drop();
    },
  };
}

for (const kind of STORES) {
  describe(`${kind} store: a stop that reaches the server before a claim`, () => {
    const RUNNING = 2;
    const QUEUED = 30;
    const ROUNDS = 4;
    let server: TestServer;
    let api: ApiClient;
    let markers: string;

    before(async () => {
      markers = mkdtempSync(join(tmpdir(), 'opendlf-markers-'));
      server = await startServerOn(kind, { maxConcurrentRuns: RUNNING, stopGraceMs: 300 });
      api = server.client();
      await api.createScript({
        name: 'marked',
        type: 'Shell',
        content: markingScript(markers),
        connectionName: 'local',
      });
    });
    after(async () => {
      await server?.close();
      rmSync(markers, { recursive: true, force: true });
    });

    it(`queued instances stopped in the same burst as the running ones never start (${ROUNDS} rounds of ${RUNNING} running + ${QUEUED} queued)`, async (t) => {
      let queuedStarted = 0;
      let queuedTotal = 0;
      let stoppedAfterClaim = 0;
      const problems: string[] = [];
      const burst = new Burst(server.url, RUNNING + QUEUED);
      for (let round = 0; round < ROUNDS; round++) {
        await burst.warm();
        const running: string[] = [];
        for (let i = 0; i < RUNNING; i++) running.push(await api.execute('marked'));
        await waitUntil('the running instances to start', () =>
          running.every((id) => existsSync(join(markers, id))),
        );
        const queued: string[] = [];
        for (let i = 0; i < QUEUED; i++) queued.push(await api.execute('marked'));
        for (const id of queued) {
          const res = await api.result('marked', id);
          assert.equal(res.json.status, 'LAUNCHING', res.text);
        }
        // Every stop at once, the slot-freeing ones first, each on its own open connection: the
        // queued instances' stops reach the server in the same moment as the ones that free the
        // slots, and must win over the claims those free slots start.
        const stops = await Promise.all(
          [...running, ...queued].map((id) => burst.post(api.path(`/marked/instances/${id}/stop`))),
        );
        for (const status of stops) assert.equal(status, 204);
        for (const id of queued) {
          const res = await api.waitFor('marked', id);
          assert.equal(res.json.detailedStatus, 'STOPPED', res.text);
          queuedTotal += 1;
          // Started: the claim took it (a start time) or its script ran (the marker file).
          const started = existsSync(join(markers, id)) || res.json.startTime;
          if (!started) continue;
          // Sent in the same burst is not the same as reached first: on a loaded machine a stop can
          // reach the server after a freed slot's claim has begun, and then the claim rightly takes
          // the instance first. What must never happen is a claim (its start time) after the stop
          // was taken up (its request time, recorded on entry to the stop, before any await).
          const requested = Date.parse(String(res.json.stopRequestTime));
          const startedAt = Date.parse(String(res.json.startTime));
          if (!(requested >= startedAt)) {
            queuedStarted += 1;
            problems.push(`${id}: stop requested ${res.json.stopRequestTime}, started ${res.json.startTime}`);
          } else stoppedAfterClaim += 1;
        }
        for (const id of running)
          assert.equal((await api.waitFor('marked', id)).json.detailedStatus, 'STOPPED');
      }
      burst.close();
      t.diagnostic(
        `${stoppedAfterClaim} of ${queuedTotal} queued stops reached the server after a claim took the instance`,
      );
      assert.equal(
        queuedStarted,
        0,
        `${queuedStarted} of ${queuedTotal} queued instances started after their stop was requested:\n${problems.join('\n')}`,
      );
    });
  });

  describe(`${kind} store: deleting a script while executes of it arrive`, () => {
    const ROUNDS = 3;
    const EXECUTES = 40;
    let server: TestServer;
    let api: ApiClient;
    let markers: string;

    before(async () => {
      markers = mkdtempSync(join(tmpdir(), 'opendlf-markers-'));
      server = await startServerOn(kind, { maxConcurrentRuns: 8, stopGraceMs: 300 });
      api = server.client();
    });
    after(async () => {
      await server?.close();
      rmSync(markers, { recursive: true, force: true });
    });

    it(`no run of the script outlives the delete (${ROUNDS} rounds of ${EXECUTES} executes, a delete in the middle)`, async () => {
      await deleteRace([api], api, markers, ROUNDS, EXECUTES);
    });
  });
}

describe('PostgreSQL store, two nodes: deleting a script on one while executes arrive at both', () => {
  const ROUNDS = 3;
  const EXECUTES = 40;
  let database: ClusterDatabase | undefined;
  const nodes: ClusterNode[] = [];
  let markers: string;

  before(async () => {
    markers = mkdtempSync(join(tmpdir(), 'opendlf-markers-'));
    database = await createClusterDatabase('opendlf_races');
    for (const nodeId of ['race-a', 'race-b']) {
      nodes.push(
        await startNode({
          storeUrl: database.url,
          nodeId,
          args: ['--max-concurrent-runs', '8', '--stop-grace-ms', '300'],
        }),
      );
    }
  });
  after(async () => {
    await Promise.all(nodes.map((node) => stopNode(node)));
    await database?.drop();
    rmSync(markers, { recursive: true, force: true });
  });

  it(`no run outlives the delete on either node (${ROUNDS} rounds of ${EXECUTES} executes)`, async () => {
    const [a, b] = nodes.map((node) => new ApiClient(node.url, PROJECT));
    assert.ok(a && b);
    await deleteRace([a, b], a, markers, ROUNDS, EXECUTES);
  });
});

describe('a settle that throws', () => {
  let dataDir: string;
  let child: ChildServer | undefined;
  let api: ApiClient;

  before(async () => {
    dataDir = tempDir();
    // A byte cap above what V8 can put in one string (~512 MiB): the results of the script below
    // (600 MB of values) are kept in full, and serialising them for the store throws RangeError.
    const config = join(dataDir, 'config.json');
    writeFileSync(config, JSON.stringify({ maxResultBytes: 1_000_000_000 }));
    // Its own process: the test's heap stays small, and "the server keeps running" is a process.
    child = await spawnServer(join(dataDir, 'data'), ['--config', config]);
    api = new ApiClient(child.url, PROJECT);
  });
  after(async () => {
    if (child) await terminate(child);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('results too large to serialise: FAILED (output_limit) with the cause, and the server keeps serving', async () => {
    await api.createScript({
      name: 'wide',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'select repeat(chr(120), 600000) as wide from range(1000)',
    });
    const id = await api.execute('wide');
    // Well inside the 30 s lease: a lost settle would be reaped later, ABORTED "node lost".
    const res = await api.waitFor('wide', id, undefined, 25_000);
    assert.equal(res.json.status, 'FAILED', res.text.slice(0, 500));
    assert.equal(res.json.detailedStatus, 'FAILED');
    assert.equal(res.json.failureReason, 'output_limit');
    assert.match(res.json.message as string, /results could not be saved/);
    assert.match(res.json.message as string, /RangeError/);
    assert.deepEqual(res.json.results, []);
    assert.equal(child?.process.exitCode, null, 'the server is still running');
    assert.equal((await fetch(`${child?.url}/healthz`)).status, 200);
    await api.createScript({
      name: 'after',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'select 42 as n',
    });
    const after = await api.waitFor('after', await api.execute('after'));
    assert.equal(after.json.status, 'FINISHED', after.text);
  });
});
