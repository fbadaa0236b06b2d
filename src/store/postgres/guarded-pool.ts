/**
 * The store's pg.Pool as Kysely sees it. The deadlines themselves are pg's (connectionTimeoutMillis
 * for opening a connection and for waiting for a pooled one, statement_timeout on the server,
 * query_timeout on the client for a link that does not answer at all); this wrapper makes what
 * follows a missed deadline safe and visible:
 *
 *  - a client whose link failed, or whose statement got no answer, is never reused. pg leaves the
 *    unanswered statement in flight on it, so whatever the next user sent would queue behind it —
 *    and a ROLLBACK that never reaches the server would leave the next user inside a stale
 *    transaction. Once broken, the client refuses further statements at once and is destroyed on
 *    release;
 *  - an error that means "the store cannot be reached" becomes DlfError OPENDLF.0504, which the API
 *    answers with 503 (the call may be retried, on another node too), not a 500.
 */
import pg from 'pg';
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import { DlfError } from '../../domain/dlf-error.js';

/**
 * SQLSTATEs that say the server is unreachable for now rather than that the statement is wrong:
 * class 08 (connection exception), 57014 (statement_timeout: no answer within the deadline),
 * class 57P (server shutting down or starting, database dropped, session timeout), 53300 (too many
 * connections). A full disk (53100) is left to the disk-full handling.
 */
function unavailableSqlState(code: string | undefined): boolean {
  if (code === undefined) return false;
  return code.startsWith('08') || code.startsWith('57P') || code === '57014' || code === '53300';
}

/**
 * Whether `error` (from pg) means the link to the store failed or gave no answer in time: anything
 * that is not a server-reported SQL error (socket errors, "Connection terminated", "Query read
 * timeout", "timeout exceeded when trying to connect") except a programming error in the values.
 */
export function linkFailed(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return false;
  return error instanceof Error && !(error instanceof TypeError) && !(error instanceof RangeError);
}

export function storeUnavailable(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return unavailableSqlState(error.code);
  return linkFailed(error);
}

function asStoreError(error: unknown): unknown {
  if (error instanceof DlfError || !storeUnavailable(error)) return error;
  return new DlfError('OPENDLF.0504', undefined, { cause: error });
}

class GuardedClient implements PostgresPoolClient {
  private broken: Error | undefined;

  constructor(private readonly client: pg.PoolClient) {}

  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(
    sqlOrCursor: string | PostgresCursor<R>,
    parameters?: ReadonlyArray<unknown>,
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    // The store's dialect is built without a cursor class, so Kysely never streams.
    if (typeof sqlOrCursor !== 'string') throw new Error('the store does not stream query results');
    return this.run<R>(sqlOrCursor, parameters ?? []);
  }

  private async run<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
    if (this.broken) throw new DlfError('OPENDLF.0504', undefined, { cause: this.broken });
    try {
      // pg types `command` as any string; Kysely only compares it with the few it names.
      return (await this.client.query(sql, [...parameters])) as unknown as PostgresQueryResult<R>;
    } catch (error) {
      if (linkFailed(error)) this.broken = error as Error;
      throw asStoreError(error);
    }
  }

  release(destroy?: boolean): void {
    this.client.release(this.broken ?? destroy === true);
  }
}

export class GuardedPool implements PostgresPool {
  constructor(private readonly pool: pg.Pool) {}

  async connect(): Promise<PostgresPoolClient> {
    try {
      return new GuardedClient(await this.pool.connect());
    } catch (error) {
      // Opening or waiting for a connection: every failure here is the store being out of reach.
      throw error instanceof DlfError ? error : new DlfError('OPENDLF.0504', undefined, { cause: error });
    }
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}
