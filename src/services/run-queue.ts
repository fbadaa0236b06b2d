/**
 * The port through which services hand work to the runner and ask it to stop work. The concrete
 * RunSupervisor (runner/) implements it; services never see processes, queries, timers or nodes.
 */
import type { Instance } from '../domain/instance.js';
import type { InstanceState } from '../domain/instance-state.js';
import type { CreateOnceResult, IdempotencyClaim, InstanceOwner, NewInstance } from '../store/store.js';

/** What execute hands over: the instance to create, without the id and node the runner assigns. */
export type RunSubmission = Omit<NewInstance, 'id' | 'nodeId' | 'claim'>;

export interface RunQueue {
  /** False once shutdown (drain) has begun: this node takes no new work. */
  readonly accepting: boolean;
  /**
   * Persists the instance with its run request and returns it: already claimed by this node when
   * it has a free slot and nothing waits before it, else QUEUED for whichever node has room first.
   * Undefined when the script was deleted meanwhile: no instance was created.
   */
  submit(submission: RunSubmission): Promise<Instance | undefined>;
  /**
   * `submit` under an idempotency key: the key's record and the instance are stored together, or,
   * when the key is already used (also by a concurrent call on any node), nothing is and the first
   * request's record is returned.
   */
  submitOnce(submission: RunSubmission, claim: IdempotencyClaim): Promise<CreateOnceResult>;
  /**
   * Stops a run held by this node at once, before any store access, if `belongs` accepts the run's
   * instance (the caller's namespace and script checks); the request is recorded with its settle.
   * Returns false when the run is not here (then nothing happened).
   */
  stopHere(instanceId: string, actor: string, belongs: (instance: Instance) => boolean): boolean;
  /**
   * Records the stop request of `actor` and delivers it: ends the instance's work in whatever phase
   * it is (queued, launching, running), on whichever node runs it. The request is written before
   * anything is read, guarded by `owner`: a queued instance is settled STOPPED by that write and
   * never starts. Resolves with the instance once it is terminal, or after the configured wait
   * bound if the work is slow to die; undefined when `owner` has no active instance with this id
   * (nothing was done: the caller reads it to tell terminal from someone else's) or it is gone.
   */
  stop(instanceId: string, actor: string, owner: InstanceOwner): Promise<Instance | undefined>;
  /**
   * Resolves with the terminal instance as soon as it settles, or with undefined after
   * `timeoutMs` or when it is gone (long-polling reads).
   */
  waitUntilSettled(instanceId: string, timeoutMs: number): Promise<Instance | undefined>;
  /**
   * The instance as this node claimed it, while this node holds its run and the settle is still to
   * come (that settle wakes `waitUntilSettled` and `settlingHere` with the row); else undefined.
   * Fields the run changes later (state, stop request) are the store's or the settle's to tell.
   */
  heldUnsettled(instanceId: string): Instance | undefined;
  /**
   * True while this node runs the instance and its engine reported the work started: the state is
   * RUNNING even where the store still says LAUNCHING (in-process runs write RUNNING late, if at all).
   */
  runningHere(instanceId: string): boolean;
  /**
   * For an in-process run held here whose work has been aborted (stop, timeout, shutdown) and is
   * ending: resolves with its settled row, or with undefined after `boundMs`. Undefined (no
   * promise) for any other instance.
   */
  settlingHere(instanceId: string, boundMs: number): Promise<Instance | undefined> | undefined;
  /** Removes whatever the runner keeps on disk for these instances (output logs, script files). */
  discardRunFiles(instanceIds: readonly string[]): Promise<void>;
}

/**
 * The state a reader is shown: an in-process run held by this node writes RUNNING late (or never,
 * when it ends first), so a stored LAUNCHING that this node runs reads as RUNNING.
 */
export function liveState(runs: RunQueue, instance: { readonly id: string; readonly state: InstanceState }) {
  return instance.state === 'LAUNCHING' && runs.runningHere(instance.id) ? 'RUNNING' : instance.state;
}
