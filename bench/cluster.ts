/**
 * Cluster: several `opendlf serve` nodes (child processes) sharing one PostgreSQL store.
 *
 * (a) Stop latency. A Shell `sleep 300` on connection `local` is executed on node B; once it is
 *     RUNNING (its owner read from the result's `nodeId`) and its `sleep` process exists, the clock
 *     starts as `POST …/stop` is sent and stops when the 204 arrives (the stop answers once the
 *     instance has settled). The stop goes to the owning node, or to a node that does not own the
 *     instance (delivered through LISTEN/NOTIFY), or, as the baseline, to a single node with the
 *     default SQLite store. Afterwards the instance must be FAILED / STOPPED with no process of it
 *     left (`processesOfInstance`). Each run holds the three sides in an order shuffled anew (a
 *     fixed seed), after warm-up runs.
 * (b) Trivial executions per second. M executes of a Shell script that only appends its instance id
 *     to a file (`echo "$OPENDLF_INSTANCE_ID" >> file`) are sent round-robin over the nodes by 16
 *     clients, each execute followed by a long-poll GET (`?waitSeconds=60`) on the node that accepted
 *     it; the rate is M ÷ (first execute → last terminal answer). One cluster of 1 node and one of 3
 *     nodes (separate databases, `--max-concurrent-runs 8` each), rounds alternating. Every instance
 *     must be FINISHED and listed exactly once, and its id written exactly once (it ran once).
 *
 * Nodes use the product's defaults otherwise (lease 30 s, poll 1000 ms, stop grace 2 s).
 * Usage: `npx tsx bench/cluster.ts [--quick]`.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { CLUSTER_SECRET_KEY, createClusterDatabase, type ClusterDatabase } from '../test/helpers/cluster.js';
import { processesOfInstance } from '../test/helpers/processes.js';
import { ApiClient, PROJECT, spawnServer, tempDir, terminate } from '../test/helpers/server.js';
import {
  isMain,
  markdownTable,
  now,
  runCount,
  seededRandom,
  shuffled,
  skippedRow,
  sleep,
  stats,
  waitUntil,
  type BenchRow,
} from './lib.js';

const quick = process.argv.includes('--quick');

const oddities: string[] = [];
const environment: string[] = [];

const MAX_CONCURRENT_RUNS = 8;
const STOP_WARMUP = 3;
export const CLUSTER_STOP_RUNS = runCount(100);
/** Failed stop runs (per side) after which that side gives up; the row's n shows the shortfall. */
const MAX_STOP_FAILURES = 5;
const SUBMIT_CLIENTS = 16;
export const CLUSTER_TP_INSTANCES = quick ? 30 : 300;
export const CLUSTER_TP_ROUNDS = quick ? 1 : 5;
const CPUS = os.availableParallelism();

// ---- nodes ---------------------------------------------------------------------------------------

interface Node {
  /** The label used in this benchmark (A, B, C, solo, sqlite). */
  readonly label: string;
  /** The node id the server reports (its startup line). */
  readonly nodeId: string;
  readonly url: string;
  readonly client: ApiClient;
  readonly child: ChildProcess;
  /** Everything the server wrote to stderr (log level warn), first 500 lines. */
  readonly stderr: string[];
  close(): Promise<void>;
}

