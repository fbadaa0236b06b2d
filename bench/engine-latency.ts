/**
 * Connection engines: stop and execute latency through the API, each beside the bare driver doing
 * the same work in this process.
 *
 * Stop → work gone, seen from outside opendlf:
 *   - PostgreSQL (DWS connection): `SELECT pg_sleep(300) /* marker *\/`; gone = no 'active' row of
 *     pg_stat_activity with the marker. Baseline: a bare pg client runs it, a second one calls
 *     pg_cancel_backend(pid).
 *   - MariaDB (RDS connection, com.mysql.jdbc.Driver): `SELECT SLEEP(300) /* marker *\/`; gone = no
 *     PROCESSLIST row with COMMAND 'Query' and the marker. Baseline: bare mysql2, `KILL QUERY <id>`
 *     from a second connection.
 *   For both, a second baseline sends the same cancel from the handler of a bare fastify route
 *   (startBareStopRoute): the primitive reached through the same fetch and HTTP stack as ours, which
 *   the stop request has to cross too — the bare primitive alone starts in this process.
 *   - SSH (HOST connection to a private sshd on this machine): the local stop benchmark's process
 *     tree; gone = no process of the remote run's session/group in /proc. Baseline: a bare ssh2
 *     connection starts the same tree under `setsid`, a second exec channel runs `kill -TERM -- -PGID`.
 *   - ClickHouse (CLICKHOUSE connection to a private clickhouse-server): `sleepEachRow` over
 *     system.numbers with the marker; gone = no system.processes row with the marker. Baseline: a
 *     bare HTTP request with a query_id, `KILL QUERY WHERE query_id = … SYNC` from a second request.
 *   - PYTHON on `local`: a script that starts `sleep 300` children and sleeps; gone = no process of
 *     the run. Baseline: the same script spawned detached, process.kill(-pgid).
 * Execute → FINISHED: `SELECT 1` (PostgreSQL, MariaDB, ClickHouse) and `echo 1` (SSH), ours four
 * ways (long-poll `?waitSeconds=30`, a GET every 100 ms, a GET every 1 ms, one POST
 * `execute?waitSeconds=30`; see `executeBench` in lib.ts), beside the bare driver call on an already open connection plus one GET of a bare fastify
 * route in this process, timed together.
 *
 * The database "gone" probes run back to back on their own connection (no pause between probes), on
 * a worker thread (GoneWatcher in lib.ts: a probe on this thread would wait behind the in-process
 * server's own work, e.g. the settle, and charge it to the stop); the clock stops when the first
 * probe that finds nothing *answers* — the same definition for ours
 * and the baseline. Ours and baseline alternate run by run, after discarded warm-up runs.
 * A server that is missing here (clickhouse-server, sshd) or unreachable (PostgreSQL, MariaDB)
 * gives "skipped: <reason>" rows.
 * Usage: `npx tsx bench/engine-latency.ts [--quick] [--only postgres,mariadb,ssh,clickhouse,python]`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { Client as SshClient, type ClientChannel } from 'ssh2';
import { runMembers } from '../src/engines/local-process/process-tree.js';
import {
  clickHouseUnavailableReason,
  startClickHouse,
  type TestClickHouse,
} from '../test/helpers/clickhouse.js';
import type { ApiClient } from '../test/helpers/server.js';
import { GONE_PROBE_SQL } from './statement-gone-worker.js';
import { SSHD_PATH, sshdUnavailableReason, startSshd, type TestSshd } from '../test/helpers/sshd.js';
import {
  executeBench,
  GoneWatcher,
  JIT_WARMUP_RUNS,
  executeFigures,
  findRunId,
  isMain,
  killLeftovers,
  markdownTable,
  now,
  onlyParts,
  runCount,
  skippedRow,
  sleep,
  startBareRoute,
  startBareStopRoute,
  startBenchServer,
  stats,
  TREE_SCRIPT,
  treeReady,
  TreeObserver,
  waitUntil,
  type BareRoute,
  type BareStopRoute,
  type BenchRow,
  type ExecuteBench,
} from './lib.js';

const STOP_WARMUP = 3;
const EXEC_WARMUP = 5;
/** Kept runs per side. The ClickHouse `sleepEachRow(1)` figure costs ~1 s a run, so it gets the minimum. */
const STOP_RUNS = 60;
const SLOW_STOP_RUNS = 50;
/** Kept rounds of the execute figures (each round: the four ways of waiting, and the baseline). */
export const ENGINE_EXECUTE_RUNS = 120;
export const SSH_EXECUTE_RUNS = 60;
/** A figure whose runs fail this often is given up (its rows say why) instead of timing out run after run. */
const MAX_FAILURES = 5;
/** How long after the statement started the `sleepEachRow(1)` query is stopped (same phase for both sides). */
export const CH_STOP_PHASE_MS = 100;

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };
const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };

export const PG_SLEEP = 'SELECT pg_sleep(300) /* ${marker} */';
export const MY_SLEEP = 'SELECT SLEEP(300) /* ${marker} */';
export const CH_SLEEP_COARSE =
  "SELECT sleepEachRow(1), '${marker}' FROM system.numbers LIMIT 300 SETTINGS max_block_size = 1";
