/**
 * The store adapter in dialect-neutral Kysely, shared by SQLite and PostgreSQL: the openers in
 * store/sqlite and store/postgres only build the Kysely instance. Every instance state change is
 * one guarded UPDATE … RETURNING.
 */
import { randomUUID } from 'node:crypto';
import { Migrator, sql, type Kysely, type Selectable, type Updateable } from 'kysely';
import type { Instance, RunHandle, StatementResult } from '../../domain/instance.js';
import { isInstanceState, type InstanceState } from '../../domain/instance-state.js';
import {
  isScriptType,
  type ApprovalState,
  type Namespace,
  type Script,
  type ScriptInput,
} from '../../domain/script.js';
import type {
  Approval,
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
import { substringFunction, type StoreDialect } from './dialect.js';
import { migrationProvider } from './migrations.js';
import { toDate, toDateOrNull, type Database, type InstancesTable, type ScriptsTable } from './schema.js';

const ACTIVE: readonly InstanceState[] = ['QUEUED', 'LAUNCHING', 'RUNNING'];
const TERMINAL: readonly InstanceState[] = ['FINISHED', 'FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED'];

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
    results: JSON.parse(row.results) as StatementResult[],
    runHandle: row.run_handle === null ? null : (JSON.parse(row.run_handle) as RunHandle),
  };
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
  ) {}

  async create(ns: Namespace, input: ScriptInput, actor: string, approval: Approval): Promise<boolean> {
    const now = Date.now();
    const result = await this.db
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
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async get(ns: Namespace, name: string): Promise<Script | undefined> {
    const row = await this.db
      .selectFrom('scripts')
      .selectAll()
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? toScript(row) : undefined;
  }

  async update(ns: Namespace, input: ScriptInput, approval: Approval): Promise<boolean> {
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
    return Number(result.numUpdatedRows) === 1;
  }

  async setApproval(
    ns: Namespace,
    name: string,
    from: readonly ApprovalState[],
    approval: Approval,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('scripts')
      .set({ approval_state: approval.state, approved_by: approval.by })
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', name)
      .where('approval_state', 'in', [...from])
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async delete(ns: Namespace, name: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .deleteFrom('scripts')
        .where('project_id', '=', ns.projectId)
        .where('workspace_id', '=', ns.workspaceId)
        .where('name', '=', name)
        .returning('id')
        .executeTakeFirst();
      if (!row) return false;
      await trx.deleteFrom('instances').where('script_id', '=', row.id).execute();
      return true;
    });
  }

  async list(ns: Namespace, query: ScriptListQuery): Promise<ScriptPage> {
    let base = this.db
      .selectFrom('scripts')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId);
    if (query.nameContains !== '') {
      base = base.where((eb) =>
        eb(eb.fn(substringFunction(this.dialect), ['name', eb.val(query.nameContains)]), '>', 0),
      );
    }
    const countRow = await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    const rows = await base.selectAll().orderBy('seq').limit(query.limit).offset(query.offset).execute();
    return { total: Number(countRow.n), scripts: rows.map(toScript) };
  }

  async count(ns: Namespace): Promise<number> {
    const row = await this.db
      .selectFrom('scripts')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

class KyselyInstanceStore implements InstanceStore {
  constructor(private readonly db: Kysely<Database>) {}

  async create(i: NewInstance, createdAt: Date): Promise<Instance> {
    const row = await this.db
      .insertInto('instances')
      .values({
        id: i.id,
        project_id: i.namespace.projectId,
        workspace_id: i.namespace.workspaceId,
        script_id: i.scriptId,
        script_name: i.scriptName,
        state: 'QUEUED',
        connection_name: i.connectionName,
        engine: i.engine,
        node_id: i.nodeId,
        created_at: createdAt.getTime(),
        message: '',
        results: '[]',
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toInstance(row);
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
    if (from.length === 0) return undefined;
    const set: Updateable<InstancesTable> = { state: to };
    if (patch.startedAt) set.started_at = patch.startedAt.getTime();
    if (patch.endedAt) set.ended_at = patch.endedAt.getTime();
    if (patch.message !== undefined) set.message = patch.message;
    if (patch.exitCode !== undefined) set.exit_code = patch.exitCode;
    if (patch.results !== undefined) set.results = JSON.stringify(patch.results);
    if (patch.runHandle !== undefined) {
      set.run_handle = patch.runHandle === null ? null : JSON.stringify(patch.runHandle);
    }
    // The WHERE clause is the lock: zero rows means another writer already moved the instance.
    const row = await this.db
      .updateTable('instances')
      .set(set)
      .where('id', '=', id)
      .where('state', 'in', [...from])
      .returningAll()
      .executeTakeFirst();
    return row ? toInstance(row) : undefined;
  }

  async recordStopRequest(id: string, at: Date, by: string): Promise<boolean> {
    const result = await this.db
      .updateTable('instances')
      .set({ stop_requested_at: at.getTime(), stop_requested_by: by })
      .where('id', '=', id)
      .where('state', 'in', [...ACTIVE])
      .where('stop_requested_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async listActive(nodeId: string): Promise<Instance[]> {
    const rows = await this.db
      .selectFrom('instances')
      .selectAll()
      .where('node_id', '=', nodeId)
      .where('state', 'in', [...ACTIVE])
      .execute();
    return rows.map(toInstance);
  }

  async listEndedBefore(before: Date, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('instances')
      .select('id')
      .where('ended_at', '<', before.getTime())
      .where('state', 'in', [...TERMINAL])
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
  options: { migrationTableSchema?: string } = {},
): Promise<Store> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider(dialect),
    ...(options.migrationTableSchema === undefined
      ? {}
      : { migrationTableSchema: options.migrationTableSchema }),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    await db.destroy();
    throw new Error(`store migration failed${failed ? ` in ${failed.migrationName}` : ''}`, { cause: error });
  }
  return {
    credentials: new KyselyCredentialStore(db),
    scripts: new KyselyScriptStore(db, dialect),
    instances: new KyselyInstanceStore(db),
    connections: new KyselyConnectionStore(db, dialect),
    systemTasks: new KyselySystemTaskStore(db),
    ping: async () => {
      await sql`SELECT 1`.execute(db);
    },
    close: () => db.destroy(),
  };
}
