/**
 * The store ports. Services see only these interfaces. One Kysely adapter (store/kysely) implements
 * them for SQLite (store/sqlite, the default) and PostgreSQL (store/postgres, multi-node); the
 * contract suite test/contract/store-contract.ts holds both to the same behaviour. All times are
 * Dates; adapters own their SQL.
 */
import type {
  Instance,
  InstanceSummary,
  RunHandle,
  RunRequest,
  StatementResult,
} from '../domain/instance.js';
import type { InstanceHistoryQuery } from '../domain/instance-history.js';
import type { FailureReason } from '../domain/failure-reason.js';
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
  /**
   * Guarded review transition: only from the listed states and only while the script is still at
   * the version the reviewer read, so a modify racing the decision is never approved unseen.
   */
  setApproval(
    namespace: Namespace,
    name: string,
    from: { readonly states: readonly ApprovalState[]; readonly version: number },
    approval: Approval,
  ): Promise<boolean>;
  /**
   * Deletes the script row and returns its id (undefined when it did not exist). From this moment no
   * instance of it can be created (`InstanceStore.create` is guarded by the row); the instances it
   * has stay until `InstanceStore.deleteForScript`, so the caller can stop them first.
   */
  delete(namespace: Namespace, name: string): Promise<string | undefined>;
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
  /** The accepting node; replaced by the claiming node. */
  nodeId: string;
  request: RunRequest;
  /**
   * Inserted already claimed by `nodeId` (LAUNCHING, leased for `leaseMs` on the database clock)
   * when the accepting node has a free slot: no QUEUED row, no separate claim.
   */
  claim?: { leaseMs: number; startedAt: Date };
  /** The principal that executed it (run history); absent ⇒ null. */
  startedBy?: string;
}

/** A QUEUED instance this node has just claimed (now LAUNCHING, leased to it) and what to run. */
export interface ClaimedRun {
  instance: Instance;
  /** Null only for rows queued before the store kept run requests; such a run is failed. */
  request: RunRequest | null;
}

/** Fields a transition may set together with the new state, in the same guarded update. */
export interface TransitionPatch {
  startedAt?: Date;
  endedAt?: Date;
  message?: string;
  exitCode?: number | null;
  failureReason?: FailureReason | null;
  sqlState?: string | null;
  results?: StatementResult[];
  runHandle?: RunHandle | null;
  /** Records a stop request with the state unless one is recorded already (the first one wins). */
  stopRequest?: { at: Date; by: string };
}

/**
 * Whose instance a stop may touch: the script (by the name the instance was created under) and
 * namespace the caller named — checkable on the instance row alone, so a stop is written unread.
 */
export interface InstanceOwner {
  scriptName: string;
  namespace: Namespace;
}

