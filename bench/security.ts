/**
 * What the trust boundary costs (README, "Security model"), each figure beside a baseline measured in
 * the same run:
 *
 * - Shell `echo 1` → FINISHED (execute + one long-poll GET) on a multi-user server that runs local
 *   scripts as the unprivileged `localEngine.runAs` user (token auth, its own uid/gid, minimal
 *   environment, a private work directory). Baseline: the same script and calls on a single-user
 *   server (no auth, the server's own user). Needs root (switching users); skipped otherwise.
 * - GET script with a token on the multi-user server. Baseline: the same GET on the single-user server.
 * - /healthz while a zip bomb (a ~1 MB entry inflating to 1 GiB while its headers declare 100 bytes)
 *   is imported over and over. Baseline: /healthz on the same server, idle. This shows whether a
 *   hostile upload stalls the event loop everyone shares; the slowest answer is in the p99 column.
 *
 * Both servers run in this process (as every benchmark here), alternating request by request.
 * Usage: `npx tsx bench/security.ts [--quick]`.
 */
import { ensureRunnerUser, RUNNER_USER } from '../test/helpers/processes.js';
import { settledImportTask, uploadArchive, zipBomb } from '../test/helpers/hostile-zip.js';
import { startMultiUserServer } from '../test/helpers/multi-user.js';
import type { ApiClient, TestServer } from '../test/helpers/server.js';
import {
  isMain,
  markdownTable,
  now,
  runCount,
  skippedRow,
  sleep,
  startBenchServer,
  stats,
  type BenchRow,
} from './lib.js';

const WARMUP = 5;
export const SECURITY_EXECUTE_RUNS = 100;
export const SECURITY_READ_RUNS = 1_000;
export const SECURITY_HEALTHZ_SAMPLES = 400;
/** Pause between /healthz probes, so the probes sample the import rather than compete with it. */
const HEALTHZ_EVERY_MS = 5;

export const SECURITY_FIGURES = {
  runAs: 'Shell `echo 1` → FINISHED as the runAs user, multi-user (baseline: single-user)',
  read: 'GET script with a token, multi-user (baseline: single-user, no auth)',
  healthz: '/healthz during zip-bomb imports (baseline: idle)',
} as const;

async function timed(run: () => Promise<void>): Promise<number> {
  const t0 = now();
  await run();
  return now() - t0;
}

async function executeEcho(client: ApiClient): Promise<void> {
  const id = await client.execute('bench_echo1');
  const response = await client.request(
    'GET',
    `${client.path('/bench_echo1/instances/' + id)}?waitSeconds=30`,
  );
  if (response.json?.status !== 'FINISHED') {
    throw new Error(`echo 1 ended ${response.status}: ${response.text.slice(0, 300)}`);
  }
}

async function getScript(client: ApiClient): Promise<void> {
  const response = await client.request('GET', client.path('/bench_echo1'));
  if (response.status !== 200) throw new Error(`GET script answered ${response.status}: ${response.text}`);
}

/** Ours and baseline alternate run by run after `WARMUP` discarded pairs. */
async function alternate(
  runs: number,
  ours: () => Promise<void>,
  baseline: () => Promise<void>,
): Promise<{ ours: number[]; baseline: number[] }> {
  const samples = { ours: [] as number[], baseline: [] as number[] };
  for (let round = 0; round < WARMUP + runs; round++) {
    const pair = round % 2 === 0 ? ([ours, baseline] as const) : ([baseline, ours] as const);
    for (const run of pair) {
      const ms = await timed(run);
      if (round >= WARMUP) (run === ours ? samples.ours : samples.baseline).push(ms);
    }
  }
  return samples;
}

async function healthz(server: TestServer): Promise<void> {
  const response = await fetch(`${server.url}/healthz`);
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`/healthz answered ${response.status}`);
}

/** /healthz probes, `count` of them, one every HEALTHZ_EVERY_MS after the previous answer. */
async function probeHealthz(server: TestServer, count: number): Promise<number[]> {
  const samples: number[] = [];
  while (samples.length < count) {
    samples.push(await timed(() => healthz(server)));
    await sleep(HEALTHZ_EVERY_MS);
  }
  return samples;
}

/** Imports the bomb again and again until `stop` resolves; returns how many imports were refused. */
async function bombard(client: ApiClient, bomb: Buffer, stopped: () => boolean): Promise<number> {
  let refused = 0;
  while (!stopped()) {
    const upload = await uploadArchive(client, bomb);
    const taskId = upload.json?.taskId as string | undefined;
    if (taskId === undefined) throw new Error(`the import answered ${upload.status}: ${upload.text}`);
    const task = await settledImportTask(client, taskId);
    if (task.status === 'RUNNING' || !/declared size/.test(JSON.stringify(task))) {
      throw new Error(`the bomb was not refused: ${JSON.stringify(task).slice(0, 300)}`);
    }
    refused++;
  }
  return refused;
}

export async function securityBench(): Promise<{ rows: BenchRow[]; oddities: string[] }> {
  const oddities: string[] = [];
  const rows: BenchRow[] = [];
  const cannotSwitchUsers = ensureRunnerUser();
  const single = await startBenchServer();
  const multi = await startMultiUserServer({
    logLevel: 'silent',
    ...(cannotSwitchUsers ? {} : { localEngine: { enabled: true, runAs: RUNNER_USER } }),
  });
  try {
    const singleClient = single.client();
    const multiClient = multi.as('developerA');
    const script = { name: 'bench_echo1', type: 'Shell', content: 'echo 1', connectionName: 'local' };
    await singleClient.createScript(script);
    if (cannotSwitchUsers) {
      rows.push(skippedRow(SECURITY_FIGURES.runAs, cannotSwitchUsers));
      // The read figure still needs the script; DuckDB is always offered.
      await multiClient.createScript({
        ...script,
        type: 'DWSSQL',
        content: 'SELECT 1',
        connectionName: 'duckdb',
      });
    } else {
      await multiClient.createScript(script);
      const runAs = await alternate(
        runCount(SECURITY_EXECUTE_RUNS),
        () => executeEcho(multiClient),
        () => executeEcho(singleClient),
      );
      rows.push({ figure: SECURITY_FIGURES.runAs, ours: stats(runAs.ours), baseline: stats(runAs.baseline) });
    }

    const read = await alternate(
      runCount(SECURITY_READ_RUNS),
      () => getScript(multiClient),
      () => getScript(singleClient),
    );
    rows.push({ figure: SECURITY_FIGURES.read, ours: stats(read.ours), baseline: stats(read.baseline) });

    const samples = runCount(SECURITY_HEALTHZ_SAMPLES);
    const idle = await probeHealthz(single, samples);
    const bomb = await zipBomb();
    let done = false;
    const attack = bombard(single.client(), bomb, () => done);
    let underAttack: number[];
    try {
      underAttack = await probeHealthz(single, samples);
    } finally {
      done = true;
    }
    const refused = await attack;
    oddities.push(
      `${SECURITY_FIGURES.healthz}: ${refused} bomb import(s) refused while ${samples} probes ran; slowest probe ${Math.max(...underAttack).toFixed(1)} ms under attack, ${Math.max(...idle).toFixed(1)} ms idle.`,
    );
    rows.push({ figure: SECURITY_FIGURES.healthz, ours: stats(underAttack), baseline: stats(idle) });
    return { rows, oddities };
  } finally {
    await multi.close();
    await single.close();
  }
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const { rows, oddities } = await securityBench();
  console.log(markdownTable(rows));
  for (const note of oddities) console.log(`note: ${note}`);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