export const CH_SLEEP_FINE =
  "SELECT sleepEachRow(0.001), '${marker}' FROM system.numbers LIMIT 300000 SETTINGS max_block_size = 1";
export const PY_TREE =
  "import subprocess, time\nchildren = [subprocess.Popen(['sleep', '300']) for _ in range(3)]\ntime.sleep(300)\n";

const oddities: string[] = [];
const environment: string[] = [];

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
const newMarker = () => `odlf_bench_${randomBytes(6).toString('hex')}`;
const withMarker = (sql: string, marker: string) => sql.replace('${marker}', marker);
/** Single-quotes a value for a POSIX shell. */
const shq = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

// ---- the alternation ----------------------------------------------------------------------------

/**
 * Runs ours and baseline alternately (which goes first alternates too), `warmup` discarded rounds
 * first. A failing run is noted and counts as missing; more than MAX_FAILURES give the figure up.
 */
async function alternate<O, B>(
  label: string,
  runs: number,
  warmup: number,
  pauseMs: number,
  ours: () => Promise<O>,
  baseline: () => Promise<B>,
): Promise<{ ours: O[]; baseline: B[] }> {
  const out = { ours: [] as O[], baseline: [] as B[] };
  let failures = 0;
  const attempt = async <T>(side: string, run: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await run();
    } catch (error) {
      failures++;
      oddities.push(`${label}, ${side}: a run failed: ${message(error)}`);
      if (failures > MAX_FAILURES) throw new Error(`${failures} runs failed (last: ${message(error)})`);
      return undefined;
    }
  };
  for (let i = 0; i < warmup + runs; i++) {
    const keep = i >= warmup;
    const order = i % 2 === 0 ? (['ours', 'baseline'] as const) : (['baseline', 'ours'] as const);
    for (const side of order) {
      if (side === 'ours') {
        const r = await attempt(side, ours);
        if (keep && r !== undefined) out.ours.push(r);
      } else {
        const r = await attempt(side, baseline);
        if (keep && r !== undefined) out.baseline.push(r);
      }
      await sleep(pauseMs);
    }
  }
  return out;
}

/** Runs one engine's part; if it throws, its figures become "skipped: failed …" rows. */
async function section(figures: readonly string[], run: () => Promise<BenchRow[]>): Promise<BenchRow[]> {
  try {
    return await run();
  } catch (error) {
    oddities.push(`${figures[0] ?? 'a figure'}: gave up: ${message(error)}`);
    return figures.map((figure) => skippedRow(figure, `failed: ${message(error)}`));
  }
}

/** The three execute figures of one engine (see `executeBench`), with this file's counts. */
function execFigures(
  what: string,
  client: ApiClient,
  bare: BareRoute,
  script: string,
  driver: () => Promise<void>,
  options: Pick<ExecuteBench, 'afterRound' | 'jitWarmupRuns'> & { runs?: number } = {},
): Promise<BenchRow[]> {
  return section(executeFigures(what), () =>
    executeBench({
      what,
      client,
      script,
      driver,
      bare,
      runs: runCount(options.runs ?? ENGINE_EXECUTE_RUNS),
      warmup: EXEC_WARMUP,
      pauseMs: 2,
      maxFailures: MAX_FAILURES,
      notes: oddities,
      afterRound: options.afterRound,
      jitWarmupRuns: options.jitWarmupRuns ?? JIT_WARMUP_RUNS,
    }),
  );
}

// ---- the API side -------------------------------------------------------------------------------

async function createConnection(client: ApiClient, body: Record<string, unknown>): Promise<void> {
  const response = await client.request('POST', `/v1/${client.projectId}/connections`, { body });
  if (response.status !== 204) {
    throw new Error(`creating connection ${String(body.name)} answered ${response.status} ${response.text}`);
  }
}

async function detailedStatus(client: ApiClient, name: string, instanceId: string): Promise<string> {
  const response = await client.result(name, instanceId);
  return String(response.json?.detailedStatus ?? response.status);
}

/** Sends the stop and records when it answers; `settled()` also checks the instance ended STOPPED. */
function sendStop(client: ApiClient, name: string, instanceId: string, label: string) {
  let at = NaN;
  const answered = client.stop(name, instanceId).then((response) => {
    at = now();
    if (response.status !== 204) oddities.push(`${label}: stop answered ${response.status}`);
  });
  return {
    responseAt: () => at,
    async settled(): Promise<void> {
      await answered;
      const final = await detailedStatus(client, name, instanceId);
      if (final !== 'STOPPED') oddities.push(`${label}: instance ended ${final}, not STOPPED`);
    },
  };
}

// ---- statements on database servers -------------------------------------------------------------

interface StatementProbe {
  /** Resolves once a statement with the marker runs (and it is time to stop it). */
  ready(marker: string): Promise<void>;
  /** The back-to-back "gone" counts, on a worker thread with its own connection. */
  readonly watcher: GoneWatcher;
}

/**
 * Starts watching (before the stop is sent: the counts find the statement until it ends); the
 * promise resolves with the time the first count that found nothing answered.
 */
function watchGone(probe: StatementProbe, marker: string, what: string): Promise<number> {
  return probe.watcher.gone(marker).catch((error: unknown) => {
    throw new Error(`${what}: ${message(error)}`);
  });
}

