/**
 * Throughput, read scalability and memory: the figures of the observability issue that are not
 * latencies of a single request.
 *
 * - `instances`: trivial instances per second with the default concurrency (maxConcurrentRuns 8).
 *   Ours: 16 clients POST …/execute as fast as the server accepts them (400 DuckDB `SELECT 1`, 200
 *   Shell `echo 1`), every instance is polled until terminal; instances/s from the first POST to the
 *   last terminal status seen, after an untimed warm-up batch of each side (JIT_WARMUP_RUNS in
 *   lib.ts). The clients run on a worker thread (InstanceLoad in lib.ts), as
 *   remote clients would: the server's event loop serves only the server. Baselines, in this process, no opendlf: `SELECT 1` the same number of
 *   times over 8 already open DuckDB connections (8 at once); `spawn('bash', ['-c', 'echo 1'])` the
 *   same number of times, 8 at once. The one-request DuckDB load also runs against a bare fastify
 *   route whose POST handler makes the driver call on those connections: HTTP and the driver, with
 *   no store and no run.
 * - `reads`: API read throughput with autocannon (-c 50 -d 5, in a worker thread, so the load
 *   generator does not share the server's event loop): GET one script, and list pages of 10 at
 *   random offsets, in a workspace of 10,000 scripts. Baseline: a bare fastify app in this process
 *   whose one JSON route returns the same body.
 * - `list`: list latency at 100 / 1,000 / 10,000 scripts in one workspace: a page of 10 at the
 *   middle offset, a `scriptName` filter that matches one script, and a filter that matches every
 *   script (page in the middle). Baseline: the bare fastify route returning the same body.
 * - `memory`: peak RSS of a server in a child process (`--max-concurrent-runs 100`) while 100 Shell
 *   `sleep 5` run, while 100 DuckDB `SELECT sleep_ms(1000)` run, and while
 *   `SELECT * FROM range(10000000)` is read (result capped at maxResultRows), against its idle RSS.
 *
 * Usage: `npx tsx bench/throughput.ts [--quick] [--only instances,reads,list,memory]`.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import Fastify, { type FastifyInstance } from 'fastify';
import { DEFAULT_CONFIG } from '../src/config.js';
import { ApiClient, PROJECT, spawnServer, tempDir, type ChildServer } from '../test/helpers/server.js';
import {
  InstanceLoad,
  isMain,
  JIT_WARMUP_RUNS,
  markdownTable,
  now,
  onlyParts,
  sleep,
  startBenchServer,
  stats,
  type BenchRow,
  type Stats,
} from './lib.js';

export const THROUGHPUT_PARTS = ['instances', 'reads', 'list', 'memory'] as const;
export type ThroughputPart = (typeof THROUGHPUT_PARTS)[number];

const quick = process.argv.includes('--quick');
const oddities: string[] = [];
const environment: string[] = [];

/** Runs `task(0…count-1)` with at most `concurrency` at once; rejects on the first failure. */
async function pool(count: number, concurrency: number, task: (index: number) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const index = next++;
      await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const isTerminal = (status: unknown) => status === 'FINISHED' || status === 'FAILED';

// ---- figure 3: instances per second -----------------------------------------------------------------

const SUBMIT_CLIENTS = 16;
const BARE_CONCURRENCY = DEFAULT_CONFIG.maxConcurrentRuns;
const DUCKDB_INSTANCES = quick ? 60 : 400;
const SHELL_INSTANCES = quick ? 30 : 200;
const THROUGHPUT_ROUNDS = quick ? 1 : 3;

/**
 * Submits `count` executes with SUBMIT_CLIENTS clients on the load worker's thread, which meanwhile
 * polls the submitted instances oldest first until each is terminal. Returns instances per second
 * (first POST → last terminal seen).
 */
async function oursBatch(
  load: InstanceLoad,
  server: { url: string },
  name: string,
  count: number,
  oneRequest = false,
): Promise<number> {
  const reply = await load.run({
    baseUrl: server.url,
    projectId: PROJECT,
    name,
    count,
    clients: SUBMIT_CLIENTS,
    oneRequest,
  });
  if (reply.failed > 0) {
    oddities.push(
      `${name}: ${reply.failed} of ${count} instances FAILED (first: ${reply.firstFailure ?? '?'})`,
    );
  }
  return count / (reply.elapsedMs / 1000);
}

async function bareSelectBatch(connections: readonly DuckDBConnection[], count: number): Promise<number> {
  let next = 0;
  const t0 = now();
  await Promise.all(
    connections.map(async (connection) => {
      while (next < count) {
        next++;
        const rows = (await connection.runAndReadAll('SELECT 1')).getRows();
        if (rows[0]?.[0] !== 1) oddities.push(`bare SELECT 1 returned ${JSON.stringify(rows)}`);
      }
    }),
  );
  return count / ((now() - t0) / 1000);
}

function bareEcho(): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', 'echo 1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.once('error', (error) => {
      oddities.push(`bare bash failed: ${error.message}`);
      resolve();
    });
    child.once('exit', (code) => {
      if (code !== 0) oddities.push(`bare bash exited ${code}`);
      resolve();
    });
  });
}

