/**
 * The port through which services hand work to the runner and ask it to stop work. The concrete
 * RunSupervisor (runner/) implements it; services never see processes, queries, timers or nodes.
 */
import type { Instance } from '../domain/instance.js';

export interface RunQueue {
  /** False once shutdown (drain) has begun: this node takes no new work. */
  readonly accepting: boolean;
  /**
   * An instance was persisted QUEUED with its run request: a node with a free slot (this one if
   * it can) claims and runs it.
   */
  announce(instance: Instance): void;
  /**
   * Ends the instance's work in whatever phase it is (queued, launching, running), on whichever
   * node runs it, and resolves once the instance is terminal, or after the configured wait bound
   * if the work is slow to die.
   */
  stop(instanceId: string): Promise<void>;
  /** Resolves when the instance becomes terminal, or after `timeoutMs` (long-polling reads). */
  waitUntilSettled(instanceId: string, timeoutMs: number): Promise<void>;
  /** Removes whatever the runner keeps on disk for these instances (output logs, script files). */
  discardRunFiles(instanceIds: readonly string[]): Promise<void>;
}
