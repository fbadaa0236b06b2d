/**
 * Execute idempotency keys (extension) in dialect-neutral Kysely. The key row and the instance are
 * inserted in one transaction: the primary key (namespace, script, key) makes a concurrent
 * duplicate's insert wait for the first transaction, then do nothing and read the winner's row
 * (PostgreSQL, READ COMMITTED: each statement sees what committed before it); SQLite runs one
 * transaction at a time. So a key never names an instance that was not created, and a crash
 * between the two inserts leaves neither.
 */
import type { Kysely } from 'kysely';
import type { Instance } from '../../domain/instance.js';
import type {
  CreateOnceResult,
  IdempotencyClaim,
  IdempotencyKeyStore,
  IdempotencyRecord,
  NewInstance,
} from '../store.js';
import type { Namespace } from '../../domain/script.js';
import type { Database } from './schema.js';

/** Inserts the instance with the given executor (the key's transaction). */
export type InsertInstance = (
  trx: Kysely<Database>,
  instance: NewInstance,
  createdAt: Date,
) => Promise<Instance | undefined>;

/** Thrown inside the transaction to roll the key row back when the script was deleted meanwhile. */
class ScriptGone extends Error {}

/** Rows deleted per statement by the expiry sweep (keeps each statement short on a big table). */
const DELETE_BATCH = 1_000;

export class KyselyIdempotencyKeyStore implements IdempotencyKeyStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly insertInstance: InsertInstance,
  ) {}

  async find(
    ns: Namespace,
    scriptId: string,
    key: string,
    notBefore: Date,
  ): Promise<IdempotencyRecord | undefined> {
    const row = await this.db
      .selectFrom('execute_idempotency_keys')
      .select(['instance_id', 'request_hash'])
      .where('project_id', '=', ns.projectId)
      .where('workspace_id', '=', ns.workspaceId)
      .where('script_id', '=', scriptId)
      .where('idempotency_key', '=', key)
      .where('created_at', '>=', notBefore.getTime())
      .executeTakeFirst();
    return row && { instanceId: row.instance_id, requestHash: row.request_hash };
  }

  async createInstanceOnce(
    instance: NewInstance,
    createdAt: Date,
    claim: IdempotencyClaim,
  ): Promise<CreateOnceResult> {
    const { namespace: ns, scriptId } = instance;
    try {
      return await this.db.transaction().execute(async (trx): Promise<CreateOnceResult> => {
        // An expired record is replaced as if it were absent (the sweep may not have run yet).
        await trx
          .deleteFrom('execute_idempotency_keys')
          .where('project_id', '=', ns.projectId)
          .where('workspace_id', '=', ns.workspaceId)
          .where('script_id', '=', scriptId)
          .where('idempotency_key', '=', claim.key)
          .where('created_at', '<', claim.expiredBefore.getTime())
          .execute();
        const inserted = await trx
          .insertInto('execute_idempotency_keys')
          .values({
            project_id: ns.projectId,
            workspace_id: ns.workspaceId,
            script_id: scriptId,
            idempotency_key: claim.key,
            request_hash: claim.requestHash,
            instance_id: instance.id,
            created_at: createdAt.getTime(),
          })
          .onConflict((oc) =>
            oc.columns(['project_id', 'workspace_id', 'script_id', 'idempotency_key']).doNothing(),
          )
          .executeTakeFirst();
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) {
          // Used already: the first request's row (committed, or this statement would have waited).
          const row = await trx
            .selectFrom('execute_idempotency_keys')
            .select(['instance_id', 'request_hash'])
            .where('project_id', '=', ns.projectId)
            .where('workspace_id', '=', ns.workspaceId)
            .where('script_id', '=', scriptId)
            .where('idempotency_key', '=', claim.key)
            .executeTakeFirstOrThrow();
          return { kind: 'existing', record: { instanceId: row.instance_id, requestHash: row.request_hash } };
        }
        const created = await this.insertInstance(trx, instance, createdAt);
        if (!created) throw new ScriptGone();
        return { kind: 'created', instance: created };
      });
    } catch (error) {
      if (error instanceof ScriptGone) return { kind: 'scriptGone' };
      throw error;
    }
  }

  async deleteCreatedBefore(before: Date): Promise<number> {
    let deleted = 0;
    for (;;) {
      const batch = this.db
        .selectFrom('execute_idempotency_keys')
        .select('instance_id')
        .where('created_at', '<', before.getTime())
        .limit(DELETE_BATCH);
      const result = await this.db
        .deleteFrom('execute_idempotency_keys')
        .where('instance_id', 'in', batch)
        .executeTakeFirst();
      const count = Number(result.numDeletedRows);
      deleted += count;
      if (count < DELETE_BATCH) return deleted;
    }
  }
}
