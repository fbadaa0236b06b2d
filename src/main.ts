/**
 * The composition root: the only module that picks concrete adapters (SQLite or PostgreSQL store,
 * the built-in DuckDB and local-process engines, the stored connections' engines through
 * connection-engines.ts, the RunSupervisor) and wires them into services and the HTTP app
 * (docs/architecture.md lists the steps of `startServer`).
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join, resolve, sep } from 'node:path';
import pino, { type Logger } from 'pino';
import { isLoopback, type ServerConfig } from './config.js';
import type { Engine } from './engines/engine.js';
import { directoryExposingServerFiles, DuckDbEngine } from './engines/duckdb/duckdb-engine.js';
import { LocalProcessEngine } from './engines/local-process/local-process-engine.js';
import { resolveRunAsUser } from './engines/local-process/os-user.js';
import { RunContainment } from './engines/local-process/run-containment.js';
import { buildApp } from './http/app.js';
import { withFreeDiskSpace } from './observability/free-disk-space.js';
import { stderrLogDestination } from './observability/log-destination.js';
import { PrometheusMetrics } from './observability/prometheus-metrics.js';
import { LeaseReaper } from './runner/lease-reaper.js';
import { RetentionSweeper } from './runner/retention-sweeper.js';
import { RunSupervisor } from './runner/run-supervisor.js';
import { RunDirectories } from './runner/run-directories.js';
import { RunDirectoryLogs } from './runner/run-directory-logs.js';
import { connectionEngineFactory } from './connection-engines.js';
import { lockDataDirectory } from './data-directory-lock.js';
import { ConnectionTargetPolicy } from './domain/connection-target-policy.js';
import { TargetGuard } from './engines/target-guard.js';
import { ConnectionResolver, type BuiltInConnection } from './services/connection-resolver.js';
import { ConnectionTester } from './services/connection-tester.js';
import { ConnectionService } from './services/connection-service.js';
import { SecretCipher } from './services/secret-cipher.js';
import { CredentialDirectory, startupAuthDecision, type AuthMode } from './services/credential-directory.js';
import type { Store } from './store/store.js';
import { EnvironmentVariableService } from './services/environment-variable-service.js';
import { ExecutionService } from './services/execution-service.js';
import { InstanceLogService } from './services/instance-log-service.js';
import { InstanceHistoryService } from './services/instance-history-service.js';
import { ResultService } from './services/result-service.js';
import { FileResultSpills } from './engines/result-spill/file-result-spills.js';
import { ScriptService } from './services/script-service.js';
import { WorkspaceResolver } from './services/workspace-resolver.js';
import { openPostgresStore } from './store/postgres/postgres-store.js';
import { openSqliteStore } from './store/sqlite/sqlite-store.js';

export interface RunningServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly nodeId: string;
  /** `none` when no credentials are configured (anonymous admin, loopback only), else `enforced`. */
  readonly authMode: AuthMode;
  readonly supervisor: RunSupervisor;
  /** Stops accepting, ends running instances (bounded by shutdownWaitMs), closes engines and store. */
  close(): Promise<void>;
}

/**
 * Where a runAs server's local runs work when `localEngine.workDirectory` is not set: outside the
 * 0700 data directory (the runAs user cannot enter it), named after it so a restart finds it.
 */
export function defaultLocalWorkDirectory(dataDir: string): string {
  return join(tmpdir(), `opendlf-work-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`);
}

