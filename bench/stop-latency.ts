/**
 * Stop latency: how long after a stop request the work has really ended.
 *
 * (a) Shell: a script on connection `local` that builds a process tree (background sleeps, a
 *     subshell with its own background sleep, nohup, a pipe) and loops. Ours: POST …/stop →
 *     no process of the run's session/group (runMembers) is left. Baseline: the same tree spawned
 *     directly with child_process.spawn(detached), process.kill(-pgid, 'SIGTERM') → group gone.
 * (b) DuckDB: an endless aggregate on connection `duckdb`. Ours: POST …/stop → the result endpoint
 *     shows status FAILED (a long poll, `?waitSeconds=30`, sent 20 ms before the stop, answers). Baseline: bare @duckdb/node-api in
 *     this process, connection.interrupt() → the run() promise rejects. The stop response (204) row
 *     has a baseline too: the same interrupt from the handler of a bare fastify route, which answers
 *     204 once run() has rejected (startBareStopRoute: the HTTP request ours has to cross).
 *
 * Ours and baseline alternate run by run, after a few discarded warm-up runs of each.
 * Usage: `npx tsx bench/stop-latency.ts [--quick] [--only shell,duckdb]`.
 */
import { spawn } from 'node:child_process';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { ApiClient } from '../test/helpers/server.js';
import {
  findRunId,
  isMain,
  killLeftovers,
  markdownTable,
  now,
  onlyParts,
  runCount,
  sleep,
  startBareStopRoute,
  startBenchServer,
  stats,
  TREE_SCRIPT,
  treeReady,
  TreeObserver,
  waitUntil,
  type BareStopRoute,
  type BenchRow,
} from './lib.js';

const WARMUP = 3;
export const LONG_QUERY = 'SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3';
/** How long the query runs before it is stopped. */
const RUN_BEFORE_STOP_MS = 100;
/** Between sending the long poll that watches a DuckDB stop and sending the stop. */
const LONG_POLL_SETTLES_MS = 20;

async function status(client: ApiClient, name: string, instanceId: string): Promise<string | undefined> {
  const response = await client.result(name, instanceId);
  return response.status === 200 ? (response.json?.status as string) : undefined;
}

async function detailedStatus(
  client: ApiClient,
  name: string,
  instanceId: string,
): Promise<string | undefined> {
  const response = await client.result(name, instanceId);
  return response.json?.detailedStatus as string | undefined;
}

const oddities: string[] = [];

/*
 * Where the time goes: the server runs in this process, so wrapping process.kill and
 * DuckDBConnection.prototype.interrupt (observation only; the calls go through unchanged) shows
 * when the server actually signalled the work.
 */
const firstGroupSignal = new Map<number, number>();
let interruptWatch: { at?: number } | undefined;

function instrument(): () => void {
  const realKill = process.kill;
  const realInterrupt = DuckDBConnection.prototype.interrupt;
  process.kill = function (pid: number, signal?: string | number) {
    // The run's leader (pid = runId) or its group (-runId): with cgroup containment the stop signals
    // each pid of the run's cgroup, without it the group. Liveness probes (signal 0) and the freeze
    // (SIGSTOP/SIGCONT) are not the stop's signal.
    const target = Math.abs(pid);
    if ((signal === 'SIGTERM' || signal === 'SIGKILL') && !firstGroupSignal.has(target)) {
      firstGroupSignal.set(target, now());
    }
    return realKill.call(process, pid, signal);
  };
  DuckDBConnection.prototype.interrupt = function (this: DuckDBConnection) {
    if (interruptWatch && interruptWatch.at === undefined) interruptWatch.at = now();
    realInterrupt.call(this);
  };
  return () => {
    process.kill = realKill;
    DuckDBConnection.prototype.interrupt = realInterrupt;
  };
}

// ---- (a) Shell ---------------------------------------------------------------------------------

async function oursShellOnce(client: ApiClient, observer: TreeObserver, name: string) {
  const instanceId = await client.execute(name);
  await waitUntil('RUNNING', async () => (await status(client, name, instanceId)) === 'RUNNING');
  let runId: number | undefined;
  await waitUntil('the run id', () => (runId = findRunId(instanceId)) !== undefined);
  const id = runId!;
  await waitUntil('the process tree', () => treeReady(id));

  const { gone } = await observer.arm(id);
  firstGroupSignal.delete(id);
  const t0 = now();
  const stopped = client.stop(name, instanceId).then((r) => ({ status: r.status, at: now() }));
  const [tree, response] = await Promise.all([gone, stopped]);
  const signalledAt = firstGroupSignal.get(id);

  if (response.status !== 204) oddities.push(`shell stop answered ${response.status}`);
  if (tree.left.length > 0) {
    oddities.push(`shell stop: ${tree.left.length} process(es) of run ${id} still alive after 30 s`);
    killLeftovers(id);
  }
  const final = await detailedStatus(client, name, instanceId);
  if (final !== 'STOPPED') oddities.push(`shell instance ended ${final}, not STOPPED`);
  return { gone: tree.at - t0, response: response.at - t0, signal: (signalledAt ?? NaN) - t0 };
}

