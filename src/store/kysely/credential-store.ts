/** Credential store (access keys with sealed secret keys, token hashes) in dialect-neutral Kysely. */
import type { Kysely, Selectable } from 'kysely';
import type { Grant } from '../../domain/access.js';
import type { CredentialRecord, CredentialStore } from '../store.js';
import { toDate, toDateOrNull, type CredentialsTable, type Database } from './schema.js';

function toRecord(row: Selectable<CredentialsTable>): CredentialRecord {
  return {
    kind: row.kind === 'token' ? 'token' : 'aksk',
    id: row.id,
    secret: row.secret,
    projects: JSON.parse(row.projects) as string[],
    grants: JSON.parse(row.grants) as Grant[],
    expiresAt: toDateOrNull(row.expires_at),
    createdAt: toDate(row.created_at),
  };
}

export class KyselyCredentialStore implements CredentialStore {
  /** Bumped by this process's own writes and whenever `externalChanges` moved (see changeStamp). */
  private stamp = 0;
  private lastExternal: number | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    /** Changes when another process commits to the store; absent when it cannot be read cheaply. */
    private readonly externalChanges?: () => number,
  ) {
    this.lastExternal = externalChanges?.();
  }

  changeStamp(): number | undefined {
    if (this.externalChanges === undefined) return undefined;
    // Cheap: the SQLite adapter reads data_version at most once per millisecond (dialect.ts).
    const external = this.externalChanges();
    if (external !== this.lastExternal) {
      this.lastExternal = external;
      this.stamp += 1;
    }
    return this.stamp;
  }

  async put(record: CredentialRecord): Promise<void> {
    const row = {
      kind: record.kind,
      id: record.id,
      secret: record.secret,
      projects: JSON.stringify(record.projects),
      grants: JSON.stringify(record.grants),
      expires_at: record.expiresAt ? record.expiresAt.getTime() : null,
      created_at: record.createdAt.getTime(),
    };
    await this.db
      .insertInto('credentials')
      .values(row)
      .onConflict((oc) => oc.columns(['kind', 'id']).doUpdateSet(row))
      .execute();
    this.stamp += 1;
  }

  async get(kind: CredentialRecord['kind'], id: string): Promise<CredentialRecord | undefined> {
    const row = await this.db
      .selectFrom('credentials')
      .selectAll()
      .where('kind', '=', kind)
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async list(): Promise<CredentialRecord[]> {
    const rows = await this.db
      .selectFrom('credentials')
      .selectAll()
      .orderBy('created_at')
      .orderBy('kind')
      .orderBy('id')
      .execute();
    return rows.map(toRecord);
  }

  async remove(kind: CredentialRecord['kind'], id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('credentials')
      .where('kind', '=', kind)
      .where('id', '=', id)
      .executeTakeFirst();
    this.stamp += 1;
    return Number(result.numDeletedRows) === 1;
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('credentials')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
