/**
 * Script reads served from memory for a store no other process writes scripts to unseen (SQLite):
 *
 * - the list order (seq) and names of each namespace, so an offset page is found by its position
 *   instead of an OFFSET that walks the namespace's index entry by entry (60 ns each in SQLite:
 *   300 µs for the middle of 10,000 scripts, the largest cost of a list page under load), and a
 *   name filter tests names in memory instead of reading every row of the namespace twice (count
 *   and page: 7 ms at 10,000 scripts). With the seqs at hand a page is a key range or a key list:
 *   the same rows in the same order;
 * - the scripts read last (by name and by seq, within a byte budget), so a GET script or a page
 *   already read needs no statement at all: in WAL mode every statement opens a read transaction
 *   (about 4 µs of locking) and materialises its row, 24% of a GET script's CPU under load.
 *
 * This process invalidates on its own writes (before and after each, by namespace and name), and
 * any commit by another connection (SQLite's data_version) drops everything. A read that loaded
 * while a write ran does not keep what it read (generation check).
 */
import type { Namespace, Script } from '../../domain/script.js';

/** Namespaces kept at once (at most 10,000 seqs and names each, so a few MB at worst). */
const MAX_NAMESPACES = 64;

/** Scripts kept: their content and a fixed estimate for the other fields, in UTF-16 code units. */
const SCRIPT_BUDGET = 8 * 1024 * 1024;
const SCRIPT_OVERHEAD = 512;
/** Larger scripts are always read from the store. */
const MAX_CACHED_CONTENT = 64 * 1024;

const keyOf = (ns: Namespace) => `${ns.projectId}\u0000${ns.workspaceId}`;
const scriptKeyOf = (ns: Namespace, name: string) => `${ns.projectId}\u0000${ns.workspaceId}\u0000${name}`;
const sizeOf = (script: Script) => script.content.length + SCRIPT_OVERHEAD;

/** A namespace's scripts in list (seq) order: `names[i]` is the name of `seqs[i]`. */
export interface NamespaceOrder {
  readonly seqs: readonly number[];
  readonly names: readonly string[];
}

interface CachedScript {
  readonly seq: number;
  readonly script: Script;
}

export class NamespaceOrderCache {
  private readonly entries = new Map<string, NamespaceOrder>();
  private readonly scripts = new Map<string, CachedScript>();
  private readonly keysBySeq = new Map<number, string>();
  private scriptBytes = 0;
  /** Bumped by every invalidation: a load that started before it must not be stored. */
  private generation = 0;
  private externalVersion: number | undefined;

  constructor(
    /** Changes whenever another process commits to the store (SQLite's data_version). */
    private readonly externalChanges: () => number,
  ) {}

  /** Before and after every write that adds, changes or removes scripts in `ns` (`name`: that one). */
  invalidate(ns: Namespace, name?: string): void {
    this.generation += 1;
    this.entries.delete(keyOf(ns));
    if (name !== undefined) this.dropScript(scriptKeyOf(ns, name));
  }

  /** False (and everything dropped) when another process committed since the last look. */
  private current(): boolean {
    const external = this.externalChanges();
    if (external === this.externalVersion) return true;
    this.externalVersion = external;
    this.generation += 1;
    this.entries.clear();
    this.scripts.clear();
    this.keysBySeq.clear();
    this.scriptBytes = 0;
    return false;
  }

  /** The namespace's seqs and names in list order, or undefined when they must be loaded. */
  get(ns: Namespace): NamespaceOrder | undefined {
    return this.current() ? this.entries.get(keyOf(ns)) : undefined;
  }

  script(ns: Namespace, name: string): Script | undefined {
    return this.current() ? this.scripts.get(scriptKeyOf(ns, name))?.script : undefined;
  }

  /** The scripts of a page by seq, or undefined unless every one is here. */
  scriptsBySeq(seqs: readonly number[]): Script[] | undefined {
    if (!this.current()) return undefined;
    const found: Script[] = [];
    for (const seq of seqs) {
      const key = this.keysBySeq.get(seq);
      const cached = key === undefined ? undefined : this.scripts.get(key);
      if (cached === undefined) return undefined;
      found.push(cached.script);
    }
    return found;
  }

  /** Keeps a script a read returned, unless a write may have changed it since `token`. */
  putScript(seq: number, script: Script, token: number): void {
    if (token !== this.generation || script.content.length > MAX_CACHED_CONTENT) return;
    const key = scriptKeyOf(script.namespace, script.name);
    this.dropScript(key);
    this.scripts.set(key, { seq, script });
    this.keysBySeq.set(seq, key);
    this.scriptBytes += sizeOf(script);
    while (this.scriptBytes > SCRIPT_BUDGET) {
      const oldest = this.scripts.keys().next();
      if (oldest.done === true) break;
      this.dropScript(oldest.value);
    }
  }

  private dropScript(key: string): void {
    const cached = this.scripts.get(key);
    if (cached === undefined) return;
    this.scripts.delete(key);
    this.keysBySeq.delete(cached.seq);
    this.scriptBytes -= sizeOf(cached.script);
  }

  /** The token a load takes before it reads, for `put`. */
  loadToken(): number {
    return this.generation;
  }

  /** Keeps what a load read, unless a write (or another process) may have changed it since. */
  put(ns: Namespace, order: NamespaceOrder, token: number): void {
    if (token !== this.generation) return;
    const key = keyOf(ns);
    this.entries.delete(key);
    this.entries.set(key, order);
    if (this.entries.size > MAX_NAMESPACES) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }
}