/** A stable id for this data directory's server, so a restart can find the runs it left behind. */
function nodeIdFor(dataDir: string): string {
  const file = join(dataDir, 'node-id');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const id = randomUUID();
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/**
 * Where SQL results past the inline caps are spilled: `resultSpillDirectory` when configured (with
 * a PostgreSQL store, a directory every node mounts), else `<dataDir>/results` with the SQLite
 * store. A PostgreSQL store without the directory spills nothing: another node could not read it.
 */
function resultSpillsFor(
  config: ServerConfig,
  dataDir: string,
  logger: Logger,
): FileResultSpills | undefined {
  if (config.maxSpillBytes === 0) return undefined;
  if (config.resultSpillDirectory !== '') {
    const root = resolve(config.resultSpillDirectory);
    mkdirSync(root, { recursive: true, mode: 0o700 });
    return new FileResultSpills(root, config.maxSpillBytes);
  }
  if (config.store !== '') {
    logger.info('large results: no resultSpillDirectory, so rows past the inline caps are dropped');
    return undefined;
  }
  return new FileResultSpills(join(dataDir, 'results'), config.maxSpillBytes);
}

/**
 * Makes everything in the data directory the server's alone (directories 0700, files 0600): data
 * directories from older versions were created 0755/0644, so the keys, the store and every
 * workspace's DuckDB file were readable by any local user, scripts included. Symlinks are left alone.
 */
function restrictDataDirectory(path: string): void {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat || stat.isSymbolicLink()) return;
  if (stat.isDirectory()) {
    if ((stat.mode & 0o077) !== 0) chmodSync(path, 0o700);
    for (const entry of readdirSync(path)) restrictDataDirectory(join(path, entry));
  } else if (stat.isFile() && (stat.mode & 0o077) !== 0) {
    chmodSync(path, stat.mode & 0o700);
  }
}

/**
 * The AES-256 key that seals connection secrets: OPENDLF_SECRET_KEY (base64, 32 bytes) when set,
 * else `<dataDir>/secret.key`, created with mode 0600 on first start. Losing the key makes stored
 * secrets unreadable (connections must then be re-entered), so back it up with the data directory.
 */
