/**
 * The wire JSON of scripts and of list pages, UTF-8 encoded, kept by the Script objects they were
 * made from. The store hands out one immutable object per stored version (and serves repeated
 * reads from memory, SQLite), so an object seen again stands for the same bytes: nothing here can
 * be stale, on any store (PostgreSQL hands out new objects per read, which simply miss).
 *
 * - A script read again is not serialised again (JSON.stringify was the largest JavaScript cost
 *   left in a GET script), nor measured and encoded again on its way to the socket, as a string
 *   reply is.
 * - A page read again (the same total and the same script versions in the same order) is sent as
 *   the bytes assembled the first time: joining ten cached scripts, measuring and encoding the 5 kB
 *   cost 5-6 µs per request, copying them into one buffer 3-4 µs (scratch bench, 200,000 each).
 */
import type { Script } from '../domain/script.js';
import { scriptRepresentation } from './representations.js';

const scriptJsonCache = new WeakMap<Script, Buffer>();

export function scriptJson(script: Script): Buffer {
  let bytes = scriptJsonCache.get(script);
  if (bytes === undefined) {
    bytes = Buffer.from(JSON.stringify(scriptRepresentation(script)), 'utf8');
    scriptJsonCache.set(script, bytes);
  }
  return bytes;
}

interface CachedPage {
  readonly total: number;
  readonly scripts: readonly Script[];
  readonly bytes: Buffer;
}

/** Pages kept, by their first script (one page per first script), least recently used first. */
const pages = new Map<Script, CachedPage>();
let pageBytes = 0;
/** Bounds of the page cache: it holds the bytes and keeps the pages' Script objects alive. */
const PAGE_BUDGET = 8 * 1024 * 1024;
const MAX_PAGES = 1_024;

const COMMA = Buffer.from(',');
const PAGE_END = Buffer.from(']}');

const samePage = (page: CachedPage, total: number, scripts: readonly Script[]) =>
  page.total === total &&
  page.scripts.length === scripts.length &&
  page.scripts.every((script, i) => script === scripts[i]);

/** Byte for byte what JSON.stringify of `{ total, scripts }` gives. */
export function scriptPageJson(total: number, scripts: readonly Script[]): Buffer {
  const first = scripts[0];
  const cached = first === undefined ? undefined : pages.get(first);
  if (cached !== undefined && samePage(cached, total, scripts)) {
    pages.delete(first!);
    pages.set(first!, cached);
    return cached.bytes;
  }
  const parts: Buffer[] = [Buffer.from(`{"total":${total},"scripts":[`, 'latin1')];
  for (const [i, script] of scripts.entries()) {
    if (i > 0) parts.push(COMMA);
    parts.push(scriptJson(script));
  }
  parts.push(PAGE_END);
  const bytes = Buffer.concat(parts);
  if (first !== undefined && bytes.length <= PAGE_BUDGET / 16) {
    if (cached !== undefined) {
      pages.delete(first);
      pageBytes -= cached.bytes.length;
    }
    pages.set(first, { total, scripts: [...scripts], bytes });
    pageBytes += bytes.length;
    while (pageBytes > PAGE_BUDGET || pages.size > MAX_PAGES) {
      const oldest = pages.entries().next();
      if (oldest.done === true) break;
      pages.delete(oldest.value[0]);
      pageBytes -= oldest.value[1].bytes.length;
    }
  }
  return bytes;
}
