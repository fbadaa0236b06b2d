/**
 * Server configuration: defaults < config file (JSON) < environment (OPENDLF_*) < command-line
 * flags. Validated with TypeBox; an invalid file or value stops the server with a message naming it.
 */
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConnectionTargetPolicy } from './domain/connection-target-policy.js';
import { isKnownTimeZone } from './domain/el/time-zone.js';

const ConfigSchema = Type.Object(
  {
    /**
     * Address to bind. Default 127.0.0.1: with no credentials configured every caller is an anonymous
     * admin, so a non-loopback address needs credentials or `allowUnauthenticatedRemote`.
     */
    host: Type.String({ minLength: 1 }),
    /** TCP port; 0 picks a free one. Default 8080. */
    port: Type.Integer({ minimum: 0, maximum: 65535 }),
    /** SQLite store, DuckDB files, run directories, node id. Default ./data. */
    dataDir: Type.String({ minLength: 1 }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    ),
    /** Workspace used when the `workspace` header is absent. */
    defaultWorkspace: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
    /** Declared workspace ids; empty accepts any well-formed id. */
    workspaces: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
    /** Workspaces with review (approval) enabled: scripts need a listed approver's approval before they run. */
    reviewWorkspaces: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
    /**
     * Where scripts, connections and instances live: '' (default) is the embedded SQLite file in
     * the data directory (one node); a `postgres://…` URL is a store several nodes share.
     */
    store: Type.String({ pattern: '^$|^postgres(ql)?://' }),
    /** PostgreSQL schema holding the tables (created if missing); '' uses the search_path (public). */
    storeSchema: Type.String({ pattern: '^$|^[a-z_][a-z0-9_]{0,62}$' }),
    /** Pooled connections of this node to a PostgreSQL store. */
    storeMaxConnections: Type.Integer({ minimum: 2, maximum: 1_000 }),
    /** PostgreSQL store: deadline to open a connection, or to wait for a pooled one when all are busy. */
    storeConnectTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000 }),
    /** PostgreSQL store: deadline of one statement (statement_timeout; the client waits 1 s more). */
    storeQueryTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000 }),
    /** This node's id; '' uses the one kept in the data directory (created on first start). */
    nodeId: Type.String({ pattern: '^$|^[A-Za-z0-9_.-]{1,64}$' }),
    /** Claim lease on the store's clock: a lost node's instances are settled this long after its last heartbeat. */
    leaseSeconds: Type.Number({ minimum: 1, maximum: 3_600 }),
    /** Store poll for work and stop requests (a backstop: signals normally deliver both at once). */
    pollMs: Type.Integer({ minimum: 10, maximum: 60_000 }),
    /** On SIGTERM: how long running instances may go on before they are stopped. */
    drainTimeoutSeconds: Type.Number({ minimum: 0, maximum: 86_400 }),
    maxConcurrentRuns: Type.Integer({ minimum: 1, maximum: 10_000 }),
    instanceTimeoutSeconds: Type.Number({ exclusiveMinimum: 0 }),
    stopGraceMs: Type.Integer({ minimum: 0, maximum: 600_000 }),
    stopWaitMs: Type.Integer({ minimum: 0, maximum: 600_000 }),
    shutdownWaitMs: Type.Integer({ minimum: 0, maximum: 600_000 }),
    maxResultRows: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    maxOutputBytes: Type.Integer({ minimum: 1 }),
    maxResultOutputBytes: Type.Integer({ minimum: 1 }),
    /** SQL: bytes of result values one instance keeps across its statements; past it rows are dropped (`truncated`). */
    maxResultBytes: Type.Integer({ minimum: 1 }),
    /**
     * SQL rows past the inline caps are spilled here, one folder per instance ('' = `<dataDir>/results`
     * with the SQLite store; a PostgreSQL store needs a directory every node mounts, else no spills).
     */
    resultSpillDirectory: Type.String(),
    /** Bytes of spilled rows one instance keeps across its statements; past it the spill is truncated. 0 = no spills. */
    maxSpillBytes: Type.Integer({ minimum: 0 }),
    retentionDays: Type.Number({ minimum: 0 }),
    bodyLimitBytes: Type.Integer({ minimum: 1024 }),
    /** `/readyz` answers 503 while the data directory's file system has less free space than this; 0 = no check. */
    minFreeDiskBytes: Type.Integer({ minimum: 0 }),
    localEngine: Type.Object({
      /** The built-in `local` connection (Shell/PYTHON as child processes of the server). */
      enabled: Type.Boolean(),
      shell: Type.String({ minLength: 1 }),
      python: Type.String({ minLength: 1 }),
      /**
       * '' = scripts run as the server's own OS user (single-user mode only: with credentials
       * configured `local` is then not offered). Else an unprivileged OS user the server (running
       * as root) switches to for every run; root itself is refused.
       */
      runAs: Type.String(),
      /**
       * Where each run's working directory `<workDirectory>/<instanceId>` (0700, owned by the run's
       * user) lives. '' = the run directory in the data directory without runAs (as before), else
       * `<os tmpdir>/opendlf-work-<hash of the data directory>`: runAs cannot enter the 0700 data directory.
       */
      workDirectory: Type.String(),
      /**
       * How each run's processes are kept so every one is ended: `auto` = a cgroup v2 cgroup per
       * run when the server can create them (root), else freeze-then-scan of /proc; `cgroup` =
       * refuse to start without cgroups; `scan` = never use cgroups.
       */
      processContainment: Type.Union([Type.Literal('auto'), Type.Literal('cgroup'), Type.Literal('scan')]),
    }),
    /** The built-in `duckdb` connection's sandbox (what a workspace's database may read and write). */
    duckdb: Type.Object(
      {
        /** '' = none; else each workspace gets `<filesDirectory>/<project>/<workspace>/` (0700), its own only. */
        filesDirectory: Type.String(),
        /** Directories every workspace's DuckDB may read and write. */
        allowedDirectories: Type.Array(Type.String({ minLength: 1 })),
        /** `true` = no sandbox (any file, extension installs): refused in multi-user mode. */
        externalAccess: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
    /** SSH host keys: `record` trusts a host's key on first use (then refuses a changed one); `reject` only pre-recorded hosts. */
    sshHostKeyPolicy: Type.Union([Type.Literal('record'), Type.Literal('reject')]),
    /** Bound on connecting to a database or SSH host. */
    connectTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000 }),
    /**
     * Where stored connections may connect: CIDR rules with an optional port or port range
     * (`10.0.0.0/8`, `192.168.1.5/32:5432`, `::1/128:22`, `10.1.0.0/16:5432-5439`). Deny beats
     * allow. In multi-user mode loopback, link-local/metadata and unspecified addresses are refused
     * unless allowed; single-user mode allows everything not denied.
     */
    connectionTargets: Type.Object(
      {
        allow: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
        deny: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
      },
      { additionalProperties: false },
    ),
    /** Credentials accepted besides those in the store (`opendlf credentials …`). */
    credentials: Type.Array(
      Type.Object(
        {
          accessKey: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{8,128}$' })),
          secretKey: Type.Optional(Type.String({ minLength: 16 })),
          token: Type.Optional(Type.String({ minLength: 16 })),
          projects: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
          grants: Type.Array(
            Type.Object({
              workspace: Type.String({ minLength: 1 }),
              role: Type.Union(
                ['admin', 'developer', 'deployer', 'operator', 'viewer'].map((r) => Type.Literal(r)),
              ),
            }),
            { minItems: 1 },
          ),
          expiresAt: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Allowed difference between a signed request's X-Sdk-Date and the server clock. */
    signatureMaxSkewSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
    /** Binding a non-loopback address without authentication must be asked for explicitly. */
    allowUnauthenticatedRemote: Type.Boolean(),
    /**
     * `auto` (default): authentication is enforced when credentials exist; a store that ever enforced
     * it refuses to start with none left. `none`: start unauthenticated on such a store on purpose
     * (refused while credentials exist). Either way, a credential added while the server runs turns
     * enforcement on for good.
     */
    auth: Type.Union([Type.Literal('auto'), Type.Literal('none')]),
    /** Failed authentications per minute from one client address before it gets 429 for the rest of the minute. */
    authFailuresPerAddress: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    /** Failed authentications per minute naming one access key (or token) before it gets 429. */
    authFailuresPerAccessKey: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    /** Multi-user mode: `/metrics` answers only requests with valid credentials (any principal). */
    metricsRequireAuth: Type.Boolean(),
    /** Serve the OpenAPI document (/openapi.json) and its reference page (/docs), without credentials. */
    apiDocs: Type.Boolean(),
    /**
     * The time zone EL dates are shown and computed in (`DateUtil.format`, `addDays`, `getDay`…):
     * an IANA id (`Asia/Shanghai`) or `GMT+08:00`. Default UTC, the same on every node whatever
     * the machine's zone; DataArts' China regions compute in Asia/Shanghai.
     */
    elTimeZone: Type.String({ minLength: 1, maxLength: 64 }),
  },
  { additionalProperties: false },
);

export type ServerConfig = Static<typeof ConfigSchema>;

export const DEFAULT_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  dataDir: './data',
  logLevel: 'info',
  defaultWorkspace: 'default',
  workspaces: [],
  reviewWorkspaces: [],
  store: '',
  storeSchema: '',
  storeMaxConnections: 10,
  storeConnectTimeoutMs: 5_000,
  storeQueryTimeoutMs: 5_000,
  nodeId: '',
  leaseSeconds: 30,
  pollMs: 1_000,
  drainTimeoutSeconds: 20,
  maxConcurrentRuns: 8,
  instanceTimeoutSeconds: 24 * 3600,
  stopGraceMs: 2_000,
  stopWaitMs: 15_000,
  shutdownWaitMs: 15_000,
  maxResultRows: 1_000,
  maxOutputBytes: 30 * 1024 * 1024,
  maxResultOutputBytes: 1024 * 1024,
  maxResultBytes: 30 * 1024 * 1024,
  resultSpillDirectory: '',
  maxSpillBytes: 10 * 1024 ** 3,
  retentionDays: 7,
  bodyLimitBytes: 12 * 1024 * 1024,
  minFreeDiskBytes: 64 * 1024 * 1024,
  localEngine: {
    enabled: true,
    shell: 'bash',
    python: 'python3',
    runAs: '',
    workDirectory: '',
    processContainment: 'auto',
  },
  duckdb: { filesDirectory: '', allowedDirectories: [], externalAccess: false },
  sshHostKeyPolicy: 'record',
  connectTimeoutMs: 10_000,
  connectionTargets: { allow: [], deny: [] },
  credentials: [],
  signatureMaxSkewSeconds: 900,
  allowUnauthenticatedRemote: false,
  auth: 'auto',
  authFailuresPerAddress: 30,
  authFailuresPerAccessKey: 10,
  metricsRequireAuth: false,
  apiDocs: true,
  elTimeZone: 'UTC',
};

