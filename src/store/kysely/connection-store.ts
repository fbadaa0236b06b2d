/** Connection and system-task stores in dialect-neutral Kysely (SQLite and PostgreSQL). */
import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { isConnectionType, type Connection, type ConnectionInput } from '../../domain/connection.js';
import type { Namespace } from '../../domain/script.js';
import type {
  ConnectionListQuery,
  ConnectionStore,
  SystemSubtask,
  SystemTask,
  SystemTaskStatus,
  SystemTaskStore,
} from '../store.js';
import { substringFunction, type StoreDialect } from './dialect.js';
import { toDate, type ConnectionsTable, type Database } from './schema.js';

function toConnection(row: Selectable<ConnectionsTable>): Connection {
  if (!isConnectionType(row.type)) throw new Error(`corrupt connection row ${row.id}: type ${row.type}`);
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    config: JSON.parse(row.config) as Connection['config'],
    description: row.description,
    version: row.version,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

export class KyselyConnectionStore implements ConnectionStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: StoreDialect,
  ) {}

  private scoped(ns: Namespace) {
    return this.db
      .selectFrom('connections')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId);
  }

  async create(ns: Namespace, input: ConnectionInput): Promise<boolean> {
    const now = Date.now();
    const result = await this.db
      .insertInto('connections')
      .values({
        id: randomUUID(),
        project_id: ns.projectId,
        workspace_id: ns.workspaceId,
        name: input.name,
        type: input.type,
        config: JSON.stringify(input.config),
        description: input.description,
        version: 1,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.columns(['project_id', 'workspace_id', 'name']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async get(ns: Namespace, name: string): Promise<Connection | undefined> {
    const row = await this.scoped(ns).selectAll().where('name', '=', name).executeTakeFirst();
    return row ? toConnection(row) : undefined;
  }

  async update(ns: Namespace, input: ConnectionInput): Promise<boolean> {
    const result = await this.db
      .updateTable('connections')
      .set((eb) => ({
        config: JSON.stringify(input.config),
        description: input.description,
        version: eb('version', '+', 1),
        updated_at: Date.now(),
      }))
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', input.name)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async delete(ns: Namespace, name: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('connections')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }

  async list(ns: Namespace, query: ConnectionListQuery) {
    if (query.types.length === 0) return { total: 0, connections: [] };
    let base = this.scoped(ns).where('type', 'in', [...query.types]);
    if (query.nameContains !== '') {
      base = base.where((eb) =>
        eb(eb.fn(substringFunction(this.dialect), ['name', eb.val(query.nameContains)]), '>', 0),
      );
    }
    const count = await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    const rows = await base.selectAll().orderBy('seq').limit(query.limit).offset(query.offset).execute();
    return { total: Number(count.n), connections: rows.map(toConnection) };
  }
}

export class KyselySystemTaskStore implements SystemTaskStore {
  constructor(private readonly db: Kysely<Database>) {}

  async save(task: SystemTask): Promise<void> {
    const row = {
      id: task.id,
      project_id: task.namespace.projectId,
      workspace_id: task.namespace.workspaceId,
      name: task.name,
      status: task.status,
      message: task.message,
      subtasks: JSON.stringify(task.subtasks),
      start_time: task.startTime,
      end_time: task.endTime,
      last_update: task.lastUpdate,
    };
    await this.db
      .insertInto('system_tasks')
      .values(row)
      .onConflict((oc) => oc.column('id').doUpdateSet(row))
      .execute();
  }

  async get(ns: Namespace, id: string): Promise<SystemTask | undefined> {
    const row = await this.db
      .selectFrom('system_tasks')
      .selectAll()
      .where('id', '=', id)
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      id: row.id,
      namespace: { projectId: row.project_id, workspaceId: row.workspace_id },
      name: row.name,
      status: row.status as SystemTaskStatus,
      message: row.message,
      subtasks: JSON.parse(row.subtasks) as SystemSubtask[],
      startTime: Number(row.start_time),
      endTime: row.end_time === null ? null : Number(row.end_time),
      lastUpdate: Number(row.last_update),
    };
  }
}
