/**
 * The objects an EL expression may use — DateUtil, StringUtil, JSONUtil, Env, Job — and nothing
 * else: every method is listed here with its arity, and a name not listed is an error naming it.
 * StringUtil follows org.apache.commons.lang3.StringUtils (which DataArts' StringUtil is): null-safe,
 * `split` drops empty tokens, `substring` counts negative positions from the end.
 */
import { ElError } from './el-error.js';
import { EL_LIMITS } from './parser.js';
import { formatDate, parseDate } from './simple-date-format.js';
import { instantOfWall, resolveTimeZone, wallFieldsOf, wallMillis, type ElTimeZone } from './time-zone.js';
import {
  checkedString,
  ElDate,
  fromJson,
  isElObject,
  preview,
  toJson,
  toText,
  type ElValue,
} from './values.js';

/** What an evaluation is bound to: the execution (Job), its clock, zone and variables. */
export interface ElContext {
  readonly zone: ElTimeZone;
  /** `DateUtil.now()`, epoch ms: one clock reading per execute, so every value agrees. */
  readonly now: number;
  readonly job: {
    readonly name: string;
    readonly projectId: string;
    readonly planTime: number;
    readonly startTime: number;
  };
  /** `Env.get(name)`: the evaluated workspace environment variable, null when there is none. */
  env(name: string): string | null;
  /** `Job.getParam(name)`: the evaluated parameter (execute params, then environment variables). */
  param(name: string): string | null;
}

interface Method {
  readonly arity: readonly [min: number, max: number];
  readonly call: (args: readonly ElValue[], ctx: ElContext) => ElValue;
}

type BuiltinObject = {
  readonly methods: Readonly<Record<string, Method>>;
  readonly properties?: Readonly<Record<string, (ctx: ElContext) => ElValue>>;
};

const own = <T>(record: Readonly<Record<string, T>>, key: string): T | undefined =>
  Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;

// ---- argument coercion -------------------------------------------------------------------------

function describeArg(method: string, index: number): string {
  return `argument ${index + 1} of ${method}`;
}

/** A string argument: null stays null (commons-lang is null-safe); numbers and booleans become text. */
function str(args: readonly ElValue[], index: number, method: string): string | null {
  const v = args[index] ?? null;
  if (v === null || typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new ElError(`${describeArg(method, index)} must be a string, not ${preview(v)}`);
}

function int(args: readonly ElValue[], index: number, method: string): number {
  const v = args[index] ?? null;
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^\s*[+-]?[0-9]{1,15}\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n))
    throw new ElError(`${describeArg(method, index)} must be an integer, not ${preview(v)}`);
  return n;
}

function date(args: readonly ElValue[], index: number, method: string): ElDate {
  const v = args[index] ?? null;
  if (v instanceof ElDate) return v;
  throw new ElError(`${describeArg(method, index)} must be a date (e.g. Job.planTime), not ${preview(v)}`);
}

function zoneArg(args: readonly ElValue[], index: number, method: string): ElTimeZone {
  const id = str(args, index, method);
  if (id === null) throw new ElError(`${describeArg(method, index)} must be a time zone id`);
  return resolveTimeZone(id);
}

// ---- DateUtil ----------------------------------------------------------------------------------

