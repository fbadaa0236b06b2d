/**
 * Large results: rows per second of a 10M-row result read through opendlf — executed, spilled, then
 * fetched whole through the CSV export or page by page (10,000 rows a page) — beside the bare
 * driver streaming the same query in the same run, and the server's RSS growth meanwhile.
 *
 * The server is a child process (`opendlf serve`, SQLite store, default spill settings), so its
 * RSS is its own. Two phases are timed apart: `POST …/execute` until the instance is FINISHED (the
 * engine's read and the spill write; the long poll answers at the settle), and the fetch of the
 * finished result — the CSV read to its last byte, or every page read and parsed as JSON.
 * "baseline" streams the query with the driver in this process: DuckDB `connection.stream` and
 * `fetchChunk` with the rows converted to JSON values (`convertRows(JsonDuckDBValueConverter)`, as the engine does), PostgreSQL `pg` with
 * `rowMode: 'array'` row events. Each figure is measured once (the brief of the benchmark: a
 * 10M-row result takes tens of seconds per figure). `--quick`: 200,000 rows.
 *
 * Run: `npx tsx bench/large-results.ts` (or `npm run bench -- --only large-results`).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance, JsonDuckDBValueConverter } from '@duckdb/node-api';
import pg from 'pg';
import { ApiClient, PROJECT, spawnServer, tempDir, type ChildServer } from '../test/helpers/server.js';
import { isMain, machineDescription, markdownTable, sleep, stats, type BenchRow } from './lib.js';

const quick = process.argv.includes('--quick');
const ROWS = quick ? 200_000 : 10_000_000;
const PAGE_ROWS = 10_000;
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };

const duckDbSql = (rows: number) => `SELECT i AS id, 'r' || i AS name FROM range(${rows}) t(i)`;
const postgresSql = (rows: number) => `SELECT g AS id, 'r' || g AS name FROM generate_series(1, ${rows}) g`;
const DUCKDB_SQL = duckDbSql(ROWS);
const PG_SQL = postgresSql(ROWS);
/** Rows of the warm-up runs (each path once per engine, not measured): first-use costs stay out. */
const WARM_UP_ROWS = 200_000;

const oddities: string[] = [];

/** VmRSS and VmHWM of a process, in MiB. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

/**
 * The server's RSS growth phase by phase: each phase's peak (VmRSS sampled every 5 ms, and VmHWM
 * reset through clear_refs at the phase's start) minus the RSS when the phase began.
 */
class RssMeter {
  private before = 0;
  private sampled = 0;
  private reset = true;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pid: number) {}

  /** Starts a phase. */
  start(): void {
    this.before = memoryOf(this.pid).rss;
    this.sampled = this.before;
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.reset = true;
    } catch {
      this.reset = false;
      if (!oddities.some((o) => o.startsWith('could not reset')))
        oddities.push('could not reset VmHWM (clear_refs): peaks are the sampled VmRSS maximum (every 5 ms)');
    }
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      try {
        this.sampled = Math.max(this.sampled, memoryOf(this.pid).rss);
      } catch {
        // Exited.
      }
    }, 5);
  }

  /** Ends the phase: its growth in MiB. */
  stop(): number {
    clearInterval(this.timer);
    this.timer = undefined;
    const end = memoryOf(this.pid);
    return Math.max(this.sampled, end.rss, this.reset ? end.hwm : 0) - this.before;
  }
}

async function bareDuckDb(): Promise<number> {
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  const t0 = performance.now();
  let rows = 0;
  const result = await connection.stream(DUCKDB_SQL);
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    rows += chunk.convertRows(JsonDuckDBValueConverter).length;
  }
  const seconds = (performance.now() - t0) / 1000;
  connection.closeSync();
  db.closeSync();
  if (rows !== ROWS) throw new Error(`bare DuckDB read ${rows} rows`);
  return ROWS / seconds;
}

