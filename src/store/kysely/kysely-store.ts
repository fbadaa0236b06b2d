/**
 * The store adapter in dialect-neutral Kysely, shared by SQLite and PostgreSQL: the openers in
 * store/sqlite and store/postgres only build the Kysely instance. Every instance state change is
 * one guarded UPDATE … RETURNING.
 */
import { randomUUID } from 'node:crypto';
import { Migrator, sql, type ExpressionBuilder, type Kysely, type Selectable, type Updateable } from 'kysely';
import { isFailureReason, type FailureReason } from '../../domain/failure-reason.js';
import type { Instance, InstanceSummary, RunHandle, StatementResult } from '../../domain/instance.js';
import type { InstanceHistoryQuery } from '../../domain/instance-history.js';
import {
  ACTIVE_STATES,
  CLAIMED_STATES,
  isInstanceState,
  isTerminal,
  STATE_CHANGES,
  TERMINAL_STATES,
  type InstanceState,
} from '../../domain/instance-state.js';
import {
  isScriptType,
  type ApprovalState,
  type Namespace,
  type Script,
  type ScriptInput,
} from '../../domain/script.js';
import type {
  Approval,
  ClaimedRun,
  InstanceHistoryPage,
  InstanceOwner,
  InstanceSignals,
  InstanceStore,
  NewInstance,
  ScriptListQuery,
  ScriptPage,
  ScriptStore,
  Store,
  TransitionPatch,
} from '../store.js';
import { CompiledShapes } from './compiled-shapes.js';
import { KyselyConnectionStore, KyselySystemTaskStore } from './connection-store.js';
import { KyselyCredentialStore } from './credential-store.js';
import { KyselyEnvironmentVariableStore } from './environment-variable-store.js';
import { KyselyIdempotencyKeyStore } from './idempotency-key-store.js';
import { KyselyInstanceLogStore } from './instance-log-store.js';
import { dbNowMillis, substringFunction, type StoreDialect } from './dialect.js';
import { migrationProvider } from './migrations.js';
import { matchingSeqs, NamespaceOrderCache } from './namespace-order.js';
import { toDate, toDateOrNull, type Database, type InstancesTable, type ScriptsTable } from './schema.js';

