/**
 * Instance signals within one process: the embedded SQLite store has exactly one node, so a signal
 * only needs to reach this process's own listeners. Delivery is deferred to a microtask so that a
 * publisher never runs listener code in the middle of its own state change.
 */
import type { InstanceSignal, InstanceSignals } from './store.js';

export class LocalSignals implements InstanceSignals {
  private readonly listeners = new Set<(signal: InstanceSignal) => void>();

  publish(signal: InstanceSignal): void {
    queueMicrotask(() => {
      for (const listener of this.listeners) listener(signal);
    });
  }

  subscribe(listener: (signal: InstanceSignal) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Nothing to reconnect in one process. */
  onReconnect(): void {}

  close(): Promise<void> {
    this.listeners.clear();
    return Promise.resolve();
  }
}