function daysInMonth(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

/** Calendar.add for YEAR/MONTH: same wall time, the day clamped to the target month's length. */
function addMonths(d: ElDate, months: number, zone: ElTimeZone): ElDate {
  const f = wallFieldsOf(d.epochMs, zone);
  const total = f.year * 12 + (f.month - 1) + months;
  const year = Math.floor(total / 12);
  const month = total - year * 12 + 1;
  const day = Math.min(f.day, daysInMonth(year, month));
  return new ElDate(instantOfWall(wallMillis({ ...f, year, month, day }), zone));
}

/**
 * Calendar.add for DAY/WEEK, as GregorianCalendar does it: the same time of day on the new date,
 * read with the old offset, then moved by the change of offset unless that changes the date (so
 * 02:30 + 1 day onto a spring-forward night is 01:30 standard time, and onto a fall-back night the
 * first 01:30).
 */
function addDays(d: ElDate, days: number, zone: ElTimeZone): ElDate {
  const f = wallFieldsOf(d.epochMs, zone);
  const oldOffset = zone.offsetAt(d.epochMs);
  const wall = wallMillis({ ...f, day: f.day + days });
  const first = wall - oldOffset;
  const change = oldOffset - zone.offsetAt(first);
  if (change === 0) return new ElDate(first);
  const moved = first + change;
  const sameDate = Math.floor((moved + zone.offsetAt(moved)) / 86_400_000) === Math.floor(wall / 86_400_000);
  return new ElDate(sameDate ? moved : first);
}

/** Calendar.add for HOUR/MINUTE/SECOND: elapsed time. */
function addMillis(d: ElDate, ms: number): ElDate {
  return new ElDate(d.epochMs + ms);
}

function dateAdder(unit: string, apply: (d: ElDate, n: number, ctx: ElContext) => ElDate): Method {
  const name = `DateUtil.add${unit}`;
  return { arity: [2, 2], call: (a, ctx) => apply(date(a, 0, name), int(a, 1, name), ctx) };
}

const DateUtil: BuiltinObject = {
  methods: {
    format: {
      arity: [2, 2],
      call: (a, ctx) =>
        formatDate(date(a, 0, 'DateUtil.format').epochMs, patternArg(a, 1, 'DateUtil.format'), ctx.zone),
    },
    formatWithTimeZone: {
      arity: [3, 3],
      call: (a) =>
        formatDate(
          date(a, 0, 'DateUtil.formatWithTimeZone').epochMs,
          patternArg(a, 1, 'DateUtil.formatWithTimeZone'),
          zoneArg(a, 2, 'DateUtil.formatWithTimeZone'),
        ),
    },
    parseDate: {
      arity: [2, 2],
      call: (a, ctx) => {
        const text = str(a, 0, 'DateUtil.parseDate');
        if (text === null) throw new ElError('argument 1 of DateUtil.parseDate must be a string, not null');
        return new ElDate(parseDate(text, patternArg(a, 1, 'DateUtil.parseDate'), ctx.zone, ctx.now));
      },
    },
    addYears: dateAdder('Years', (d, n, ctx) => addMonths(d, n * 12, ctx.zone)),
    addMonths: dateAdder('Months', (d, n, ctx) => addMonths(d, n, ctx.zone)),
    addWeeks: dateAdder('Weeks', (d, n, ctx) => addDays(d, n * 7, ctx.zone)),
    addDays: dateAdder('Days', (d, n, ctx) => addDays(d, n, ctx.zone)),
    addHours: dateAdder('Hours', (d, n) => addMillis(d, n * 3_600_000)),
    addMinutes: dateAdder('Minutes', (d, n) => addMillis(d, n * 60_000)),
    addSeconds: dateAdder('Seconds', (d, n) => addMillis(d, n * 1_000)),
    getYear: {
      arity: [1, 1],
      call: (a, ctx) => wallFieldsOf(date(a, 0, 'DateUtil.getYear').epochMs, ctx.zone).year,
    },
    getMonth: {
      arity: [1, 1],
      call: (a, ctx) => wallFieldsOf(date(a, 0, 'DateUtil.getMonth').epochMs, ctx.zone).month,
    },
    getDay: {
      arity: [1, 1],
      call: (a, ctx) => wallFieldsOf(date(a, 0, 'DateUtil.getDay').epochMs, ctx.zone).day,
    },
    getTime: { arity: [1, 1], call: (a) => date(a, 0, 'DateUtil.getTime').epochMs },
    now: { arity: [0, 0], call: (_a, ctx) => new ElDate(ctx.now) },
  },
};

function patternArg(args: readonly ElValue[], index: number, method: string): string {
  const p = str(args, index, method);
  if (p === null) throw new ElError(`${describeArg(method, index)} must be a date pattern, not null`);
  return p;
}

// ---- StringUtil --------------------------------------------------------------------------------

/** A StringUtil method of string arguments; `nullResult` is what commons-lang returns for a null first argument. */
function strMethod(
  name: string,
  arity: readonly [number, number],
  body: (s: string, args: readonly ElValue[], method: string) => ElValue,
  nullResult: ElValue = null,
): Method {
  const method = `StringUtil.${name}`;
  return {
    arity,
    call: (a) => {
      const s = str(a, 0, method);
      return s === null ? nullResult : body(s, a, method);
    },
  };
}

/** Java's String.trim: characters up to U+0020 at both ends. */
function javaTrim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s.charCodeAt(start) <= 0x20) start += 1;
  while (end > start && s.charCodeAt(end - 1) <= 0x20) end -= 1;
  return s.slice(start, end);
}
const isBlank = (s: string | null) => s === null || s.trim() === '';

