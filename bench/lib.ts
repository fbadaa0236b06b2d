/**
 * Shared benchmark plumbing: percentiles, the markdown table, the machine description, the
 * in-process server, and the process-tree observer (a worker thread, so its /proc polling never
 * blocks the event loop of the server under test, which runs in this same process).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DEFAULT_CONFIG } from '../src/config.js';
import { runMembers } from '../src/engines/local-process/process-tree.js';
import { startTestServer, type TestServer } from '../test/helpers/server.js';

export interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
}

/** Nearest-rank percentiles (with fewer than 100 samples p99 is the maximum). */
export function stats(samples: readonly number[]): Stats {
  const sorted = [...samples].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n: 0, p50: NaN, p99: NaN, mean: NaN, min: NaN, max: NaN };
  const rank = (p: number) => sorted[Math.min(n, Math.max(1, Math.ceil(p * n))) - 1] ?? NaN;
  return {
    n,
    p50: rank(0.5),
    p99: rank(0.99),
    mean: sorted.reduce((a, b) => a + b, 0) / n,
    min: sorted[0] ?? NaN,
    max: sorted[n - 1] ?? NaN,
  };
}

/**
 * One line of the results table. `baseline` is absent for figures that have no bare equivalent;
 * `skipped` (the reason) replaces the numbers when the figure could not be measured here.
 */
export interface BenchRow {
  readonly figure: string;
  readonly ours: Stats;
  readonly baseline?: Stats;
  readonly skipped?: string;
  /**
   * What the numbers are: latencies in ms (the default), a rate (`inst/s`, `req/s`: higher is better)
   * or a memory size in MiB. Rates and sizes show one value (the median over rounds, or the single
   * measurement) in the p50 columns and no p99.
   */
  readonly unit?: 'ms' | 'inst/s' | 'req/s' | 'MiB';
}

/** A row for a figure that could not be measured (a server missing on this machine, say). */
export function skippedRow(figure: string, reason: string): BenchRow {
  return { figure, ours: stats([]), skipped: reason };
}

const ms = (x: number) => (Number.isFinite(x) ? `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms` : 'n/a');

function formatValue(x: number, unit: NonNullable<BenchRow['unit']>): string {
  if (unit === 'ms') return ms(x);
  if (!Number.isFinite(x)) return 'n/a';
  const digits = x < 100 ? 1 : 0;
  return `${x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })} ${unit}`;
}

function formatRatio(ours: number, baseline: number): string {
  if (!(baseline > 0) || !Number.isFinite(ours)) return '—';
  const ratio = ours / baseline;
  return `${ratio < 1 ? ratio.toFixed(2) : ratio.toFixed(1)}×`;
}

export function markdownTable(rows: readonly BenchRow[]): string {
  const lines = [
    '| figure | ours p50 | ours p99 | baseline p50 | baseline p99 | ratio p50 |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const row of rows) {
    if (row.skipped !== undefined) {
      lines.push(`| ${row.figure} | skipped: ${row.skipped.replace(/\|/g, '\\|')} | — | — | — | — |`);
      continue;
    }
    const unit = row.unit ?? 'ms';
    const p99 = (s: Stats) => (unit === 'ms' ? ms(s.p99) : '—');
    const b = row.baseline;
    const ratio = b ? formatRatio(row.ours.p50, b.p50) : '—';
    const runs = b ? `n=${row.ours.n}/${b.n}` : `n=${row.ours.n}`;
    lines.push(
      `| ${row.figure} (${runs}) | ${formatValue(row.ours.p50, unit)} | ${p99(row.ours)} | ${b ? formatValue(b.p50, unit) : '—'} | ${b ? p99(b) : '—'} | ${ratio} |`,
    );
  }
  return lines.join('\n');
}

export function machineDescription(): string[] {
  let cpu = 'unknown';
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match?.[1]) cpu = match[1].trim();
  } catch {
    // Not Linux.
  }
  let duckdb = 'unknown';
  try {
    const require = createRequire(import.meta.url);
    duckdb = (require('@duckdb/node-api/package.json') as { version: string }).version;
  } catch {
    // Not resolvable through exports; leave unknown.
  }
  let revision = 'unknown';
  try {
    revision = execFileSync('git', ['describe', '--always', '--dirty'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // Not a git checkout.
  }
  return [
    `- CPUs (nproc): ${os.availableParallelism()}`,
    `- CPU model: ${cpu}`,
    `- Memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- OS: ${os.type()} ${os.release()} (${os.arch()})`,
    `- Node: ${process.version}`,
    `- @duckdb/node-api: ${duckdb}`,
    `- opendlf revision: ${revision}`,
    `- Date: ${new Date().toISOString()}`,
  ];
}

/** `--quick` divides every run count by 10 (smoke test of the harness, numbers are not meaningful). */
export function runCount(full: number): number {
  return process.argv.includes('--quick') ? Math.max(3, Math.ceil(full / 10)) : full;
}

/**
 * The names given with `--only a,b` (or `--only=a,b`), or undefined when the flag is absent: the
 * parts of the suite to run (see bench/run.ts and bench/throughput.ts for the names).
 */
export function onlyParts(argv: readonly string[] = process.argv): Set<string> | undefined {
  const index = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (index < 0) return undefined;
  const flag = argv[index] ?? '';
  const value = flag.startsWith('--only=') ? flag.slice('--only='.length) : (argv[index + 1] ?? '');
  const names = value
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  if (names.length === 0) throw new Error('--only needs a comma-separated list of part names');
  return new Set(names);
}

export const sleep = (msec: number) => new Promise<void>((resolve) => setTimeout(resolve, msec));

/** An absolute timestamp in ms comparable across threads (each thread has its own timeOrigin). */
export const now = () => performance.timeOrigin + performance.now();

/** True when `moduleUrl` is the script node was started with (so a bench can also run on its own). */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && fileURLToPath(moduleUrl) === entry;
}

