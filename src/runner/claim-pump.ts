/**
 * This node's half of the store-backed queue: claims QUEUED instances while it has free run slots
 * (`InstanceStore.claim`: FOR UPDATE SKIP LOCKED on PostgreSQL, so each is claimed exactly once),
 * one claim loop at a time.
 *
 * It also knows when the queue is empty: after a claim that found fewer rows than it asked for, and
 * until new work may have been queued (this node queued some, another node signalled `work`, the
 * signal connection reconnected). With a private store (SQLite) this node is the only writer, so the
 * knowledge is exact and no claim query is sent while it holds; with a shared store the poll still
 * claims, because another node's `work` signal may have been lost.
 */
import type { Logger } from 'pino';
import type { ClaimedRun, InstanceStore } from '../store/store.js';
import type { RunObserver } from './run-observer.js';

export interface ClaimPumpConfig {
  readonly nodeId: string;
  readonly leaseMs: number;
  /** Whether other nodes may queue work in the same store. */
  readonly shared: boolean;
}

export class ClaimPump {
  private claiming = true;
  private pumping = false;
  private pumpAgain = false;
  private queueEmpty = false;
  /** performance.now() when work was last possibly queued (see workMayBeQueued). */
  private lastQueuedAt = -Infinity;

  constructor(
    private readonly instances: Pick<InstanceStore, 'claim'>,
    private readonly config: ClaimPumpConfig,
    /** Run slots free on this node right now. */
    private readonly freeSlots: () => number,
    /** Takes a claimed run; `leaseValidUntil` is the performance.now() its lease certainly holds to. */
    private readonly begin: (run: ClaimedRun, leaseValidUntil: number) => void,
    /** Runs store work tracked until it ends (awaited by shutdown). */
    private readonly track: (task: () => Promise<void>) => void,
    private readonly log: Logger,
    private readonly observer: Pick<RunObserver, 'storeError'>,
    /**
     * When stop requests for instances this node does not hold are being written: a promise that
     * settles once those writes have ended. A claim waits for it, so a stop whose write began
     * before the claim always reaches the store first and the claim can no longer take that
     * instance (without it, a slot freed by a stop in the same burst could claim a queued instance
     * whose own stop was already being handled).
     */
    private readonly stopWritesEnded: () => Promise<void> | undefined = () => undefined,
  ) {}

  get accepting(): boolean {
    return this.claiming;
  }

  /** No QUEUED row exists that this node could claim (as far as it can know). */
  get queueKnownEmpty(): boolean {
    return this.queueEmpty;
  }

  /**
   * New work may be waiting in the store from now on (queued here, signalled, or signals were
   * missed); remembered by time, so a claim already in flight does not mark the queue empty.
   */
  workMayBeQueued(): void {
    this.lastQueuedAt = performance.now();
    this.queueEmpty = false;
  }

  stopClaiming(): void {
    this.claiming = false;
  }

  /**
   * Claims while this node has free slots. `fromPoll`: the periodic safety net, which on a shared
   * store claims even when the queue looked empty (a `work` signal may have been lost).
   */
  pump(fromPoll = false): void {
    if (!this.claiming) return;
    if (fromPoll && this.config.shared) this.queueEmpty = false;
    if (this.queueEmpty) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.track(() =>
      this.claimWhileFree().finally(() => {
        this.pumping = false;
        if (this.pumpAgain) {
          this.pumpAgain = false;
          this.pump();
        }
      }),
    );
  }

  private async claimWhileFree(): Promise<void> {
    for (;;) {
      // Until none is in flight: a stop that arrives while the claim waits for earlier ones must
      // reach the store first too. Its write, sent before the claim, could otherwise still lose
      // the row lock to the claim on another connection (seen on PostgreSQL under load).
      for (let writes = this.stopWritesEnded(); writes; writes = this.stopWritesEnded()) await writes;
      const free = this.freeSlots();
      if (!this.claiming || free <= 0) return;
      const sentAt = performance.now();
      let claimed: ClaimedRun[];
      try {
        claimed = await this.instances.claim(this.config.nodeId, free, this.config.leaseMs, new Date());
      } catch (error) {
        this.observer.storeError();
        this.log.error({ err: error }, 'could not claim queued instances');
        return;
      }
      for (const run of claimed) this.begin(run, sentAt + this.config.leaseMs);
      if (claimed.length < free) {
        this.markEmptyUnlessQueuedMeanwhile(sentAt);
        return;
      }
    }
  }

  private markEmptyUnlessQueuedMeanwhile(claimSentAt: number): void {
    if (this.lastQueuedAt < claimSentAt) this.queueEmpty = true;
  }
}
