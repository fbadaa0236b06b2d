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

/** Connections kept by the read cache (each a few hundred bytes). */
const MAX_CACHED_CONNECTIONS = 1_000;

/**
 * Connections read last, for a store no other process writes unseen (SQLite): every execute on a
 * stored connection reads its row twice (resolving it for the execute, and again when the run
 * starts, since it may have changed in between), and connections change rarely. This process
 * drops the cache before and after each of its own connection writes, and any commit by another
 * connection (SQLite's data_version) drops it too; a read that overlapped a write is not kept.
 */
class ConnectionReadCache {
  private readonly rows = new Map<string, Connection>();
  private generation = 0;
  private externalVersion: number | undefined;

  constructor(private readonly externalChanges: () => number) {}

  private current(): boolean {
    const external = this.externalChanges();
    if (external === this.externalVersion) return true;
    this.externalVersion = external;
    this.invalidate();
    return false;
  }

  invalidate(): void {
    this.generation += 1;
    this.rows.clear();
  }

  /** A copy, so a caller that changes what it got cannot change the cache. */
  get(key: string): Connection | undefined {
    if (!this.current()) return undefined;
    const row = this.rows.get(key);
    return row && { ...row, config: structuredClone(row.config) };
  }

  loadToken(): number {
    this.current();
    return this.generation;
  }

  put(key: string, row: Connection, token: number): void {
    if (token !== this.generation || !this.current()) return;
    if (this.rows.size >= MAX_CACHED_CONNECTIONS) this.rows.clear();
    this.rows.set(key, { ...row, config: structuredClone(row.config) });
  }
}

const connectionKey = (ns: Namespace, name: string) => `${ns.projectId}\u0000${ns.workspaceId}\u0000${name}`;

export class KyselyConnectionStore implements ConnectionStore {
  private readonly cache: ConnectionReadCache | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: StoreDialect,
    /** SQLite's data_version: with it, reads by name are served from memory between writes. */
    externalChanges?: () => number,
  ) {
    this.cache = externalChanges && new ConnectionReadCache(externalChanges);
  }

  /** Runs a connection write with the read cache dropped before and after it. */
  private async writing<T>(write: () => Promise<T>): Promise<T> {
    this.cache?.invalidate();
    try {
      return await write();
    } finally {
      this.cache?.invalidate();
    }
  }

  private scoped(ns: Namespace) {
    return this.db
      .selectFrom('connections')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId);
  }

  create(ns: Namespace, input: ConnectionInput): Promise<boolean> {
    return this.writing(() => this.insert(ns, input));
  }

  private async insert(ns: Namespace, input: ConnectionInput): Promise<boolean> {
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
    const key = connectionKey(ns, name);
    const cached = this.cache?.get(key);
    if (cached) return cached;
    const token = this.cache?.loadToken();
    const row = await this.scoped(ns).selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) return undefined;
    const connection = toConnection(row);
    if (token !== undefined) this.cache?.put(key, connection, token);
    return connection;
  }

  update(ns: Namespace, input: ConnectionInput): Promise<boolean> {
    return this.writing(() => this.change(ns, input));
  }

  private async change(ns: Namespace, input: ConnectionInput): Promise<boolean> {
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

  delete(ns: Namespace, name: string): Promise<boolean> {
    return this.writing(() => this.remove(ns, name));
  }

  private async remove(ns: Namespace, name: string): Promise<boolean> {
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