/** A real server in this process, silent, with the product's default stop grace (not the tests' 500 ms). */
export function startBenchServer(): Promise<TestServer> {
  return startTestServer({ logLevel: 'silent', stopGraceMs: DEFAULT_CONFIG.stopGraceMs });
}

/** Polls until `check` is true (bounded). */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  everyMs = 2,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---- process trees -------------------------------------------------------------------------------

/** A tree like the contract tests': background children, a subshell with its own child, nohup, a pipe, a loop. */
export const TREE_SCRIPT =
  'sleep 300 &\n( sleep 300 & sleep 300; ) &\nnohup sleep 300 >/dev/null 2>&1 &\nsleep 300 | cat &\nwhile true; do sleep 1; done\n';

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** The whole tree of TREE_SCRIPT exists: five `sleep 300`, the `cat`, and the shells. */
export function treeReady(runId: number): boolean {
  const members = runMembers(runId);
  if (members.length < 8) return false;
  const commands = members.map(cmdline);
  return commands.filter((c) => c === 'sleep 300').length >= 5 && commands.includes('cat');
}

/** The session id of the run whose environment carries OPENDLF_INSTANCE_ID=<instanceId>, if any. */
export function findRunId(instanceId: string): number | undefined {
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
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const sid = Number(fields[3]);
      if (sid > 1) return sid;
    } catch {
      // Exited meanwhile.
    }
  }
  return undefined;
}

/** SIGKILLs whatever is left of a run (after a failed measurement) so runs never pile up. */
export function killLeftovers(runId: number): number {
  const left = runMembers(runId);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  return left.length;
}

interface ObserverReply {
  readonly id: number;
  readonly kind: 'armed' | 'gone';
  readonly at: number;
  readonly left?: number[];
}

/**
 * Watches a run from a worker thread. `arm(runId)` snapshots the run's members; the returned
 * `gone` resolves with the absolute time (see `now()`) at which no member was left: the worker
 * polls the snapshot's /proc/PID/stat every ~0.25 ms (dead = missing or zombie), and once all are
 * dead confirms with a full runMembers(runId) scan, continuing with any newcomer it finds (e.g. the
 * loop's `sleep` forked just before the signal). The timestamp is the poll that first saw all dead,
 * so the ~1.5 ms cost of the full /proc scan is not added to the figure.
 */
export class TreeObserver {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { armed: () => void; gone: (r: ObserverReply) => void; fail: (e: Error) => void }
  >();
  private failure: Error | undefined;

  constructor() {
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const workerUrl = new URL('./tree-observer-worker.ts', import.meta.url).href;
    // The worker does not inherit tsx's loader hooks, so it registers them before importing the .ts file.
    const boot =
      `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); ` +
      `return import(${JSON.stringify(workerUrl)}); });`;
    this.worker = new Worker(boot, { eval: true });
    this.worker.on('message', (reply: ObserverReply) => {
      const entry = this.waiting.get(reply.id);
      if (!entry) return;
      if (reply.kind === 'armed') entry.armed();
      else {
        this.waiting.delete(reply.id);
        entry.gone(reply);
      }
    });
    this.worker.on('error', (error) => {
      this.failure = error;
      for (const entry of this.waiting.values()) entry.fail(error);
      this.waiting.clear();
    });
  }

  /** Resolves once the snapshot is taken; `gone` then resolves with the time the tree was gone. */
  async arm(runId: number, timeoutMs = 30_000): Promise<{ gone: Promise<{ at: number; left: number[] }> }> {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    let resolveArmed!: () => void;
    let rejectArmed!: (e: Error) => void;
    const armed = new Promise<void>((resolve, reject) => {
      resolveArmed = resolve;
      rejectArmed = reject;
    });
    const gone = new Promise<{ at: number; left: number[] }>((resolve, reject) => {
      this.waiting.set(id, {
        armed: resolveArmed,
        gone: (reply) => resolve({ at: reply.at, left: reply.left ?? [] }),
        fail: (error) => {
          rejectArmed(error);
          reject(error);
        },
      });
    });
    gone.catch(() => undefined); // Surfaced through `armed` or by the caller awaiting `gone`.
    this.worker.postMessage({ id, runId, timeoutMs });
    await armed;
    return { gone };
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }
}