function toScript(row: Selectable<ScriptsTable>): Script {
  if (!isScriptType(row.type)) throw new Error(`corrupt script row ${row.id}: type ${row.type}`);
  const script: Script = {
    id: row.id,
    namespace: { projectId: row.project_id, workspaceId: row.workspace_id },
    name: row.name,
    type: row.type,
    content: row.content,
    directory: row.directory,
    connectionName: row.connection_name,
    database: row.database_name,
    queueName: row.queue_name,
    configuration: JSON.parse(row.configuration) as Record<string, string>,
    description: row.description,
    owner: row.owner,
    createUser: row.create_user,
    approvalState: row.approval_state as ApprovalState,
    approvedBy: row.approved_by,
    version: row.version,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
  if (row.target_status !== null) script.targetStatus = row.target_status;
  if (row.approvers !== null) script.approvers = JSON.parse(row.approvers) as Script['approvers'];
  return script;
}

function toInstance(row: Selectable<InstancesTable>): Instance {
  if (!isInstanceState(row.state)) throw new Error(`corrupt instance row ${row.id}: state ${row.state}`);
  return {
    id: row.id,
    namespace: { projectId: row.project_id, workspaceId: row.workspace_id },
    scriptId: row.script_id,
    scriptName: row.script_name,
    state: row.state,
    connectionName: row.connection_name,
    engine: row.engine,
    nodeId: row.node_id,
    createdAt: toDate(row.created_at),
    startedAt: toDateOrNull(row.started_at),
    endedAt: toDateOrNull(row.ended_at),
    stopRequestedAt: toDateOrNull(row.stop_requested_at),
    stopRequestedBy: row.stop_requested_by,
    startedBy: row.started_by,
    message: row.message,
    exitCode: row.exit_code,
    failureReason:
      row.failure_reason !== null && isFailureReason(row.failure_reason) ? row.failure_reason : null,
    sqlState: row.sql_state,
    results: JSON.parse(row.results) as StatementResult[],
    runHandle: row.run_handle === null ? null : (JSON.parse(row.run_handle) as RunHandle),
    leaseExpiresAt: toDateOrNull(row.lease_expires_at),
  };
}

/** The instances columns a history row leaves out: they can be megabytes each. */
type HeavyInstanceColumn = 'results' | 'run_handle' | 'run_content';
type HistoryColumn = Exclude<keyof InstancesTable, HeavyInstanceColumn>;

/**
 * Every other column, read for run history. A record so that a column added to the table fails
 * the typecheck here until it is listed (or added to the heavy ones).
 */
const HISTORY_COLUMN_SET: Record<HistoryColumn, true> = {
  id: true,
  project_id: true,
  workspace_id: true,
  script_id: true,
  script_name: true,
  state: true,
  connection_name: true,
  engine: true,
  node_id: true,
  created_at: true,
  started_at: true,
  ended_at: true,
  stop_requested_at: true,
  stop_requested_by: true,
  message: true,
  exit_code: true,
  run_script_type: true,
  run_database: true,
  run_timeout_ms: true,
  lease_expires_at: true,
  failure_reason: true,
  sql_state: true,
  started_by: true,
};
const HISTORY_COLUMNS = Object.keys(HISTORY_COLUMN_SET) as HistoryColumn[];

/** A history row as a summary: the heavy columns were not read (toInstance still needs them typed). */
function toInstanceSummary(row: Pick<Selectable<InstancesTable>, HistoryColumn>): InstanceSummary {
  const instance = toInstance({ ...row, results: '[]', run_handle: null, run_content: null });
  const { results: _results, runHandle: _runHandle, ...summary } = instance;
  return summary;
}

function toClaimedRun(row: Selectable<InstancesTable>): ClaimedRun {
  const type = row.run_script_type;
  const request =
    type !== null && isScriptType(type) && row.run_content !== null
      ? {
          scriptType: type,
          content: row.run_content,
          database: row.run_database ?? '',
          ...(row.run_timeout_ms === null ? {} : { timeoutMs: Number(row.run_timeout_ms) }),
        }
      : null;
  return { instance: toInstance(row), request };
}

function mutableColumns(input: ScriptInput) {
  return {
    content: input.content,
    directory: input.directory,
    connection_name: input.connectionName,
    database_name: input.database,
    queue_name: input.queueName,
    configuration: JSON.stringify(input.configuration),
    description: input.description,
    target_status: input.targetStatus ?? null,
    approvers: input.approvers ? JSON.stringify(input.approvers) : null,
  };
}

/** The compiled script reads that miss the SQLite read caches (compiled-shapes.ts), per dialect and shape. */
const SCRIPT_READ_SHAPES = new CompiledShapes();

/** The name filter is an exact substring test (see substringFunction), never LIKE. */
class KyselyScriptStore implements ScriptStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: StoreDialect,
    /** Absent when other processes write scripts unseen (a shared PostgreSQL store). */
    private readonly order?: NamespaceOrderCache,
  ) {}

  async create(ns: Namespace, input: ScriptInput, actor: string, approval: Approval): Promise<boolean> {
    const now = Date.now();
    this.order?.invalidate(ns);
    const created = await this.db.transaction().execute(async (trx) => {
      const result = await trx
        .insertInto('scripts')
        .values({
          id: randomUUID(),
          project_id: ns.projectId,
          workspace_id: ns.workspaceId,
          name: input.name,
          type: input.type,
          ...mutableColumns(input),
          owner: actor,
          create_user: actor,
          approval_state: approval.state,
          approved_by: approval.by,
          version: 1,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.columns(['project_id', 'workspace_id', 'name']).doNothing())
        .executeTakeFirst();
      if (Number(result.numInsertedOrUpdatedRows ?? 0n) !== 1) return false;
      await trx
        .insertInto('namespace_counters')
        .values({ project_id: ns.projectId, workspace_id: ns.workspaceId, scripts: 1 })
        .onConflict((oc) =>
          oc
            .columns(['project_id', 'workspace_id'])
            .doUpdateSet((eb) => ({ scripts: eb('namespace_counters.scripts', '+', 1) })),
        )
        .execute();
      return true;
    });
    this.order?.invalidate(ns);
    return created;
  }

  async get(ns: Namespace, name: string): Promise<Script | undefined> {
    const cached = this.order?.script(ns, name);
    if (cached !== undefined) return cached;
    const token = this.order?.loadToken();
    const query = SCRIPT_READ_SHAPES.compile(
      `${this.dialect} get`,
      [ns.projectId, ns.workspaceId, name],
      ([projectId, workspaceId, scriptName]) =>
        this.db
          .selectFrom('scripts')
          .selectAll()
          .where('project_id', '=', projectId as string)
          .where('workspace_id', '=', workspaceId as string)
          .where('name', '=', scriptName as string),
    );
    const [row] = (await this.db.executeQuery<Selectable<ScriptsTable>>(query)).rows;
    if (!row) return undefined;
    const script = toScript(row);
    if (token !== undefined) this.order?.putScript(row.seq, script, token);
    return script;
  }

  async update(ns: Namespace, input: ScriptInput, approval: Approval): Promise<boolean> {
    this.order?.invalidate(ns, input.name);
    const result = await this.db
      .updateTable('scripts')
      .set((eb) => ({
        ...mutableColumns(input),
        approval_state: approval.state,
        approved_by: approval.by,
        version: eb('version', '+', 1),
        updated_at: Date.now(),
      }))
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', input.name)
      .executeTakeFirst();
    this.order?.invalidate(ns, input.name);
    return Number(result.numUpdatedRows) === 1;
  }

  async setApproval(
    ns: Namespace,
    name: string,
    from: { readonly states: readonly ApprovalState[]; readonly version: number },
    approval: Approval,
  ): Promise<boolean> {
    this.order?.invalidate(ns, name);
    const result = await this.db
      .updateTable('scripts')
      .set({ approval_state: approval.state, approved_by: approval.by })
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', name)
      .where('approval_state', 'in', [...from.states])
      .where('version', '=', from.version)
      .executeTakeFirst();
    this.order?.invalidate(ns, name);
    return Number(result.numUpdatedRows) === 1;
  }

  async delete(ns: Namespace, name: string): Promise<string | undefined> {
    this.order?.invalidate(ns, name);
    const deleted = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .deleteFrom('scripts')
        .where('project_id', '=', ns.projectId)
        .where('workspace_id', '=', ns.workspaceId)
        .where('name', '=', name)
        .returning('id')
        .executeTakeFirst();
      if (!row) return undefined;
      await trx
        .updateTable('namespace_counters')
        .set((eb) => ({ scripts: eb('scripts', '-', 1) }))
        .where('project_id', '=', ns.projectId)
        .where('workspace_id', '=', ns.workspaceId)
        .execute();
      // The instances stay for the caller to stop (deleteForScript removes them): the row is gone,
      // so no new one can be inserted (InstanceStore.create is guarded by it).
      return row.id;
    });
    this.order?.invalidate(ns, name);
    return deleted;
  }

  /**
   * With the namespace's order and names in memory (NamespaceOrderCache, SQLite) the page is found
   * by position and a name filter tested in memory. Otherwise, unfiltered, `total` is the namespace
   * counter (one row) and the page a deferred join, whose OFFSET walks only the (project,
   * workspace, seq) index and reads just the page's rows; a name filter counts and pages over the
   * namespace's rows.
   */
  async list(ns: Namespace, query: ScriptListQuery): Promise<ScriptPage> {
    if (this.order) return this.listByPosition(ns, query, this.order);
    let base = this.db
      .selectFrom('scripts')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId);
    if (query.nameContains !== '') {
      base = base.where((eb) =>
        eb(eb.fn(substringFunction(this.dialect), ['name', eb.val(query.nameContains)]), '>', 0),
      );
    }
    const total =
      query.nameContains === ''
        ? await this.count(ns)
        : Number((await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    if (total <= query.offset) return { total, scripts: [] };
    const page = base.select('seq').orderBy('seq').limit(query.limit).offset(query.offset);
    const rows = await this.db
      .selectFrom('scripts')
      .selectAll()
      .where('seq', 'in', page)
      .orderBy('seq')
      .execute();
    return { total, scripts: rows.map(toScript) };
  }

  private async listByPosition(
    ns: Namespace,
    query: ScriptListQuery,
    cache: NamespaceOrderCache,
  ): Promise<ScriptPage> {
    let order = cache.get(ns);
    if (order === undefined) {
      const token = cache.loadToken();
      const rows = await this.db
        .selectFrom('scripts')
        .select(['seq', 'name'])
        .where('project_id', '=', ns.projectId)
        .where('workspace_id', '=', ns.workspaceId)
        .orderBy('seq')
        .execute();
      order = { seqs: rows.map((r) => Number(r.seq)), names: rows.map((r) => r.name) };
      cache.put(ns, order, token);
    }
    const needle = query.nameContains;
    const matching = matchingSeqs(order, needle);
    const pageSeqs = matching.slice(query.offset, query.offset + query.limit);
    const total = matching.length;
    const first = pageSeqs[0];
    const last = pageSeqs[pageSeqs.length - 1];
    if (first === undefined || last === undefined) return { total, scripts: [] };
    const cached = cache.scriptsBySeq(pageSeqs);
    if (cached !== undefined) return { total, scripts: cached };
    const rowsToken = cache.loadToken();
    // Unfiltered, the page is every seq from first to last; filtered, only the matching ones.
    const seqArguments = needle === '' ? [first, last] : pageSeqs;
    const rowsQuery = SCRIPT_READ_SHAPES.compile(
      `${this.dialect} page ${needle === '' ? 'range' : `in ${pageSeqs.length}`}`,
      [ns.projectId, ns.workspaceId, ...seqArguments],
      ([projectId, workspaceId, ...seqs]) => {
        const inNamespace = this.db
          .selectFrom('scripts')
          .selectAll()
          .where('project_id', '=', projectId as string)
          .where('workspace_id', '=', workspaceId as string);
        return (
          needle === ''
            ? inNamespace.where('seq', '>=', seqs[0] as number).where('seq', '<=', seqs[1] as number)
            : inNamespace.where('seq', 'in', seqs as number[])
        ).orderBy('seq');
      },
    );
    const { rows } = await this.db.executeQuery<Selectable<ScriptsTable>>(rowsQuery);
    const scripts = rows.map((row) => {
      const script = toScript(row);
      cache.putScript(row.seq, script, rowsToken);
      return script;
    });
    return { total, scripts };
  }

  async count(ns: Namespace): Promise<number> {
    const row = await this.db
      .selectFrom('namespace_counters')
      .select('scripts')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .executeTakeFirst();
    return Number(row?.scripts ?? 0);
  }
}