export type ConfigOverrides = Partial<Omit<ServerConfig, 'localEngine' | 'duckdb'>> & {
  localEngine?: Partial<ServerConfig['localEngine']>;
  duckdb?: Partial<ServerConfig['duckdb']>;
};

/** Environment variables that map onto top-level settings. */
const ENV: Record<string, keyof ServerConfig> = {
  OPENDLF_HOST: 'host',
  OPENDLF_PORT: 'port',
  OPENDLF_DATA_DIR: 'dataDir',
  OPENDLF_LOG_LEVEL: 'logLevel',
  OPENDLF_DEFAULT_WORKSPACE: 'defaultWorkspace',
  OPENDLF_MAX_CONCURRENT_RUNS: 'maxConcurrentRuns',
  OPENDLF_INSTANCE_TIMEOUT_SECONDS: 'instanceTimeoutSeconds',
  OPENDLF_STOP_GRACE_MS: 'stopGraceMs',
  OPENDLF_RETENTION_DAYS: 'retentionDays',
  OPENDLF_STORE: 'store',
  OPENDLF_STORE_SCHEMA: 'storeSchema',
  OPENDLF_NODE_ID: 'nodeId',
  OPENDLF_LEASE_SECONDS: 'leaseSeconds',
  OPENDLF_POLL_MS: 'pollMs',
  OPENDLF_DRAIN_TIMEOUT_SECONDS: 'drainTimeoutSeconds',
  OPENDLF_EL_TIME_ZONE: 'elTimeZone',
};

