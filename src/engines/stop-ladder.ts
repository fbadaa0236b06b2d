/**
 * The stop ladder of a database session. When the run's signal aborts:
 *   1. `polite` runs at once (PostgreSQL `pg_cancel_backend`, MySQL `KILL QUERY`);
 *   2. `forceful` runs `graceMs` later if the run has not returned (`pg_terminate_backend`, `KILL`);
 *   3. `abandon` runs one more `graceMs` later: drop our end of the connection, so the run returns
 *      even when the server cannot be reached to be told (the server ends the session when it
 *      notices the closed socket).
 * `finish()` disarms the ladder and waits for control calls still in flight, so a session is never
 * handed back to a pool while a cancel aimed at it may still land on it (the guard against
 * cancelling the wrong run).
 */

export interface StopSteps {
  polite(): Promise<void>;
  forceful(): Promise<void>;
  abandon(): void;
}

export class StopLadder {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private finished = false;
  private escalated = false;

  constructor(
    private readonly signal: AbortSignal,
    private readonly graceMs: number,
    private readonly steps: StopSteps,
  ) {}

  /** Starts listening; climbs at once when the signal has already aborted. */
  arm(): void {
    if (this.signal.aborted) this.climb();
    else this.signal.addEventListener('abort', this.climb, { once: true });
  }

  /** True once the forceful step was started: the session is not reusable. */
  get forced(): boolean {
    return this.escalated;
  }

  /** Disarms the ladder and waits for control calls already sent. */
  async finish(): Promise<void> {
    this.finished = true;
    this.signal.removeEventListener('abort', this.climb);
    for (const timer of this.timers) clearTimeout(timer);
    await Promise.all(this.inFlight);
  }

  private readonly climb = (): void => {
    if (this.finished) return;
    this.track(() => this.steps.polite());
    this.timers.push(
      setTimeout(() => {
        this.escalated = true;
        this.track(() => this.steps.forceful());
        this.timers.push(setTimeout(() => this.steps.abandon(), this.graceMs));
      }, this.graceMs),
    );
  };

  private track(step: () => Promise<void>): void {
    if (this.finished) return;
    // Best effort: a failed control call must not fail the run; the next rung still comes.
    const call = step().catch(() => undefined);
    this.inFlight.add(call);
    void call.then(() => this.inFlight.delete(call));
  }
}

export const ABORTED = Symbol('aborted');

/**
 * Waits for `promise` unless `signal` aborts first. On abort the promise is left running; the
 * caller hands `onLate` whatever it resolves to (an opened session to close, for instance).
 */
export async function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  onLate: (value: T) => void,
): Promise<T | typeof ABORTED> {
  if (signal.aborted) {
    promise.then(onLate, () => undefined);
    return ABORTED;
  }
  let onAbort!: () => void;
  const aborted = new Promise<typeof ABORTED>((resolve) => {
    onAbort = () => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const first = await Promise.race([promise, aborted]);
    if (first === ABORTED) promise.then(onLate, () => undefined);
    return first;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