/** The compiled instance insert and transitions, per dialect and shape (shared by every store). */
const INSTANCE_SHAPES = new CompiledShapes();

class KyselyInstanceStore implements InstanceStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: StoreDialect,
  ) {}

  /** `now + ms` on the database clock. */
  private leaseUntil(ms: number) {
    return this.leaseUntilParameter(Math.round(ms));
  }

  /** `now + ms` with ms as given (a whole number, or a compiled shape's placeholder). */
  private leaseUntilParameter(ms: unknown) {
    return sql<number>`${dbNowMillis(this.dialect)} + ${ms}`;
  }

  async create(i: NewInstance, createdAt: Date): Promise<Instance | undefined> {
    // Claimed at insert (the accepting node has a free slot): the same row a claim would write, in
    // one statement instead of an insert and a claim.
    const values: Partial<Record<keyof InstancesTable, string | number>> = {
      id: i.id,
      project_id: i.namespace.projectId,
      workspace_id: i.namespace.workspaceId,
      script_id: i.scriptId,
      script_name: i.scriptName,
      state: i.claim ? STATE_CHANGES.claim.to : 'QUEUED',
      connection_name: i.connectionName,
      engine: i.engine,
      node_id: i.nodeId,
      created_at: createdAt.getTime(),
      message: '',
      results: '[]',
      run_script_type: i.request.scriptType,
      run_content: i.request.content,
      run_database: i.request.database,
      ...(i.request.timeoutMs === undefined ? {} : { run_timeout_ms: i.request.timeoutMs }),
      ...(i.startedBy !== undefined ? { started_by: i.startedBy } : {}),
      ...(i.claim ? { started_at: i.claim.startedAt.getTime() } : {}),
    };
    const columns = Object.keys(values) as (keyof InstancesTable)[];
    const leaseMs = i.claim ? [Math.round(i.claim.leaseMs)] : [];
    // INSERT … SELECT … FROM scripts WHERE id = the script's: nothing is inserted once the script
    // row is gone. On PostgreSQL the row is locked FOR KEY SHARE, so a delete committing at the same
    // moment either comes first (no insert) or waits for this insert (and then sees the instance).
    // Compiled once per set of columns (compiled-shapes.ts): args are the values, the lease, the script.
    const query = INSTANCE_SHAPES.compile(
      `${this.dialect} create ${columns.join()} ${leaseMs.length}`,
      [...columns.map((column) => values[column]), ...leaseMs, i.scriptId],
      (args) =>
        this.db
          .insertInto('instances')
          .columns(leaseMs.length > 0 ? [...columns, 'lease_expires_at'] : columns)
          .expression((eb) =>
            eb
              .selectFrom('scripts')
              .select([
                ...columns.map((column, index) => eb.val(args[index]).as(column)),
                ...(leaseMs.length > 0
                  ? [this.leaseUntilParameter(args[columns.length]).as('lease_expires_at')]
                  : []),
              ])
              .where('scripts.id', '=', args[args.length - 1] as string)
              .$if(this.dialect === 'postgres', (qb) => qb.forKeyShare()),
          )
          .returningAll(),
    );
    const [row] = (await this.db.executeQuery<Selectable<InstancesTable>>(query)).rows;
    return row ? toInstance(row) : undefined;
  }

  async get(id: string): Promise<Instance | undefined> {
    const query = INSTANCE_SHAPES.compile(`${this.dialect} get`, [id], (args) =>
      this.db
        .selectFrom('instances')
        .selectAll()
        .where('id', '=', args[0] as string),
    );
    const [row] = (await this.db.executeQuery<Selectable<InstancesTable>>(query)).rows;
    return row ? toInstance(row) : undefined;
  }

  async transition(
    id: string,
    from: readonly InstanceState[],
    to: InstanceState,
    patch: TransitionPatch,
  ): Promise<Instance | undefined> {
    // The sources come from the caller's named change (domain STATE_CHANGES); this is the guard.
    // Whatever a caller passes, a terminal state (no way out in the table) is never a source.
    const sources = from.filter((state) => !isTerminal(state));
    if (sources.length === 0) return undefined;
    const set: Updateable<InstancesTable> = { state: to };
    // A settled instance is no longer leased to anyone.
    if (isTerminal(to)) set.lease_expires_at = null;
    if (patch.startedAt) set.started_at = patch.startedAt.getTime();
    if (patch.endedAt) set.ended_at = patch.endedAt.getTime();
    if (patch.message !== undefined) set.message = patch.message;
    if (patch.exitCode !== undefined) set.exit_code = patch.exitCode;
    if (patch.failureReason !== undefined) set.failure_reason = patch.failureReason;
    if (patch.sqlState !== undefined) set.sql_state = patch.sqlState;
    if (patch.results !== undefined) set.results = JSON.stringify(patch.results);
    if (patch.runHandle !== undefined) {
      set.run_handle = patch.runHandle === null ? null : JSON.stringify(patch.runHandle);
    }
    // The WHERE clause is the lock: zero rows means another writer already moved the instance.
    // Compiled once per shape (compiled-shapes.ts): args are the set values, the stop, id, sources.
    // A stop recorded with the settle (the run was stopped on this node before the request was
    // written): the first recorded request wins, as with recordStopRequest.
    const setColumns = Object.keys(set) as (keyof InstancesTable)[];
    const stopArgs = patch.stopRequest ? [patch.stopRequest.at.getTime(), patch.stopRequest.by] : [];
    const query = INSTANCE_SHAPES.compile(
      `${this.dialect} transition ${setColumns.join()} ${stopArgs.length} ${sources.length}`,
      [...setColumns.map((column) => set[column]), ...stopArgs, id, ...sources],
      (args) => {
        const values = Object.fromEntries(setColumns.map((column, index) => [column, args[index]]));
        const at = setColumns.length;
        const stopSet =
          stopArgs.length > 0
            ? {
                stop_requested_at: sql<number>`coalesce(stop_requested_at, ${args[at]})`,
                stop_requested_by: sql<string>`coalesce(stop_requested_by, ${args[at + 1]})`,
              }
            : {};
        const after = at + stopArgs.length;
        return this.db
          .updateTable('instances')
          .set({ ...values, ...stopSet })
          .where('id', '=', args[after] as string)
          .where('state', 'in', args.slice(after + 1) as InstanceState[])
          .returningAll();
      },
    );
    const [row] = (await this.db.executeQuery<Selectable<InstancesTable>>(query)).rows;
    return row ? toInstance(row) : undefined;
  }

  async recordStopRequest(id: string, at: Date, by: string): Promise<boolean> {
    const result = await this.db
      .updateTable('instances')
      .set({ stop_requested_at: at.getTime(), stop_requested_by: by })
      .where('id', '=', id)
      .where('state', 'in', [...ACTIVE_STATES])
      .where('stop_requested_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async requestStop(
    id: string,
    owner: InstanceOwner,
    request: { at: Date; by: string },
    queuedSettlement: { message: string; failureReason: FailureReason },
  ): Promise<Instance | undefined> {
    const { from: queued, to: stopped } = STATE_CHANGES.stopQueued;
    // Every SET expression reads the row as it was before this statement: a QUEUED row is settled
    // (stopQueued), a claimed one only takes the request.
    const whenQueued = <T>(value: T, otherwise: keyof InstancesTable) =>
      sql<T>`CASE WHEN state IN (${sql.join([...queued])}) THEN ${value} ELSE ${sql.ref(otherwise)} END`;
    const row = await this.db
      .updateTable('instances')
      .set({
        state: whenQueued<string>(stopped, 'state'),
        ended_at: whenQueued<number>(request.at.getTime(), 'ended_at'),
        message: whenQueued<string>(queuedSettlement.message, 'message'),
        failure_reason: whenQueued<string>(queuedSettlement.failureReason, 'failure_reason'),
        stop_requested_at: sql<number>`coalesce(stop_requested_at, ${request.at.getTime()})`,
        stop_requested_by: sql<string>`coalesce(stop_requested_by, ${request.by})`,
      })
      .where('id', '=', id)
      .where('script_name', '=', owner.scriptName)
      .where('project_id', '=', owner.namespace.projectId)
      .where('workspace_id', '=', owner.namespace.workspaceId)
      .where('state', 'in', [...ACTIVE_STATES])
      .returningAll()
      .executeTakeFirst();
    return row ? toInstance(row) : undefined;
  }

  async claim(nodeId: string, limit: number, leaseMs: number, startedAt: Date): Promise<ClaimedRun[]> {
    if (limit <= 0) return [];
    // Compiled once per shape (compiled-shapes.ts), like the insert and the transitions: a claim
    // follows most runs under load (every execute that found no free slot). Args: node, start, lease.
    const set = (args: readonly unknown[]) => ({
      state: STATE_CHANGES.claim.to,
      node_id: args[0] as string,
      started_at: args[1] as number,
      lease_expires_at: this.leaseUntilParameter(args[2]),
    });
    const common = [nodeId, startedAt.getTime(), Math.round(leaseMs)];
    if (this.dialect === 'sqlite' && limit === 1) {
      // The common claim (one slot just freed). SQLite runs one writer at a time, so the oldest
      // queued id can be a scalar subquery of the guarded update: measured 47 µs against 92-145 µs
      // for the materialised CTE below, which PostgreSQL's SKIP LOCKED needs.
      const query = INSTANCE_SHAPES.compile(`${this.dialect} claim one`, common, (args) =>
        this.db
          .updateTable('instances')
          .set(set(args))
          .where('id', '=', (eb) =>
            eb
              .selectFrom('instances as queued')
              .select('queued.id')
              .where('queued.state', 'in', [...STATE_CHANGES.claim.from])
              .where('queued.stop_requested_at', 'is', null)
              .orderBy('queued.created_at')
              .orderBy('queued.id')
              .limit(1),
          )
          .where('state', 'in', [...STATE_CHANGES.claim.from])
          .returningAll(),
      );
      const { rows } = await this.db.executeQuery<Selectable<InstancesTable>>(query);
      return rows.map(toClaimedRun);
    }
    // The picked ids are materialised once: a LIMIT … SKIP LOCKED subquery inside `IN (…)` may be
    // re-run by the planner and pick different rows each time (measured: 3 rows claimed for 2).
    const query = INSTANCE_SHAPES.compile(`${this.dialect} claim`, [...common, limit], (args) =>
      this.db
        .with(
          (cte) => cte('picked').materialized(),
          (db) =>
            db
              .selectFrom('instances')
              .select('id')
              .where('state', 'in', [...STATE_CHANGES.claim.from])
              // A stop written before the claim wins: the instance never starts.
              .where('stop_requested_at', 'is', null)
              .orderBy('created_at')
              .orderBy('id')
              .limit(args[3] as number)
              // Concurrent claimers skip each other's rows instead of waiting or double-claiming.
              .$if(this.dialect === 'postgres', (qb) => qb.forUpdate().skipLocked()),
        )
        .updateTable('instances')
        .from('picked')
        .set(set(args))
        .whereRef('instances.id', '=', 'picked.id')
        // The guard again on the row itself: the claim is a guarded transition like every other.
        .where('instances.state', 'in', [...STATE_CHANGES.claim.from])
        .returningAll(),
    );
    const { rows } = await this.db.executeQuery<Selectable<InstancesTable>>(query);
    return rows
      .map(toClaimedRun)
      .sort((a, b) => a.instance.createdAt.getTime() - b.instance.createdAt.getTime());
  }

  async renewLeases(nodeId: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .updateTable('instances')
      .set({ lease_expires_at: this.leaseUntil(leaseMs) })
      .where('id', 'in', [...ids])
      .where('node_id', '=', nodeId)
      .where('state', 'in', [...CLAIMED_STATES])
      .returning('id')
      .execute();
    return rows.map((r) => r.id);
  }

  async reapExpired(
    message: string,
    endedAt: Date,
    limit: number,
    spare: readonly string[] = [],
  ): Promise<string[]> {
    const expired = (eb: ExpressionBuilder<Database, 'instances'>) =>
      eb.and([
        eb('instances.state', 'in', [...STATE_CHANGES.reap.from]),
        eb('instances.lease_expires_at', '<', dbNowMillis(this.dialect)),
        ...(spare.length === 0 ? [] : [eb('instances.id', 'not in', [...spare])]),
      ]);
    const rows = await this.db
      .with(
        (cte) => cte('expired').materialized(),
        (db) =>
          db
            .selectFrom('instances')
            .select('id')
            .where(expired)
            .limit(limit)
            .$if(this.dialect === 'postgres', (qb) => qb.forUpdate().skipLocked()),
      )
      .updateTable('instances')
      .from('expired')
      .set({
        state: STATE_CHANGES.reap.to,
        message: sql<string>`${message} || ' (node ' || instances.node_id || ')'`,
        failure_reason: 'node_lost' satisfies FailureReason,
        ended_at: endedAt.getTime(),
        lease_expires_at: null,
        // run_handle stays: the lost node releases it when it comes back (recovery).
      })
      .whereRef('instances.id', '=', 'expired.id')
      // Re-checked on the row itself: a heartbeat that renewed it meanwhile wins.
      .where(expired)
      .returning('instances.id')
      .execute();
    return rows.map((r) => r.id);
  }

  async listStopRequested(nodeId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('instances')
      .select('id')
      .where('node_id', '=', nodeId)
      .where('state', 'in', [...CLAIMED_STATES])
      .where('stop_requested_at', 'is not', null)
      .execute();
    return rows.map((r) => r.id);
  }

  async listUnreleased(nodeId: string): Promise<Instance[]> {
    const rows = await this.db
      .selectFrom('instances')
      .selectAll()
      .where('node_id', '=', nodeId)
      .where((eb) => eb.or([eb('state', 'in', [...ACTIVE_STATES]), eb('run_handle', 'is not', null)]))
      .execute();
    return rows.map(toInstance);
  }

  async releaseHandle(id: string): Promise<void> {
    await this.db.updateTable('instances').set({ run_handle: null }).where('id', '=', id).execute();
  }

  async countQueued(): Promise<number> {
    const row = await this.db
      .selectFrom('instances')
      .where('state', '=', 'QUEUED')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async listEndedBefore(before: Date, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('instances')
      .select('id')
      .where('ended_at', '<', before.getTime())
      .where('state', 'in', [...TERMINAL_STATES])
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  async deleteMany(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    // The instances first, then their live logs: an append guarded by the instance row (see
    // instance-log-store.ts) either lands before this transaction or stores nothing.
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .deleteFrom('instances')
        .where('id', 'in', [...ids])
        .executeTakeFirst();
      await trx
        .deleteFrom('instance_logs')
        .where('instance_id', 'in', [...ids])
        .execute();
      return Number(result.numDeletedRows);
    });
  }

  async deleteForScript(scriptId: string): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const deleted = await trx
        .deleteFrom('instances')
        .where('script_id', '=', scriptId)
        .returning('id')
        .execute();
      const ids = deleted.map((row) => row.id);
      // In slices: SQLite takes at most 32,766 parameters per statement.
      for (let at = 0; at < ids.length; at += 1_000) {
        await trx
          .deleteFrom('instance_logs')
          .where('instance_id', 'in', ids.slice(at, at + 1_000))
          .execute();
      }
      return ids.length;
    });
  }

  /**
   * Two statements on the run-history indexes (0009, without the state index since 0013: a state
   * filter reads `state` from the time-ordered index): the count, then the page's ids (an index range read
   * backwards, OFFSET walking index entries only), and only then the page's rows — without the
   * results, which can be megabytes each.
   */
  async history(ns: Namespace, query: InstanceHistoryQuery): Promise<InstanceHistoryPage> {
    if (query.states?.length === 0) return { total: 0, instances: [] };
    let base = this.db
      .selectFrom('instances')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId);
    if (query.scriptName !== undefined) base = base.where('script_name', '=', query.scriptName);
    if (query.scriptId !== undefined) base = base.where('script_id', '=', query.scriptId);
    if (query.states !== undefined) base = base.where('state', 'in', [...query.states]);
    if (query.createdFrom) base = base.where('created_at', '>=', query.createdFrom.getTime());
    if (query.createdBefore) base = base.where('created_at', '<', query.createdBefore.getTime());
    const counted = await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    const total = Number(counted.n);
    if (total <= query.offset) return { total, instances: [] };
    const page = base
      .select('id')
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit)
      .offset(query.offset);
    const rows = await this.db
      .selectFrom('instances')
      .select(HISTORY_COLUMNS)
      .where('id', 'in', page)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return { total, instances: rows.map(toInstanceSummary) };
  }

  async listForScript(scriptId: string, limit: number): Promise<Instance[]> {
    const rows = await this.db
      .selectFrom('instances')
      .selectAll()
      .where('script_id', '=', scriptId)
      .orderBy('created_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toInstance);
  }
}