export interface InstanceStore {
  /**
   * Inserts an instance in state QUEUED, or LAUNCHING claimed by its node when `claim` is set — in
   * one statement guarded by its script's row: undefined (nothing inserted) once the script is
   * deleted, so no instance can appear after a delete has listed the script's instances.
   */
  create(instance: NewInstance, createdAt: Date): Promise<Instance | undefined>;
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
  /**
   * A stop request, written before anything is read, in one guarded statement on an active
   * instance of `owner`: a QUEUED one becomes STOPPED with `queuedSettlement` (it is never claimed:
   * claims skip rows with a stop request too), a claimed one keeps its state and records the
   * request (the first one wins). Returns the row as written, or undefined when `owner` has no
   * active instance with this id (terminal, someone else's, or missing: nothing was written).
   */
  requestStop(
    id: string,
    owner: InstanceOwner,
    request: { at: Date; by: string },
    queuedSettlement: { message: string; failureReason: FailureReason },
  ): Promise<Instance | undefined>;
  /**
   * The queue: moves up to `limit` QUEUED instances without a stop request (oldest first) to LAUNCHING, owned by `nodeId`
   * with a lease of `leaseMs` on the database clock. Rows another node is claiming at the same moment
   * are skipped (PostgreSQL: FOR UPDATE SKIP LOCKED), so each instance is claimed exactly once.
   */
  claim(nodeId: string, limit: number, leaseMs: number, startedAt: Date): Promise<ClaimedRun[]>;
  /**
   * Heartbeat: extends the lease of those of `ids` that are still LAUNCHING/RUNNING and owned by
   * `nodeId`; returns them. Only runs the node really holds are renewed: a row it owns but no longer
   * runs (a settle that could not be written) expires and is reaped like a lost node's.
   */
  renewLeases(nodeId: string, ids: readonly string[], leaseMs: number): Promise<string[]>;
  /**
   * The reaper: settles LAUNCHING/RUNNING instances whose lease expired (database clock) as ABORTED
   * with `message`, each exactly once (guarded update); returns the ids it settled. The ids in
   * `spare` are left alone: the calling node still runs them, so they are not lost, whatever the
   * clock that judged their lease says (its lease keeper fences them on its monotonic clock).
   */
  reapExpired(message: string, endedAt: Date, limit: number, spare?: readonly string[]): Promise<string[]>;
  /** The node's LAUNCHING/RUNNING instances with a recorded stop request (the stop poll). */
  listStopRequested(nodeId: string): Promise<string[]>;
  /**
   * Instances of a node whose work may still exist: not terminal, or terminal with a run handle the
   * node never released (settled by a reaper while the node was gone). Recovery after a restart.
   */
  listUnreleased(nodeId: string): Promise<Instance[]>;
  /** Forgets the run handle: the owning node confirmed the work is gone. */
  releaseHandle(id: string): Promise<void>;
  /** QUEUED instances across every node (queue-depth gauge). */
  countQueued(): Promise<number>;
  /** Ids of terminal instances that ended before `before` (retention). */
  listEndedBefore(before: Date, limit: number): Promise<string[]>;
  deleteMany(ids: readonly string[]): Promise<number>;
  /** Deletes every instance of a script (after its deletion has stopped them); returns how many. */
  deleteForScript(scriptId: string): Promise<number>;
  /** Instance ids of a script, newest first (extension endpoint, script deletion). */
  listForScript(scriptId: string, limit: number): Promise<Instance[]>;
  /**
   * Run history of a namespace: the page of instances matching `query`, newest first (creation
   * time, then id), without results; `total` counts every match. Index-backed (migrations 0009 and 0013).
   */
  history(namespace: Namespace, query: InstanceHistoryQuery): Promise<InstanceHistoryPage>;
}

export interface InstanceHistoryPage {
  total: number;
  instances: InstanceSummary[];
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
  /**
   * A number that changes whenever the credentials may have changed since it was last read, by
   * this process or another; synchronous and cheap enough for every request. Undefined when the
   * store cannot tell (the caller must then look, e.g. count()).
   */
  changeStamp(): number | undefined;
}