function readyWhenSeen(count: (marker: string) => Promise<number>, watcher: GoneWatcher): StatementProbe {
  return {
    watcher,
    ready: (marker) => waitUntil('the statement to run', async () => (await count(marker)) > 0, 15_000),
  };
}

/** Ours: execute the script with a fresh marker, wait until the statement runs, time the stop. */
async function oursStatementStop(
  client: ApiClient,
  name: string,
  probe: StatementProbe,
  label: string,
): Promise<{ gone: number; response: number }> {
  const marker = newMarker();
  const instanceId = await client.execute(name, { marker });
  try {
    await probe.ready(marker);
  } catch (error) {
    await client.stop(name, instanceId).catch(() => undefined);
    throw error;
  }
  const watching = watchGone(probe, marker, label);
  const t0 = now();
  const stop = sendStop(client, name, instanceId, label);
  const gone = await watching;
  await stop.settled();
  return { gone: gone - t0, response: stop.responseAt() - t0 };
}

/** Baseline: `start` runs the statement on a bare connection, `cancel` ends it from another one. */
async function bareStatementStop(
  start: (marker: string) => Promise<unknown>,
  cancel: () => Promise<unknown>,
  probe: StatementProbe,
  label: string,
): Promise<number> {
  const marker = newMarker();
  const running = start(marker).then(
    () => 'completed',
    () => 'rejected',
  );
  let cancelled: Promise<unknown> | undefined;
  try {
    await probe.ready(marker);
    const watching = watchGone(probe, marker, label);
    const t0 = now();
    cancelled = cancel();
    const gone = await watching;
    return gone - t0;
  } finally {
    cancelled ??= cancel();
    await cancelled.catch((error: unknown) =>
      oddities.push(`${label}: the cancel failed: ${message(error)}`),
    );
    await running;
  }
}

function stopRows(
  engine: string,
  gone: string,
  result: { ours: { gone: number; response: number }[]; baseline: number[] },
): BenchRow[] {
  return [
    {
      figure: `${engine} stop: request → ${gone}`,
      ours: stats(result.ours.map((r) => r.gone)),
      baseline: stats(result.baseline),
    },
    {
      figure: `${engine} stop: request → stop response (204)`,
      ours: stats(result.ours.map((r) => r.response)),
    },
  ];
}

/** The bare primitive, then the same primitive behind a bare route (startBareStopRoute), one after the other. */
async function bareThenRouted(
  bare: () => Promise<number>,
  routed: () => Promise<number>,
): Promise<{ bare: number; routed: number }> {
  const b = await bare();
  await sleep(10);
  return { bare: b, routed: await routed() };
}

/** stopRows, plus ours beside the primitive behind a bare route (one HTTP request, as ours has). */
function stopRowsWithRoute(
  engine: string,
  gone: string,
  result: { ours: { gone: number; response: number }[]; baseline: { bare: number; routed: number }[] },
): BenchRow[] {
  return [
    ...stopRows(engine, gone, { ours: result.ours, baseline: result.baseline.map((b) => b.bare) }),
    {
      figure: `${engine} stop: request → ${gone}, baseline: the same cancel behind a bare route`,
      ours: stats(result.ours.map((r) => r.gone)),
      baseline: stats(result.baseline.map((b) => b.routed)),
    },
  ];
}

/**
 * A SQL engine's stop rows: ours (execute `script`, stop it through the API) alternated with the
 * bare cancel and the same cancel behind a bare route, each ending a statement `start` runs.
 */
async function statementStopRows(
  engine: string,
  gone: string,
  setup: {
    client: ApiClient;
    script: string;
    probe: StatementProbe;
    start: (marker: string) => Promise<unknown>;
    cancel: () => Promise<unknown>;
    bareStop: BareStopRoute;
  },
): Promise<BenchRow[]> {
  const { client, script, probe, start, cancel, bareStop } = setup;
  const label = `${engine} stop`;
  return stopRowsWithRoute(
    engine,
    gone,
    await alternate(
      label,
      runCount(STOP_RUNS),
      STOP_WARMUP,
      10,
      () => oursStatementStop(client, script, probe, label),
      () =>
        bareThenRouted(
          () => bareStatementStop(start, cancel, probe, `bare ${engine} stop`),
          () =>
            bareStatementStop(
              start,
              () => bareStop.post(cancel),
              probe,
              `bare ${engine} stop behind a route`,
            ),
        ),
    ),
  );
}

// ---- PostgreSQL ---------------------------------------------------------------------------------

const PG_EXEC = 'PostgreSQL `SELECT 1`';
const PG_FIGURES = [
  'PostgreSQL stop: request → `pg_sleep` no longer active',
  'PostgreSQL stop: request → stop response (204)',
  'PostgreSQL stop: request → `pg_sleep` no longer active, baseline: the same cancel behind a bare route',
  ...executeFigures(PG_EXEC),
];