async function bareShellBatch(count: number): Promise<number> {
  const t0 = now();
  await pool(count, BARE_CONCURRENCY, bareEcho);
  return count / ((now() - t0) / 1000);
}

type Batch = (n: number) => Promise<number>;

/**
 * One discarded warm-up batch of each side (`warmup` instances, see JIT_WARMUP_RUNS in lib.ts),
 * then rounds in which the sides take turns, the order reversed every other round.
 */
async function rounds(ours: Batch, baseline: Batch, n: number, warmup: number, composed?: Batch) {
  const sides = { ours, baseline, ...(composed ? { composed } : {}) };
  const names = Object.keys(sides) as (keyof typeof sides)[];
  for (const name of names) await sides[name]?.(warmup);
  const out = { ours: [] as number[], baseline: [] as number[], composed: [] as number[] };
  for (let i = 0; i < THROUGHPUT_ROUNDS; i++) {
    for (const name of i % 2 === 0 ? names : [...names].reverse()) {
      const batch = sides[name];
      if (batch) out[name].push(await batch(n));
    }
    await sleep(200);
  }
  return out;
}

/**
 * The bare composition behind the one-request DuckDB row's second baseline: a bare fastify route in
 * this process whose POST handler runs `SELECT 1` on one of the 8 bare connections (waiting for a
 * free one, as a run waits for a slot) and answers a settled-result-shaped JSON, at the path the
 * load worker's execute uses. No store, no run: HTTP plus the driver call, the floor of any server.
 */
async function startBareExecuteRoute(connections: readonly DuckDBConnection[]): Promise<FastifyInstance> {
  const free = [...connections];
  const waiting: ((connection: DuckDBConnection) => void)[] = [];
  const take = () => free.pop() ?? new Promise<DuckDBConnection>((resolve) => waiting.push(resolve));
  const give = (connection: DuckDBConnection) => {
    const next = waiting.shift();
    if (next) next(connection);
    else free.push(connection);
  };
  const app = Fastify();
  app.post('/v1/:projectId/scripts/:name/execute', async (_request, reply) => {
    const connection = await take();
    try {
      const rows = (await connection.runAndReadAll('SELECT 1')).getRows();
      const body = {
        instanceId: randomUUID(),
        status: 'FINISHED',
        results: [{ rowCount: rows.length, rows }],
      };
      return await reply
        .header('content-type', 'application/json;charset=UTF-8')
        .send(
          JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? Number(value) : value)),
        );
    } finally {
      give(connection);
    }
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
}

