/**
 * Live logs (extension) in dialect-neutral Kysely: each append is one row holding the bytes
 * `[start_offset, end_offset)` of an instance's output, so a byte range is read with the primary
 * key's order and the size is the last row's end. Rows go with their instance (kysely-store.ts
 * deletes them in `deleteMany` and `deleteForScript`).
 */
import type { Kysely } from 'kysely';
import type { InstanceLogStore, LogRange } from '../store.js';
import type { StoreDialect } from './dialect.js';
import type { Database } from './schema.js';

export class KyselyInstanceLogStore implements InstanceLogStore {
  private readonly listeners = new Set<(instanceId: string) => void>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: StoreDialect,
  ) {}

  async append(instanceId: string, offset: number, bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return;
    // INSERT … SELECT … FROM instances: nothing is stored for an instance deleted meanwhile (a late
    // flush after a delete that did not wait for the run). On PostgreSQL the instance row is held
    // FOR KEY SHARE, so a delete committing at the same moment either comes first (no insert) or
    // waits for this insert and then deletes its row too (instances first, then their logs).
    const result = await this.db
      .insertInto('instance_logs')
      .columns(['instance_id', 'start_offset', 'end_offset', 'data'])
      .expression((eb) =>
        eb
          .selectFrom('instances')
          .select([
            eb.val(instanceId).as('instance_id'),
            eb.val(offset).as('start_offset'),
            eb.val(offset + bytes.length).as('end_offset'),
            eb.val(bytes).as('data'),
          ])
          .where('instances.id', '=', instanceId)
          .$if(this.dialect === 'postgres', (qb) => qb.forKeyShare()),
      )
      // A write repeated after an unknown outcome (a statement deadline that still committed).
      .onConflict((oc) => oc.columns(['instance_id', 'start_offset']).doNothing())
      .executeTakeFirst();
    if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 0) return;
    for (const listener of this.listeners) listener(instanceId);
  }

  async read(instanceId: string, offset: number, limit: number): Promise<LogRange> {
    const end = offset + limit;
    const rows =
      limit <= 0
        ? []
        : await this.db
            .selectFrom('instance_logs')
            .select(['start_offset', 'data'])
            .where('instance_id', '=', instanceId)
            .where('end_offset', '>', offset)
            .where('start_offset', '<', end)
            .orderBy('start_offset')
            .execute();
    const last = await this.db
      .selectFrom('instance_logs')
      .select('end_offset')
      .where('instance_id', '=', instanceId)
      .orderBy('start_offset', 'desc')
      .limit(1)
      .executeTakeFirst();
    const parts = rows.map((row) => {
      const start = Number(row.start_offset);
      const data = row.data;
      // Only the part of each stored chunk that lies in [offset, end).
      return data.subarray(Math.max(0, offset - start), Math.max(0, end - start));
    });
    return { bytes: Buffer.concat(parts), size: last ? Number(last.end_offset) : 0 };
  }

  onAppend(listener: (instanceId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
