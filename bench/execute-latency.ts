/**
 * Execute latency: how long a trivial script takes end to end.
 *
 * - SQL: `SELECT 1` on connection `duckdb`. Ours: POST …/execute, then GET the result every 1 ms
 *   until status FINISHED. Baseline: bare @duckdb/node-api `runAndReadAll('SELECT 1')` on a
 *   connection that is already open, in this process.
 * - Shell: `echo 1` on connection `local`. Ours: as above. Baseline: child_process.spawn of
 *   `bash -c 'echo 1'` until the child's exit event.
 *
 * Ours and baseline alternate run by run, after a few discarded warm-up runs of each.
 * Usage: `npx tsx bench/execute-latency.ts [--quick]`.
 */
import { spawn } from 'node:child_process';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { ApiClient } from '../test/helpers/server.js';
import {
  isMain,
  markdownTable,
  now,
  runCount,
  sleep,
  startBenchServer,
  stats,
  type BenchRow,
} from './lib.js';

const WARMUP = 5;
const oddities: string[] = [];

/** POST execute, then poll the result endpoint every 1 ms until a terminal status. */
async function oursOnce(client: ApiClient, name: string): Promise<number> {
  const t0 = now();
  const instanceId = await client.execute(name);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const response = await client.result(name, instanceId);
    const status = response.json?.status as string | undefined;
    if (status === 'FINISHED') return now() - t0;
    if (status === 'FAILED' || Date.now() > deadline) {
      oddities.push(`${name} ended ${status ?? response.status}: ${response.text.slice(0, 200)}`);
      return NaN;
    }
    await sleep(1);
  }
}

async function bareSelectOnce(connection: DuckDBConnection): Promise<number> {
  const t0 = now();
  const reader = await connection.runAndReadAll('SELECT 1');
  const rows = reader.getRows();
  const elapsed = now() - t0;
  if (rows[0]?.[0] !== 1) oddities.push(`bare SELECT 1 returned ${JSON.stringify(rows)}`);
  return elapsed;
}

function bareShellOnce(): Promise<number> {
  const t0 = now();
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', 'echo 1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.once('error', (error) => {
      oddities.push(`bare bash failed: ${error.message}`);
      resolve(NaN);
    });
    child.once('exit', (code) => {
      if (code !== 0) oddities.push(`bare bash exited ${code}`);
      resolve(now() - t0);
    });
  });
}

async function alternate(
  runs: number,
  ours: () => Promise<number>,
  baseline: () => Promise<number>,
): Promise<{ ours: number[]; baseline: number[] }> {
  const out = { ours: [] as number[], baseline: [] as number[] };
  for (let i = 0; i < WARMUP + runs; i++) {
    const keep = i >= WARMUP;
    const first = i % 2 === 0;
    const a = first ? await ours() : await baseline();
    const b = first ? await baseline() : await ours();
    if (keep) {
      out.ours.push(first ? a : b);
      out.baseline.push(first ? b : a);
    }
    await sleep(2);
  }
  return out;
}

export async function executeLatency(): Promise<{ rows: BenchRow[]; oddities: string[] }> {
  const server = await startBenchServer();
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  try {
    const client = server.client();
    await client.createScript({
      name: 'bench_select1',
      type: 'DWSSQL',
      content: 'SELECT 1',
      connectionName: 'duckdb',
    });
    await client.createScript({
      name: 'bench_echo1',
      type: 'Shell',
      content: 'echo 1',
      connectionName: 'local',
    });
    const runs = runCount(500);
    const sql = await alternate(
      runs,
      () => oursOnce(client, 'bench_select1'),
      () => bareSelectOnce(connection),
    );
    const shell = await alternate(runs, () => oursOnce(client, 'bench_echo1'), bareShellOnce);
    const rows: BenchRow[] = [
      { figure: 'Execute `SELECT 1` → FINISHED', ours: stats(sql.ours), baseline: stats(sql.baseline) },
      {
        figure: 'Execute Shell `echo 1` → FINISHED',
        ours: stats(shell.ours),
        baseline: stats(shell.baseline),
      },
    ];
    return { rows, oddities: [...oddities] };
  } finally {
    connection.closeSync();
    db.closeSync();
    await server.close();
  }
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const { rows, oddities: notes } = await executeLatency();
  console.log(markdownTable(rows));
  for (const note of notes) console.log(`note: ${note}`);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
