/**
 * The store ports. Services see only these interfaces. One Kysely adapter (store/kysely) implements
 * them for SQLite (store/sqlite, the default) and PostgreSQL (store/postgres, multi-node); the
 * contract suite test/contract/store-contract.ts holds both to the same behaviour. All times are
 * Dates; adapters own their SQL.
 */
import type { Instance, RunHandle, StatementResult } from '../domain/instance.js';
import type { InstanceState } from '../domain/instance-state.js';
import type { Grant } from '../domain/access.js';
import type { Connection, ConnectionInput, ConnectionType } from '../domain/connection.js';
import type { ApprovalState, Namespace, Script, ScriptInput } from '../domain/script.js';

export interface ScriptPage {
  total: number;
  scripts: Script[];
}

export interface ScriptListQuery {
  offset: number;
  limit: number;
  /** Case-sensitive substring match on the name; empty matches all. */
  nameContains: string;
}

/** A script's review state and who set it. */
export interface Approval {
  state: ApprovalState;
  by: string | null;
}

export interface ScriptStore {
  /** Inserts a new script; returns false when the name is already used in the namespace. */
  create(namespace: Namespace, input: ScriptInput, actor: string, approval: Approval): Promise<boolean>;
  get(namespace: Namespace, name: string): Promise<Script | undefined>;
  /** Replaces the mutable fields and the review state, bumps the version; false when the script does not exist. */
  update(namespace: Namespace, input: ScriptInput, approval: Approval): Promise<boolean>;
  /** Guarded review transition: only from the listed states. */
  setApproval(
    namespace: Namespace,
    name: string,
    from: readonly ApprovalState[],
    approval: Approval,
  ): Promise<boolean>;
  /** Deletes the script and every instance of it; false when it did not exist. */
  delete(namespace: Namespace, name: string): Promise<boolean>;
  /** Stable order: creation order (then name). */
  list(namespace: Namespace, query: ScriptListQuery): Promise<ScriptPage>;
  count(namespace: Namespace): Promise<number>;
}

export interface NewInstance {
  id: string;
  namespace: Namespace;
  scriptId: string;
  scriptName: string;
  connectionName: string;
  engine: string;
  nodeId: string;
}

/** Fields a transition may set together with the new state, in the same guarded update. */
export interface TransitionPatch {
  startedAt?: Date;
  endedAt?: Date;
  message?: string;
  exitCode?: number | null;
  results?: StatementResult[];
  runHandle?: RunHandle | null;
}

export interface InstanceStore {
  /** Inserts an instance in state QUEUED. */
  create(instance: NewInstance, createdAt: Date): Promise<Instance>;
  get(id: string): Promise<Instance | undefined>;
  /**
   * The guarded update: moves the instance to `to` only if its current state is one of `from`.
   * Returns the updated instance, or undefined when another writer got there first.
   */
  transition(
    id: string,
    from: readonly InstanceState[],
    to: InstanceState,
    patch: TransitionPatch,
  ): Promise<Instance | undefined>;
  /** Records the first stop request (when, by whom) on a non-terminal instance; false if terminal or already recorded. */
  recordStopRequest(id: string, at: Date, by: string): Promise<boolean>;
  /** Instances of a node that are not terminal (for recovery after a restart). */
  listActive(nodeId: string): Promise<Instance[]>;
  /** Ids of terminal instances that ended before `before` (retention). */
  listEndedBefore(before: Date, limit: number): Promise<string[]>;
  deleteMany(ids: readonly string[]): Promise<number>;
  /** Instance ids of a script, newest first (extension endpoint, script deletion). */
  listForScript(scriptId: string, limit: number): Promise<Instance[]>;
}

export interface ConnectionListQuery {
  offset: number;
  limit: number;
  nameContains: string;
  /** Only these types (the v1 list hides extension types). */
  types: readonly ConnectionType[];
}

export interface ConnectionStore {
  /** False when the name is already used in the namespace. */
  create(namespace: Namespace, input: ConnectionInput): Promise<boolean>;
  get(namespace: Namespace, name: string): Promise<Connection | undefined>;
  /** Replaces type-independent fields and config, bumps the version; false when it does not exist. */
  update(namespace: Namespace, input: ConnectionInput): Promise<boolean>;
  delete(namespace: Namespace, name: string): Promise<boolean>;
  list(
    namespace: Namespace,
    query: ConnectionListQuery,
  ): Promise<{ total: number; connections: Connection[] }>;
}

export type SystemTaskStatus = 'RUNNING' | 'SUCCESSFUL' | 'FAILED';

export interface SystemSubtask {
  id: string;
  name: string;
  status: SystemTaskStatus;
  message: string;
  lastUpdate: number;
}

/** A background task (connection import) with the shape of DataArts' system-task API. */
export interface SystemTask {
  id: string;
  namespace: Namespace;
  name: string;
  status: SystemTaskStatus;
  message: string;
  subtasks: SystemSubtask[];
  startTime: number;
  endTime: number | null;
  lastUpdate: number;
}

export interface SystemTaskStore {
  save(task: SystemTask): Promise<void>;
  get(namespace: Namespace, id: string): Promise<SystemTask | undefined>;
}

export interface CredentialRecord {
  kind: 'aksk' | 'token';
  /** The access key id, or a token's id (a prefix of its hash). */
  id: string;
  /** aksk: the secret key sealed with the server key (HMAC needs it in clear); token: SHA-256 hex of the token. */
  secret: string;
  projects: string[];
  grants: Grant[];
  expiresAt: Date | null;
  createdAt: Date;
}

export interface CredentialStore {
  /** Inserts or replaces (rotation keeps the id). */
  put(record: CredentialRecord): Promise<void>;
  get(kind: CredentialRecord['kind'], id: string): Promise<CredentialRecord | undefined>;
  list(): Promise<CredentialRecord[]>;
  remove(kind: CredentialRecord['kind'], id: string): Promise<boolean>;
  count(): Promise<number>;
}

export interface Store {
  readonly credentials: CredentialStore;
  readonly scripts: ScriptStore;
  readonly instances: InstanceStore;
  readonly connections: ConnectionStore;
  readonly systemTasks: SystemTaskStore;
  /** Resolves when the store answers a trivial query (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
