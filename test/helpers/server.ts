/**
 * Test helpers: a real opendlf server (in-process or as a child process) on a free loopback port
 * with its own temporary data directory, and a small client for the DataArts API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { loadConfig, type ConfigOverrides } from '../../src/config.js';
import { defaultLocalWorkDirectory, startServer, type RunningServer } from '../../src/main.js';

export const PROJECT = 'p0000000000000000000000000000001';

export interface TestServer {
  readonly url: string;
  readonly dataDir: string;
  readonly server: RunningServer;
  client(projectId?: string, workspace?: string): ApiClient;
  close(): Promise<void>;
}

export function tempDir(prefix = 'opendlf-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts a server in this process. `close()` shuts it down and removes its data directory. */
export async function startTestServer(
  overrides: ConfigOverrides = {},
  /** Receives the server's log lines at `level` (a test that reports the server's side of a 5xx). */
  log?: { level: pino.Level; stream: pino.DestinationStream },
): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? tempDir();
  const config = loadConfig({
    overrides: { port: 0, logLevel: 'silent', stopGraceMs: 500, ...overrides, dataDir },
  });
  // OPENDLF_TEST_LOG=<level> (e.g. error) shows an in-process server's log on stderr.
  const level = process.env.OPENDLF_TEST_LOG;
  const logger = log
    ? pino({ level: log.level }, log.stream)
    : level
      ? pino({ level }, pino.destination(2))
      : pino({ level: 'silent' });
  // What this helper made goes with the server: the data directory it created, and the work
  // directory a runAs server makes outside it when none is configured (also when the start fails,
  // as tests of refused configurations expect).
  const removeOwnDirectories = () => {
    if (overrides.dataDir) return;
    rmSync(dataDir, { recursive: true, force: true });
    if (config.localEngine.workDirectory === '') {
      rmSync(defaultLocalWorkDirectory(dataDir), { recursive: true, force: true });
    }
  };
  let server: RunningServer;
  try {
    server = await startServer(config, logger);
  } catch (error) {
    removeOwnDirectories();
    throw error;
  }
  return {
    url: server.url,
    dataDir,
    server,
    client: (projectId = PROJECT, workspace?: string) => new ApiClient(server.url, projectId, workspace),
    async close() {
      await server.close();
      removeOwnDirectories();
    },
  };
}

export interface ChildServer {
  readonly url: string;
  /** The whole startup line (it names the auth mode, the store and the node id). */
  readonly line: string;
  /** The node id the startup line names. */
  readonly nodeId: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code/signal once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** With `captureStderr`: the server's stderr lines (the first 500); otherwise always empty. */
  readonly stderr: string[];
}

export interface SpawnOptions {
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Keep stderr (log lines) in `stderr` instead of passing it through (benchmarks report it). */
  readonly captureStderr?: boolean;
}

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Starts `opendlf serve` as a child process (restart/SIGKILL tests, cluster nodes, benchmarks) and
 * waits for its listening line (60 s at most).
 */
export async function spawnServer(
  dataDir: string,
  extraArgs: readonly string[] = [],
  options: SpawnOptions = {},
): Promise<ChildServer> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(REPO, 'src/cli/main.ts'),
      'serve',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
      ...extraArgs,
    ],
    {
      cwd: REPO,
      stdio: ['ignore', 'pipe', options.captureStderr ? 'pipe' : 'inherit'],
      env: { ...process.env, ...options.env },
    },
  );
  const stderr: string[] = [];
  if (child.stderr) {
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (stderr.length < 500) stderr.push(line);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const { url, line } = await new Promise<{ url: string; line: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start within 60 s')), 60_000);
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const match = /^opendlf listening on (http:\/\/\S+)/.exec(text);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({ url: match[1], line: text });
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`server exited early with code ${code}: ${stderr.slice(0, 10).join(' | ')}`));
    });
  });
  const nodeId = /node (\S+)\)$/.exec(line)?.[1] ?? '';
  return { url, line, nodeId, process: child, exited, stderr };
}

/** SIGTERM, then SIGKILL if the process has not exited after `graceMs`; resolves once it exited. */
export async function terminate(server: ChildServer, graceMs = 20_000): Promise<void> {
  const child = server.process;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await server.exited;
  clearTimeout(timer);
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, or undefined when the body is empty or not JSON. */
  json: any;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent verbatim (overrides `body`). */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly projectId: string,
    readonly workspace?: string,
  ) {}

  async request(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.workspace !== undefined) headers.workspace = this.workspace;
    let body: string | Buffer | undefined;
    if (options.rawBody !== undefined) body = options.rawBody;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${this.baseUrl}${path}`, { method, headers, body });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  path(suffix = ''): string {
    return `/v1/${this.projectId}/scripts${suffix}`;
  }

  async createScript(script: Record<string, unknown>): Promise<ApiResponse> {
    const response = await this.request('POST', this.path(), { body: script });
    if (response.status !== 204) throw new Error(`create failed: ${response.status} ${response.text}`);
    return response;
  }

  async execute(name: string, params?: Record<string, string>): Promise<string> {
    const response = await this.request('POST', this.path(`/${encodeURIComponent(name)}/execute`), {
      body: params ? { params } : {},
    });
    if (response.status !== 200) throw new Error(`execute failed: ${response.status} ${response.text}`);
    return response.json.instanceId as string;
  }

  result(name: string, instanceId: string): Promise<ApiResponse> {
    return this.request('GET', this.path(`/${encodeURIComponent(name)}/instances/${instanceId}`));
  }

  stop(name: string, instanceId: string): Promise<ApiResponse> {
    return this.request('POST', this.path(`/${encodeURIComponent(name)}/instances/${instanceId}/stop`));
  }

  /** Polls until the detailed status satisfies `until` (default: terminal). Bounded by `timeoutMs`. */
  async waitFor(
    name: string,
    instanceId: string,
    until: (body: { status: string; detailedStatus: string }) => boolean = (b) =>
      b.status === 'FINISHED' || b.status === 'FAILED',
    timeoutMs = 60_000,
  ): Promise<ApiResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const response = await this.result(name, instanceId);
      if (response.status !== 200) throw new Error(`result failed: ${response.status} ${response.text}`);
      if (until(response.json)) return response;
      if (Date.now() > deadline) throw new Error(`timed out waiting; last: ${response.text.slice(0, 500)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