async function benchInstances(client: ApiClient, server: { url: string }): Promise<BenchRow[]> {
  await client.createScript({
    name: 'bench_tp_select1',
    type: 'DWSSQL',
    content: 'SELECT 1',
    connectionName: 'duckdb',
  });
  await client.createScript({
    name: 'bench_tp_echo1',
    type: 'Shell',
    content: 'echo 1',
    connectionName: 'local',
  });
  const db = await DuckDBInstance.create(':memory:');
  const connections = await Promise.all(Array.from({ length: BARE_CONCURRENCY }, () => db.connect()));
  const load = new InstanceLoad();
  try {
    const sql = await rounds(
      (n) => oursBatch(load, server, 'bench_tp_select1', n),
      (n) => bareSelectBatch(connections, n),
      DUCKDB_INSTANCES,
      quick ? DUCKDB_INSTANCES / 4 : JIT_WARMUP_RUNS,
    );
    // The same load, each client sending one `execute?waitSeconds=30` per instance (no poller);
    // also against the bare route that runs the driver call (the same load, the same clients).
    const bareRoute = await startBareExecuteRoute(connections);
    const bareRouteUrl = `http://127.0.0.1:${(bareRoute.server.address() as AddressInfo).port}`;
    const sqlOneRequest = await rounds(
      (n) => oursBatch(load, server, 'bench_tp_select1', n, true),
      (n) => bareSelectBatch(connections, n),
      DUCKDB_INSTANCES,
      quick ? DUCKDB_INSTANCES / 4 : JIT_WARMUP_RUNS,
      (n) => oursBatch(load, { url: bareRouteUrl }, 'bench_tp_select1', n, true),
    ).finally(() => bareRoute.close());
    const shell = await rounds(
      (n) => oursBatch(load, server, 'bench_tp_echo1', n),
      bareShellBatch,
      SHELL_INSTANCES,
      // A tenth, as in the execute figures: each instance is a spawn of its own.
      quick ? SHELL_INSTANCES / 4 : JIT_WARMUP_RUNS / 10,
    );
    return [
      {
        figure: `Throughput: ${DUCKDB_INSTANCES} DuckDB \`SELECT 1\` instances, ${SUBMIT_CLIENTS} clients, maxConcurrentRuns ${DEFAULT_CONFIG.maxConcurrentRuns}`,
        ours: stats(sql.ours),
        baseline: stats(sql.baseline),
        unit: 'inst/s',
      },
      {
        figure: `Throughput: ${DUCKDB_INSTANCES} DuckDB \`SELECT 1\` instances, ${SUBMIT_CLIENTS} clients, one request each (\`execute?waitSeconds=30\`)`,
        ours: stats(sqlOneRequest.ours),
        baseline: stats(sqlOneRequest.baseline),
        unit: 'inst/s',
      },
      {
        figure: `Throughput: the same one-request DuckDB load, baseline: a bare route running the driver call (no store)`,
        ours: stats(sqlOneRequest.ours),
        baseline: stats(sqlOneRequest.composed),
        unit: 'inst/s',
      },
      {
        figure: `Throughput: ${SHELL_INSTANCES} Shell \`echo 1\` instances, ${SUBMIT_CLIENTS} clients, maxConcurrentRuns ${DEFAULT_CONFIG.maxConcurrentRuns}`,
        ours: stats(shell.ours),
        baseline: stats(shell.baseline),
        unit: 'inst/s',
      },
    ];
  } finally {
    await load.close();
    for (const connection of connections) connection.closeSync();
    db.closeSync();
  }
}

// ---- the scripts of figures 4 and 5 ---------------------------------------------------------------

const LIST_WORKSPACE = 'bench_list';
const LIST_SIZES = quick ? [100, 1_000] : [100, 1_000, 10_000];
const LIST_PREFIX = 'bench_s';
const scriptName = (i: number) => `${LIST_PREFIX}${String(i).padStart(5, '0')}`;

/** A plausible SQL script (~0.5 kB as JSON). */
function scriptBody(i: number) {
  return {
    name: scriptName(i),
    type: 'DWSSQL',
    connectionName: 'duckdb',
    directory: '/bench/reports',
    description: 'daily revenue by region (benchmark fixture)',
    content:
      `SELECT region, sum(amount) AS revenue, count(*) AS orders\nFROM sales\n` +
      `WHERE day >= DATE '2024-01-01' AND sku_group = ${i}\nGROUP BY region\nORDER BY revenue DESC`,
  };
}

/** Grows the list workspace from `from` to `to` scripts through the API, SUBMIT_CLIENTS at once. */
async function fillWorkspace(client: ApiClient, from: number, to: number) {
  const t0 = now();
  await pool(to - from, SUBMIT_CLIENTS, async (k) => {
    await client.createScript(scriptBody(from + k));
  });
  const seconds = (now() - t0) / 1000;
  environment.push(
    `Fixture: scripts ${from}→${to} created through POST …/scripts, ${SUBMIT_CLIENTS} at once: ` +
      `${fmt(seconds, 1)} s (${fmt((to - from) / seconds, 0)} creates/s)`,
  );
}

/**
 * A bare fastify app of the baselines: it answers any GET with the body stored for its exact URL
 * (path and query string), or else the fallback body set before each measurement. So a load can send
 * both sides the very same requests (paths, query strings, headers) and get the very same JSON.
 * - `object`: the body is kept as the parsed object and the route returns it, so fastify serialises it
 *   on every answer (JSON.stringify, no schema): the plain route the goals compare with;
 * - `text`: the body is kept as its JSON text, serialised once ahead: the floor of answering from
 *   memory, below what any route that builds its answer can reach.
 */
class BareApp {
  private readonly bodies = new Map<string, unknown>();
  private fallback: unknown = {};
  readonly app: FastifyInstance = Fastify({ logger: false });
  /** Set by start(). */
  url = '';
  private constructor(readonly mode: 'object' | 'text') {}

  static async start(mode: 'object' | 'text'): Promise<BareApp> {
    const bare = new BareApp(mode);
    bare.app.get('/*', (request, reply) => {
      const body = bare.bodies.get(request.url) ?? bare.fallback;
      if (mode === 'text') void reply.code(200).type('application/json; charset=utf-8').send(body);
      else void reply.code(200).send(body);
    });
    bare.url = await bare.app.listen({ host: '127.0.0.1', port: 0 });
    return bare;
  }