async function benchPostgres(
  client: ApiClient,
  bare: BareRoute,
  bareStop: BareStopRoute,
): Promise<BenchRow[]> {
  const probeClient = new pg.Client(PG);
  const worker = new pg.Client(PG);
  const control = new pg.Client(PG);
  const clients = [probeClient, worker, control];
  for (const c of clients) c.on('error', () => undefined);
  try {
    await Promise.all(clients.map((c) => c.connect()));
  } catch (error) {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    return PG_FIGURES.map((f) =>
      skippedRow(f, `PostgreSQL at ${PG.host}:${PG.port} unreachable (${message(error)})`),
    );
  }
  try {
    const pgVersion = await probeClient.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    environment.push(`PostgreSQL: ${pgVersion.rows[0]?.v ?? 'unknown'}`);
    await createConnection(client, {
      name: 'bench_pg',
      type: 'DWS',
      config: { ip: PG.host, port: String(PG.port), userName: PG.user, password: 'x', sslEnable: false },
    });
    await client.createScript({
      name: 'bench_stop_pg',
      type: 'DWSSQL',
      content: PG_SLEEP,
      connectionName: 'bench_pg',
    });
    await client.createScript({
      name: 'bench_exec_pg',
      type: 'DWSSQL',
      content: 'SELECT 1',
      connectionName: 'bench_pg',
    });
    const workerPid = Number(
      (await worker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid,
    );

    const cancel = () => control.query('SELECT pg_cancel_backend($1)', [workerPid]);
    const start = (marker: string) => worker.query(withMarker(PG_SLEEP, marker));
    const stop = await section(PG_FIGURES.slice(0, 3), async () => {
      const watcher = await GoneWatcher.open({ engine: 'postgres', config: PG });
      try {
        const probe = readyWhenSeen(async (marker) => {
          const { rows } = await probeClient.query<{ n: number }>(GONE_PROBE_SQL.postgres, [`%${marker}%`]);
          return rows[0]?.n ?? 0;
        }, watcher);
        return await statementStopRows('PostgreSQL', '`pg_sleep` no longer active', {
          client,
          script: 'bench_stop_pg',
          probe,
          start,
          cancel,
          bareStop,
        });
      } finally {
        await watcher.close();
      }
    });
    // The JIT warm-up runs sides 8 at a time, baselines included: one query at a time on the one
    // bare client (pg 8 queues a query sent to a busy client and warns; pg 9 refuses it).
    let previous: Promise<unknown> = Promise.resolve();
    const exec = await execFigures(PG_EXEC, client, bare, 'bench_exec_pg', () => {
      const next = previous.then(async () => {
        const { rows } = await worker.query({ text: 'SELECT 1', rowMode: 'array' });
        if (rows[0]?.[0] !== 1) throw new Error(`bare SELECT 1 returned ${JSON.stringify(rows)}`);
      });
      previous = next.catch(() => undefined);
      return next;
    });
    return [...stop, ...exec];
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

// ---- MariaDB ------------------------------------------------------------------------------------

const MY_EXEC = 'MariaDB `SELECT 1`';
const MY_FIGURES = [
  'MariaDB stop: request → `SLEEP` query gone from the process list',
  'MariaDB stop: request → stop response (204)',
  'MariaDB stop: request → `SLEEP` query gone from the process list, baseline: the same cancel behind a bare route',
  ...executeFigures(MY_EXEC),
];

async function benchMariaDb(
  client: ApiClient,
  bare: BareRoute,
  bareStop: BareStopRoute,
): Promise<BenchRow[]> {
  const opened: mysql.Connection[] = [];
  let probeConn: mysql.Connection;
  let worker: mysql.Connection;
  let control: mysql.Connection;
  try {
    for (let i = 0; i < 3; i++) opened.push(await mysql.createConnection(MARIADB));
    [probeConn, worker, control] = opened as [mysql.Connection, mysql.Connection, mysql.Connection];
  } catch (error) {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
    return MY_FIGURES.map((f) =>
      skippedRow(f, `MariaDB at ${MARIADB.host}:${MARIADB.port} unreachable (${message(error)})`),
    );
  }
  for (const c of opened) c.on('error', () => undefined);
  try {
    const [version] = await probeConn.query<mysql.RowDataPacket[]>('SELECT VERSION() AS v');
    environment.push(`MariaDB: ${String(version[0]?.v)}`);
    await createConnection(client, {
      name: 'bench_my',
      type: 'RDS',
      config: {
        ip: MARIADB.host,
        port: MARIADB.port,
        userName: MARIADB.user,
        password: '',
        driverName: 'com.mysql.jdbc.Driver',
      },
    });
    await client.createScript({
      name: 'bench_stop_my',
      type: 'RDSSQL',
      content: MY_SLEEP,
      connectionName: 'bench_my',
    });
    await client.createScript({
      name: 'bench_exec_my',
      type: 'RDSSQL',
      content: 'SELECT 1',
      connectionName: 'bench_my',
    });
    const [idRows] = await worker.query<mysql.RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    const workerThread = Number(idRows[0]?.id);

    const kill = () => control.query(`KILL QUERY ${workerThread}`);
    const start = (marker: string) => worker.query(withMarker(MY_SLEEP, marker));
    const stop = await section(MY_FIGURES.slice(0, 3), async () => {
      const watcher = await GoneWatcher.open({ engine: 'mariadb', config: MARIADB });
      try {
        const probe = readyWhenSeen(async (marker) => {
          const [rows] = await probeConn.query<mysql.RowDataPacket[]>(GONE_PROBE_SQL.mariadb, [
            `%${marker}%`,
          ]);
          return Number(rows[0]?.n ?? 0);
        }, watcher);
        return await statementStopRows('MariaDB', '`SLEEP` query gone from the process list', {
          client,
          script: 'bench_stop_my',
          probe,
          start,
          cancel: kill,
          bareStop,
        });
      } finally {
        await watcher.close();
      }
    });
    const exec = await execFigures(MY_EXEC, client, bare, 'bench_exec_my', async () => {
      const [rows] = await worker.query<mysql.RowDataPacket[]>({ sql: 'SELECT 1', rowsAsArray: true });
      if (Number((rows[0] as unknown[] | undefined)?.[0]) !== 1) {
        throw new Error(`bare SELECT 1 returned ${JSON.stringify(rows)}`);
      }
    });
    return [...stop, ...exec];
  } finally {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
  }
}

// ---- ClickHouse ---------------------------------------------------------------------------------

const CH_EXEC = 'ClickHouse `SELECT 1`';
const CH_FIGURES = [
  'ClickHouse stop, `sleepEachRow(1)`: request → query gone from system.processes',
  'ClickHouse stop, `sleepEachRow(1)`: request → stop response (204)',
  'ClickHouse stop, `sleepEachRow(0.001)`: request → query gone from system.processes',
  'ClickHouse stop, `sleepEachRow(0.001)`: request → stop response (204)',
  ...executeFigures(CH_EXEC),
];

/** One POST to ClickHouse's HTTP interface; `agent` false = a connection of its own. */
function chPost(
  port: number,
  sql: string,
  params: Record<string, string>,
  agent: http.Agent | false,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: `/?${new URLSearchParams(params).toString()}`, agent },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(sql);
  });
}

