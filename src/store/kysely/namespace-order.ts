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
 *
 * A name filter (`matchingSeqs`) tests every name once, about 15 ns each: 150-200 µs at 10,000
 * scripts, most of such a list request (2.5× the same request at 100 scripts). A namespace's order
 * is immutable until the next write replaces it, so what a filter found is kept with it: the
 * matches of the last few needles (paging through one filter repeats its needle), and, once a
 * large namespace is filtered a second time, an index of the names' three-character substrings,
 * so a new needle tests only the names that hold its rarest trigram (7 µs instead of 160 µs for
 * one match in 10,000). Building the index (about 5 ms at 10,000 names) waits for that second
 * filter, so a namespace written between every filtered read never pays for it.
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

/** Below this many names a filter scans them all (15 µs at most); an index would not pay for itself. */
const INDEXED_NAMES_MIN = 1_000;
/** Needles whose matches are kept per namespace order. */
const KEPT_FILTERS = 4;
const GRAM = 3;

interface FilterState {
  /** Filters computed on this order (kept ones not counted): the second builds the index. */
  computed: number;
  /** Trigram → indexes (ascending) of the names that contain it. */
  index: Map<string, Int32Array> | undefined;
  /** Needle → matching seqs, least recently used first. */
  readonly kept: Map<string, readonly number[]>;
}

const filterStates = new WeakMap<NamespaceOrder, FilterState>();

function trigramIndex(names: readonly string[]): Map<string, Int32Array> {
  const lists = new Map<string, number[]>();
  for (const [i, name] of names.entries()) {
    for (let at = 0; at + GRAM <= name.length; at += 1) {
      const gram = name.slice(at, at + GRAM);
      let list = lists.get(gram);
      if (list === undefined) lists.set(gram, (list = []));
      // A name holding a trigram twice is listed once, and the lists stay ascending.
      if (list[list.length - 1] !== i) list.push(i);
    }
  }
  return new Map([...lists].map(([gram, list]) => [gram, Int32Array.from(list)]));
}

/**
 * The indexes of the names that may contain `needle` (each holds all its trigrams): the shortest
 * posting list among its trigrams, empty when one of them occurs in no name.
 */
function candidatesOf(index: Map<string, Int32Array>, needle: string): Int32Array {
  let fewest: Int32Array | undefined;
  for (let at = 0; at + GRAM <= needle.length; at += 1) {
    const list = index.get(needle.slice(at, at + GRAM));
    if (list === undefined) return new Int32Array(0);
    if (fewest === undefined || list.length < fewest.length) fewest = list;
  }
  return fewest ?? new Int32Array(0);
}

/**
 * The seqs of the names containing `needle` (an exact, case-sensitive substring, as the SQL filter:
 * substringFunction), in list order. The returned array is shared: callers must not change it.
 */
export function matchingSeqs(order: NamespaceOrder, needle: string): readonly number[] {
  if (needle === '') return order.seqs;
  let state = filterStates.get(order);
  if (state === undefined) {
    state = { computed: 0, index: undefined, kept: new Map() };
    filterStates.set(order, state);
  }
  const kept = state.kept.get(needle);
  if (kept !== undefined) {
    state.kept.delete(needle);
    state.kept.set(needle, kept);
    return kept;
  }
  state.computed += 1;
  const { seqs, names } = order;
  if (state.index === undefined && state.computed >= 2 && names.length >= INDEXED_NAMES_MIN) {
    state.index = trigramIndex(names);
  }
  const matching: number[] = [];
  const test = (i: number) => {
    const seq = seqs[i];
    if (seq !== undefined && names[i]?.includes(needle) === true) matching.push(seq);
  };
  if (state.index !== undefined && needle.length >= GRAM) {
    for (const i of candidatesOf(state.index, needle)) test(i);
  } else {
    for (let i = 0; i < seqs.length; i += 1) test(i);
  }
  state.kept.set(needle, matching);
  if (state.kept.size > KEPT_FILTERS) {
    const oldest = state.kept.keys().next();
    if (oldest.done !== true) state.kept.delete(oldest.value);
  }
  return matching;
}

interface CachedScript {
  readonly seq: number;
  readonly script: Script;
}

export class NamespaceOrderCache {
  private readonly entries = new Map<string, NamespaceOrder>();
  private readonly scripts = new Map<string, CachedScript>();
  /**
   * The same entries by seq: a page's scripts are one map read each (at random offsets in a large
   * namespace every read is a cache miss, and a seq → key → entry chain paid two).
   */
  private readonly bySeq = new Map<number, CachedScript>();
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
    this.bySeq.clear();
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
      const cached = this.bySeq.get(seq);
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
    const cached = { seq, script };
    this.scripts.set(key, cached);
    this.bySeq.set(seq, cached);
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
    if (this.bySeq.get(cached.seq) === cached) this.bySeq.delete(cached.seq);
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
