/**
 * What the RunSupervisor reports about runs, for metrics. An observer must be cheap and must not
 * throw; the supervisor never waits for it.
 */
import type { InstanceState } from '../domain/instance-state.js';

export interface RunObserver {
  /** An execute was queued. */
  runQueued(engine: string): void;
  /** A queued instance got a run slot after waiting `queuedSeconds`. */
  runStarted(engine: string, queuedSeconds: number): void;
  /** A run settled in `state` after `runSeconds` since it started. */
  runEnded(engine: string, state: InstanceState, runSeconds: number): void;
  /** Stop request reached the run → the engine reported the work gone. */
  stopCompleted(engine: string, seconds: number): void;
  /** A persisted transition failed (the store is unreachable or broken). */
  storeError(): void;
  /** This node's reaper settled `count` instances of a lost node. */
  instancesReaped(count: number): void;
  /** This node ended one of its runs because it could not keep the lease (fencing). */
  runFenced(): void;
}

export const NO_RUN_OBSERVER: RunObserver = {
  runQueued: () => undefined,
  runStarted: () => undefined,
  runEnded: () => undefined,
  stopCompleted: () => undefined,
  storeError: () => undefined,
  instancesReaped: () => undefined,
  runFenced: () => undefined,
};