function substring(s: string, startArg: number, endArg?: number): string {
  let start = startArg < 0 ? s.length + startArg : startArg;
  let end = endArg === undefined ? s.length : endArg < 0 ? s.length + endArg : endArg;
  start = Math.max(0, start);
  end = Math.min(s.length, end);
  return start >= end ? '' : s.slice(start, end);
}

function pad(s: string, size: number, padWith: string | null, left: boolean, method: string): string {
  if (size > EL_LIMITS.maxStringLength) throw new ElError(`${method}: size ${size} is too large`);
  const filler = padWith === null || padWith === '' ? ' ' : padWith;
  const missing = size - s.length;
  if (missing <= 0) return s;
  const padding = filler.repeat(Math.ceil(missing / filler.length)).slice(0, missing);
  return left ? padding + s : s + padding;
}

/** commons-lang split: by any of the separator characters (whitespace when none), empty tokens dropped. */
function split(s: string, separators: string | null): string[] {
  const isSeparator =
    separators === null ? (c: string) => /\s/.test(c) : (c: string) => separators.includes(c);
  const tokens: string[] = [];
  let token = '';
  for (const c of s) {
    if (isSeparator(c)) {
      if (token !== '') tokens.push(token);
      token = '';
    } else {
      token += c;
    }
  }
  if (token !== '') tokens.push(token);
  return tokens;
}

function replaceAll(text: string, search: string, replacement: string): string {
  if (search === '') return text;
  const pieces = text.split(search);
  const grows = (pieces.length - 1) * (replacement.length - search.length);
  if (text.length + grows > EL_LIMITS.maxStringLength) {
    throw new ElError(
      `StringUtil.replace would build a string longer than ${EL_LIMITS.maxStringLength} characters`,
    );
  }
  return pieces.join(replacement);
}

