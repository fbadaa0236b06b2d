/**
 * Numbered, forward-only migrations, shared by both dialects. Kysely's Migrator records applied
 * names in `kysely_migration` and takes a lock (a SQLite write transaction, a PostgreSQL advisory
 * lock), so several processes or nodes starting at once apply each migration once.
 *
 * Only column DDL branches per dialect: SQLite keeps `integer` (64-bit) times and an
 * `autoincrement` seq, exactly as before, so existing files stay valid; PostgreSQL gets `bigint`
 * times and an identity seq (`.autoIncrement()` is not PostgreSQL and identity is not SQLite).
 */
import {
  sql,
  type ColumnDefinitionBuilder,
  type Kysely,
  type Migration,
  type MigrationProvider,
} from 'kysely';
import type { StoreDialect } from './dialect.js';

interface ColumnDdl {
  /** Epoch-millisecond columns. */
  time: 'integer' | 'bigint';
  seqType: 'integer' | 'bigint';
  /** The ordering key: autoincrement on SQLite, identity on PostgreSQL. */
  seq: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
  /** Raw bytes (live logs). */
  bytes: 'blob' | 'bytea';
}

function columnDdl(dialect: StoreDialect): ColumnDdl {
  return dialect === 'sqlite'
    ? { time: 'integer', seqType: 'integer', seq: (c) => c.primaryKey().autoIncrement(), bytes: 'blob' }
    : {
        time: 'bigint',
        seqType: 'bigint',
        seq: (c) => c.primaryKey().generatedAlwaysAsIdentity(),
        bytes: 'bytea',
      };
}

