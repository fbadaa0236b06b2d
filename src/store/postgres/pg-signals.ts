/**
 * Instance signals between nodes over PostgreSQL LISTEN/NOTIFY. One dedicated connection listens
 * (pooled connections cannot: LISTEN belongs to a session); NOTIFY goes through the store's pool.
 *
 * The listening connection can be dropped at any moment (server restart, network cut,
 * pg_terminate_backend). It is re-opened with backoff, and every `onReconnect` listener is called so
 * consumers poll the store for whatever they missed: a lost notification only delays a stop.
 *
 * A link that stops carrying packets without a reset looks, to a connection that only listens,
 * exactly like a quiet channel; TCP keepalive notices only a peer that is gone, not a proxy or a
 * middlebox that holds the connection open. So the listener is checked every LISTENER_CHECK_MS
 * with a statement of its own: one that gets no answer within the connection's query deadline
 * (`query_timeout`) drops the connection, and it is re-opened like any other drop.
 */
import pg from 'pg';
import type { InstanceSignal, InstanceSignals } from '../store.js';

export interface PostgresSignalsOptions {
  /** Settings of the listening connection (same database and schema as the store's pool). */
  readonly connection: pg.ClientConfig;
  /** The store's pool, which sends the notifications. */
  readonly pool: pg.Pool;
  /** One channel per store schema, so deployments sharing a database do not hear each other. */
  readonly channel: string;
  readonly onError: (error: Error, during: string) => void;
  /**
   * Held as a session advisory lock by the listening connection while it lives: a second process
   * asking for the same key (a node id already in use) is refused at open.
   */
  readonly exclusiveKey?: string;
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** How often the listening connection must prove it still reaches the server. */
export const LISTENER_CHECK_MS = 5_000;

function encode(signal: InstanceSignal): string {
  return signal.kind === 'work' ? 'work' : `${signal.kind}:${signal.instanceId}`;
}

function decode(payload: string | undefined): InstanceSignal | undefined {
  if (payload === 'work') return { kind: 'work' };
  const [kind, instanceId] = (payload ?? '').split(':', 2);
  if (!instanceId) return undefined;
  if (kind === 'stop' || kind === 'settled') return { kind, instanceId };
  return undefined;
}

export class PostgresSignals implements InstanceSignals {
  private readonly listeners = new Set<(signal: InstanceSignal) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = RECONNECT_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly checkTimer: NodeJS.Timeout;
  private checking = false;

  private constructor(private readonly options: PostgresSignalsOptions) {
    this.checkTimer = setInterval(() => this.check(), LISTENER_CHECK_MS);
    this.checkTimer.unref();
  }

  /** Connects the listener; the store fails to open if PostgreSQL cannot be reached at all. */
  static async open(options: PostgresSignalsOptions): Promise<PostgresSignals> {
    const signals = new PostgresSignals(options);
    try {
      await signals.listen();
    } catch (error) {
      await signals.close();
      throw error;
    }
    return signals;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client(this.options.connection);
    // Without an 'error' handler a terminated backend would crash the process.
    client.on('error', (error) => {
      this.options.onError(error, 'signal listener');
      this.dropped(client);
    });
    client.on('end', () => this.dropped(client));
    client.on('notification', (message) => {
      if (message.channel !== this.options.channel) return;
      const signal = decode(message.payload);
      if (signal) for (const listener of this.listeners) listener(signal);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.options.channel}"`);
      await this.lockExclusiveKey(client);
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.retryMs = RECONNECT_MIN_MS;
  }

  /** One statement on the listening connection; no answer in time (or an error) drops it. */
  private check(): void {
    const client = this.client;
    if (!client || this.checking || this.closed) return;
    this.checking = true;
    client
      .query('SELECT 1')
      .catch((error: unknown) => {
        this.options.onError(error as Error, 'signal listener check');
        this.dropped(client);
      })
      .finally(() => (this.checking = false));
  }

  private async lockExclusiveKey(client: pg.Client): Promise<void> {
    const key = this.options.exclusiveKey;
    if (key === undefined) return;
    const { rows } = await client.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked',
      [`opendlf ${this.options.channel} ${key}`],
    );
    if (rows[0]?.locked !== true) {
      throw new Error(
        `${key} is held by another live process sharing this store (two processes must never share ` +
          'a node id); if that process is gone, PostgreSQL may still keep its session: end it with ' +
          'pg_terminate_backend (see docs/deployment.md)',
      );
    }
  }

  private dropped(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('end');
    void client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.listen().then(
        () => {
          for (const listener of this.reconnectListeners) listener();
        },
        (error: unknown) => {
          this.options.onError(error as Error, 'signal listener reconnect');
          this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
          this.scheduleReconnect();
        },
      );
    }, this.retryMs);
    this.retryTimer.unref();
  }

  publish(signal: InstanceSignal): void {
    if (this.closed) return;
    this.options.pool
      .query('SELECT pg_notify($1, $2)', [this.options.channel, encode(signal)])
      .catch((error: unknown) => this.options.onError(error as Error, 'signal publish'));
  }

  subscribe(listener: (signal: InstanceSignal) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.add(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.checkTimer);
    this.listeners.clear();
    this.reconnectListeners.clear();
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
