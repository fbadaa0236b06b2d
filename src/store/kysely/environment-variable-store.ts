/** Workspace environment variables (extension) in dialect-neutral Kysely. */
import type { Kysely, Selectable } from 'kysely';
import type { Namespace } from '../../domain/script.js';
import type { EnvironmentVariable, EnvironmentVariableStore } from '../store.js';
import { toDate, type Database, type EnvironmentVariablesTable } from './schema.js';

function toVariable(row: Selectable<EnvironmentVariablesTable>): EnvironmentVariable {
  return {
    name: row.name,
    value: row.value,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

export class KyselyEnvironmentVariableStore implements EnvironmentVariableStore {
  constructor(private readonly db: Kysely<Database>) {}

  async put(
    ns: Namespace,
    name: string,
    value: string,
    at: Date,
    maxPerNamespace: number,
  ): Promise<'created' | 'updated' | 'limit'> {
    return this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable('environment_variables')
        .set({ value, updated_at: at.getTime() })
        .where('project_id', '=', ns.projectId)
        .where('workspace_id', '=', ns.workspaceId)
        .where('name', '=', name)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 1) return 'updated';
      const { count } = await trx
        .selectFrom('environment_variables')
        .select((eb) => eb.fn.countAll<number | string>().as('count'))
        .where('project_id', '=', ns.projectId)
        .where('workspace_id', '=', ns.workspaceId)
        .executeTakeFirstOrThrow();
      if (Number(count) >= maxPerNamespace) return 'limit';
      // Two creates of the same name at once: the later insert becomes an update.
      await trx
        .insertInto('environment_variables')
        .values({
          project_id: ns.projectId,
          workspace_id: ns.workspaceId,
          name,
          value,
          created_at: at.getTime(),
          updated_at: at.getTime(),
        })
        .onConflict((oc) =>
          oc.columns(['project_id', 'workspace_id', 'name']).doUpdateSet({ value, updated_at: at.getTime() }),
        )
        .execute();
      return 'created';
    });
  }

  async get(ns: Namespace, name: string): Promise<EnvironmentVariable | undefined> {
    const row = await this.db
      .selectFrom('environment_variables')
      .selectAll()
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    return row && toVariable(row);
  }

  async list(ns: Namespace): Promise<EnvironmentVariable[]> {
    const rows = await this.db
      .selectFrom('environment_variables')
      .selectAll()
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .execute();
    // Sorted here: PostgreSQL's collation may order names differently from SQLite's bytes.
    return rows.map(toVariable).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async delete(ns: Namespace, name: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('environment_variables')
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }
}