/**
 * Applies pending migrations and returns the store over `db`. On failure the Kysely instance is
 * destroyed (the caller's pool or file handle with it) and the error names the failed migration.
 */
export async function openKyselyStore(
  db: Kysely<Database>,
  dialect: StoreDialect,
  options: {
    migrationTableSchema?: string;
    /** Runs the migrations through this instance instead of `db` (the caller closes it). */
    migrateWith?: Kysely<Database>;
    /** How processes sharing this store signal each other; closed with the store. */
    signals: InstanceSignals & { close(): Promise<void> };
    shared: boolean;
    /**
     * A number that changes when another process commits to the store (SQLite's data_version);
     * absent where that cannot be read cheaply (PostgreSQL). See CredentialStore.changeStamp.
     */
    externalChanges?: () => number;
  },
): Promise<Store> {
  const migrator = new Migrator({
    db: options.migrateWith ?? db,
    provider: migrationProvider(dialect),
    ...(options.migrationTableSchema === undefined
      ? {}
      : { migrationTableSchema: options.migrationTableSchema }),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    await options.signals.close();
    await db.destroy();
    throw new Error(`store migration failed${failed ? ` in ${failed.migrationName}` : ''}`, { cause: error });
  }
  return {
    shared: options.shared,
    signals: options.signals,
    credentials: new KyselyCredentialStore(db, options.externalChanges),
    scripts: new KyselyScriptStore(
      db,
      dialect,
      options.externalChanges && new NamespaceOrderCache(options.externalChanges),
    ),
    instances: new KyselyInstanceStore(db, dialect),
    connections: new KyselyConnectionStore(db, dialect, options.externalChanges),
    systemTasks: new KyselySystemTaskStore(db),
    environmentVariables: new KyselyEnvironmentVariableStore(db),
    // The instance is inserted by the instance store's own statement, in the key's transaction.
    idempotencyKeys: new KyselyIdempotencyKeyStore(db, (trx, instance, createdAt) =>
      new KyselyInstanceStore(trx, dialect).create(instance, createdAt),
    ),
    instanceLogs: new KyselyInstanceLogStore(db, dialect),
    adoptSetting: async (name, value) => {
      await db
        .insertInto('settings')
        .values({ name, value })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const row = await db
        .selectFrom('settings')
        .select('value')
        .where('name', '=', name)
        .executeTakeFirstOrThrow();
      return row.value;
    },
    readSetting: async (name) => {
      const row = await db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst();
      return row?.value;
    },
    ping: async () => {
      await sql`SELECT 1`.execute(db);
    },
    close: async () => {
      await options.signals.close();
      await db.destroy();
    },
  };
}
