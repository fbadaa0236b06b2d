/**
 * The store adapter in dialect-neutral Kysely, shared by SQLite and PostgreSQL: the openers in
 * store/sqlite and store/postgres only build the Kysely instance. Every instance state change is
 * one guarded UPDATE … RETURNING.
 */
import { randomUUID } from 'node:crypto';
import { Migrator, sql, type ExpressionBuilder, type Kysely, type Selectable, type Updateable } from 'kysely';
import { isFailureReason, type FailureReason } from '../../domain/failure-reason.js';
import type { Instance, RunHandle, StatementResult } from '../../domain/instance.js';
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
import { KyselyConnectionStore, KyselySystemTaskStore } from './connection-store.js';
import { KyselyCredentialStore } from './credential-store.js';
import { KyselyEnvironmentVariableStore } from './environment-variable-store.js';
import { dbNowMillis, substringFunction, type StoreDialect } from './dialect.js';
import { migrationProvider } from './migrations.js';
import { NamespaceOrderCache } from './namespace-order.js';
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

function toClaimedRun(row: Selectable<InstancesTable>): ClaimedRun {
  const type = row.run_script_type;
  const request =
    type !== null && isScriptType(type) && row.run_content !== null
      ? { scriptType: type, content: row.run_content, database: row.run_database ?? '' }
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
    const row = await this.db
      .selectFrom('scripts')
      .selectAll()
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
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
    const { seqs, names } = order;
    // The same test as the SQL filter: an exact, case-sensitive substring (substringFunction).
    const needle = query.nameContains;
    const matching = needle === '' ? seqs : seqs.filter((_seq, i) => names[i]?.includes(needle));
    const pageSeqs = matching.slice(query.offset, query.offset + query.limit);
    const total = matching.length;
    const first = pageSeqs[0];
    const last = pageSeqs[pageSeqs.length - 1];
    if (first === undefined || last === undefined) return { total, scripts: [] };
    const cached = cache.scriptsBySeq(pageSeqs);
    if (cached !== undefined) return { total, scripts: cached };
    const rowsToken = cache.loadToken();
    let rowsQuery = this.db
      .selectFrom('scripts')
      .selectAll()
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId);
    // Unfiltered, the page is every seq from first to last; filtered, only the matching ones.
    rowsQuery =
      needle === ''
        ? rowsQuery.where('seq', '>=', first).where('seq', '<=', last)
        : rowsQuery.where('seq', 'in', pageSeqs);
    const rows = await rowsQuery.orderBy('seq').execute();
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

class KyselyInstanceStore implements InstanceStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: StoreDialect,
  ) {}

  /** `now + ms` on the database clock. */
  private leaseUntil(ms: number) {
    return sql<number>`${dbNowMillis(this.dialect)} + ${Math.round(ms)}`;
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
      ...(i.claim ? { started_at: i.claim.startedAt.getTime() } : {}),
    };
    const columns = Object.keys(values) as (keyof InstancesTable)[];
    const lease = i.claim ? this.leaseUntil(i.claim.leaseMs) : undefined;
    // INSERT … SELECT … FROM scripts WHERE id = the script's: nothing is inserted once the script
    // row is gone. On PostgreSQL the row is locked FOR KEY SHARE, so a delete committing at the same
    // moment either comes first (no insert) or waits for this insert (and then sees the instance).
    const row = await this.db
      .insertInto('instances')
      .columns(lease ? [...columns, 'lease_expires_at'] : columns)
      .expression((eb) =>
        eb
          .selectFrom('scripts')
          .select([
            ...columns.map((column) => eb.val(values[column]).as(column)),
            ...(lease ? [lease.as('lease_expires_at')] : []),
          ])
          .where('scripts.id', '=', i.scriptId)
          .$if(this.dialect === 'postgres', (qb) => qb.forKeyShare()),
      )
      .returningAll()
      .executeTakeFirst();
    return row ? toInstance(row) : undefined;
  }

  async get(id: string): Promise<Instance | undefined> {
    const row = await this.db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
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
    // A stop recorded with the settle (the run was stopped on this node before the request was
    // written): the first recorded request wins, as with recordStopRequest.
    const stop = patch.stopRequest
      ? {
          stop_requested_at: sql<number>`coalesce(stop_requested_at, ${patch.stopRequest.at.getTime()})`,
          stop_requested_by: sql<string>`coalesce(stop_requested_by, ${patch.stopRequest.by})`,
        }
      : {};
    // The WHERE clause is the lock: zero rows means another writer already moved the instance.
    const row = await this.db
      .updateTable('instances')
      .set({ ...set, ...stop })
      .where('id', '=', id)
      .where('state', 'in', sources)
      .returningAll()
      .executeTakeFirst();
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
    if (this.dialect === 'sqlite' && limit === 1) {
      // The common claim (one slot just freed). SQLite runs one writer at a time, so the oldest
      // queued id can be a scalar subquery of the guarded update: measured 47 µs against 92-145 µs
      // for the materialised CTE below, which PostgreSQL's SKIP LOCKED needs.
      const rows = await this.db
        .updateTable('instances')
        .set({
          state: STATE_CHANGES.claim.to,
          node_id: nodeId,
          started_at: startedAt.getTime(),
          lease_expires_at: this.leaseUntil(leaseMs),
        })
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
        .returningAll()
        .execute();
      return rows.map(toClaimedRun);
    }
    // The picked ids are materialised once: a LIMIT … SKIP LOCKED subquery inside `IN (…)` may be
    // re-run by the planner and pick different rows each time (measured: 3 rows claimed for 2).
    const rows = await this.db
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
            .limit(limit)
            // Concurrent claimers skip each other's rows instead of waiting or double-claiming.
            .$if(this.dialect === 'postgres', (qb) => qb.forUpdate().skipLocked()),
      )
      .updateTable('instances')
      .from('picked')
      .set({
        state: STATE_CHANGES.claim.to,
        node_id: nodeId,
        started_at: startedAt.getTime(),
        lease_expires_at: this.leaseUntil(leaseMs),
      })
      .whereRef('instances.id', '=', 'picked.id')
      // The guard again on the row itself: the claim is a guarded transition like every other.
      .where('instances.state', 'in', [...STATE_CHANGES.claim.from])
      .returningAll()
      .execute();
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
    const result = await this.db
      .deleteFrom('instances')
      .where('id', 'in', [...ids])
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async deleteForScript(scriptId: string): Promise<number> {
    const result = await this.db.deleteFrom('instances').where('script_id', '=', scriptId).executeTakeFirst();
    return Number(result.numDeletedRows);
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