const StringUtil: BuiltinObject = {
  methods: {
    isEmpty: { arity: [1, 1], call: (a) => (str(a, 0, 'StringUtil.isEmpty') ?? '') === '' },
    isNotEmpty: { arity: [1, 1], call: (a) => (str(a, 0, 'StringUtil.isNotEmpty') ?? '') !== '' },
    isBlank: { arity: [1, 1], call: (a) => isBlank(str(a, 0, 'StringUtil.isBlank')) },
    isNotBlank: { arity: [1, 1], call: (a) => !isBlank(str(a, 0, 'StringUtil.isNotBlank')) },
    length: strMethod('length', [1, 1], (s) => s.length, 0),
    trim: strMethod('trim', [1, 1], (s) => javaTrim(s)),
    strip: strMethod('strip', [1, 1], (s) => s.trim()),
    upperCase: strMethod('upperCase', [1, 1], (s) => s.toUpperCase()),
    lowerCase: strMethod('lowerCase', [1, 1], (s) => s.toLowerCase()),
    capitalize: strMethod('capitalize', [1, 1], (s) => s.charAt(0).toUpperCase() + s.slice(1)),
    uncapitalize: strMethod('uncapitalize', [1, 1], (s) => s.charAt(0).toLowerCase() + s.slice(1)),
    reverse: strMethod('reverse', [1, 1], (s) => [...s].reverse().join('')),
    substring: strMethod('substring', [2, 3], (s, a, m) =>
      substring(s, int(a, 1, m), a.length > 2 ? int(a, 2, m) : undefined),
    ),
    left: strMethod('left', [2, 2], (s, a, m) => s.slice(0, Math.max(0, int(a, 1, m)))),
    right: strMethod('right', [2, 2], (s, a, m) => {
      const n = Math.max(0, int(a, 1, m));
      return n === 0 ? '' : s.slice(-n);
    }),
    mid: strMethod('mid', [3, 3], (s, a, m) => {
      const pos = Math.max(0, int(a, 1, m));
      const len = int(a, 2, m);
      return len < 0 || pos > s.length ? '' : s.slice(pos, pos + len);
    }),
    substringBefore: strMethod('substringBefore', [2, 2], (s, a, m) => {
      const sep = str(a, 1, m);
      if (sep === null) return s;
      const i = s.indexOf(sep);
      return sep === '' ? '' : i === -1 ? s : s.slice(0, i);
    }),
    substringAfter: strMethod('substringAfter', [2, 2], (s, a, m) => {
      const sep = str(a, 1, m);
      if (sep === null) return '';
      const i = s.indexOf(sep);
      return i === -1 ? '' : s.slice(i + sep.length);
    }),
    substringBeforeLast: strMethod('substringBeforeLast', [2, 2], (s, a, m) => {
      const sep = str(a, 1, m);
      if (sep === null || sep === '') return s;
      const i = s.lastIndexOf(sep);
      return i === -1 ? s : s.slice(0, i);
    }),
    substringAfterLast: strMethod('substringAfterLast', [2, 2], (s, a, m) => {
      const sep = str(a, 1, m);
      if (sep === null || sep === '') return '';
      const i = s.lastIndexOf(sep);
      return i === -1 || i === s.length - sep.length ? '' : s.slice(i + sep.length);
    }),
    substringBetween: strMethod('substringBetween', [2, 3], (s, a, m) => {
      const open = str(a, 1, m);
      const close = a.length > 2 ? str(a, 2, m) : open;
      if (open === null || close === null) return null;
      const start = s.indexOf(open);
      if (start === -1) return null;
      const end = s.indexOf(close, start + open.length);
      return end === -1 ? null : s.slice(start + open.length, end);
    }),
    indexOf: strMethod(
      'indexOf',
      [2, 2],
      (s, a, m) => {
        const search = str(a, 1, m);
        return search === null ? -1 : s.indexOf(search);
      },
      -1,
    ),
    lastIndexOf: strMethod(
      'lastIndexOf',
      [2, 2],
      (s, a, m) => {
        const search = str(a, 1, m);
        return search === null ? -1 : s.lastIndexOf(search);
      },
      -1,
    ),
    contains: strMethod(
      'contains',
      [2, 2],
      (s, a, m) => {
        const search = str(a, 1, m);
        return search !== null && s.includes(search);
      },
      false,
    ),
    startsWith: strMethod(
      'startsWith',
      [2, 2],
      (s, a, m) => {
        const prefix = str(a, 1, m);
        return prefix !== null && s.startsWith(prefix);
      },
      false,
    ),
    endsWith: strMethod(
      'endsWith',
      [2, 2],
      (s, a, m) => {
        const suffix = str(a, 1, m);
        return suffix !== null && s.endsWith(suffix);
      },
      false,
    ),
    equals: { arity: [2, 2], call: (a) => str(a, 0, 'StringUtil.equals') === str(a, 1, 'StringUtil.equals') },
    equalsIgnoreCase: {
      arity: [2, 2],
      call: (a) => {
        const x = str(a, 0, 'StringUtil.equalsIgnoreCase');
        const y = str(a, 1, 'StringUtil.equalsIgnoreCase');
        return x === null || y === null ? x === y : x.toLowerCase() === y.toLowerCase();
      },
    },
    replace: strMethod('replace', [3, 3], (s, a, m) => {
      const search = str(a, 1, m);
      const replacement = str(a, 2, m);
      return search === null || replacement === null ? s : replaceAll(s, search, replacement);
    }),
    remove: strMethod('remove', [2, 2], (s, a, m) => {
      const search = str(a, 1, m);
      return search === null || search === '' ? s : s.split(search).join('');
    }),
    countMatches: strMethod(
      'countMatches',
      [2, 2],
      (s, a, m) => {
        const search = str(a, 1, m);
        return search === null || search === '' ? 0 : s.split(search).length - 1;
      },
      0,
    ),
    split: strMethod('split', [1, 2], (s, a, m) => split(s, a.length > 1 ? str(a, 1, m) : null)),
    join: {
      arity: [1, 2],
      call: (a, ctx) => {
        const items = a[0] ?? null;
        if (items === null) return null;
        if (!Array.isArray(items))
          throw new ElError(`argument 1 of StringUtil.join must be an array, not ${preview(items)}`);
        const separator = a.length > 1 ? (str(a, 1, 'StringUtil.join') ?? '') : '';
        const texts = (items as readonly ElValue[]).map((v) => toText(v, ctx.zone));
        const length =
          texts.reduce((n, t) => n + t.length, 0) + separator.length * Math.max(0, texts.length - 1);
        if (length > EL_LIMITS.maxStringLength)
          throw new ElError('StringUtil.join would build a string that is too long');
        return texts.join(separator);
      },
    },
    leftPad: strMethod('leftPad', [2, 3], (s, a, m) =>
      pad(s, int(a, 1, m), a.length > 2 ? str(a, 2, m) : null, true, m),
    ),
    rightPad: strMethod('rightPad', [2, 3], (s, a, m) =>
      pad(s, int(a, 1, m), a.length > 2 ? str(a, 2, m) : null, false, m),
    ),
    repeat: strMethod('repeat', [2, 2], (s, a, m) => {
      const n = Math.max(0, int(a, 1, m));
      if (s.length * n > EL_LIMITS.maxStringLength)
        throw new ElError(`${m} would build a string that is too long`);
      return s.repeat(n);
    }),
    abbreviate: strMethod('abbreviate', [2, 2], (s, a, m) => {
      const width = int(a, 1, m);
      if (width < 4) throw new ElError(`${m}: the minimum abbreviation width is 4`);
      return s.length <= width ? s : `${s.slice(0, width - 3)}...`;
    }),
    defaultString: {
      arity: [1, 2],
      call: (a) =>
        str(a, 0, 'StringUtil.defaultString') ?? (a.length > 1 ? str(a, 1, 'StringUtil.defaultString') : ''),
    },
    defaultIfEmpty: {
      arity: [2, 2],
      call: (a) => {
        const s = str(a, 0, 'StringUtil.defaultIfEmpty');
        return s === null || s === '' ? str(a, 1, 'StringUtil.defaultIfEmpty') : s;
      },
    },
    defaultIfBlank: {
      arity: [2, 2],
      call: (a) => {
        const s = str(a, 0, 'StringUtil.defaultIfBlank');
        return isBlank(s) ? str(a, 1, 'StringUtil.defaultIfBlank') : s;
      },
    },
    getDigits: strMethod('getDigits', [1, 1], (s) => s.replace(/[^0-9]/g, '')),
  },
};