function fromEnvironment(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [variable, key] of Object.entries(ENV)) {
    const raw = env[variable];
    if (raw === undefined || raw === '') continue;
    out[key] = typeof DEFAULT_CONFIG[key] === 'number' ? Number(raw) : raw;
  }
  return out;
}

export class ConfigError extends Error {}

export function loadConfig(options: {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  overrides?: ConfigOverrides;
}): ServerConfig {
  let fileConfig: ConfigOverrides = {};
  if (options.file) {
    try {
      fileConfig = JSON.parse(readFileSync(options.file, 'utf8')) as ConfigOverrides;
    } catch (error) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(error as Error).message}`);
    }
  }
  const layers = [fileConfig, fromEnvironment(options.env ?? {}), options.overrides ?? {}];
  let merged: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const layer of layers) {
    const { localEngine, duckdb, ...rest } = layer;
    merged = {
      ...merged,
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
      localEngine: { ...(merged.localEngine as object), ...(localEngine ?? {}) },
      duckdb: { ...(merged.duckdb as object), ...(duckdb ?? {}) },
    };
  }
  if (!Value.Check(ConfigSchema, merged)) {
    const problems = [...Value.Errors(ConfigSchema, merged)].map((e) => `${e.path || '/'}: ${e.message}`);
    throw new ConfigError(`invalid configuration: ${problems.slice(0, 5).join('; ')}`);
  }
  try {
    // Parsed here so a malformed rule stops the server at start-up with a message naming it.
    new ConnectionTargetPolicy(
      { allow: merged.connectionTargets.allow ?? [], deny: merged.connectionTargets.deny ?? [] },
      false,
    );
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${(error as Error).message}`);
  }
  if (!isKnownTimeZone(merged.elTimeZone)) {
    throw new ConfigError(`invalid configuration: /elTimeZone: unknown time zone '${merged.elTimeZone}'`);
  }
  return merged;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