async function benchClickHouse(client: ApiClient, bareRoute: BareRoute): Promise<BenchRow[]> {
  const unavailable = clickHouseUnavailableReason();
  if (unavailable) return CH_FIGURES.map((f) => skippedRow(f, unavailable));
  let ch: TestClickHouse;
  try {
    ch = await startClickHouse();
  } catch (error) {
    return CH_FIGURES.map((f) => skippedRow(f, `clickhouse-server did not start (${message(error)})`));
  }
  // Keep-alive sockets for the probe and the bare `SELECT 1` (an already open connection). The
  // server closes idle ones after 3 s; a request that lands on a just-closed socket is retried once.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const port = ch.port;
  let watcher: GoneWatcher | undefined;
  const query = async (sql: string, params: Record<string, string> = {}) => {
    let response: { status: number; text: string };
    try {
      response = await chPost(port, sql, params, agent);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET') throw error;
      response = await chPost(port, sql, params, agent);
    }
    if (response.status !== 200)
      throw new Error(`ClickHouse ${response.status}: ${response.text.slice(0, 300)}`);
    return response.text;
  };
  try {
    environment.push(`ClickHouse: ${(await query('SELECT version()')).trim()}`);
    await createConnection(client, {
      name: 'bench_ch',
      type: 'CLICKHOUSE',
      config: { ip: ch.host, port: String(port), userName: 'default' },
    });
    await client.createScript({
      name: 'bench_stop_ch_coarse',
      type: 'ClickHouseSQL',
      content: CH_SLEEP_COARSE,
      connectionName: 'bench_ch',
    });
    await client.createScript({
      name: 'bench_stop_ch_fine',
      type: 'ClickHouseSQL',
      content: CH_SLEEP_FINE,
      connectionName: 'bench_ch',
    });
    await client.createScript({
      name: 'bench_exec_ch',
      type: 'ClickHouseSQL',
      content: 'SELECT 1',
      connectionName: 'bench_ch',
    });

    const processes = async (marker: string) => {
      const text = await query(
        `SELECT count(), max(elapsed) FROM system.processes WHERE query LIKE '%${marker}%' ` +
          "AND query NOT LIKE '%system.processes%' FORMAT TSV",
      );
      const at = now();
      const [n, elapsed] = text.trim().split('\t');
      return { n: Number(n), elapsedMs: Number(elapsed) * 1000, at };
    };
    const count = async (marker: string) => (await processes(marker)).n;
    watcher = await GoneWatcher.open({ engine: 'clickhouse', port });
    /**
     * `sleepEachRow(1)` sleeps a second per row and a KILL takes effect between rows, so the stop
     * latency is "the rest of the current second". Both sides stop CH_STOP_PHASE_MS after the
     * statement started (estimated from system.processes.elapsed), so neither gains from a slower
     * path to the stop.
     */
    const phased: StatementProbe = {
      watcher,
      async ready(marker) {
        let startedAt = NaN;
        await waitUntil(
          'the statement to run',
          async () => {
            const p = await processes(marker);
            if (p.n > 0) startedAt = p.at - p.elapsedMs;
            return p.n > 0;
          },
          15_000,
        );
        const wait = startedAt + CH_STOP_PHASE_MS - now();
        if (wait < 0)
          oddities.push(`ClickHouse sleepEachRow(1): stopped ${(-wait).toFixed(1)} ms late in the row`);
        else await sleep(wait);
      },
    };
    const fine = readyWhenSeen(count, watcher);

    const bare = (sql: string, probe: StatementProbe, label: string) => () => {
      const queryId = `bench-${randomBytes(8).toString('hex')}`;
      return bareStatementStop(
        // Its own connection, as a long query would have.
        (marker) => chPost(port, withMarker(sql, marker), { query_id: queryId }, false),
        () => query(`KILL QUERY WHERE query_id = '${queryId}' SYNC`),
        probe,
        label,
      );
    };
    const coarseLabel = 'ClickHouse stop sleepEachRow(1)';
    const coarse = await section(CH_FIGURES.slice(0, 2), async () =>
      stopRows(
        'ClickHouse',
        'query gone from system.processes',
        await alternate(
          coarseLabel,
          runCount(SLOW_STOP_RUNS),
          STOP_WARMUP,
          10,
          () => oursStatementStop(client, 'bench_stop_ch_coarse', phased, coarseLabel),
          bare(CH_SLEEP_COARSE, phased, `bare ${coarseLabel}`),
        ),
      ).map((row, i) => ({ ...row, figure: CH_FIGURES[i]! })),
    );
    const fineLabel = 'ClickHouse stop sleepEachRow(0.001)';
    const fineRows = await section(CH_FIGURES.slice(2, 4), async () =>
      stopRows(
        'ClickHouse',
        'query gone from system.processes',
        await alternate(
          fineLabel,
          runCount(STOP_RUNS),
          STOP_WARMUP,
          10,
          () => oursStatementStop(client, 'bench_stop_ch_fine', fine, fineLabel),
          bare(CH_SLEEP_FINE, fine, `bare ${fineLabel}`),
        ),
      ).map((row, i) => ({ ...row, figure: CH_FIGURES[2 + i]! })),
    );
    const exec = await execFigures(CH_EXEC, client, bareRoute, 'bench_exec_ch', async () => {
      const text = await query('SELECT 1');
      if (text.trim() !== '1') throw new Error(`bare SELECT 1 returned ${JSON.stringify(text)}`);
    });
    return [...coarse, ...fineRows, ...exec];
  } finally {
    await watcher?.close();
    agent.destroy();
    await ch.stop();
  }
}

