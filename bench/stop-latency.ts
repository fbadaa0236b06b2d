/**
 * Stop latency: how long after a stop request the work has really ended.
 *
 * (a) Shell: a script on connection `local` that builds a process tree (background sleeps, a
 *     subshell with its own background sleep, nohup, a pipe) and loops. Ours: POST …/stop →
 *     no process of the run's session/group (runMembers) is left. Baseline: the same tree spawned
 *     directly with child_process.spawn(detached), process.kill(-pgid, 'SIGTERM') → group gone.
 * (b) DuckDB: an endless aggregate on connection `duckdb`. Ours: POST …/stop → the result endpoint
 *     (polled every 1 ms meanwhile) first shows status FAILED. Baseline: bare @duckdb/node-api in
 *     this process, connection.interrupt() → the run() promise rejects.
 *
 * Ours and baseline alternate run by run, after a few discarded warm-up runs of each.
 * Usage: `npx tsx bench/stop-latency.ts [--quick]`.
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
  runCount,
  sleep,
  startBenchServer,
  stats,
  TREE_SCRIPT,
  treeReady,
  TreeObserver,
  waitUntil,
  type BenchRow,
} from './lib.js';

const WARMUP = 3;
export const LONG_QUERY = 'SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3';
/** How long the query runs before it is stopped. */
const RUN_BEFORE_STOP_MS = 100;

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
    if (pid < 0 && !firstGroupSignal.has(-pid)) firstGroupSignal.set(-pid, now());
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
    { figure: 'Shell stop: request → SIGTERM sent to the group', ours: stats(signal) },
    { figure: 'Shell stop: request → stop response (204)', ours: stats(response) },
  ];
}

// ---- (b) DuckDB --------------------------------------------------------------------------------

async function oursDuckDbOnce(client: ApiClient, name: string) {
  const instanceId = await client.execute(name);
  await waitUntil('RUNNING', async () => (await status(client, name, instanceId)) === 'RUNNING');
  await sleep(RUN_BEFORE_STOP_MS);
  if ((await status(client, name, instanceId)) !== 'RUNNING') oddities.push('duckdb query was not running');

  const watch: { at?: number } = {};
  interruptWatch = watch;
  const t0 = now();
  let responseAt: number | undefined;
  const stopped = client.stop(name, instanceId).then((r) => {
    responseAt = now();
    return r.status;
  });
  let failedAt: number | undefined;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await status(client, name, instanceId);
    if (s === 'FAILED') {
      failedAt = now();
      break;
    }
    if (s === 'FINISHED' || Date.now() > deadline) {
      oddities.push(`duckdb instance ended ${s ?? 'unknown'} instead of FAILED`);
      break;
    }
    await sleep(1);
  }
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

async function benchDuckDb(client: ApiClient, runs: number): Promise<BenchRow[]> {
  const name = 'bench_stop_duckdb';
  await client.createScript({ name, type: 'DWSSQL', content: LONG_QUERY, connectionName: 'duckdb' });
  const db = await DuckDBInstance.create(':memory:');
  const failed: number[] = [];
  const response: number[] = [];
  const interrupt: number[] = [];
  const baseline: number[] = [];
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
          if (keep) baseline.push(b);
        }
        await sleep(10);
      }
    }
  } finally {
    db.closeSync();
  }
  return [
    {
      figure: 'DuckDB stop: request → status FAILED visible',
      ours: stats(failed),
      baseline: stats(baseline),
    },
    { figure: 'DuckDB stop: request → interrupt() called', ours: stats(interrupt) },
    { figure: 'DuckDB stop: request → stop response (204)', ours: stats(response) },
  ];
}

export async function stopLatency(): Promise<{ rows: BenchRow[]; oddities: string[] }> {
  const restore = instrument();
  const server = await startBenchServer();
  try {
    const client = server.client();
    const runs = runCount(200);
    const rows = [...(await benchShell(client, runs)), ...(await benchDuckDb(client, runs))];
    return { rows, oddities: [...oddities] };
  } finally {
    await server.close();
    restore();
  }
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const { rows, oddities: notes } = await stopLatency();
  console.log(markdownTable(rows));
  for (const note of notes) console.log(`note: ${note}`);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