async function barePostgres(): Promise<number> {
  const client = new pg.Client(PG);
  await client.connect();
  try {
    const t0 = performance.now();
    let rows = 0;
    await new Promise<void>((resolve, reject) => {
      const query = new pg.Query({ text: PG_SQL, rowMode: 'array' } as pg.QueryArrayConfig);
      query.on('row', () => void rows++);
      query.on('error', reject);
      query.on('end', () => resolve());
      void client.query(query);
    });
    if (rows !== ROWS) throw new Error(`bare PostgreSQL read ${rows} rows`);
    return ROWS / ((performance.now() - t0) / 1000);
  } finally {
    await client.end();
  }
}

let scriptCounter = 0;
/** Executes `sql` and waits for FINISHED; returns the script name and instance id. */
async function executeToEnd(client: ApiClient, connectionName: string, sql: string) {
  scriptCounter += 1;
  const name = `large-${scriptCounter}`;
  await client.createScript({ name, type: 'DWSSQL', connectionName, content: sql });
  const id = await client.execute(name);
  const path = client.path(`/${name}/instances/${id}?waitSeconds=60`);
  for (;;) {
    const response = await client.request('GET', path);
    if (response.json?.status === 'FINISHED') break;
    if (response.json?.status === 'FAILED') throw new Error(`the run failed: ${response.text.slice(0, 500)}`);
  }
  return { name, id, resultsPath: client.path(`/${name}/instances/${id}/results/0`) };
}

/** Rows/s of the two phases: execute → FINISHED (engine read + spill write), then the fetch. */
interface Phases {
  readonly execute: number;
  readonly fetch: number;
  /** The server's RSS growth (MiB) in each phase. */
  readonly executeGrowth: number;
  readonly fetchGrowth: number;
}

/**
 * Execute → FINISHED, then `fetchAll` of the finished result, each phase timed and metered on its
 * own; `fetchAll` answers how many rows it received, which must be `rows`.
 */
async function phases(
  client: ApiClient,
  meter: RssMeter,
  connectionName: string,
  sql: string,
  rows: number,
  fetchAll: (resultsPath: string) => Promise<number>,
): Promise<Phases> {
  meter.start();
  const t0 = performance.now();
  const { resultsPath } = await executeToEnd(client, connectionName, sql);
  const t1 = performance.now();
  const executeGrowth = meter.stop();
  meter.start();
  const received = await fetchAll(resultsPath);
  const t2 = performance.now();
  const fetchGrowth = meter.stop();
  if (received !== rows) throw new Error(`the fetch had ${received} rows, not ${rows}`);
  return {
    execute: rows / ((t1 - t0) / 1000),
    fetch: rows / ((t2 - t1) / 1000),
    executeGrowth,
    fetchGrowth,
  };
}

/** Execute, then the whole result as CSV. */
function throughCsv(
  client: ApiClient,
  meter: RssMeter,
  connectionName: string,
  sql: string,
  rows: number,
): Promise<Phases> {
  return phases(client, meter, connectionName, sql, rows, async (resultsPath) => {
    const response = await fetch(`${client.baseUrl}${resultsPath}.csv`);
    if (!response.ok || !response.body) throw new Error(`CSV answered ${response.status}`);
    let newlines = 0;
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) newlines++;
    }
    // The header line; no value of these queries holds a newline.
    return newlines - 1;
  });
}

/** Execute, then every page of PAGE_ROWS rows (each parsed as JSON, as a client would). */
function throughPages(
  client: ApiClient,
  meter: RssMeter,
  connectionName: string,
  sql: string,
  expected: number,
): Promise<Phases> {
  return phases(client, meter, connectionName, sql, expected, async (resultsPath) => {
    let rows = 0;
    for (let offset = 0; ; offset += PAGE_ROWS) {
      const page = await client.request('GET', `${resultsPath}?offset=${offset}&limit=${PAGE_ROWS}`);
      if (page.status !== 200) throw new Error(`page answered ${page.status}: ${page.text.slice(0, 300)}`);
      rows += page.json.rows.length;
      if (offset + PAGE_ROWS >= page.json.rowCount) break;
    }
    return rows;
  });
}

