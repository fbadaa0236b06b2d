/**
 * One connection to a database server kept open while runs come, for the polite stop step
 * (`pg_cancel_backend`, `KILL QUERY`). A driver's pool hands out a connection a tick later
 * (pg-pool and mysql2 both go through `process.nextTick`), so a cancel sent through a pool leaves
 * only after everything the stop request still does synchronously; on this connection the cancel is
 * written to the socket inside the abort event itself. It closes after `idleMs` without a run, and
 * is opened again by the next run.
 */

/** How the engine opens, watches and closes its driver's connection. */
export interface WarmConnectionDriver<Connection> {
  open(): Promise<Connection>;
  /** Calls `lost` once the connection ends or fails (then it is opened again when needed). */
  onLost(connection: Connection, lost: () => void): void;
  close(connection: Connection): void;
}

export class WarmConnection<Connection> {
  private connection: Connection | undefined;
  private opening = false;
  private closed = false;
  private lastUsedAt = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly driver: WarmConnectionDriver<Connection>,
    private readonly idleMs: number,
  ) {}

  /** A run started: keep the connection open (open it if needed) for another `idleMs`. */
  warm(): void {
    this.lastUsedAt = performance.now();
    if (this.connection !== undefined || this.opening || this.closed) return;
    this.opening = true;
    this.driver.open().then(
      (connection) => {
        this.opening = false;
        if (this.closed) {
          this.driver.close(connection);
          return;
        }
        this.connection = connection;
        this.driver.onLost(connection, () => this.forget(connection));
        this.scheduleIdleCheck(this.idleMs);
      },
      // A failure here is the stop's to report (it falls back to the engine's pool), not the run's.
      () => (this.opening = false),
    );
  }

  /** The open connection, or undefined while there is none (the caller uses its pool instead). */
  ready(): Connection | undefined {
    return this.connection;
  }

  close(): void {
    this.closed = true;
    const connection = this.connection;
    if (connection !== undefined) this.forget(connection);
  }

  private forget(connection: Connection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    clearTimeout(this.idleTimer);
    this.driver.close(connection);
  }

  private scheduleIdleCheck(delayMs: number): void {
    this.idleTimer = setTimeout(() => {
      const idleFor = performance.now() - this.lastUsedAt;
      if (idleFor >= this.idleMs) {
        if (this.connection !== undefined) this.forget(this.connection);
      } else this.scheduleIdleCheck(this.idleMs - idleFor);
    }, delayMs);
    this.idleTimer.unref();
  }
}