// ---- SSH ----------------------------------------------------------------------------------------

const SSH_EXEC = 'SSH `echo 1`';
const SSH_FIGURES = [
  'SSH stop: request → remote process tree gone',
  'SSH stop: request → stop response (204)',
  ...executeFigures(SSH_EXEC),
];

function sshConnect(sshd: TestSshd, noDelay: boolean): Promise<SshClient> {
  return new Promise((resolve, reject) => {
    const c = new SshClient();
    c.once('ready', () => {
      c.removeListener('error', reject);
      c.on('error', () => undefined);
      if (noDelay) c.setNoDelay(true);
      resolve(c);
    });
    c.once('error', reject);
    c.connect({ host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey });
  });
}

function sshExec(c: SshClient, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) =>
    c.exec(command, (error, channel) => (error ? reject(error) : resolve(channel))),
  );
}

/**
 * Runs a short command and resolves with its stdout once the channel has closed. The listeners go
 * on inside ssh2's exec callback: the exit status can arrive in the same socket read as the exec
 * reply, and ssh2 emits 'exit' at once — a listener added after an `await` misses it (the run then
 * "gave null", as the engine's "session ended without an exit status" did).
 */
function sshRun(c: SshClient, command: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) =>
    c.exec(command, (error, channel) => {
      if (error) {
        reject(error);
        return;
      }
      let stdout = '';
      let code: number | null = null;
      channel.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      channel.stderr.resume();
      channel.on('exit', (exitCode: number | null) => (code = exitCode));
      channel.once('close', () => resolve({ code, stdout }));
      channel.end();
    }),
  );
}

const procStat = (pid: string) => {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')), sid: Number(fields[3]) };
  } catch {
    return undefined;
  }
};

/**
 * The session of the remote run of `instanceId` (this machine is the SSH host): the session leader
 * whose environment carries OPENDLF_INSTANCE_ID. A process still named `setsid` has not become
 * the interpreter yet (and with `setsid -w` it would be a waiting parent), so it is skipped.
 */
function findRemoteSession(instanceId: string): number | undefined {
  const needle = `OPENDLF_INSTANCE_ID=${instanceId}`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
    } catch {
      continue;
    }
    if (!environ.split('\0').includes(needle)) continue;
    const stat = procStat(entry);
    if (stat && stat.sid === Number(entry) && stat.comm !== 'setsid') return stat.sid;
  }
  return undefined;
}

async function oursTreeStop(
  client: ApiClient,
  observer: TreeObserver,
  name: string,
  findRun: (instanceId: string) => number | undefined,
  ready: (runId: number) => boolean,
  label: string,
): Promise<{ gone: number; response: number }> {
  const instanceId = await client.execute(name);
  let runId: number | undefined;
  try {
    await waitUntil('the run to start', () => (runId = findRun(instanceId)) !== undefined, 30_000);
    const id = runId!;
    await waitUntil('the process tree', () => ready(id), 15_000);
  } catch (error) {
    await client.stop(name, instanceId).catch(() => undefined);
    throw error;
  }
  const id = runId!;
  const { gone } = await observer.arm(id);
  const t0 = now();
  const stop = sendStop(client, name, instanceId, label);
  const tree = await gone;
  await stop.settled();
  if (tree.left.length > 0) {
    killLeftovers(id);
    throw new Error(`${tree.left.length} process(es) of run ${id} still alive 30 s after the stop`);
  }
  return { gone: tree.at - t0, response: stop.responseAt() - t0 };
}