  private keep(text: string): unknown {
    return this.mode === 'text' ? text : JSON.parse(text);
  }

  /** The body answered for `url` (its path and query string). */
  set(url: string, text: string): void {
    this.bodies.set(url, this.keep(text));
  }

  /** The body answered for any other URL. */
  setFallback(text: string): void {
    this.fallback = this.keep(text);
  }
}

// ---- figure 5: list latency by workspace size -----------------------------------------------------

const LIST_RUNS = quick ? 20 : 200;
const LIST_WARMUP = 10;

async function timedGet(url: string, headers: Record<string, string>): Promise<{ ms: number; text: string }> {
  const t0 = now();
  const response = await fetch(url, { headers });
  const text = await response.text();
  const ms = now() - t0;
  if (response.status !== 200)
    throw new Error(`GET ${url} answered ${response.status}: ${text.slice(0, 200)}`);
  return { ms, text };
}

interface ListQuery {
  readonly label: string;
  /** The query string of one request (may vary from request to request). */
  readonly query: (size: number) => string;
  /** The `total` the server must report. */
  readonly total: (size: number) => number;
}

const randomIndex = (size: number) => Math.floor(Math.random() * size);

const LIST_QUERIES: readonly ListQuery[] = [
  {
    label: 'page of 10 at the middle offset',
    query: (size) => `limit=10&offset=${Math.floor(size / 2)}`,
    total: (size) => size,
  },
  {
    label: '`scriptName` filter matching 1 script',
    query: (size) => `limit=10&scriptName=${String(randomIndex(size)).padStart(5, '0')}`,
    total: () => 1,
  },
  {
    label: '`scriptName` filter matching all, page at the middle offset',
    query: (size) => `limit=10&offset=${Math.floor(size / 2)}&scriptName=${LIST_PREFIX}`,
    total: (size) => size,
  },
];

async function measureList(server: { url: string }, bare: BareApp, size: number): Promise<BenchRow[]> {
  const headers = { workspace: LIST_WORKSPACE };
  const listPath = `/v1/${PROJECT}/scripts`;
  const listUrl = `${server.url}${listPath}`;
  const rows: BenchRow[] = [];
  for (const query of LIST_QUERIES) {
    const sampleText = (await timedGet(`${listUrl}?${query.query(size)}`, headers)).text;
    const sample = JSON.parse(sampleText) as { total?: number };
    if (sample.total !== query.total(size)) {
      oddities.push(
        `list ${size}, ${query.label}: total ${sample.total ?? 'missing'}, expected ${query.total(size)}`,
      );
    }
    // The bare route answers every request of this query with the sample (the same size of JSON).
    bare.setFallback(sampleText);
    const ours: number[] = [];
    const baseline: number[] = [];
    for (let i = 0; i < LIST_WARMUP + LIST_RUNS; i++) {
      const oursOnce = () => timedGet(`${listUrl}?${query.query(size)}`, headers);
      const bareOnce = () => timedGet(`${bare.url}${listPath}?${query.query(size)}`, headers);
      const first = i % 2 === 0;
      const a = await (first ? oursOnce() : bareOnce());
      const b = await (first ? bareOnce() : oursOnce());
      if (i >= LIST_WARMUP) {
        ours.push((first ? a : b).ms);
        baseline.push((first ? b : a).ms);
      }
    }
    rows.push({
      figure: `List latency, ${size.toLocaleString('en-US')} scripts: ${query.label}`,
      ours: stats(ours),
      baseline: stats(baseline),
    });
  }
  return rows;
}

// ---- figure 4: API read throughput (autocannon) -----------------------------------------------------

interface AutocannonHistogram {
  readonly average: number;
  readonly p50: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}
interface AutocannonResult {
  readonly requests: AutocannonHistogram & { readonly total: number };
  readonly latency: AutocannonHistogram;
  readonly duration: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly '2xx': number;
}
interface AutocannonOptions {
  readonly url: string;
  readonly connections: number;
  readonly duration: number;
  readonly workers?: number;
  readonly headers?: Record<string, string>;
  readonly requests?: readonly { readonly method: 'GET'; readonly path: string }[];
}
/** autocannon ships no types; this is the part of its programmatic API used here. */
const autocannon = createRequire(import.meta.url)('autocannon') as (
  options: AutocannonOptions,
) => Promise<AutocannonResult>;

