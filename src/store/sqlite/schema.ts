/** Row shapes of the SQLite tables (Kysely's view of the database). Times are epoch milliseconds. */
import type { Generated } from 'kysely';

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
  created_at: number;
  updated_at: number;
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
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  stop_requested_at: number | null;
  /** The principal that asked for the stop (audit). */
  stop_requested_by: string | null;
  message: string;
  exit_code: number | null;
  /** JSON array of StatementResult. */
  results: string;
  /** JSON RunHandle or null. */
  run_handle: string | null;
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
  created_at: number;
  updated_at: number;
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
  start_time: number;
  end_time: number | null;
  last_update: number;
}

export interface CredentialsTable {
  kind: string;
  id: string;
  secret: string;
  /** JSON arrays. */
  projects: string;
  grants: string;
  expires_at: number | null;
  created_at: number;
}

export interface Database {
  credentials: CredentialsTable;
  scripts: ScriptsTable;
  instances: InstancesTable;
  connections: ConnectionsTable;
  system_tasks: SystemTasksTable;
}