async function bareSshTreeStop(c: SshClient, observer: TreeObserver): Promise<number> {
  const leader = 'echo "$$"; exec bash -c "$1" </dev/null 2>&1';
  const channel = await sshExec(c, `setsid -w sh -c ${shq(leader)} sh ${shq(TREE_SCRIPT)}`);
  channel.end();
  channel.stderr.resume();
  const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
  const pgid = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('no pgid line from the bare remote tree')), 15_000);
    channel.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const line = /^(\d+)\n/.exec(text);
      if (line) {
        clearTimeout(timer);
        resolve(Number(line[1]));
      }
    });
  });
  try {
    await waitUntil('the bare remote process tree', () => treeReady(pgid), 15_000);
    const { gone } = await observer.arm(pgid);
    const t0 = now();
    const kill = sshRun(c, `kill -TERM -- -${pgid}`);
    const tree = await gone;
    await kill;
    if (tree.left.length > 0) throw new Error(`${tree.left.length} process(es) of group ${pgid} still alive`);
    return tree.at - t0;
  } finally {
    killLeftovers(pgid);
    await Promise.race([closed, sleep(5_000)]);
    channel.close();
  }
}

async function benchSsh(
  client: ApiClient,
  observer: TreeObserver,
  bareRoute: BareRoute,
): Promise<BenchRow[]> {
  const unavailable = sshdUnavailableReason();
  if (unavailable) return SSH_FIGURES.map((f) => skippedRow(f, unavailable));
  const version = spawnSync(SSHD_PATH, ['-V'], { encoding: 'utf8' });
  environment.push(`OpenSSH server: ${(version.stderr || version.stdout).split('\n')[0]?.trim()}`);
  let sshd: TestSshd;
  try {
    // HOME points at an empty directory, so a login shell does not run root's ~/.bashrc on every
    // exec channel (here it runs `pyenv init`, ~150–250 ms each): both sides would pay it alike.
    sshd = await startSshd({ extraConfig: ['SetEnv HOME={dir}/home'] });
  } catch (error) {
    return SSH_FIGURES.map((f) => skippedRow(f, `sshd did not start (${message(error)})`));
  }
  const bareClients: SshClient[] = [];
  try {
    const bareSsh = await sshConnect(sshd, true);
    bareClients.push(bareSsh);
    const bareNagle = await sshConnect(sshd, false);
    bareClients.push(bareNagle);
    await createConnection(client, {
      name: 'bench_host',
      type: 'HOST',
      config: {
        ip: sshd.host,
        port: String(sshd.port),
        userName: sshd.username,
        privateKey: sshd.privateKey,
      },
    });
    await client.createScript({
      name: 'bench_stop_ssh',
      type: 'Shell',
      content: TREE_SCRIPT,
      connectionName: 'bench_host',
    });
    await client.createScript({
      name: 'bench_exec_ssh',
      type: 'Shell',
      content: 'echo 1',
      connectionName: 'bench_host',
    });

    const label = 'SSH stop';
    const stop = await section(SSH_FIGURES.slice(0, 2), async () =>
      stopRows(
        'SSH',
        'remote process tree gone',
        await alternate(
          label,
          runCount(STOP_RUNS),
          STOP_WARMUP,
          10,
          () => oursTreeStop(client, observer, 'bench_stop_ssh', findRemoteSession, treeReady, label),
          () => bareSshTreeStop(bareSsh, observer),
        ),
      ),
    );
    const bareEcho = async (c: SshClient) => {
      const { code, stdout } = await sshRun(c, 'echo 1');
      if (code !== 0 || stdout !== '1\n')
        throw new Error(`bare echo 1 gave ${code}: ${JSON.stringify(stdout)}`);
    };
    // The same exec on a connection with ssh2's default socket (Nagle on), once a round between
    // the timed runs, for a note.
    const nagle: number[] = [];
    const exec = await execFigures(SSH_EXEC, client, bareRoute, 'bench_exec_ssh', () => bareEcho(bareSsh), {
      runs: SSH_EXECUTE_RUNS,
      // A tenth, as for Shell: each run also starts a remote process.
      jitWarmupRuns: JIT_WARMUP_RUNS / 10,
      afterRound: async (keep) => {
        const t0 = now();
        try {
          await bareEcho(bareNagle);
          if (keep) nagle.push(now() - t0);
        } catch (error) {
          oddities.push(`bare ssh2 exec with Nagle on: a run failed: ${message(error)}`);
        }
        await sleep(2);
      },
    });
    // The engine keeps its connections open between runs (ssh-pool.ts), like the baseline's. What
    // opening one costs (paid once per connection, not per run):
    const connects: number[] = [];
    for (let i = 0; i < runCount(20); i++) {
      const t0 = now();
      const c = await sshConnect(sshd, true);
      connects.push(now() - t0);
      c.end();
    }
    const cs = stats(connects);
    oddities.push(
      `bare ssh2 connect + key authentication to the same sshd: p50 ${cs.p50.toFixed(1)} ms, ` +
        `p99 ${cs.p99.toFixed(1)} ms (n=${cs.n}); opendlf keeps its SSH connections open between runs, so a run pays this only on a new connection`,
    );
    const n = stats(nagle);
    if (n.n > 0) {
      oddities.push(
        `bare ssh2 exec \`echo 1\` with ssh2's default socket (Nagle on, no setNoDelay): p50 ${n.p50.toFixed(1)} ms, ` +
          `p99 ${n.p99.toFixed(1)} ms (n=${n.n}); the baseline above uses setNoDelay(true)`,
      );
    }
    return [...stop, ...exec];
  } finally {
    for (const c of bareClients) c.end();
    await sshd.stop();
  }
}

