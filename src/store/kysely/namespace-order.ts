/**
 * The list order (seq) of each namespace's scripts, in memory, so an offset page is found by its
 * position instead of an OFFSET that walks the namespace's index entry by entry (60 ns each in
 * SQLite: 300 µs for the middle of 10,000 scripts, the largest cost of a list page under load).
 * With the seqs at hand a page is a key range (`seq BETWEEN first AND last`), the same rows in the
 * same order as the OFFSET query.
 *
 * Only for a store no other process writes scripts to unseen: this process invalidates on its own
 * creates and deletes, and any commit by another connection (SQLite's data_version) drops every
 * entry. A list that loaded while a write ran does not keep what it read (generation check).
 */
import type { Namespace } from '../../domain/script.js';

/** Namespaces kept at once (at most 10,000 seqs each, so a few MB at worst). */
const MAX_NAMESPACES = 64;

const keyOf = (ns: Namespace) => `${ns.projectId}\u0000${ns.workspaceId}`;

export class NamespaceOrderCache {
  private readonly entries = new Map<string, readonly number[]>();
  /** Bumped by every invalidation: a load that started before it must not be stored. */
  private generation = 0;
  private externalVersion: number | undefined;

  constructor(
    /** Changes whenever another process commits to the store (SQLite's data_version). */
    private readonly externalChanges: () => number,
  ) {}

  /** Before and after every write that adds or removes scripts in `ns`. */
  invalidate(ns: Namespace): void {
    this.generation += 1;
    this.entries.delete(keyOf(ns));
  }

  /** The namespace's seqs in list order, or undefined when they must be loaded. */
  get(ns: Namespace): readonly number[] | undefined {
    const external = this.externalChanges();
    if (external !== this.externalVersion) {
      this.externalVersion = external;
      this.generation += 1;
      this.entries.clear();
      return undefined;
    }
    return this.entries.get(keyOf(ns));
  }

  /** The token a load takes before it reads, for `put`. */
  loadToken(): number {
    return this.generation;
  }

  /** Keeps what a load read, unless a write (or another process) may have changed it since. */
  put(ns: Namespace, seqs: readonly number[], token: number): void {
    if (token !== this.generation) return;
    const key = keyOf(ns);
    this.entries.delete(key);
    this.entries.set(key, seqs);
    if (this.entries.size > MAX_NAMESPACES) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }
}
