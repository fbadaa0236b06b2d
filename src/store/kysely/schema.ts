/**
 * Row shapes of the store tables (Kysely's view of the database), shared by the SQLite and
 * PostgreSQL adapters. Times are epoch milliseconds: SQLite `integer` reads back as a number, while
 * PostgreSQL `bigint` reads back as a string (pg does not narrow int8), so mappers apply Number().
 */
import type { ColumnType, Generated } from 'kysely';

/** Epoch milliseconds: written as a number, read as a number (SQLite) or a string (pg int8). */
export type Millis = ColumnType<number | string, number, number>;
/** Nullable epoch milliseconds. */
export type NullableMillis = ColumnType<number | string | null, number | null, number | null>;

/** Converts a read time column to a Date. */
export function toDate(ms: number | string): Date {
  return new Date(Number(ms));
}

/** Converts a nullable read time column. */
export function toDateOrNull(ms: number | string | null): Date | null {
  return ms === null ? null : new Date(Number(ms));
}

export interface ScriptsTable {
  seq: Generated<number>;
  id: string;
  project_id: string;
  workspace_id: string;
  name: string;
  type: string;
  content: string;
  directory: string;
  connection_name: string;
  database_name: string;
  queue_name: string;
  /** JSON object of strings. */
  configuration: string;
  description: string;
  target_status: string | null;
  /** JSON array or null. */
  approvers: string | null;
  owner: string;
  create_user: string;
  approval_state: Generated<string>;
  approved_by: string | null;
  version: number;
  created_at: Millis;
  updated_at: Millis;
}

export interface InstancesTable {
  id: string;
  project_id: string;
  workspace_id: string;
  script_id: string;
  script_name: string;
  state: string;
  connection_name: string;
  engine: string;
  node_id: string;
  created_at: Millis;
  started_at: NullableMillis;
  ended_at: NullableMillis;
  stop_requested_at: NullableMillis;
  /** The principal that asked for the stop (audit). */
  stop_requested_by: string | null;
  message: string;
  exit_code: number | null;
  /** JSON array of StatementResult. */
  results: string;
  /** JSON RunHandle or null. Cleared when the owning node confirms the work ended. */
  run_handle: string | null;
  /** The run request (null only on rows written before migration 0005). */
  run_script_type: string | null;
  run_content: string | null;
  run_database: string | null;
  /** The run's own time limit in ms (migration 0010; execute's timeoutSeconds); null: the node's. */
  run_timeout_ms: NullableMillis;
  /** Database-clock epoch ms; null while QUEUED and after a normal settle. */
  lease_expires_at: NullableMillis;
  /** A FailureReason for a run that did not finish (migration 0006); null otherwise or older. */
  failure_reason: string | null;
  /** The SQLSTATE of the statement that failed (SQL engines that report one). */
  sql_state: string | null;
  /** The principal that executed it (migration 0009); null on older rows. */
  started_by: string | null;
}

export interface ConnectionsTable {
  seq: Generated<number>;
  id: string;
  project_id: string;
  workspace_id: string;
  name: string;
  type: string;
  /** JSON object; secret values are already sealed by the service. */
  config: string;
  description: string;
  version: number;
  created_at: Millis;
  updated_at: Millis;
}

export interface SystemTasksTable {
  id: string;
  project_id: string;
  workspace_id: string;
  name: string;
  status: string;
  message: string;
  /** JSON array of subtasks. */
  subtasks: string;
  start_time: Millis;
  end_time: NullableMillis;
  last_update: Millis;
}

export interface CredentialsTable {
  kind: string;
  id: string;
  secret: string;
  /** JSON arrays. */
  projects: string;
  grants: string;
  expires_at: NullableMillis;
  created_at: Millis;
}

export interface SettingsTable {
  name: string;
  value: string;
}

/**
 * Per-namespace script count, kept in the same transaction as every script create and delete, so a
 * list's `total` and the per-workspace limit read one row instead of walking the namespace.
 */
export interface NamespaceCountersTable {
  project_id: string;
  workspace_id: string;
  scripts: number;
}

/** Workspace environment variables (extension): raw values, `#{…}` evaluated at execute time. */
export interface EnvironmentVariablesTable {
  project_id: string;
  workspace_id: string;
  name: string;
  value: string;
  created_at: Millis;
  updated_at: Millis;
}

/** A byte offset: `bigint` on PostgreSQL, read back as a string like the times. */
export type ByteOffset = ColumnType<number | string, number, number>;

/** Live logs (extension): an instance's output in chunks, bytes `[start_offset, end_offset)` each. */
export interface InstanceLogsTable {
  instance_id: string;
  start_offset: ByteOffset;
  end_offset: ByteOffset;
  /** BLOB on SQLite, bytea on PostgreSQL: both read back as a Buffer. */
  data: Buffer;
}

/**
 * Execute idempotency keys (extension, migration 0010): the instance a key was first used for
 * within a script, with the hash of that request's body; expired after 24 h.
 */
export interface ExecuteIdempotencyKeysTable {
  project_id: string;
  workspace_id: string;
  script_id: string;
  idempotency_key: string;
  request_hash: string;
  instance_id: string;
  created_at: Millis;
}

export interface Database {
  execute_idempotency_keys: ExecuteIdempotencyKeysTable;
  instance_logs: InstanceLogsTable;
  environment_variables: EnvironmentVariablesTable;
  namespace_counters: NamespaceCountersTable;
  settings: SettingsTable;
  credentials: CredentialsTable;
  scripts: ScriptsTable;
  instances: InstancesTable;
  connections: ConnectionsTable;
  system_tasks: SystemTasksTable;
}