// ---- PYTHON on local ----------------------------------------------------------------------------

const PY_FIGURES = ['PYTHON stop: request → process tree gone', 'PYTHON stop: request → stop response (204)'];

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** The python leader and its three `sleep 300` children exist. */
function pythonTreeReady(runId: number): boolean {
  const members = runMembers(runId);
  return members.length >= 4 && members.map(cmdline).filter((c) => c === 'sleep 300').length >= 3;
}

async function barePythonStop(scriptFile: string, observer: TreeObserver): Promise<number> {
  const child = spawn('python3', ['-u', scriptFile], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pgid = child.pid;
  if (pgid === undefined) throw new Error('could not spawn python3');
  try {
    await waitUntil('the bare python tree', () => pythonTreeReady(pgid), 15_000);
    const { gone } = await observer.arm(pgid);
    const t0 = now();
    process.kill(-pgid, 'SIGTERM');
    const tree = await gone;
    if (tree.left.length > 0) throw new Error(`${tree.left.length} process(es) of group ${pgid} still alive`);
    return tree.at - t0;
  } finally {
    killLeftovers(pgid);
    await Promise.race([exited, sleep(5_000)]);
  }
}

async function benchPython(client: ApiClient, observer: TreeObserver): Promise<BenchRow[]> {
  const version = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) {
    return PY_FIGURES.map((f) =>
      skippedRow(f, `python3 does not run (${version.error?.message ?? version.stderr})`),
    );
  }
  environment.push(`python3: ${(version.stdout || version.stderr).trim()}`);
  const dir = mkdtempSync(join(tmpdir(), 'opendlf-bench-py-'));
  try {
    const scriptFile = join(dir, 'script.py');
    writeFileSync(scriptFile, PY_TREE);
    await client.createScript({
      name: 'bench_stop_py',
      type: 'PYTHON',
      content: PY_TREE,
      connectionName: 'local',
    });
    const label = 'PYTHON stop';
    return await section(PY_FIGURES, async () =>
      stopRows(
        'PYTHON',
        'process tree gone',
        await alternate(
          label,
          runCount(STOP_RUNS),
          STOP_WARMUP,
          10,
          () => oursTreeStop(client, observer, 'bench_stop_py', findRunId, pythonTreeReady, label),
          () => barePythonStop(scriptFile, observer),
        ),
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- all of it ----------------------------------------------------------------------------------

function driverVersions(): string {
  const require = createRequire(import.meta.url);
  const version = (name: string) => {
    try {
      return (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  return `Drivers: pg ${version('pg')}, mysql2 ${version('mysql2')}, ssh2 ${version('ssh2')}`;
}

/**
 * @param engines which engines to bench (`--only postgres,mariadb,ssh,clickhouse,python` when this
 *   file runs on its own); all when absent.
 */
export async function engineLatency(engines?: ReadonlySet<string>): Promise<{
  rows: BenchRow[];
  oddities: string[];
  environment: string[];
}> {
  oddities.length = 0;
  environment.length = 0;
  const server = await startBenchServer();
  const bare = await startBareRoute();
  const bareStop = await startBareStopRoute();
  const observer = new TreeObserver();
  try {
    const client = server.client();
    const wanted = (engine: string) => engines === undefined || engines.has(engine);
    const pgRows = wanted('postgres') ? await benchPostgres(client, bare, bareStop) : [];
    const myRows = wanted('mariadb') ? await benchMariaDb(client, bare, bareStop) : [];
    const sshRows = wanted('ssh') ? await benchSsh(client, observer, bare) : [];
    const chRows = wanted('clickhouse') ? await benchClickHouse(client, bare) : [];
    const pyRows = wanted('python') ? await benchPython(client, observer) : [];
    environment.push(driverVersions());
    const isExec = (row: BenchRow) => row.figure.startsWith('Execute');
    const all = [...pgRows, ...myRows, ...sshRows, ...chRows, ...pyRows];
    return {
      rows: [...all.filter((r) => !isExec(r)), ...all.filter(isExec)],
      oddities: [...oddities],
      environment: [...environment],
    };
  } finally {
    await observer.close();
    await bare.close();
    await bareStop.close();
    await server.close();
  }
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const result = await engineLatency(onlyParts());
  console.log(markdownTable(result.rows));
  for (const line of result.environment) console.log(`- ${line}`);
  for (const note of result.oddities) console.log(`note: ${note}`);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