function secretKeyFor(dataDir: string, fromEnv: string | undefined): Buffer {
  if (fromEnv) {
    const key = Buffer.from(fromEnv, 'base64');
    if (key.length !== 32) throw new Error('OPENDLF_SECRET_KEY must be 32 bytes, base64-encoded');
    return key;
  }
  const file = join(dataDir, 'secret.key');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte base64 key`);
  return key;
}

/** How long /readyz waits for the store to answer a ping before it reports the store down. */
export const READINESS_STORE_DEADLINE_MS = 1_000;

/** Rejects with `message` if `work` has not settled within `ms` (work itself goes on). */
function withinDeadline(work: Promise<void>, ms: number, message: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Every check: the store answers (within its deadline), each built-in engine's probe passes. */
export async function readinessOf(store: Store, engines: readonly Engine[]) {
  const probe = async (name: string, check: () => Promise<void>) => {
    try {
      await check();
      return { name, ok: true };
    } catch (error) {
      return { name, ok: false, detail: (error as Error).message };
    }
  };
  const checks = await Promise.all([
    probe('store', () =>
      withinDeadline(
        store.ping(),
        READINESS_STORE_DEADLINE_MS,
        `the store did not answer within ${READINESS_STORE_DEADLINE_MS} ms`,
      ),
    ),
    ...engines.flatMap((engine) =>
      engine.ping ? [probe(`engine:${engine.name}`, () => engine.ping!())] : [],
    ),
  ]);
  return { ready: checks.every((c) => c.ok), checks };
}

/**
 * Probes spawn processes and open databases: answer repeated readiness polls from a short cache
 * (aged on the monotonic clock: a step of the wall clock neither freezes nor flushes it).
 */
function cachedFor<T>(ms: number, compute: () => Promise<T>): () => Promise<T> {
  let cached: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = performance.now();
    if (!cached || now - cached.at > ms) cached = { at: now, value: compute() };
    return cached.value;
  };
}

export function createLogger(config: ServerConfig): Logger {
  // Logs go to stderr so stdout carries only the one "listening" line scripts wait for.
  return pino({ level: config.logLevel, base: { pid: process.pid } }, stderrLogDestination().stream);
}

/** Which store to open: the embedded SQLite file (default) or a shared PostgreSQL database. */
export interface StoreChoice {
  /** '' for SQLite in the data directory, else a postgres:// URL. */
  readonly store: string;
  readonly storeSchema: string;
  readonly storeMaxConnections: number;
  /** PostgreSQL: deadline to open a connection or get a pooled one (ms); default 5000. */
  readonly storeConnectTimeoutMs?: number;
  /** PostgreSQL: deadline of one statement (ms); default 5000. */
  readonly storeQueryTimeoutMs?: number;
}

/** Store setting holding when authentication was first enforced on this store (the auth latch). */
const AUTH_ENFORCED_SETTING = 'auth_enforced_since';

const EMBEDDED_STORE: StoreChoice = { store: '', storeSchema: '', storeMaxConnections: 10 };

/**
 * Nodes sharing a store must seal connection secrets with the same key, or one node could not read
 * what another stored. The first node records a fingerprint of its key (an HMAC, which reveals
 * nothing about the key); a node with a different key refuses to start instead of failing later.
 */
async function checkSharedSecretKey(store: Store, key: Buffer): Promise<void> {
  const fingerprint = createHmac('sha256', key).update('opendlf secret key fingerprint').digest('hex');
  const adopted = await store.adoptSetting('secret_key_fingerprint', fingerprint);
  if (adopted !== fingerprint) {
    throw new Error(
      "this node's secret key differs from the one the shared store was first used with: give every " +
        'node the same OPENDLF_SECRET_KEY (base64, 32 bytes) — see docs/deployment.md',
    );
  }
}

/**
 * Opens a data directory: creates it (0700), the store (migrated) and the secret cipher. Shared by
 * the server and the admin CLI, which manage the same store.
 */
export async function openDataDirectory(
  dir: string,
  choice: StoreChoice = EMBEDDED_STORE,
  logger?: Logger,
  /** The server's node id (the CLI has none): named in pg_stat_activity, held exclusively. */
  nodeId?: string,
): Promise<{ dataDir: string; store: Store; cipher: SecretCipher }> {
  const dataDir = resolve(dir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (choice.store !== '' && !process.env.OPENDLF_SECRET_KEY) {
    // A key file of this data directory would be this node's alone; the first node to start would
    // then lock every other one out (see checkSharedSecretKey).
    throw new Error(
      'a PostgreSQL store is shared by several nodes: set OPENDLF_SECRET_KEY (base64, 32 bytes, the same on every node)',
    );
  }
  const key = secretKeyFor(dataDir, process.env.OPENDLF_SECRET_KEY);
  const cipher = new SecretCipher(key);
  if (choice.store === '') {
    return { dataDir, store: await openSqliteStore(join(dataDir, 'opendlf.sqlite')), cipher };
  }
  const store = await openPostgresStore(choice.store, {
    ...(choice.storeSchema === '' ? {} : { schema: choice.storeSchema }),
    maxConnections: choice.storeMaxConnections,
    ...(choice.storeConnectTimeoutMs === undefined ? {} : { connectTimeoutMs: choice.storeConnectTimeoutMs }),
    ...(choice.storeQueryTimeoutMs === undefined ? {} : { queryTimeoutMs: choice.storeQueryTimeoutMs }),
    applicationName: nodeId === undefined ? 'opendlf' : `opendlf node ${nodeId}`.slice(0, 63),
    ...(nodeId === undefined ? {} : { nodeId }),
    // Only the error's own fields: pg attaches the client to it, and pino would log the whole
    // object (connection settings, the backend's cancel key) on every dropped connection.
    onPoolError: (error, during) =>
      logger?.warn(
        {
          err: { type: error.name, message: error.message, code: errorCode(error), stack: error.stack },
          during,
        },
        'store connection error',
      ),
  });
  try {
    await checkSharedSecretKey(store, key);
  } catch (error) {
    await store.close();
    throw error;
  }
  return { dataDir, store, cipher };
}

export async function startServer(
  config: ServerConfig,
  logger = createLogger(config),
): Promise<RunningServer> {
  // Whatever the server creates from here on (store, DuckDB files, run logs) is its own alone.
  process.umask(0o077);
  mkdirSync(resolve(config.dataDir), { recursive: true, mode: 0o700 });
  // Before the node id is read and the store opened: a second server on this directory would be the
  // same node, and its startup recovery would end the first one's runs (data-directory-lock.ts).
  const lock = lockDataDirectory(resolve(config.dataDir));
  try {
    const server = await startOnLockedDirectory(config, logger);
    return { ...server, close: () => server.close().finally(() => lock.release()) };
  } catch (error) {
    lock.release();
    throw error;
  }
}

/** startServer, once this process holds the data directory's lock. */
async function startOnLockedDirectory(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  restrictDataDirectory(resolve(config.dataDir));
  const nodeId = config.nodeId === '' ? nodeIdFor(resolve(config.dataDir)) : config.nodeId;
  const { dataDir, store, cipher } = await openDataDirectory(config.dataDir, config, logger, nodeId);
  const credentials = new CredentialDirectory(store.credentials, cipher, config.credentials, {
    recordEnforced: async () => {
      await store.adoptSetting(AUTH_ENFORCED_SETTING, new Date().toISOString());
    },
  });
  // Decided once here; afterwards the mode can only move from none to enforced (CredentialDirectory).
  const startup = startupAuthDecision({
    credentialsExist: await credentials.credentialsExist(),
    wasEnforced: (await store.readSetting(AUTH_ENFORCED_SETTING)) !== undefined,
    requested: config.auth,
    loopbackOnly: isLoopback(config.host),
    allowUnauthenticatedRemote: config.allowUnauthenticatedRemote,
    host: config.host,
  });
  if (!startup.ok) {
    await store.close();
    throw new Error(startup.reason);
  }
  const authMode = await credentials.mode();
  if (config.duckdb.externalAccess && authMode !== 'none') {
    await store.close();
    throw new Error(
      'duckdb.externalAccess=true lets every script read and write any file the server can (its ' +
        'keys and store included): it is for single-user mode only; remove it, or open folders with ' +
        'duckdb.filesDirectory / duckdb.allowedDirectories',
    );
  }
  const exposing = directoryExposingServerFiles(config.duckdb, dataDir, join(dataDir, 'duckdb'));
  if (exposing !== undefined && authMode !== 'none') {
    await store.close();
    throw new Error(
      `duckdb directory ${exposing} would let scripts reach the data directory's keys, store or other ` +
        "workspaces' databases: in multi-user mode name a directory outside it",
    );
  }

  const duckdb = new DuckDbEngine(join(dataDir, 'duckdb'), config.duckdb);
  const engines: Engine[] = [duckdb];
  const builtIns: BuiltInConnection[] = [{ name: 'duckdb', type: 'DUCKDB', engines: [duckdb] }];
  // With credentials, `local` would run every user's scripts as the server's own user (its keys, its
  // store, its environment): it is offered only with an unprivileged runAs user.
  const localOffered = config.localEngine.enabled && (authMode === 'none' || config.localEngine.runAs !== '');
  if (config.localEngine.enabled && !localOffered) {
    logger.warn(
      'the built-in `local` connection is off: with credentials configured scripts must not run as the ' +
        "server's own user; set localEngine.runAs to an unprivileged OS user (the server must run as root) to offer it",
    );
  }
  let localRunAs: ReturnType<typeof resolveRunAsUser> | undefined;
  let localWorkDirectory: string | undefined;
  let localContainment: RunContainment | undefined;
  if (localOffered) {
    try {
      localRunAs = config.localEngine.runAs === '' ? undefined : resolveRunAsUser(config.localEngine.runAs);
    } catch (error) {
      await store.close();
      throw error;
    }
    localWorkDirectory =
      config.localEngine.workDirectory !== ''
        ? resolve(config.localEngine.workDirectory)
        : localRunAs
          ? defaultLocalWorkDirectory(dataDir)
          : undefined;
    if (localRunAs && localWorkDirectory && (localWorkDirectory + sep).startsWith(dataDir + sep)) {
      await store.close();
      throw new Error(
        `localEngine.workDirectory ${localWorkDirectory} lies inside the data directory, which the runAs user cannot enter: name a directory outside it`,
      );
    }
    try {
      // Named after the node and its data directory: a restart of this node finds what it left, and
      // two servers that share a node id on one host (a copied config) never end each other's runs.
      const scope = `${nodeId}-${createHash('sha256').update(dataDir).digest('hex').slice(0, 8)}`;
      localContainment = RunContainment.detect(scope, config.localEngine.processContainment);
    } catch (error) {
      await store.close();
      throw error;
    }
    // Which guarantee holds for stops and recovery (README, "Stopping local runs").
    if (localContainment.mode === 'cgroup') logger.info(`local runs: ${localContainment.description}`);
    else logger.warn(`local runs: ${localContainment.description}`);
  }
  const localEngineOptions = {
    ...(localRunAs ? { runAs: localRunAs } : {}),
    ...(localWorkDirectory ? { workDirectory: localWorkDirectory } : {}),
    ...(localContainment ? { containment: localContainment } : {}),
    // Credentials added while the server runs (opendlf credentials add) enforce authentication from
    // then on; runs as the server's own user stop with it, until a restart with runAs.
    ...(localRunAs
      ? {}
      : {
          refusal: async () =>
            (await credentials.mode()) === 'none'
              ? undefined
              : "the built-in `local` connection runs scripts as the server's own user, which multi-user mode does not allow: restart the server with localEngine.runAs set to an unprivileged OS user",
        }),
  };
  const localEngines: LocalProcessEngine[] = [];
  if (localOffered) {
    const shell = new LocalProcessEngine({
      name: 'local-shell',
      scriptTypes: ['Shell'],
      interpreter: config.localEngine.shell,
      interpreterArgs: [],
      scriptFileName: 'script.sh',
      ...localEngineOptions,
    });
    const python = new LocalProcessEngine({
      name: 'local-python',
      scriptTypes: ['PYTHON'],
      interpreter: config.localEngine.python,
      interpreterArgs: ['-u'],
      scriptFileName: 'script.py',
      env: { PYTHONUNBUFFERED: '1' },
      ...localEngineOptions,
    });
    engines.push(shell, python);
    localEngines.push(shell, python);
    builtIns.push({ name: 'local', type: 'LOCAL', engines: [shell, python] });
  }

  const importDir = join(dataDir, 'imports');
  const sshKeyDir = join(dataDir, 'ssh-keys');
  mkdirSync(importDir, { recursive: true, mode: 0o700 });
  mkdirSync(sshKeyDir, { recursive: true, mode: 0o700 });
  const engineFactory = connectionEngineFactory({
    knownHostsFile: join(dataDir, 'ssh-known-hosts.json'),
    onUnknownHostKey: config.sshHostKeyPolicy,
    sshKeyDir,
    connectTimeoutMs: config.connectTimeoutMs,
    targetGuard: new TargetGuard(
      new ConnectionTargetPolicy(
        { allow: config.connectionTargets.allow ?? [], deny: config.connectionTargets.deny ?? [] },
        authMode !== 'none',
      ),
    ),
  });
  const resolver = new ConnectionResolver(builtIns, store.connections, engineFactory, cipher);
  const runsDir = join(dataDir, 'runs');
  const connectionTester = new ConnectionTester(engineFactory, runsDir);

  const leaseMs = config.leaseSeconds * 1000;
  if (leaseMs / 6 <= config.pollMs + config.stopGraceMs) {
    // Fencing starts 5/6 into an unrenewed lease, is checked every poll and takes up to the stop
    // grace: with less room than that, a cut-off node's work may outlive its lease.
    logger.warn(
      { leaseSeconds: config.leaseSeconds, pollMs: config.pollMs, stopGraceMs: config.stopGraceMs },
      'leaseSeconds/6 should exceed pollMs + stopGraceMs, or a cut-off node may end its runs after its lease expired',
    );
  }
  const resultSpills = resultSpillsFor(config, dataDir, logger);
  // Live logs: one node (SQLite) reads the runs' own output.log files; nodes sharing a PostgreSQL
  // store write the output to it, so whichever node serves a read has it (README, Live logs).
  const liveLogs = store.shared ? store.instanceLogs : new RunDirectoryLogs(new RunDirectories(runsDir));
  const metrics = new PrometheusMetrics();
  const supervisor = new RunSupervisor(
    store,
    (instance) => resolver.engineOf(instance),
    {
      nodeId,
      leaseMs,
      pollMs: config.pollMs,
      maxConcurrentRuns: config.maxConcurrentRuns,
      instanceTimeoutMs: config.instanceTimeoutSeconds * 1000,
      stopGraceMs: config.stopGraceMs,
      stopWaitMs: config.stopWaitMs,
      runsDir,
      liveLogs,
      limits: {
        maxResultRows: config.maxResultRows,
        maxOutputBytes: config.maxOutputBytes,
        maxResultOutputBytes: config.maxResultOutputBytes,
        maxResultBytes: config.maxResultBytes,
      },
      ...(resultSpills ? { resultSpills } : {}),
    },
    logger,
    metrics,
  );
  metrics.observeQueue(supervisor);
  // Before recovery settles this node's instances: every process their runs left is ended first,
  // including runs that crashed while launching (no handle stored yet).
  await localContainment?.endLeftovers();
  await supervisor.recover();
  // Recovery ended the runs this node left behind; their working directories go with them.
  await Promise.all(localEngines.map((engine) => engine.discardStaleWorkDirectories()));

  const scripts = new ScriptService(store, supervisor, config.reviewWorkspaces, credentials);
  const environmentVariables = new EnvironmentVariableService(store, { timeZone: config.elTimeZone });
  const executions = new ExecutionService(store, scripts, resolver, supervisor, environmentVariables, {
    instanceTimeoutMs: config.instanceTimeoutSeconds * 1000,
  });
  const logs = new InstanceLogService(store, liveLogs, scripts, executions, supervisor);
  const history = new InstanceHistoryService(store, scripts, supervisor);
  const results = new ResultService(executions, resultSpills);
  const connections = new ConnectionService(store, cipher, resolver, connectionTester, importDir);
  const workspaces = new WorkspaceResolver({
    defaultWorkspace: config.defaultWorkspace,
    workspaces: config.workspaces,
  });
  const app = buildApp({
    scripts,
    executions,
    logs,
    history,
    connections,
    environmentVariables,
    results,
    workspaces,
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    apiDocs: config.apiDocs,
    // Built by `npm run build` (vite) beside the compiled server: <repo>/dist/console from src/ and dist/.
    consoleDirectory: fileURLToPath(new URL('../dist/console', import.meta.url)),
    auth: {
      credentials,
      maxSkewMs: config.signatureMaxSkewSeconds * 1000,
      failuresPerAddress: config.authFailuresPerAddress,
      failuresPerAccessKey: config.authFailuresPerAccessKey,
      metricsRequireAuth: config.metricsRequireAuth,
    },
    observability: {
      observer: metrics,
      metrics: async () => ({ contentType: metrics.contentType(), body: await metrics.render() }),
      readiness: withFreeDiskSpace(
        cachedFor(5_000, () => readinessOf(store, engines)),
        dataDir,
        config.minFreeDiskBytes,
      ),
    },
  });
  const sweeper = new RetentionSweeper(
    store.instances,
    supervisor,
    config.retentionDays * 86_400_000,
    logger,
    store.idempotencyKeys,
  );

  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const urlHost = config.host.includes(':') ? `[${config.host}]` : config.host;
  sweeper.start();
  supervisor.start();
  const reaper = new LeaseReaper(
    store,
    (instance) => resolver.engineOf(instance),
    logger,
    metrics,
    () => supervisor.heldHere(),
  );
  // A lost node's instances are settled at most one reaper interval after their lease expired.
  reaper.start(Math.min(config.pollMs, leaseMs / 3));

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    host: config.host,
    port,
    nodeId,
    authMode,
    supervisor,
    close() {
      closing ??= (async () => {
        sweeper.stop();
        // Stop taking new work first, then let the HTTP server drain while runs are ended.
        const drained = supervisor.shutdown(config.drainTimeoutSeconds * 1000, config.shutdownWaitMs);
        await Promise.all([app.close(), drained]);
        await reaper.stop();
        await Promise.all([...engines.map((e) => e.close()), resolver.close()]);
        localContainment?.close();
        await store.close();
        logger.info('shut down');
      })();
      return closing;
    },
  };
}

/** The `code` of a driver error (a PostgreSQL SQLSTATE or a Node errno name), if it has one. */
function errorCode(error: Error): string | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