function buildMigrations(t: ColumnDdl): Record<string, Migration> {
  return {
    '0001_scripts_and_instances': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('scripts')
          .addColumn('seq', t.seqType, t.seq)
          .addColumn('id', 'text', (c) => c.notNull().unique())
          .addColumn('project_id', 'text', (c) => c.notNull())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('content', 'text', (c) => c.notNull())
          .addColumn('directory', 'text', (c) => c.notNull())
          .addColumn('connection_name', 'text', (c) => c.notNull())
          .addColumn('database_name', 'text', (c) => c.notNull())
          .addColumn('queue_name', 'text', (c) => c.notNull())
          .addColumn('configuration', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull())
          .addColumn('target_status', 'text')
          .addColumn('approvers', 'text')
          .addColumn('owner', 'text', (c) => c.notNull())
          .addColumn('create_user', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addColumn('updated_at', t.time, (c) => c.notNull())
          .addUniqueConstraint('scripts_namespace_name', ['project_id', 'workspace_id', 'name'])
          .execute();
        await db.schema
          .createTable('instances')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('project_id', 'text', (c) => c.notNull())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('script_id', 'text', (c) => c.notNull())
          .addColumn('script_name', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('connection_name', 'text', (c) => c.notNull())
          .addColumn('engine', 'text', (c) => c.notNull())
          .addColumn('node_id', 'text', (c) => c.notNull())
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addColumn('started_at', t.time)
          .addColumn('ended_at', t.time)
          .addColumn('stop_requested_at', t.time)
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('exit_code', 'integer')
          .addColumn('results', 'text', (c) => c.notNull())
          .addColumn('run_handle', 'text')
          .execute();
        await db.schema.createIndex('instances_script').on('instances').column('script_id').execute();
        await db.schema
          .createIndex('instances_node_state')
          .on('instances')
          .columns(['node_id', 'state'])
          .execute();
        await db.schema
          .createIndex('instances_ended')
          .on('instances')
          .column('ended_at')
          .where(sql.ref('ended_at'), 'is not', null)
          .execute();
      },
    },
    '0002_connections_and_system_tasks': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('connections')
          .addColumn('seq', t.seqType, t.seq)
          .addColumn('id', 'text', (c) => c.notNull().unique())
          .addColumn('project_id', 'text', (c) => c.notNull())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('config', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addColumn('updated_at', t.time, (c) => c.notNull())
          .addUniqueConstraint('connections_namespace_name', ['project_id', 'workspace_id', 'name'])
          .execute();
        await db.schema
          .createTable('system_tasks')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('project_id', 'text', (c) => c.notNull())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('subtasks', 'text', (c) => c.notNull())
          .addColumn('start_time', t.time, (c) => c.notNull())
          .addColumn('end_time', t.time)
          .addColumn('last_update', t.time, (c) => c.notNull())
          .execute();
      },
    },
    '0003_credentials_and_stop_audit': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('credentials')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('id', 'text', (c) => c.notNull())
          .addColumn('secret', 'text', (c) => c.notNull())
          .addColumn('projects', 'text', (c) => c.notNull())
          .addColumn('grants', 'text', (c) => c.notNull())
          .addColumn('expires_at', t.time)
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addPrimaryKeyConstraint('credentials_pk', ['kind', 'id'])
          .execute();
        await db.schema.alterTable('instances').addColumn('stop_requested_by', 'text').execute();
        await db.schema
          .alterTable('scripts')
          .addColumn('approval_state', 'text', (c) => c.notNull().defaultTo('NONE'))
          .execute();
        await db.schema.alterTable('scripts').addColumn('approved_by', 'text').execute();
      },
    },
    '0004_list_order_index': {
      async up(db: Kysely<unknown>) {
        // List pages are ordered by seq within a namespace: without this index SQLite sorted every
        // script of the workspace for each page (8 ms at 10,000 scripts, measured in bench/).
        await db.schema
          .createIndex('scripts_namespace_seq')
          .on('scripts')
          .columns(['project_id', 'workspace_id', 'seq'])
          .execute();
        await db.schema
          .createIndex('connections_namespace_seq')
          .on('connections')
          .columns(['project_id', 'workspace_id', 'seq'])
          .execute();
      },
    },
    '0005_store_queue_and_leases': {
      async up(db: Kysely<unknown>) {
        // The run request travels with the instance, so whichever node claims it can run it (and
        // it runs what was executed, even if the script is edited while it waits).
        await db.schema.alterTable('instances').addColumn('run_script_type', 'text').execute();
        await db.schema.alterTable('instances').addColumn('run_content', 'text').execute();
        await db.schema.alterTable('instances').addColumn('run_database', 'text').execute();
        // Database-clock epoch ms until which the owning node's claim holds (renewed by heartbeat).
        await db.schema.alterTable('instances').addColumn('lease_expires_at', t.time).execute();
        await db.schema
          .createIndex('instances_state_created')
          .on('instances')
          .columns(['state', 'created_at'])
          .execute();
        // Facts every node must agree on (e.g. a fingerprint of the secret key).
        await db.schema
          .createTable('settings')
          .ifNotExists()
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
        // From now on a run handle on a settled row means "work that may still exist" (recovery
        // looks for those); older settled rows kept theirs, and their work is long gone.
        await sql`UPDATE instances SET run_handle = NULL
          WHERE state IN ('FINISHED', 'FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED')`.execute(db);
      },
    },
    '0006_failure_reasons': {
      async up(db: Kysely<unknown>) {
        // Why a run ended unsuccessfully, as a machine-readable reason (domain/failure-reason.ts)
        // beside the human message, and the SQLSTATE of a failed SQL statement. Rows settled before
        // this migration keep null: their reason is only in the message.
        await db.schema.alterTable('instances').addColumn('failure_reason', 'text').execute();
        await db.schema.alterTable('instances').addColumn('sql_state', 'text').execute();
      },
    },
    '0007_namespace_counters': {
      async up(db: Kysely<unknown>) {
        // A list's `total` counted the namespace's scripts on every page (323 µs at 10,000 scripts
        // against 7 µs at 100, bench/ profile): the count is kept here instead, by create and
        // delete in their own transactions, and backfilled once from the scripts present.
        await db.schema
          .createTable('namespace_counters')
          .addColumn('project_id', 'text', (c) => c.notNull())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('scripts', 'integer', (c) => c.notNull())
          .addPrimaryKeyConstraint('namespace_counters_pk', ['project_id', 'workspace_id'])
          .execute();
        const backfill = sql`INSERT INTO namespace_counters (project_id, workspace_id, scripts)
          SELECT project_id, workspace_id, count(*) FROM scripts GROUP BY project_id, workspace_id`;
        await backfill.execute(db);
      },
    },
    '0008_environment_variables': {
      async up(db: Kysely<unknown>) {
        // Workspace environment variables (extension API): `${name}` and Env.get read them at
        // execute time; execute params of the same name win.
        await db.schema
          .createTable('environment_variables')
          .addColumn('project_id', 'text', (c) => c.notNull())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addColumn('updated_at', t.time, (c) => c.notNull())
          .addPrimaryKeyConstraint('environment_variables_pk', ['project_id', 'workspace_id', 'name'])
          .execute();
      },
    },
    '0009_run_history': {
      async up(db: Kysely<unknown>) {
        // Who executed each run (run history); rows from before stay null.
        await db.schema.alterTable('instances').addColumn('started_by', 'text').execute();
        // The run-history listings, newest first: the whole workspace, by state, or one script's.
        // Each filter has an index whose leading columns it fixes by equality, so the count and
        // the page are read from the index alone, whatever the size of the rows (their results).
        // The script index leads with four equalities (the service always gives name and id):
        // without statistics SQLite's planner preferred `instances_state_created` or the state
        // index for a filtered count and read every matching row (0.5 s at 100,000 runs).
        await db.schema
          .createIndex('instances_history_namespace')
          .on('instances')
          // `state` rides along: a state-filtered page walked in this order reads no row.
          .columns(['project_id', 'workspace_id', 'created_at desc', 'id desc', 'state'])
          .execute();
        await db.schema
          .createIndex('instances_history_state')
          .on('instances')
          .columns(['project_id', 'workspace_id', 'state', 'created_at desc', 'id desc'])
          .execute();
        await db.schema
          .createIndex('instances_history_script')
          .on('instances')
          .columns([
            'project_id',
            'workspace_id',
            'script_name',
            'script_id',
            'created_at desc',
            'id desc',
            'state',
          ])
          .execute();
      },
    },
    '0012_instance_logs': {
      async up(db: Kysely<unknown>) {
        // Live logs (extension): Shell/Python output in chunks, written in batches by the node that
        // runs the instance and read by byte range from any node; deleted with the instance.
        await db.schema
          .createTable('instance_logs')
          .addColumn('instance_id', 'text', (c) => c.notNull())
          // Byte offsets are 64-bit like the times (integer on SQLite, bigint on PostgreSQL).
          .addColumn('start_offset', t.time, (c) => c.notNull())
          .addColumn('end_offset', t.time, (c) => c.notNull())
          .addColumn('data', t.bytes, (c) => c.notNull())
          .addPrimaryKeyConstraint('instance_logs_pk', ['instance_id', 'start_offset'])
          .execute();
      },
    },
    '0013_history_state_index_dropped': {
      async up(db: Kysely<unknown>) {
        // Every state change of every run rewrote this index's entry (state leads it), and every
        // insert added one: dropping it took 40 µs of SQLite time off each trivial instance (316-333
        // → 277-295 µs) and raised DuckDB instances/s in 6 of 6 alternating pairs, by 6% at the
        // median (scratch, 1,500 one-request instances a round). A state filter of the run history
        // reads `state` from instances_history_namespace instead, which carries it: still from the
        // index alone, but over all of the workspace's runs (measured at 100,000 runs: a filtered
        // page 17 ms instead of 6). store-history-plans.test.ts checks the plans.
        await db.schema.dropIndex('instances_history_state').execute();
      },
    },
    '0010_execute_timeouts_and_idempotency_keys': {
      async up(db: Kysely<unknown>) {
        // A run's own time limit (execute's timeoutSeconds or the script's default) travels with
        // the run request, so whichever node claims it applies it; null: that node's own limit.
        await db.schema.alterTable('instances').addColumn('run_timeout_ms', t.time).execute();
        // Idempotency-Key of execute: the primary key makes concurrent duplicates (on any node)
        // converge on one row, written in the same transaction as the instance it names.
        await db.schema
          .createTable('execute_idempotency_keys')
          .addColumn('project_id', 'text', (c) => c.notNull())
          .addColumn('workspace_id', 'text', (c) => c.notNull())
          .addColumn('script_id', 'text', (c) => c.notNull())
          .addColumn('idempotency_key', 'text', (c) => c.notNull())
          .addColumn('request_hash', 'text', (c) => c.notNull())
          .addColumn('instance_id', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', t.time, (c) => c.notNull())
          .addPrimaryKeyConstraint('execute_idempotency_keys_pk', [
            'project_id',
            'workspace_id',
            'script_id',
            'idempotency_key',
          ])
          .execute();
        // Expired keys are deleted by age (retention sweeper).
        await db.schema
          .createIndex('execute_idempotency_keys_created')
          .on('execute_idempotency_keys')
          .column('created_at')
          .execute();
      },
    },
  };
}

/** The migrations for one dialect (same names and order on both). */
export function migrationProvider(dialect: StoreDialect): MigrationProvider {
  const migrations = buildMigrations(columnDdl(dialect));
  return { getMigrations: () => Promise.resolve(migrations) };
}