/** A workspace environment variable (extension): the raw value, `#{…}` evaluated at execute time. */
export interface EnvironmentVariable {
  name: string;
  value: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface EnvironmentVariableStore {
  /**
   * Creates or replaces; 'limit' (nothing written) when creating would make the namespace hold
   * more than `maxPerNamespace` variables.
   */
  put(
    namespace: Namespace,
    name: string,
    value: string,
    at: Date,
    maxPerNamespace: number,
  ): Promise<'created' | 'updated' | 'limit'>;
  get(namespace: Namespace, name: string): Promise<EnvironmentVariable | undefined>;
  /** Every variable of the namespace, by name. */
  list(namespace: Namespace): Promise<EnvironmentVariable[]>;
  /** False when it did not exist. */
  delete(namespace: Namespace, name: string): Promise<boolean>;
}

/** A byte range of an instance's output log, and how many bytes the log holds so far. */
export interface LogRange {
  /** The stored bytes from the requested offset, at most the requested limit. */
  bytes: Buffer;
  /** Bytes stored for the instance so far (the offset the next append starts at). */
  size: number;
}

/**
 * The output of Shell/Python runs as they go (extension: live logs), in the store so every node
 * reads it: appended in batches by the node running the instance, read by byte range by any node,
 * deleted with the instance (retention, script delete).
 */
export interface InstanceLogStore {
  /**
   * Stores `bytes` at byte `offset` of the instance's log (the caller appends in order, without
   * gaps); nothing is stored when the instance no longer exists (deleted meanwhile).
   */
  append(instanceId: string, offset: number, bytes: Buffer): Promise<void>;
  /** Up to `limit` stored bytes from `offset` (fewer at the end of what is stored), and the size. */
  read(instanceId: string, offset: number, limit: number): Promise<LogRange>;
  /**
   * Calls `listener` after each append made by this process (a reader on the running node wakes at
   * once; readers on other nodes poll). Returns the unsubscriber.
   */
  onAppend(listener: (instanceId: string) => void): () => void;
}

/** An execute's Idempotency-Key (extension), scoped to its script. */
export interface IdempotencyClaim {
  readonly key: string;
  /** What makes a repeat "the same request" (a hash of the body): a repeat must match it. */
  readonly requestHash: string;
  /** A record created before this has expired: it is replaced as if it were absent. */
  readonly expiredBefore: Date;
}

/** The instance a key was first used for, and that request's hash. */
export interface IdempotencyRecord {
  readonly instanceId: string;
  readonly requestHash: string;
}

export type CreateOnceResult =
  | { readonly kind: 'created'; readonly instance: Instance }
  | { readonly kind: 'existing'; readonly record: IdempotencyRecord }
  /** The script was deleted meanwhile: nothing was inserted (as `InstanceStore.create`'s undefined). */
  | { readonly kind: 'scriptGone' };

/**
 * Idempotency keys of execute (extension), one per namespace, script and key. The key row and the
 * instance are written in one transaction, so a key never points at an instance that was not
 * created, and an instance is created at most once per key — also by concurrent duplicates on
 * several nodes (the unique key makes the later one wait for the first one's commit and read it).
 */
export interface IdempotencyKeyStore {
  /** The record of `key` for the script created at or after `notBefore`, if any. */
  find(
    namespace: Namespace,
    scriptId: string,
    key: string,
    notBefore: Date,
  ): Promise<IdempotencyRecord | undefined>;
  /**
   * Inserts the key's record and `instance` (exactly as `InstanceStore.create`) together, or
   * neither: 'existing' with the first request's record when the key is already used (unexpired).
   */
  createInstanceOnce(
    instance: NewInstance,
    createdAt: Date,
    claim: IdempotencyClaim,
  ): Promise<CreateOnceResult>;
  /** Deletes the records created before `before` (expired keys); returns how many. */
  deleteCreatedBefore(before: Date): Promise<number>;
}

/** What one process tells the others sharing the store (and itself). */
export type InstanceSignal =
  /** New QUEUED work: nodes with a free slot try to claim. */
  | { kind: 'work' }
  /** A stop request was recorded: the owning node ends the work. */
  | { kind: 'stop'; instanceId: string }
  /** The instance became terminal: long polls and stop calls waiting on it answer. */
  | { kind: 'settled'; instanceId: string };

/**
 * Signals between every process sharing the store: in-process for SQLite, LISTEN/NOTIFY for
 * PostgreSQL. Delivery is best effort (a dropped listener connection loses signals), so every
 * consumer also polls the store; a signal only makes things happen sooner.
 */
export interface InstanceSignals {
  /** Fire and forget; a failure to send is logged by the adapter, never thrown. */
  publish(signal: InstanceSignal): void;
  /** Every signal published by any process, including this one. Returns the unsubscriber. */
  subscribe(listener: (signal: InstanceSignal) => void): () => void;
  /** Called when the listener connection was re-established: signals may have been missed. */
  onReconnect(listener: () => void): void;
}

export interface Store {
  /** True when other processes (nodes) may share this store: claims, leases and stops are routed. */
  readonly shared: boolean;
  readonly signals: InstanceSignals;
  readonly credentials: CredentialStore;
  readonly scripts: ScriptStore;
  readonly instances: InstanceStore;
  readonly connections: ConnectionStore;
  readonly systemTasks: SystemTaskStore;
  readonly environmentVariables: EnvironmentVariableStore;
  readonly idempotencyKeys: IdempotencyKeyStore;
  readonly instanceLogs: InstanceLogStore;
  /**
   * Stores `value` under `name` unless a value is already there; returns the stored value. The
   * first node to start decides, every later one compares (e.g. the secret key fingerprint).
   */
  adoptSetting(name: string, value: string): Promise<string>;
  /** The stored value of a setting, undefined when none was ever adopted (reading never stores). */
  readSetting(name: string): Promise<string | undefined>;
  /** Resolves when the store answers a trivial query (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
