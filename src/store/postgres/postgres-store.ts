/**
 * The shared store for multi-node deployments: PostgreSQL through Kysely's PostgresDialect over a
 * bounded pg.Pool. The queries are the ones SQLite uses (store/kysely); this file only opens the
 * pool. Several nodes may call it at once: the Migrator's advisory lock applies each migration once.
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { openKyselyStore } from '../kysely/kysely-store.js';
import { GuardedPool } from './guarded-pool.js';
import { PostgresSignals } from './pg-signals.js';
import type { Database } from '../kysely/schema.js';
import type { Store } from '../store.js';

export interface PostgresStoreOptions {
  /**
   * A schema to hold the tables (created if missing), e.g. to share one database between
   * deployments or tests. Default: the connection's search_path (normally `public`).
   */
  schema?: string;
  /** `application_name` of every session (pg_stat_activity shows which node holds which). */
  applicationName?: string;
  /**
   * This node's id: the store refuses to open while another live process holds it (a session
   * advisory lock of the signal listener), so two processes can never act as one node.
   */
  nodeId?: string;
  /** Pool size; default 10. */
  maxConnections?: number;
  /**
   * Deadline for opening a connection, and for waiting for a pooled one when all are busy (ms);
   * default 5000.
   */
  connectTimeoutMs?: number;
  /**
   * Deadline of one statement (ms): `statement_timeout` on the server, and the same plus
   * CLIENT_DEADLINE_MARGIN_MS on the client for a link that does not answer at all; default 5000.
   * Migrations run without it (they may legitimately take long, or wait for another node's).
   */
  queryTimeoutMs?: number;
  /**
   * Errors of idle pooled connections (server restart, network drop) and of the signal listener.
   * pg emits them as events and an unhandled 'error' event would crash the process; the pool
   * already discards the client and the listener reconnects.
   */
  onPoolError?: (error: Error, during: string) => void;
}

/**
 * The client's own deadline waits this much longer than statement_timeout, so a slow but reachable
 * server cancels the statement itself (the connection stays usable) before the client gives up on
 * the link (and discards the connection).
 */
export const CLIENT_DEADLINE_MARGIN_MS = 1_000;

/**
 * The server's TCP keepalive towards this node's sessions (seconds): after a cut without a reset,
 * PostgreSQL ends the session — and releases the node id's advisory lock its listener held — within
 * about idle + interval × count (40 s), not after the kernel default of two hours, so the node can
 * take the lock again when it reconnects.
 */
const SERVER_KEEPALIVE = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3';

/** Plain lower-case identifiers only, so the schema name can go into search_path unquoted. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Connects, applies pending migrations and returns the store; the pool is closed by `close()`. */
export async function openPostgresStore(
  connectionString: string,
  options: PostgresStoreOptions = {},
): Promise<Store> {
  const { schema } = options;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`invalid store schema name ${JSON.stringify(schema)}: use [a-z_][a-z0-9_]*`);
  }
  const queryTimeoutMs = options.queryTimeoutMs ?? 5_000;
  const unbounded: pg.ClientConfig = {
    connectionString,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    // A link that dies silently (firewall, cable) is noticed by TCP keepalive, not only by the next query.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: options.applicationName ?? 'opendlf',
    // Every pooled session resolves unqualified table names in the store schema, so the shared
    // queries need no per-dialect qualification.
    options: schema === undefined ? SERVER_KEEPALIVE : `-c search_path=${schema} ${SERVER_KEEPALIVE}`,
  };
  // Every statement of the store has a deadline: a call that cannot reach PostgreSQL fails (503,
  // OPENDLF.0504) instead of hanging as long as the link does. A transaction whose client vanished
  // mid-way is ended by the server, so its row locks do not outlive the link.
  const connection: pg.ClientConfig = {
    ...unbounded,
    statement_timeout: queryTimeoutMs,
    query_timeout: queryTimeoutMs + CLIENT_DEADLINE_MARGIN_MS,
    idle_in_transaction_session_timeout: 2 * queryTimeoutMs,
  };
  const onError = options.onPoolError ?? (() => undefined);
  const pool = new pg.Pool({ ...connection, max: options.maxConnections ?? 10, idleTimeoutMillis: 30_000 });
  pool.on('error', (error) => onError(error, 'idle pooled connection'));
  // pg emits 'error' on a client whose connection dies even while a query is running on it (the
  // query is rejected too). pg-pool listens only while the client is idle, so a reset during a
  // query would crash the process (found by the cluster test's network blip): every client gets a
  // listener of its own. Nothing to log here — the query's caller or the pool reports it.
  pool.on('connect', (client) => client.on('error', () => undefined));
  let signals: PostgresSignals;
  try {
    signals = await PostgresSignals.open({
      connection,
      pool,
      channel: `opendlf_signals_${schema ?? 'default'}`,
      onError,
      ...(options.nodeId === undefined ? {} : { exclusiveKey: `node id ${options.nodeId}` }),
    });
  } catch (error) {
    await pool.end();
    throw error;
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new GuardedPool(pool) }) });
  // Migrations on one connection of their own, without the statement deadline.
  const migrationPool = new pg.Pool({ ...unbounded, max: 1 });
  migrationPool.on('error', (error) => onError(error, 'idle migration connection'));
  migrationPool.on('connect', (client) => client.on('error', () => undefined));
  const migrationDb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: migrationPool }) });
  try {
    // The Migrator creates the schema (tolerating a concurrent creator) before taking its lock.
    return await openKyselyStore(db, 'postgres', {
      ...(schema === undefined ? {} : { migrationTableSchema: schema }),
      migrateWith: migrationDb,
      signals,
      shared: true,
    });
  } finally {
    await migrationDb.destroy();
  }
}
