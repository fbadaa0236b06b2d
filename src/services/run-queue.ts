/**
 * The port through which services hand work to the runner and ask it to stop work. The concrete
 * RunSupervisor (runner/) implements it; services never see processes, queries or timers.
 */
import type { Instance } from '../domain/instance.js';
import type { Engine, EngineRunRequest } from '../engines/engine.js';

export interface RunJob {
  readonly instance: Instance;
  readonly engine: Engine;
  readonly request: Omit<EngineRunRequest, 'runDir' | 'limits'>;
}

export interface RunQueue {
  /** False once shutdown has begun: no new work is taken. */
  readonly accepting: boolean;
  /** Queues an instance already persisted as QUEUED. */
  submit(job: RunJob): void;
  /**
   * Ends the instance's work in whatever phase it is (queued, launching, running) and resolves once
   * the instance is terminal, or after the configured wait bound if the work is slow to die.
   */
  stop(instanceId: string): Promise<void>;
  /** Resolves when the instance becomes terminal, or after `timeoutMs` (long-polling reads). */
  waitUntilSettled(instanceId: string, timeoutMs: number): Promise<void>;
  /** Removes whatever the runner keeps on disk for these instances (output logs, script files). */
  discardRunFiles(instanceIds: readonly string[]): Promise<void>;
}