const rate = (value: number) => stats([value]);

export async function largeResults(): Promise<{ rows: BenchRow[]; oddities: string[] }> {
  oddities.length = 0;
  const rows: BenchRow[] = [];
  const dataDir = tempDir('opendlf-bench-large-');
  let server: ChildServer | undefined;
  try {
    server = await spawnServer(dataDir, [], { captureStderr: true });
    const pid = server.process.pid;
    if (pid === undefined) throw new Error('the server has no pid');
    const client = new ApiClient(server.url, PROJECT);
    const connection = await client.request('POST', `/v1/${PROJECT}/connections`, {
      body: {
        name: 'bench-pg',
        type: 'DWS',
        config: {
          ip: PG.host,
          port: String(PG.port),
          userName: PG.user,
          password: 'x',
          database: PG.database,
          sslEnable: false,
        },
      },
    });
    if (connection.status !== 204) throw new Error(`connection: ${connection.status} ${connection.text}`);
    const count = ROWS >= 1e6 ? `${(ROWS / 1e6).toFixed(0)}M` : `${(ROWS / 1e3).toFixed(0)}k`;
    const meter = new RssMeter(pid);
    for (const engine of [
      { label: 'DuckDB', connectionName: 'duckdb', sql: duckDbSql, bare: bareDuckDb },
      { label: 'PostgreSQL', connectionName: 'bench-pg', sql: postgresSql, bare: barePostgres },
    ]) {
      const bare = await engine.bare();
      // Warm-up: the workspace's DuckDB database, the pools, the routes' first calls.
      await throughCsv(client, meter, engine.connectionName, engine.sql(WARM_UP_ROWS), WARM_UP_ROWS);
      await throughPages(client, meter, engine.connectionName, engine.sql(WARM_UP_ROWS), WARM_UP_ROWS);
      await sleep(500);
      const csv = await throughCsv(client, meter, engine.connectionName, engine.sql(ROWS), ROWS);
      await sleep(500);
      const pages = await throughPages(client, meter, engine.connectionName, engine.sql(ROWS), ROWS);
      rows.push(
        {
          figure: `${engine.label} ${count} rows: execute → FINISHED (engine read + spill write), vs the bare driver stream`,
          ours: stats([csv.execute, pages.execute]),
          baseline: rate(bare),
          unit: 'rows/s',
        },
        {
          figure: `${engine.label} ${count} rows: CSV export of the finished result, vs the bare driver stream`,
          ours: rate(csv.fetch),
          baseline: rate(bare),
          unit: 'rows/s',
        },
        {
          figure: `${engine.label} ${count} rows: pages of ${PAGE_ROWS.toLocaleString('en-US')} of the finished result, vs the bare driver stream`,
          ours: rate(pages.fetch),
          baseline: rate(bare),
          unit: 'rows/s',
        },
        {
          figure: `${engine.label} ${count} rows: server RSS growth during execute → FINISHED (the larger of the two runs)`,
          ours: rate(Math.max(csv.executeGrowth, pages.executeGrowth)),
          unit: 'MiB',
        },
        {
          figure: `${engine.label} ${count} rows: server RSS growth during the CSV export`,
          ours: rate(csv.fetchGrowth),
          unit: 'MiB',
        },
        {
          figure: `${engine.label} ${count} rows: server RSS growth during the paging`,
          ours: rate(pages.fetchGrowth),
          unit: 'MiB',
        },
      );
    }
  } finally {
    if (server) {
      server.process.kill('SIGTERM');
      await server.exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { rows, oddities: [...oddities] };
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const { rows, oddities: notes } = await largeResults();
  console.log(markdownTable(rows));
  for (const line of machineDescription()) console.log(line);
  for (const note of notes) console.log(`note: ${note}`);
  console.log(
    `\n${((performance.now() - started) / 1000).toFixed(1)} s; spill files under ${join('<temp data dir>', 'results')}`,
  );
}