const LOAD_CONNECTIONS = 50;
const LOAD_SECONDS = quick ? 1 : 5;
const LOAD_WARMUP_SECONDS = 1;

async function load(options: Omit<AutocannonOptions, 'connections' | 'duration' | 'workers'>, label: string) {
  // workers: 1 puts the load generator on its own thread (and, here, its own core).
  const result = await autocannon({
    ...options,
    connections: LOAD_CONNECTIONS,
    duration: LOAD_SECONDS,
    workers: 1,
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    oddities.push(`${label}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`);
  }
  const ok = result['2xx'];
  const rate = ok / result.duration;
  const throughput: Stats = { n: ok, p50: rate, p99: NaN, mean: rate, min: rate, max: rate };
  const latency: Stats = {
    n: ok,
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: result.latency.average,
    min: result.latency.min,
    max: result.latency.max,
  };
  return { throughput, latency };
}

/** Rounds of one autocannon load per side. Reads are short: the machine's noise is what moves them. */
const READ_ROUNDS = quick ? 1 : 3;

/**
 * READ_ROUNDS loads of each side, alternating which goes first; each side's figure is its round
 * with the median throughput (so its latency comes from that same round).
 */
async function alternatingLoads(
  ours: Parameters<typeof load>[0],
  bare: Parameters<typeof load>[0],
  label: string,
): Promise<{ ours: Awaited<ReturnType<typeof load>>; bare: Awaited<ReturnType<typeof load>> }> {
  const oursRounds: Awaited<ReturnType<typeof load>>[] = [];
  const bareRounds: Awaited<ReturnType<typeof load>>[] = [];
  for (let round = 0; round < READ_ROUNDS; round++) {
    if (round % 2 === 0) {
      oursRounds.push(await load(ours, label));
      bareRounds.push(await load(bare, `bare ${label}`));
    } else {
      bareRounds.push(await load(bare, `bare ${label}`));
      oursRounds.push(await load(ours, label));
    }
  }
  const median = (rounds: Awaited<ReturnType<typeof load>>[]) => {
    const sorted = [...rounds].sort((a, b) => a.throughput.p50 - b.throughput.p50);
    const middle = sorted[Math.floor(sorted.length / 2)];
    if (!middle) throw new Error(`${label}: no rounds`);
    const rates = sorted.map((r) => r.throughput.p50);
    return {
      ...middle,
      throughput: { ...middle.throughput, min: rates[0] ?? NaN, max: rates[rates.length - 1] ?? NaN },
    };
  };
  return { ours: median(oursRounds), bare: median(bareRounds) };
}

async function benchReads(server: { url: string }, size: number): Promise<BenchRow[]> {
  const headers = { workspace: LIST_WORKSPACE };
  const base = `/v1/${PROJECT}/scripts`;
  const one = `${base}/${scriptName(Math.floor(size / 2))}`;
  // 200 list pages at random offsets; every connection cycles through them.
  const pages = Array.from({ length: 200 }, () => ({
    method: 'GET' as const,
    path: `${base}?limit=10&offset=${randomIndex(size - 10)}`,
  }));
  // Both sides get the very same requests and answer the very same JSON: the bare apps serve, from
  // memory, the body opendlf answered for each of those URLs.
  const bodies = new Map<string, string>();
  for (const path of [one, ...pages.map((page) => page.path)]) {
    bodies.set(path, (await timedGet(`${server.url}${path}`, headers)).text);
  }
  const pageSizes = pages.map((page) => bodies.get(page.path)?.length ?? 0);
  environment.push(
    `Response bodies: one script ${bodies.get(one)?.length ?? 0} B, a page of 10 ${Math.min(...pageSizes)}-${Math.max(...pageSizes)} B ` +
      '(the bare routes return the same JSON for the same URL)',
  );
  const bareObject = await BareApp.start('object');
  const bareText = await BareApp.start('text');
  try {
    for (const [path, text] of bodies) {
      bareObject.set(path, text);
      bareText.set(path, text);
    }
    const oneTarget = (url: string) => ({ url: `${url}${one}`, headers });
    const listTarget = (url: string) => ({ url, headers, requests: pages });
    const urls = [server.url, bareObject.url, bareText.url];
    for (const target of [...urls.map(oneTarget), ...urls.map(listTarget)]) {
      await autocannon({
        ...target,
        connections: LOAD_CONNECTIONS,
        duration: LOAD_WARMUP_SECONDS,
        workers: 1,
      });
    }
    const oneObject = await alternatingLoads(
      oneTarget(server.url),
      oneTarget(bareObject.url),
      'GET one script',
    );
    const oneText = await alternatingLoads(oneTarget(server.url), oneTarget(bareText.url), 'GET one script');
    const list = await alternatingLoads(listTarget(server.url), listTarget(bareObject.url), 'list page');
    const listText = await alternatingLoads(listTarget(server.url), listTarget(bareText.url), 'list page');
    const settings = `autocannon -c ${LOAD_CONNECTIONS} -d ${LOAD_SECONDS}`;
    const sizeLabel = size.toLocaleString('en-US');
    const textBaseline = 'baseline: the same route answering JSON text serialised ahead';
    return [
      {
        figure: `API read: GET one script (${settings}), throughput`,
        ours: oneObject.ours.throughput,
        baseline: oneObject.bare.throughput,
        unit: 'req/s',
      },
      {
        figure: 'API read: GET one script, latency under that load',
        ours: oneObject.ours.latency,
        baseline: oneObject.bare.latency,
      },
      {
        figure: `API read: GET one script, throughput, ${textBaseline}`,
        ours: oneText.ours.throughput,
        baseline: oneText.bare.throughput,
        unit: 'req/s',
      },
      {
        figure: `API read: list page of 10 at random offsets, ${sizeLabel} scripts (${settings}), throughput`,
        ours: list.ours.throughput,
        baseline: list.bare.throughput,
        unit: 'req/s',
      },
      {
        figure: 'API read: list page of 10, latency under that load',
        ours: list.ours.latency,
        baseline: list.bare.latency,
      },
      {
        figure: `API read: list page of 10, throughput, ${textBaseline}`,
        ours: listText.ours.throughput,
        baseline: listText.bare.throughput,
        unit: 'req/s',
      },
    ];
  } finally {
    await bareObject.app.close();
    await bareText.app.close();
  }
}

// ---- figure 6: peak RSS of a server in a child process ------------------------------------------------

const CONCURRENT_INSTANCES = quick ? 20 : 100;
const SLEEP_SECONDS = 5;
const DUCKDB_SLEEP_MS = 1000;
const BIG_RESULT = 'SELECT * FROM range(10000000)';

/**
 * libuv's thread pool as the `opendlf` command sizes it (bin/opendlf.js): spawnServer starts the
 * server from source, which would keep Node's 4 threads and so run only 4 DuckDB statements at once.
 */
const OPENDLF_THREADPOOL_SIZE = '64';

/**
 * The memory server: test/helpers/server.ts spawnServer with the extra flag, stderr kept and the
 * thread pool of the `opendlf` command.
 */
function spawnChildServer(dataDir: string): Promise<ChildServer> {
  return spawnServer(dataDir, ['--max-concurrent-runs', String(CONCURRENT_INSTANCES)], {
    captureStderr: true,
    env: { UV_THREADPOOL_SIZE: OPENDLF_THREADPOOL_SIZE },
  });
}

/** VmRSS and VmHWM of a process, in MiB. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

/** Resets the process's VmHWM to its current RSS (`echo 5 > /proc/PID/clear_refs`); false if not allowed. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `work` while sampling the server's VmRSS every 5 ms; the peak is the larger of the sampled
 * maximum and VmHWM (reset just before, so it covers only this phase and catches spikes between samples).
 */
async function peakDuring(
  pid: number,
  work: () => Promise<void>,
): Promise<{ peak: number; before: number; after: number }> {
  await sleep(1_000);
  const before = memoryOf(pid).rss;
  const reset = resetPeak(pid);
  if (!reset)
    oddities.push('could not reset VmHWM (clear_refs); the peak is the sampled VmRSS maximum (every 5 ms)');
  let sampled = before;
  const timer = setInterval(() => {
    try {
      sampled = Math.max(sampled, memoryOf(pid).rss);
    } catch {
      // Exited.
    }
  }, 5);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const end = memoryOf(pid);
  return { peak: Math.max(sampled, end.rss, reset ? end.hwm : 0), before, after: end.rss };
}

/** Submits `count` executes of `name` at once (16 clients) and follows them until all are terminal. */
async function runAtOnce(client: ApiClient, name: string, count: number) {
  const t0 = now();
  const ids = new Set<string>();
  await pool(count, SUBMIT_CLIENTS, async () => {
    ids.add(await client.execute(name));
  });
  const submittedMs = now() - t0;
  let maxRunning = 0;
  let failed = 0;
  const deadline = Date.now() + 180_000;
  for (;;) {
    const response = await client.request('GET', client.path(`/${name}/instances?limit=1000`));
    const instances = ((response.json?.instances ?? []) as { instanceId: string; status: string }[]).filter(
      (i) => ids.has(i.instanceId),
    );
    maxRunning = Math.max(maxRunning, instances.filter((i) => i.status === 'RUNNING').length);
    const terminal = instances.filter((i) => isTerminal(i.status));
    if (terminal.length === count) {
      failed = terminal.filter((i) => i.status === 'FAILED').length;
      break;
    }
    if (Date.now() > deadline) throw new Error(`${name}: not all ${count} instances terminal after 180 s`);
    await sleep(50);
  }
  if (failed > 0) oddities.push(`${name}: ${failed} of ${count} instances FAILED`);
  return { seconds: (now() - t0) / 1000, submittedMs, maxRunning };
}

/** One `echo 1` through the API, timed to a terminal status (waitFor polls every 20 ms). */
async function echoLatency(client: ApiClient): Promise<number> {
  const t0 = now();
  const id = await client.execute('mem_echo1');
  await client.waitFor('mem_echo1', id, (b) => isTerminal(b.status), 180_000);
  return now() - t0;
}

async function benchMemory(): Promise<BenchRow[]> {
  const dataDir = tempDir('opendlf-bench-rss-');
  let server: ChildServer | undefined;
  try {
    server = await spawnChildServer(dataDir);
    const pid = server.process.pid!;
    const client = new ApiClient(server.url, PROJECT);
    await sleep(1_000);
    const idle = memoryOf(pid);
    const idleStats = stats([idle.rss]);

    await client.createScript({
      name: 'mem_sleep',
      type: 'Shell',
      content: `sleep ${SLEEP_SECONDS}`,
      connectionName: 'local',
    });
    await client.createScript({
      name: 'mem_duckdb_sleep',
      type: 'DWSSQL',
      content: `SELECT sleep_ms(${DUCKDB_SLEEP_MS})`,
      connectionName: 'duckdb',
    });
    await client.createScript({
      name: 'mem_big',
      type: 'DWSSQL',
      content: BIG_RESULT,
      connectionName: 'duckdb',
    });
    await client.createScript({
      name: 'mem_echo1',
      type: 'Shell',
      content: 'echo 1',
      connectionName: 'local',
    });
    await client.createScript({
      name: 'mem_select1',
      type: 'DWSSQL',
      content: 'SELECT 1',
      connectionName: 'duckdb',
    });
    // Engines warmed up (the DuckDB database opened, a shell run done), so the phases below measure the runs.
    for (const name of ['mem_echo1', 'mem_select1']) await client.waitFor(name, await client.execute(name));
    await sleep(1_000);
    const warm = memoryOf(pid).rss;

    let shellRun = { seconds: NaN, submittedMs: NaN, maxRunning: 0 };
    const shell = await peakDuring(pid, async () => {
      shellRun = await runAtOnce(client, 'mem_sleep', CONCURRENT_INSTANCES);
    });

    let duckRun = { seconds: NaN, submittedMs: NaN, maxRunning: 0 };
    let echoDuringDuck = NaN;
    const duck = await peakDuring(pid, async () => {
      const batch = runAtOnce(client, 'mem_duckdb_sleep', CONCURRENT_INSTANCES);
      // A Shell run submitted while the DuckDB batch runs: how long does it wait?
      await sleep(500);
      echoDuringDuck = await echoLatency(client);
      duckRun = await batch;
    });
    const echoAfter = await echoLatency(client);

    let bigResult = { rows: NaN, truncated: false, seconds: NaN };
    const big = await peakDuring(pid, async () => {
      const t0 = now();
      const id = await client.execute('mem_big');
      const response = await client.waitFor('mem_big', id, (b) => isTerminal(b.status), 180_000);
      const first = response.json?.results?.[0];
      bigResult = {
        rows: first?.rowCount,
        truncated: first?.truncated === true,
        seconds: (now() - t0) / 1000,
      };
      if (response.json?.status !== 'FINISHED')
        oddities.push(`${BIG_RESULT} ended ${response.text.slice(0, 200)}`);
    });

    environment.push(
      `Memory server: child process \`UV_THREADPOOL_SIZE=${OPENDLF_THREADPOOL_SIZE} node --import tsx src/cli/main.ts serve --max-concurrent-runs ${CONCURRENT_INSTANCES}\`; ` +
        `RSS idle after start ${fmt(idle.rss)} MiB (VmHWM during start-up ${fmt(idle.hwm)} MiB), ` +
        `after one Shell and one DuckDB warm-up run ${fmt(warm)} MiB`,
    );
    oddities.push(
      `${CONCURRENT_INSTANCES} Shell \`sleep ${SLEEP_SECONDS}\`: submitted in ${fmt(shellRun.submittedMs, 0)} ms, at most ${shellRun.maxRunning} RUNNING at once, ` +
        `all terminal after ${fmt(shellRun.seconds)} s; RSS before ${fmt(shell.before)} MiB, peak ${fmt(shell.peak)}, after ${fmt(shell.after)}`,
      `${CONCURRENT_INSTANCES} DuckDB \`SELECT sleep_ms(${DUCKDB_SLEEP_MS})\`: at most ${duckRun.maxRunning} RUNNING at once, ` +
        `all terminal after ${fmt(duckRun.seconds)} s (${fmt((CONCURRENT_INSTANCES * DUCKDB_SLEEP_MS) / 1000 / duckRun.seconds)} queries actually executing at once on average); ` +
        `RSS before ${fmt(duck.before)} MiB, peak ${fmt(duck.peak)}, after ${fmt(duck.after)}`,
      `Shell \`echo 1\` → FINISHED submitted 0.5 s into that DuckDB batch: ${fmt(echoDuringDuck, 0)} ms (${fmt(echoAfter, 0)} ms once the batch is over)`,
      `\`${BIG_RESULT}\`: ${bigResult.rows} rows kept${bigResult.truncated ? ' (truncated)' : ''}, ${fmt(bigResult.seconds, 2)} s to terminal; ` +
        `RSS before ${fmt(big.before)} MiB, peak ${fmt(big.peak)}, after ${fmt(big.after)}`,
    );
    if (server.stderr.length > 0)
      oddities.push(`memory server stderr: ${server.stderr.slice(0, 5).join(' | ')}`);
    const row = (figure: string, peak: number): BenchRow => ({
      figure,
      ours: stats([peak]),
      baseline: idleStats,
      unit: 'MiB',
    });
    return [
      row(
        `Server RSS: peak with ${CONCURRENT_INSTANCES} Shell \`sleep ${SLEEP_SECONDS}\` instances at once, vs idle`,
        shell.peak,
      ),
      row(
        `Server RSS: peak with ${CONCURRENT_INSTANCES} DuckDB \`SELECT sleep_ms(${DUCKDB_SLEEP_MS})\` instances submitted at once, vs idle`,
        duck.peak,
      ),
      row(
        `Server RSS: peak while \`${BIG_RESULT}\` runs (kept: maxResultRows ${DEFAULT_CONFIG.maxResultRows}), vs idle`,
        big.peak,
      ),
    ];
  } finally {
    if (server) {
      server.process.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([
        server.exited.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 20_000))),
      ]);
      clearTimeout(timer);
      if (!exited) {
        oddities.push('the memory server did not exit within 20 s of SIGTERM; killed');
        server.process.kill('SIGKILL');
        await server.exited;
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---- all of it --------------------------------------------------------------------------------------

export async function throughput(
  parts: ReadonlySet<string> = new Set(THROUGHPUT_PARTS),
): Promise<{ rows: BenchRow[]; oddities: string[]; environment: string[] }> {
  oddities.length = 0;
  environment.length = 0;
  const rows: BenchRow[] = [];
  if (parts.has('instances') || parts.has('reads') || parts.has('list')) {
    const server = await startBenchServer();
    const bare = await BareApp.start('object');
    try {
      const client = server.client();
      if (parts.has('instances')) rows.push(...(await benchInstances(client, server)));
      const listClient = server.client(PROJECT, LIST_WORKSPACE);
      let size = 0;
      const listRows: BenchRow[] = [];
      if (parts.has('list')) {
        for (const target of LIST_SIZES) {
          await fillWorkspace(listClient, size, target);
          size = target;
          listRows.push(...(await measureList(server, bare, size)));
        }
      }
      if (parts.has('reads')) {
        const target = LIST_SIZES[LIST_SIZES.length - 1] ?? 10_000;
        if (size < target) await fillWorkspace(listClient, size, target);
        size = target;
        rows.push(...(await benchReads(server, size)));
      }
      rows.push(...listRows);
    } finally {
      await bare.app.close();
      await server.close();
    }
  }
  if (parts.has('memory')) rows.push(...(await benchMemory()));
  return { rows, oddities: [...oddities], environment: [...environment] };
}

if (isMain(import.meta.url)) {
  const started = performance.now();
  const only = onlyParts();
  for (const name of only ?? []) {
    if (!(THROUGHPUT_PARTS as readonly string[]).includes(name)) {
      throw new Error(`unknown part '${name}'; parts: ${THROUGHPUT_PARTS.join(', ')}`);
    }
  }
  const result = await throughput(only);
  console.log(markdownTable(result.rows));
  for (const line of result.environment) console.log(`- ${line}`);
  for (const note of result.oddities) console.log(`note: ${note}`);
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