// ---- JSONUtil ----------------------------------------------------------------------------------

/** `tables[0].table_name`, `$.a.b`, `a['key with space']`. */
function jsonPath(root: ElValue, path: string): ElValue {
  const segments: (string | number)[] = [];
  const re = /\.?([A-Za-z0-9_$@-]+)|\[\s*([0-9]+)\s*\]|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]/y;
  let rest = path.trim();
  if (rest.startsWith('$')) rest = rest.slice(1);
  re.lastIndex = 0;
  while (re.lastIndex < rest.length) {
    const start = re.lastIndex;
    const m = re.exec(rest);
    if (!m || m.index !== start)
      throw new ElError(`JSONUtil.path: cannot read the path '${path.slice(0, 64)}' at position ${start}`);
    if (m[1] !== undefined) segments.push(m[1]);
    else if (m[2] !== undefined) segments.push(Number(m[2]));
    else segments.push(m[3] ?? m[4] ?? '');
  }
  let current: ElValue = root;
  for (const segment of segments) {
    if (typeof segment === 'number') {
      if (!Array.isArray(current)) return null;
      current = (current as readonly ElValue[])[segment] ?? null;
    } else {
      if (!isElObject(current)) return null;
      current = own(current, segment) ?? null;
    }
  }
  return current;
}

