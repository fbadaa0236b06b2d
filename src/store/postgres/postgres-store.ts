/**
 * The shared store for multi-node deployments: PostgreSQL through Kysely's PostgresDialect over a
 * bounded pg.Pool. The queries are the ones SQLite uses (store/kysely); this file only opens the
 * pool. Several nodes may call it at once: the Migrator's advisory lock applies each migration once.
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { openKyselyStore } from '../kysely/kysely-store.js';
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
   * Errors of idle pooled connections (server restart, network drop) and of the signal listener.
   * pg emits them as events and an unhandled 'error' event would crash the process; the pool
   * already discards the client and the listener reconnects.
   */
  onPoolError?: (error: Error, during: string) => void;
}

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
  const connection: pg.ClientConfig = {
    connectionString,
    connectionTimeoutMillis: 10_000,
    // A link that dies silently (firewall, cable) is noticed by TCP keepalive, not only by the next query.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: options.applicationName ?? 'opendlf',
    // Every pooled session resolves unqualified table names in the store schema, so the shared
    // queries need no per-dialect qualification.
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
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
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  // The Migrator creates the schema (tolerating a concurrent creator) before taking its lock.
  return openKyselyStore(db, 'postgres', {
    ...(schema === undefined ? {} : { migrationTableSchema: schema }),
    signals,
    shared: true,
  });
}