/** `opendlf serve` as a child process (test/helpers/server.ts spawnServer), stderr kept. */
async function startNode(label: string, args: readonly string[]): Promise<Node> {
  const dataDir = tempDir(`opendlf-bench-${label}-`);
  const server = await spawnServer(dataDir, args, {
    env: { OPENDLF_SECRET_KEY: CLUSTER_SECRET_KEY },
    captureStderr: true,
  });
  const child = server.process;
  return {
    label,
    nodeId: server.nodeId,
    url: server.url,
    client: new ApiClient(server.url, PROJECT),
    child,
    stderr: server.stderr,
    async close() {
      await terminate(server);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function clusterArgs(db: ClusterDatabase, nodeId: string): string[] {
  return [
    '--store',
    db.url,
    '--node-id',
    nodeId,
    '--max-concurrent-runs',
    String(MAX_CONCURRENT_RUNS),
    // Nothing runs when the benchmark shuts its nodes down; do not wait for a drain.
    '--drain-timeout-seconds',
    '0',
  ];
}

// ---- (a) stop latency ----------------------------------------------------------------------------

const STOP_SCRIPT = 'bench_cluster_stop';
type StopSide = 'owning' | 'nonOwning' | 'single';

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Executes `sleep 300` on `on`, waits until it is RUNNING with its `sleep` process alive. */
async function startSleep(on: Node): Promise<{ instanceId: string; owner: string }> {
  const instanceId = await on.client.execute(STOP_SCRIPT);
  let owner = '';
  await waitUntil(
    `instance ${instanceId} RUNNING`,
    async () => {
      const response = await on.client.result(STOP_SCRIPT, instanceId);
      const body = response.json;
      if (response.status !== 200) throw new Error(`result answered ${response.status}: ${response.text}`);
      if (body.status === 'FINISHED' || body.status === 'FAILED') {
        throw new Error(
          `instance ended ${body.detailedStatus} before the stop: ${response.text.slice(0, 300)}`,
        );
      }
      owner = body.nodeId as string;
      return body.detailedStatus === 'RUNNING';
    },
    30_000,
    5,
  );
  await waitUntil(
    `the sleep process of ${instanceId}`,
    () => processesOfInstance(instanceId).some((pid) => cmdline(pid) === 'sleep 300'),
    15_000,
    5,
  );
  return { instanceId, owner };
}

/** The stop, timed from sending the POST to its response; then the instance and its processes are checked. */
async function timedStop(target: Node, instanceId: string, side: StopSide): Promise<number> {
  const t0 = now();
  const response = await target.client.stop(STOP_SCRIPT, instanceId);
  const ms = now() - t0;
  if (response.status !== 204)
    throw new Error(`stop on node ${target.label} answered ${response.status}: ${response.text}`);
  const left = processesOfInstance(instanceId);
  const result = await target.client.result(STOP_SCRIPT, instanceId);
  const problems: string[] = [];
  if (result.json?.status !== 'FAILED' || result.json?.detailedStatus !== 'STOPPED') {
    problems.push(`instance is ${result.json?.status}/${result.json?.detailedStatus} after the 204`);
  }
  if (left.length > 0) {
    problems.push(`${left.length} process(es) left after the 204 (${left.map(cmdline).join(', ')})`);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
  }
  if (problems.length > 0) {
    throw new Error(`${side} stop (${ms.toFixed(1)} ms, on node ${target.label}): ${problems.join('; ')}`);
  }
  return ms;
}

async function benchStop(nodes: readonly Node[], single: Node): Promise<BenchRow[]> {
  const [a, b] = nodes as [Node, Node, ...Node[]];
  for (const node of [a, single]) {
    await node.client.createScript({
      name: STOP_SCRIPT,
      type: 'Shell',
      content: 'sleep 300',
      connectionName: 'local',
    });
  }
  const byNodeId = new Map(nodes.map((node) => [node.nodeId, node]));
  const samples: Record<StopSide, number[]> = { owning: [], nonOwning: [], single: [] };
  const failures: Record<StopSide, number> = { owning: 0, nonOwning: 0, single: 0 };
  const sides: StopSide[] = ['owning', 'nonOwning', 'single'];
  let notOnB = 0;
  let clusterRuns = 0;
  // Each round runs the sides in an order shuffled anew (fixed seed): a rotation keeps every side
  // behind the same neighbour, whose clean-up it would always share the machine with.
  const random = seededRandom(20_261_202);
  for (let i = 0; i < STOP_WARMUP + CLUSTER_STOP_RUNS; i++) {
    const keep = i >= STOP_WARMUP;
    for (const side of shuffled(sides, random)) {
      if (failures[side] > MAX_STOP_FAILURES) continue;
      let instanceId: string | undefined;
      let target: Node | undefined;
      try {
        if (side === 'single') {
          instanceId = (await startSleep(single)).instanceId;
          target = single;
        } else {
          const started = await startSleep(b);
          instanceId = started.instanceId;
          clusterRuns++;
          const owner = byNodeId.get(started.owner);
          if (!owner) throw new Error(`instance ${instanceId} runs on an unknown node '${started.owner}'`);
          if (owner !== b) notOnB++;
          target = side === 'owning' ? owner : owner === b ? a : b;
        }
        const ms = await timedStop(target, instanceId, side);
        if (keep) samples[side].push(ms);
      } catch (error) {
        failures[side]++;
        oddities.push(
          `cluster stop, ${side}: a run failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        // Do not leave a `sleep 300` behind for the next run.
        if (instanceId !== undefined) {
          await (target ?? b).client.stop(STOP_SCRIPT, instanceId).catch(() => undefined);
          for (const pid of processesOfInstance(instanceId)) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // Gone.
            }
          }
        }
      }
      await sleep(10);
    }
  }
  if (notOnB > 0) {
    oddities.push(
      `cluster stop: ${notOnB} of ${clusterRuns} instances executed on node B were claimed by another node ` +
        '(the owner was then the "owning" target and B the "non-owning" one)',
    );
  }
  const planned = `(${CLUSTER_STOP_RUNS} kept runs a side after ${STOP_WARMUP} warm-up)`;
  environment.push(
    `Cluster stop ${planned}: the instance ran on node B in ${clusterRuns - notOnB} of ${clusterRuns} cluster runs`,
  );
  return [
    {
      figure: 'Cluster stop → 204: non-owning node ÷ owning node',
      ours: stats(samples.nonOwning),
      baseline: stats(samples.owning),
    },
    {
      figure: 'Cluster stop → 204: non-owning node ÷ single node (SQLite)',
      ours: stats(samples.nonOwning),
      baseline: stats(samples.single),
    },
    {
      figure: 'Cluster stop → 204: owning node ÷ single node (SQLite)',
      ours: stats(samples.owning),
      baseline: stats(samples.single),
    },
  ];
}

// ---- (b) executions per second -------------------------------------------------------------------

let scriptCounter = 0;

/**
 * One round: `count` executes round-robin over `nodes` (SUBMIT_CLIENTS at once), each followed by a
 * long-poll on the accepting node; instances/s from the first execute to the last terminal answer.
 * Then every instance must be FINISHED, listed once, and have written its id exactly once.
 */
async function tpRound(nodes: readonly Node[], count: number): Promise<{ rate: number; perNode: string }> {
  const name = `bench_cluster_tp_${nodes.length}n_${++scriptCounter}`;
  const logFile = join(os.tmpdir(), `opendlf-bench-${process.pid}-${name}.log`);
  writeFileSync(logFile, '');
  try {
    await nodes[0]!.client.createScript({
      name,
      type: 'Shell',
      content: `echo "$OPENDLF_INSTANCE_ID" >> ${logFile}`,
      connectionName: 'local',
    });
    const ids: string[] = [];
    const settled: Promise<void>[] = [];
    let lastTerminal = 0;
    const failed: string[] = [];
    const deadline = Date.now() + 120_000;
    const settle = async (node: Node, id: string) => {
      const path = node.client.path(`/${name}/instances/${id}?waitSeconds=60`);
      for (;;) {
        const response = await node.client.request('GET', path);
        const status = response.json?.status as string | undefined;
        if (response.status !== 200)
          throw new Error(`long-poll on node ${node.label} answered ${response.status}`);
        if (status === 'FINISHED' || status === 'FAILED') {
          lastTerminal = Math.max(lastTerminal, now());
          if (status === 'FAILED') failed.push(response.text.slice(0, 300));
          return;
        }
        if (Date.now() > deadline) throw new Error(`instance ${id} still ${status} after 120 s`);
      }
    };
    let next = 0;
    const t0 = now();
    const lane = async () => {
      while (next < count) {
        const node = nodes[next++ % nodes.length]!;
        const id = await node.client.execute(name);
        ids.push(id);
        const waiting = settle(node, id);
        waiting.catch(() => undefined); // Surfaced by Promise.all below.
        settled.push(waiting);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SUBMIT_CLIENTS, count) }, lane));
    await Promise.all(settled);
    const rate = count / ((lastTerminal - t0) / 1000);

    // Exactly once: listed once each and FINISHED; each id written once by its run.
    const problems: string[] = [];
    if (failed.length > 0) problems.push(`${failed.length} FAILED (first: ${failed[0]})`);
    const listed = await nodes[0]!.client.request(
      'GET',
      nodes[0]!.client.path(`/${name}/instances?limit=1000`),
    );
    const rows = (listed.json?.instances ?? []) as { instanceId: string; status: string; nodeId: string }[];
    const listedCount = new Map<string, number>();
    const perNode = new Map<string, number>();
    for (const row of rows) {
      listedCount.set(row.instanceId, (listedCount.get(row.instanceId) ?? 0) + 1);
      perNode.set(row.nodeId, (perNode.get(row.nodeId) ?? 0) + 1);
      if (row.status !== 'FINISHED') problems.push(`instance ${row.instanceId} listed ${row.status}`);
    }
    const written = new Map<string, number>();
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      if (line !== '') written.set(line, (written.get(line) ?? 0) + 1);
    }
    if (new Set(ids).size !== count) problems.push(`${new Set(ids).size} distinct ids for ${count} executes`);
    if (rows.length !== count) problems.push(`the list holds ${rows.length} instances, not ${count}`);
    const notListedOnce = ids.filter((id) => listedCount.get(id) !== 1).length;
    const notRunOnce = ids.filter((id) => written.get(id) !== 1).length;
    const strangers = [...written.keys()].filter((id) => !ids.includes(id)).length;
    if (notListedOnce > 0) problems.push(`${notListedOnce} instances not listed exactly once`);
    if (notRunOnce > 0) problems.push(`${notRunOnce} instances did not write their id exactly once`);
    if (strangers > 0) problems.push(`${strangers} unknown ids written`);
    if (problems.length > 0) throw new Error(`${name}: ${problems.slice(0, 5).join('; ')}`);
    const labelOf = new Map(nodes.map((node) => [node.nodeId, node.label]));
    const spread = [...perNode.entries()]
      .map(([id, n]) => `${labelOf.get(id) ?? id} ${n}`)
      .sort()
      .join(', ');
    return { rate, perNode: spread };
  } finally {
    rmSync(logFile, { force: true });
  }
}

async function benchThroughput(solo: readonly Node[], trio: readonly Node[]): Promise<BenchRow[]> {
  const rates = { solo: [] as number[], trio: [] as number[] };
  const spreads: string[] = [];
  let failures = 0;
  const round = async (side: 'solo' | 'trio', count: number, keep: boolean) => {
    try {
      const r = await tpRound(side === 'solo' ? solo : trio, count);
      if (!keep) return;
      rates[side].push(r.rate);
      if (side === 'trio') spreads.push(r.perNode);
    } catch (error) {
      failures++;
      oddities.push(
        `cluster throughput, ${side === 'solo' ? '1 node' : '3 nodes'}: a round failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };
  // A discarded quarter-size round of each, then rounds alternating which goes first.
  await round('solo', Math.ceil(CLUSTER_TP_INSTANCES / 4), false);
  await round('trio', Math.ceil(CLUSTER_TP_INSTANCES / 4), false);
  for (let i = 0; i < CLUSTER_TP_ROUNDS; i++) {
    const order: ('solo' | 'trio')[] = i % 2 === 0 ? ['solo', 'trio'] : ['trio', 'solo'];
    for (const side of order) {
      await round(side, CLUSTER_TP_INSTANCES, true);
      await sleep(200);
    }
  }
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(', ');
  oddities.push(
    `Cluster throughput: inst/s per round, 1 node: ${fmt(rates.solo)}; 3 nodes: ${fmt(rates.trio)}; ` +
      `instances run per node (3 nodes, each round): ${spreads.join(' | ')}`,
  );
  oddities.push(
    `Cluster throughput: this machine has ${CPUS} CPU(s), shared by the 3 nodes, the PostgreSQL server, ` +
      'the shells and the benchmark client, so 3 nodes cannot scale CPU-bound work such as this: ' +
      'the ratio shows what a second and third node cost or gain on one small machine, not cluster scaling.',
  );
  if (failures > 0) oddities.push(`cluster throughput: ${failures} round(s) failed`);
  return [
    {
      figure:
        `Cluster throughput: ${CLUSTER_TP_INSTANCES} Shell \`echo\` instances round-robin, 3 nodes ÷ 1 node ` +
        `(maxConcurrentRuns ${MAX_CONCURRENT_RUNS} each; ${CPUS} CPUs, cannot scale CPU-bound work)`,
      ours: stats(rates.trio),
      baseline: stats(rates.solo),
      unit: 'inst/s',
    },
  ];
}

// ---- the whole benchmark -------------------------------------------------------------------------

const STOP_FIGURES = [
  'Cluster stop → 204: non-owning node ÷ owning node',
  'Cluster stop → 204: non-owning node ÷ single node (SQLite)',
  'Cluster stop → 204: owning node ÷ single node (SQLite)',
];
const TP_FIGURE = 'Cluster throughput: Shell `echo` instances round-robin, 3 nodes ÷ 1 node';

export async function clusterBench(): Promise<{
  rows: BenchRow[];
  oddities: string[];
  environment: string[];
}> {
  const databases: ClusterDatabase[] = [];
  const nodes: Node[] = [];
  try {
    let soloDb: ClusterDatabase;
    let trioDb: ClusterDatabase;
    try {
      soloDb = await createClusterDatabase('opendlf_bench_solo');
      databases.push(soloDb);
      trioDb = await createClusterDatabase('opendlf_bench_trio');
      databases.push(trioDb);
    } catch (error) {
      const reason = `PostgreSQL at 127.0.0.1:5432 unavailable (${error instanceof Error ? error.message : String(error)})`;
      return {
        rows: [...STOP_FIGURES, TP_FIGURE].map((figure) => skippedRow(figure, reason)),
        oddities: [],
        environment: [],
      };
    }
    const started = await Promise.all([
      startNode('A', clusterArgs(trioDb, 'A')),
      startNode('B', clusterArgs(trioDb, 'B')),
      startNode('C', clusterArgs(trioDb, 'C')),
      startNode('solo', clusterArgs(soloDb, 'solo')),
      startNode('sqlite', ['--max-concurrent-runs', String(MAX_CONCURRENT_RUNS)]),
    ]);
    nodes.push(...started);
    const [a, b, c, solo, single] = started;
    const version = await soloDb.admin.query<{ server_version: string }>('SHOW server_version');
    environment.push(
      `Cluster: opendlf nodes as child processes (\`node --import tsx src/cli/main.ts serve\`, log level warn), ` +
        `PostgreSQL ${version.rows[0]?.server_version ?? '?'} on 127.0.0.1 (one database for the 3-node ` +
        `cluster A/B/C, one for the 1-node cluster), a single SQLite node for the baseline; lease 30 s, ` +
        `poll 1000 ms, stop grace 2 s (defaults), --max-concurrent-runs ${MAX_CONCURRENT_RUNS}`,
    );
    const rows = [...(await benchStop([a, b, c], single)), ...(await benchThroughput([solo], [a, b, c]))];
    // The arrays themselves: the nodes' stderr is added to `oddities` below, after they stopped.
    return { rows, oddities, environment };
  } finally {
    await Promise.all(nodes.map((node) => node.close()));
    for (const node of nodes) {
      // The one line every node writes when the benchmark shuts it down is expected.
      const lines = node.stderr.filter((line) => line !== 'opendlf: SIGTERM received, shutting down');
      if (lines.length === 0) continue;
      const shown = lines.slice(0, 10).map((line) => line.slice(0, 400));
      oddities.push(
        `cluster: node ${node.label} wrote ${lines.length}${node.stderr.length >= 500 ? '+' : ''} stderr line(s); ` +
          `first: ${shown.join(' ⏎ ')}`,
      );
    }
    for (const db of databases) await db.drop().catch(() => undefined);
  }
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const { rows, oddities: notes, environment: env } = await clusterBench();
  console.log(markdownTable(rows));
  for (const line of env) console.log(`- ${line}`);
  for (const note of notes) console.log(`note: ${note}`);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
