/**
 * Counts failed authentications per client address and per access key (or token id) in fixed
 * one-minute windows. A key over its limit is refused (429, APIGW.0308) for the rest of its window
 * before its credentials are even checked — checking them would turn the 429 into an oracle — so a
 * valid caller behind a throttled address or naming a throttled key waits too; every other address
 * and key is unaffected. Successful authentications are never counted.
 *
 * In memory, per node: a cluster of N nodes allows up to N times the limit, which still turns an
 * online guess of a secret key into years. The table is bounded (oldest windows dropped first), so a
 * flood of distinct keys costs memory once, not without end.
 */

/** Window length; `Retry-After` is what is left of it. */
export const FAILURE_WINDOW_MS = 60_000;
/** Keys remembered at most (addresses plus access keys); ~100 bytes each. */
const MAX_TRACKED_KEYS = 100_000;

export interface ThrottleLimits {
  /** Failures per window from one client address. */
  readonly perAddress: number;
  /** Failures per window naming one access key or token. */
  readonly perAccessKey: number;
}

interface Window {
  startedAt: number;
  failures: number;
}

export class AuthFailureThrottle {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly limits: ThrottleLimits,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Seconds until the caller may try again, or undefined when neither key is over its limit. */
  retryAfterSeconds(address: string, accessKey: string | undefined): number | undefined {
    const now = this.clock();
    const waits = [
      this.waitFor(`address:${address}`, this.limits.perAddress, now),
      accessKey === undefined ? undefined : this.waitFor(`key:${accessKey}`, this.limits.perAccessKey, now),
    ].filter((wait): wait is number => wait !== undefined);
    return waits.length === 0 ? undefined : Math.max(...waits);
  }

  recordFailure(address: string, accessKey: string | undefined): void {
    const now = this.clock();
    this.count(`address:${address}`, now);
    if (accessKey !== undefined) this.count(`key:${accessKey}`, now);
  }

  private waitFor(key: string, limit: number, now: number): number | undefined {
    const window = this.windows.get(key);
    if (!window || now - window.startedAt >= FAILURE_WINDOW_MS || window.failures < limit) return undefined;
    return Math.max(1, Math.ceil((window.startedAt + FAILURE_WINDOW_MS - now) / 1000));
  }

  private count(key: string, now: number): void {
    const window = this.windows.get(key);
    if (window && now - window.startedAt < FAILURE_WINDOW_MS) {
      window.failures += 1;
      return;
    }
    // Re-inserted so the map's insertion order stays the order of window starts (oldest first).
    this.windows.delete(key);
    this.windows.set(key, { startedAt: now, failures: 1 });
    while (this.windows.size > MAX_TRACKED_KEYS) {
      const oldest = this.windows.keys().next();
      if (oldest.done === true) break;
      this.windows.delete(oldest.value);
    }
  }
}
