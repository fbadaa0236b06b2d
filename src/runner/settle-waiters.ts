/**
 * Long polls and stop calls waiting for an instance to settle. A settle written on this node wakes
 * them with the settled row itself (no re-read); a `settled` signal from another node wakes them
 * without one, and they read the store once. A lost signal costs at most one poll interval.
 */
import type { Instance } from '../domain/instance.js';
import { isTerminal } from '../domain/instance-state.js';

type Wake = (settled: Instance | undefined) => void;

export class SettleWaiters {
  private readonly waiters = new Map<string, Set<Wake>>();

  constructor(
    private readonly read: (id: string) => Promise<Instance | undefined>,
    private readonly pollMs: number,
  ) {}

  /** Wakes every waiter of `id`, handing them the settled row when the caller has it. */
  wake(id: string, settled?: Instance): void {
    const waiters = this.waiters.get(id);
    if (!waiters) return;
    this.waiters.delete(id);
    for (const wake of waiters) wake(settled);
  }

  /**
   * Resolves with the terminal row as soon as it is known, or with undefined when the instance is
   * gone or `timeoutMs` passed (the caller reads the current row then).
   */
  async untilSettled(id: string, timeoutMs: number, settleWillWake = false): Promise<Instance | undefined> {
    const deadline = performance.now() + timeoutMs;
    // `settleWillWake`: the run is held here and its settle not written yet, so that settle wakes
    // this waiter with the row; the first read is skipped (later ones guard against a lost wake).
    let skipRead = settleWillWake;
    for (;;) {
      const remaining = deadline - performance.now();
      // Registered before the read, so a settle between the read and the wait is not missed.
      const wake = this.register(id, Math.min(remaining, this.pollMs));
      if (skipRead) {
        skipRead = false;
        const settled = await wake.promise;
        if (settled) return settled;
        continue;
      }
      const current = await this.read(id);
      if (!current || isTerminal(current.state) || remaining <= 0) {
        wake.cancel();
        return current && isTerminal(current.state) ? current : undefined;
      }
      const settled = await wake.promise;
      if (settled) return settled;
    }
  }

  /** Resolves after `ms` (with undefined) or when `id` settles. */
  private register(id: string, ms: number): { promise: Promise<Instance | undefined>; cancel: () => void } {
    let cancel: () => void = () => undefined;
    const promise = new Promise<Instance | undefined>((resolve) => {
      const waiters = this.waiters.get(id) ?? new Set<Wake>();
      this.waiters.set(id, waiters);
      const done: Wake = (settled) => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.waiters.get(id) === waiters) this.waiters.delete(id);
        resolve(settled);
      };
      const timer = setTimeout(() => done(undefined), Math.max(0, ms));
      waiters.add(done);
      cancel = () => done(undefined);
    });
    return { promise, cancel };
  }
}