async function baselineShellOnce(observer: TreeObserver) {
  const child = spawn('bash', ['-c', TREE_SCRIPT], { detached: true, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pgid = child.pid;
  if (pgid === undefined) throw new Error('could not spawn bash');
  await waitUntil('the baseline process tree', () => treeReady(pgid));

  const { gone } = await observer.arm(pgid);
  const t0 = now();
  process.kill(-pgid, 'SIGTERM');
  const tree = await gone;
  if (tree.left.length > 0) {
    oddities.push(`baseline: ${tree.left.length} process(es) of group ${pgid} still alive after 30 s`);
    killLeftovers(pgid);
  }
  await exited;
  return tree.at - t0;
}

async function benchShell(client: ApiClient, runs: number): Promise<BenchRow[]> {
  const name = 'bench_stop_tree';
  await client.createScript({ name, type: 'Shell', content: TREE_SCRIPT, connectionName: 'local' });
  const observer = new TreeObserver();
  const gone: number[] = [];
  const response: number[] = [];
  const signal: number[] = [];
  const baseline: number[] = [];
  try {
    for (let i = 0; i < WARMUP + runs; i++) {
      const keep = i >= WARMUP;
      // Alternate which side goes first so slow drift on the machine hits both alike.
      const order = i % 2 === 0 ? ['ours', 'baseline'] : ['baseline', 'ours'];
      for (const side of order) {
        if (side === 'ours') {
          const r = await oursShellOnce(client, observer, name);
          if (keep) {
            gone.push(r.gone);
            response.push(r.response);
            signal.push(r.signal);
          }
        } else {
          const b = await baselineShellOnce(observer);
          if (keep) baseline.push(b);
        }
        await sleep(10);
      }
    }
  } finally {
    await observer.close();
  }
  return [
    { figure: 'Shell stop: request → process tree gone', ours: stats(gone), baseline: stats(baseline) },
    { figure: "Shell stop: request → SIGTERM sent to the run's leader", ours: stats(signal) },
    { figure: 'Shell stop: request → stop response (204)', ours: stats(response) },
  ];
}

// ---- (b) DuckDB --------------------------------------------------------------------------------

async function oursDuckDbOnce(client: ApiClient, name: string) {
  const instanceId = await client.execute(name);
  await waitUntil('RUNNING', async () => (await status(client, name, instanceId)) === 'RUNNING');
  await sleep(RUN_BEFORE_STOP_MS);
  if ((await status(client, name, instanceId)) !== 'RUNNING') oddities.push('duckdb query was not running');

  // The outcome is watched with a long poll sent before the stop (it waits in the server when the
  // stop arrives): a GET every 1 ms, as before, kept the event loop the server shares with this
  // client busy through the whole stop, a load the bare baseline does not have.
  const watched = client
    .request('GET', client.path(`/${encodeURIComponent(name)}/instances/${instanceId}?waitSeconds=30`))
    .then((r) => ({ status: r.json?.status as string | undefined, at: now() }));
  await sleep(LONG_POLL_SETTLES_MS);
  const watch: { at?: number } = {};
  interruptWatch = watch;
  const t0 = now();
  let responseAt: number | undefined;
  const stopped = client.stop(name, instanceId).then((r) => {
    responseAt = now();
    return r.status;
  });
  const seen = await watched;
  let failedAt: number | undefined;
  if (seen.status === 'FAILED') failedAt = seen.at;
  else oddities.push(`duckdb long poll answered ${seen.status ?? 'unknown'} instead of FAILED`);
  const code = await stopped;
  interruptWatch = undefined;
  if (code !== 204) oddities.push(`duckdb stop answered ${code}`);
  const final = await detailedStatus(client, name, instanceId);
  if (final !== 'STOPPED') oddities.push(`duckdb instance ended ${final}, not STOPPED`);
  return {
    failed: failedAt === undefined ? NaN : failedAt - t0,
    response: responseAt === undefined ? NaN : responseAt - t0,
    interrupt: (watch.at ?? NaN) - t0,
  };
}

async function baselineDuckDbOnce(db: DuckDBInstance) {
  const connection = await db.connect();
  try {
    const running = connection.run(LONG_QUERY).then(
      () => ({ ok: true, at: now() }),
      () => ({ ok: false, at: now() }),
    );
    await sleep(RUN_BEFORE_STOP_MS);
    const t0 = now();
    connection.interrupt();
    // An interrupt can be lost if it lands before the query is under way; repeat (and note it) then.
    let repeats = 0;
    const ended = await Promise.race([running, sleep(2_000).then(() => undefined)]);
    let result = ended;
    while (!result) {
      repeats++;
      connection.interrupt();
      result = await Promise.race([running, sleep(500).then(() => undefined)]);
    }
    if (repeats > 0) oddities.push(`bare DuckDB: the first interrupt was lost (${repeats} repeats)`);
    if (result.ok) oddities.push('bare DuckDB: the query completed instead of being interrupted');
    return result.at - t0;
  } finally {
    connection.closeSync();
  }
}

/** The bare interrupt sent by a bare route's handler, which answers once run() has rejected. */
async function routedDuckDbOnce(db: DuckDBInstance, route: BareStopRoute) {
  const connection = await db.connect();
  try {
    const running = connection.run(LONG_QUERY).then(
      () => true,
      () => false,
    );
    await sleep(RUN_BEFORE_STOP_MS);
    const t0 = now();
    let completed = false;
    await route.post(async () => {
      connection.interrupt();
      // As above: repeat an interrupt that was lost.
      let ended = await Promise.race([running, sleep(2_000).then(() => undefined)]);
      while (ended === undefined) {
        connection.interrupt();
        ended = await Promise.race([running, sleep(500).then(() => undefined)]);
      }
      completed = ended;
    });
    const at = now();
    if (completed)
      oddities.push('bare DuckDB behind a route: the query completed instead of being interrupted');
    return at - t0;
  } finally {
    connection.closeSync();
  }
}

async function benchDuckDb(client: ApiClient, runs: number): Promise<BenchRow[]> {
  const name = 'bench_stop_duckdb';
  await client.createScript({ name, type: 'DWSSQL', content: LONG_QUERY, connectionName: 'duckdb' });
  const db = await DuckDBInstance.create(':memory:');
  const route = await startBareStopRoute();
  const failed: number[] = [];
  const response: number[] = [];
  const interrupt: number[] = [];
  const baseline: number[] = [];
  const routed: number[] = [];
  try {
    for (let i = 0; i < WARMUP + runs; i++) {
      const keep = i >= WARMUP;
      const order = i % 2 === 0 ? ['ours', 'baseline'] : ['baseline', 'ours'];
      for (const side of order) {
        if (side === 'ours') {
          const r = await oursDuckDbOnce(client, name);
          if (keep) {
            failed.push(r.failed);
            response.push(r.response);
            interrupt.push(r.interrupt);
          }
        } else {
          const b = await baselineDuckDbOnce(db);
          await sleep(10);
          const r = await routedDuckDbOnce(db, route);
          if (keep) {
            baseline.push(b);
            routed.push(r);
          }
        }
        await sleep(10);
      }
    }
  } finally {
    await route.close();
    db.closeSync();
  }
  return [
    {
      figure: 'DuckDB stop: request → status FAILED visible',
      ours: stats(failed),
      baseline: stats(baseline),
    },
    { figure: 'DuckDB stop: request → interrupt() called', ours: stats(interrupt) },
    {
      figure: 'DuckDB stop: request → stop response (204), baseline: the interrupt behind a bare route',
      ours: stats(response),
      baseline: stats(routed),
    },
  ];
}

/** @param parts `shell`, `duckdb` (`--only` when this file runs on its own); both when absent. */
export async function stopLatency(
  parts?: ReadonlySet<string>,
): Promise<{ rows: BenchRow[]; oddities: string[] }> {
  const restore = instrument();
  const server = await startBenchServer();
  try {
    const client = server.client();
    const runs = runCount(200);
    const wanted = (part: string) => parts === undefined || parts.has(part);
    const rows = [
      ...(wanted('shell') ? await benchShell(client, runs) : []),
      ...(wanted('duckdb') ? await benchDuckDb(client, runs) : []),
    ];
    return { rows, oddities: [...oddities] };
  } finally {
    await server.close();
    restore();
  }
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const { rows, oddities: notes } = await stopLatency(onlyParts());
  console.log(markdownTable(rows));
  for (const note of notes) console.log(`note: ${note}`);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
