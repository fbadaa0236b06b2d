/**
 * Execute latency: how long a trivial script takes end to end.
 *
 * - SQL: `SELECT 1` on connection `duckdb`. Baseline: bare @duckdb/node-api
 *   `runAndReadAll('SELECT 1')` on a connection that is already open, in this process.
 * - Shell: `echo 1` on connection `local`. Baseline: child_process.spawn of `bash -c 'echo 1'`
 *   until the child's exit event.
 *
 * Ours, four ways (see `executeBench` in lib.ts): POST …/execute then one GET with
 * `?waitSeconds=30` (long-poll); then a GET every 100 ms until FINISHED; then a GET every 1 ms; and
 * one POST …/execute?waitSeconds=30 that answers with the result (one request). Every
 * baseline run adds a POST (shaped like the execute) and a GET of a bare fastify route in this
 * process to the bare call (the HTTP round trips of execute + one GET), timed together; the notes
 * also give the bare call plus one POST, and the earlier two-GET baseline. One run of each per
 * round, in an order shuffled every round, after untimed runs that let V8 compile the server's path (JIT_WARMUP_RUNS in lib.ts) and a
 * few discarded warm-up rounds.
 * Usage: `npx tsx bench/execute-latency.ts [--quick]`.
 */
import { spawn } from 'node:child_process';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import {
  executeBench,
  executeFigures,
  isMain,
  JIT_WARMUP_RUNS,
  markdownTable,
  runCount,
  skippedRow,
  startBareRoute,
  startBenchServer,
  type BenchRow,
} from './lib.js';

const WARMUP = 5;
/** Kept rounds per figure (each round: one run of each of the four variants and of the baseline). */
export const EXECUTE_RUNS = 120;
const MAX_FAILURES = 5;

async function bareSelect(connection: DuckDBConnection): Promise<void> {
  const reader = await connection.runAndReadAll('SELECT 1');
  const rows = reader.getRows();
  if (rows[0]?.[0] !== 1) throw new Error(`bare SELECT 1 returned ${JSON.stringify(rows)}`);
}

function bareShell(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', 'echo 1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.once('error', (error) => reject(new Error(`bare bash failed: ${error.message}`)));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`bare bash exited ${code}`))));
  });
}

export async function executeLatency(): Promise<{ rows: BenchRow[]; oddities: string[] }> {
  const oddities: string[] = [];
  const server = await startBenchServer();
  const bare = await startBareRoute();
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
    const common = {
      client,
      bare,
      runs: runCount(EXECUTE_RUNS),
      warmup: WARMUP,
      pauseMs: 2,
      maxFailures: MAX_FAILURES,
      notes: oddities,
    };
    const figure = async (what: string, run: () => Promise<BenchRow[]>) => {
      try {
        return await run();
      } catch (error) {
        const text = error instanceof Error ? error.message : String(error);
        oddities.push(`Execute ${what}: gave up: ${text}`);
        return executeFigures(what).map((f) => skippedRow(f, `failed: ${text}`));
      }
    };
    const sqlWhat = 'DuckDB `SELECT 1`';
    const sql = await figure(sqlWhat, () =>
      executeBench({
        ...common,
        what: sqlWhat,
        script: 'bench_select1',
        driver: () => bareSelect(connection),
        jitWarmupRuns: JIT_WARMUP_RUNS,
      }),
    );
    const shellWhat = 'Shell `echo 1` on `local`';
    const shell = await figure(shellWhat, () =>
      // A tenth: a spawn costs milliseconds of its own, and the server's side warms just the same.
      executeBench({
        ...common,
        what: shellWhat,
        script: 'bench_echo1',
        driver: bareShell,
        jitWarmupRuns: JIT_WARMUP_RUNS / 10,
      }),
    );
    return { rows: [...sql, ...shell], oddities };
  } finally {
    connection.closeSync();
    db.closeSync();
    await bare.close();
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
