/**
 * Worker side of GoneWatcher (lib.ts): the "statement gone" probe of the stop figures, on a thread
 * of its own so that it does not share the measured server's event loop. A probe in the server's
 * process would read each answer only once the server's own work of that moment (the settle, the
 * stop's response) let it, and so charge that work to "the statement was still running".
 *
 * The first message opens the probe's connection (`{ kind: 'open', probe }`); each later one
 * (`{ kind: 'watch', id, marker, timeoutMs }`) counts the statements carrying the marker back to
 * back until a count finds none, and answers `{ id, at }` with the absolute time
 * (`performance.timeOrigin + performance.now()`, the bench's `now()`) that count answered.
 */
import http from 'node:http';
import { parentPort } from 'node:worker_threads';
import mysql from 'mysql2/promise';
import pg from 'pg';

/** What the probe connects to; the count queries are the ones below. */
export type GoneProbeTarget =
  | { readonly engine: 'postgres'; readonly config: pg.ClientConfig }
  | { readonly engine: 'mariadb'; readonly config: mysql.ConnectionOptions }
  | { readonly engine: 'clickhouse'; readonly port: number };

/** Running statements with the marker, other than the probe's own, as each server reports them. */
export const GONE_PROBE_SQL = {
  postgres:
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
  mariadb:
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE ? AND ID <> CONNECTION_ID()",
  clickhouse: (marker: string) =>
    `SELECT count() FROM system.processes WHERE query LIKE '%${marker}%' ` +
    "AND query NOT LIKE '%system.processes%' FORMAT TSV",
} as const;

export type GoneWorkerRequest =
  | { readonly kind: 'open'; readonly probe: GoneProbeTarget }
  | { readonly kind: 'watch'; readonly id: number; readonly marker: string; readonly timeoutMs: number };

export type GoneWorkerReply =
  | { readonly kind: 'opened'; readonly error?: string }
  | { readonly kind: 'gone'; readonly id: number; readonly at: number; readonly error?: string };

const now = () => performance.timeOrigin + performance.now();
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

function clickHouseCounter(port: number): (marker: string) => Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (sql: string) =>
    new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(text) : reject(new Error(`ClickHouse ${res.statusCode}: ${text}`)),
        );
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(sql);
    });
  return async (marker) => {
    const sql = GONE_PROBE_SQL.clickhouse(marker);
    let text: string;
    try {
      text = await post(sql);
    } catch (error) {
      // The server closes idle keep-alive sockets after 3 s: a request on a just-closed one is retried.
      if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET') throw error;
      text = await post(sql);
    }
    return Number(text.trim());
  };
}

async function open(target: GoneProbeTarget): Promise<(marker: string) => Promise<number>> {
  switch (target.engine) {
    case 'postgres': {
      const client = new pg.Client(target.config);
      client.on('error', () => undefined);
      await client.connect();
      return async (marker) =>
        (await client.query<{ n: number }>(GONE_PROBE_SQL.postgres, [`%${marker}%`])).rows[0]?.n ?? 0;
    }
    case 'mariadb': {
      const connection = await mysql.createConnection(target.config);
      connection.on('error', () => undefined);
      return async (marker) => {
        const [rows] = await connection.query<mysql.RowDataPacket[]>(GONE_PROBE_SQL.mariadb, [`%${marker}%`]);
        return Number(rows[0]?.n ?? 0);
      };
    }
    case 'clickhouse':
      return clickHouseCounter(target.port);
  }
}

let count: ((marker: string) => Promise<number>) | undefined;

async function watch(marker: string, timeoutMs: number): Promise<number> {
  if (!count) throw new Error('the probe is not open');
  const deadline = now() + timeoutMs;
  for (;;) {
    const n = await count(marker);
    const at = now();
    if (n === 0) return at;
    if (at > deadline) throw new Error(`still running ${timeoutMs} ms after the watch began`);
  }
}

parentPort?.on('message', (request: GoneWorkerRequest) => {
  if (request.kind === 'open') {
    open(request.probe).then(
      (counter) => {
        count = counter;
        parentPort?.postMessage({ kind: 'opened' } satisfies GoneWorkerReply);
      },
      (error: unknown) =>
        parentPort?.postMessage({ kind: 'opened', error: message(error) } satisfies GoneWorkerReply),
    );
    return;
  }
  const { id } = request;
  watch(request.marker, request.timeoutMs).then(
    (at) => parentPort?.postMessage({ kind: 'gone', id, at } satisfies GoneWorkerReply),
    (error: unknown) =>
      parentPort?.postMessage({ kind: 'gone', id, at: NaN, error: message(error) } satisfies GoneWorkerReply),
  );
});