const JSONUtil: BuiltinObject = {
  methods: {
    parse: {
      arity: [1, 1],
      call: (a) => {
        const text = str(a, 0, 'JSONUtil.parse');
        return text === null ? null : fromJson(text);
      },
    },
    toString: { arity: [1, 1] as const, call: (a: readonly ElValue[]) => toJson(a[0] ?? null) },
    path: {
      arity: [2, 2],
      call: (a) => {
        const source = a[0] ?? null;
        const root = typeof source === 'string' ? fromJson(source) : source;
        const path = str(a, 1, 'JSONUtil.path');
        if (path === null) throw new ElError('argument 2 of JSONUtil.path must be a path, not null');
        return jsonPath(root, path);
      },
    },
  },
};

// ---- Env, Job ----------------------------------------------------------------------------------

const Env: BuiltinObject = {
  methods: {
    get: {
      arity: [1, 1],
      call: (a, ctx) => {
        const name = str(a, 0, 'Env.get');
        return name === null ? null : ctx.env(name);
      },
    },
  },
};

const Job: BuiltinObject = {
  properties: {
    name: (ctx) => ctx.job.name,
    projectId: (ctx) => ctx.job.projectId,
    planTime: (ctx) => new ElDate(ctx.job.planTime),
    startTime: (ctx) => new ElDate(ctx.job.startTime),
  },
  methods: {
    getPlanTime: {
      arity: [1, 1],
      call: (a, ctx) => formatDate(ctx.job.planTime, patternArg(a, 0, 'Job.getPlanTime'), ctx.zone),
    },
    getParam: {
      arity: [1, 1],
      call: (a, ctx) => {
        const name = str(a, 0, 'Job.getParam');
        return name === null ? null : ctx.param(name);
      },
    },
  },
};

export const BUILTIN_OBJECTS: Readonly<Record<string, BuiltinObject>> = {
  DateUtil,
  StringUtil,
  JSONUtil,
  Env,
  Job,
};

const OBJECT_LIST = Object.keys(BUILTIN_OBJECTS).join(', ');

export function builtinObject(name: string, at: number): BuiltinObject {
  const object = own(BUILTIN_OBJECTS, name);
  if (!object) throw new ElError(`unknown object '${name}' (known: ${OBJECT_LIST})`, at);
  return object;
}

export function builtinMethod(objectName: string, methodName: string, at: number): Method {
  const method = own(builtinObject(objectName, at).methods, methodName);
  if (!method) throw new ElError(`unknown method ${objectName}.${methodName}`, at);
  return method;
}

export function builtinProperty(
  objectName: string,
  property: string,
  at: number,
): (ctx: ElContext) => ElValue {
  const object = builtinObject(objectName, at);
  const read = object.properties ? own(object.properties, property) : undefined;
  if (read) return read;
  if (own(object.methods, property)) {
    throw new ElError(`${objectName}.${property} is a method: call it as ${objectName}.${property}(…)`, at);
  }
  throw new ElError(`unknown property ${objectName}.${property}`, at);
}

export function checkedResult(value: ElValue): ElValue {
  return typeof value === 'string' ? checkedString(value) : value;
}
