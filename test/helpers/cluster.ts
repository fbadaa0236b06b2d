/**
 * Several opendlf nodes sharing one PostgreSQL store, as separate processes on loopback (the
 * cluster tests and bench/). Each test file gets its own database, dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { spawnServer, tempDir, terminate, type ChildServer } from './server.js';

export const PG_SERVER = 'postgres://postgres@127.0.0.1:5432';

/** Every node of a deployment must seal secrets with the same key. */
export const CLUSTER_SECRET_KEY = randomBytes(32).toString('base64');

export interface ClusterDatabase {
  readonly name: string;
  readonly url: string;
  /** A superuser client on the cluster database (for pg_stat_activity, pg_terminate_backend). */
  readonly admin: pg.Client;
  drop(): Promise<void>;
}

export async function createClusterDatabase(prefix = 'opendlf_cluster'): Promise<ClusterDatabase> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const root = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  root.on('error', () => undefined);
  await root.connect();
  await root.query(`CREATE DATABASE ${name}`);
  const url = `${PG_SERVER}/${name}`;
  const admin = new pg.Client({ connectionString: url });
  admin.on('error', () => undefined);
  await admin.connect();
  return {
    name,
    url,
    admin,
    async drop() {
      await admin.end().catch(() => undefined);
      await root.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await root.end();
    },
  };
}

export interface NodeOptions {
  /** The store URL this node uses (the database's, or a proxy's in front of it). */
  readonly storeUrl: string;
  readonly nodeId: string;
  /** Defaults: lease 3 s, poll 200 ms, 4 runs at once, drain 0 s, stop grace 250 ms. */
  readonly args?: readonly string[];
  /** Reuse a data directory (a restarted node); default a fresh one. */
  readonly dataDir?: string;
  /** Keep the node's log lines in `stderr` instead of passing them through. */
  readonly captureStderr?: boolean;
}

export interface ClusterNode extends ChildServer {
  readonly nodeId: string;
  readonly dataDir: string;
}

export const FAST_LEASE_ARGS = [
  '--lease-seconds',
  '3',
  '--poll-ms',
  '200',
  '--max-concurrent-runs',
  '4',
  '--drain-timeout-seconds',
  '0',
  // Leaves lease/6 > poll + grace, so fencing ends a run before its lease can expire.
  '--stop-grace-ms',
  '250',
];

export async function startNode(options: NodeOptions): Promise<ClusterNode> {
  const dataDir = options.dataDir ?? tempDir('opendlf-node-');
  const server = await spawnServer(
    dataDir,
    ['--store', options.storeUrl, '--node-id', options.nodeId, ...FAST_LEASE_ARGS, ...(options.args ?? [])],
    { env: { OPENDLF_SECRET_KEY: CLUSTER_SECRET_KEY }, captureStderr: options.captureStderr ?? false },
  );
  return { ...server, nodeId: options.nodeId, dataDir };
}

/** Stops a node (SIGTERM, or SIGKILL if it has not exited after 20 s) and removes its data directory. */
export async function stopNode(node: ClusterNode, removeData = true): Promise<void> {
  await terminate(node);
  if (removeData) rmSync(node.dataDir, { recursive: true, force: true });
}
