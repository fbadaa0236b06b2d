/**
 * Java's SimpleDateFormat, for DataArts' `DateUtil.format/parseDate` patterns: the same pattern
 * letters and quoting, English names, and the week rules of Java's default (en_US, zh_CN) locale:
 * weeks start on Sunday and week 1 is the week holding January 1 (so DataArts' documented
 * `YYYYww` of 2023-12-31 is `202401`).
 *
 *   G era (AD)          y year              Y week year         M/L month (07, Jul, July)
 *   w week in year      W week in month     D day in year       d day in month
 *   F weekday ordinal   E day name          u day number (1=Mon) a AM/PM
 *   H hour 0-23         k hour 1-24         K hour 0-11         h hour 1-12
 *   m minute            s second            S millisecond       z zone name
 *   Z -0800             X -08, -0800, -08:00 ('Z' for UTC)     'text' literal, '' a quote
 *
 * Numbers are zero-padded to the letter count and never truncated, except a two-letter year
 * (`yy`, `YY`), which is the last two digits. Any other ASCII letter is an error, as in Java.
 */
import { ElError } from './el-error.js';
import { instantOfWall, wallFieldsOf, wallMillis, type ElTimeZone, type WallFields } from './time-zone.js';

type PatternItem = { kind: 'field'; letter: string; count: number } | { kind: 'text'; text: string };

const PATTERN_LETTERS = 'GyYMLwWDdFEuaHkKhmsSzZX';
const MAX_PATTERN_LENGTH = 256;

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

const patternCache = new Map<string, PatternItem[]>();

/** Splits a SimpleDateFormat pattern into fields and literal text; throws for what Java refuses. */
export function compilePattern(pattern: string): PatternItem[] {
  const cached = patternCache.get(pattern);
  if (cached) return cached;
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new ElError(`the date pattern is longer than ${MAX_PATTERN_LENGTH} characters`);
  }
  const items: PatternItem[] = [];
  const addText = (text: string) => {
    const last = items[items.length - 1];
    if (last?.kind === 'text') last.text += text;
    else items.push({ kind: 'text', text });
  };
  let i = 0;
  while (i < pattern.length) {
    const c = pattern.charAt(i);
    if (c === "'") {
      if (pattern[i + 1] === "'") {
        addText("'");
        i += 2;
        continue;
      }
      // Quoted text; '' inside it is one quote.
      let text = '';
      let j = i + 1;
      for (;;) {
        if (j >= pattern.length) throw new ElError(`unterminated quote in date pattern '${pattern}'`);
        if (pattern[j] === "'") {
          if (pattern[j + 1] === "'") {
            text += "'";
            j += 2;
            continue;
          }
          break;
        }
        text += pattern.charAt(j);
        j += 1;
      }
      addText(text);
      i = j + 1;
      continue;
    }
    if (/[A-Za-z]/.test(c)) {
      if (!PATTERN_LETTERS.includes(c)) {
        throw new ElError(`illegal pattern character '${c}' in date pattern '${pattern}'`);
      }
      let count = 1;
      while (pattern[i + count] === c) count += 1;
      if (c === 'X' && count > 3)
        throw new ElError(`invalid ISO 8601 format: length=${count} in '${pattern}'`);
      items.push({ kind: 'field', letter: c, count });
      i += count;
      continue;
    }
    addText(c);
    i += 1;
  }
  if (patternCache.size < 500) patternCache.set(pattern, items);
  return items;
}

function pad(value: number, count: number): string {
  const digits = String(Math.abs(value));
  return (
    (value < 0 ? '-' : '') + (digits.length >= count ? digits : '0'.repeat(count - digits.length) + digits)
  );
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function dayOfYear(f: Pick<WallFields, 'year' | 'month' | 'day'>): number {
  const start = new Date(0);
  start.setUTCFullYear(f.year, 0, 1);
  const date = new Date(0);
  date.setUTCFullYear(f.year, f.month - 1, f.day);
  return Math.round((date.getTime() - start.getTime()) / 86_400_000) + 1;
}

/** Day of week (0 = Sunday) of January 1 of a year, proleptic Gregorian. */
function januaryFirstWeekday(year: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, 0, 1);
  return d.getUTCDay();
}

/** Sunday-first weeks, week 1 holds January 1 (minimal days in first week: 1). */
export function weekOfYear(f: WallFields): { week: number; weekYear: number } {
  const doy = dayOfYear(f);
  const daysInYear = isLeapYear(f.year) ? 366 : 365;
  const nextJanuaryFirst = januaryFirstWeekday(f.year + 1);
  // The week holding next January 1 is week 1 of next year; it starts `nextJanuaryFirst` days before it.
  if (doy > daysInYear - nextJanuaryFirst) return { week: 1, weekYear: f.year + 1 };
  return { week: Math.floor((doy - 1 + januaryFirstWeekday(f.year)) / 7) + 1, weekYear: f.year };
}

function weekOfMonth(f: WallFields): number {
  const firstWeekday = (f.dayOfWeek - ((f.day - 1) % 7) + 7) % 7;
  return Math.floor((f.day - 1 + firstWeekday) / 7) + 1;
}

function zoneOffsetText(offsetMs: number, letter: 'Z' | 'X', count: number): string {
  if (letter === 'X' && offsetMs === 0) return 'Z';
  const sign = offsetMs < 0 ? '-' : '+';
  const minutes = Math.abs(Math.round(offsetMs / 60_000));
  const hh = pad(Math.floor(minutes / 60), 2);
  const mm = pad(minutes % 60, 2);
  if (letter === 'Z') return `${sign}${hh}${mm}`;
  if (count === 1) return `${sign}${hh}`;
  return count === 2 ? `${sign}${hh}${mm}` : `${sign}${hh}:${mm}`;
}

function yearText(year: number, count: number): string {
  return count === 2 ? pad(((year % 100) + 100) % 100, 2) : pad(year, count);
}

/** `DateUtil.format`: the instant shown in `zone` by a SimpleDateFormat pattern. */
export function formatDate(epochMs: number, pattern: string, zone: ElTimeZone): string {
  const f = wallFieldsOf(epochMs, zone);
  const yearOfEra = f.year > 0 ? f.year : 1 - f.year;
  let out = '';
  for (const item of compilePattern(pattern)) {
    if (item.kind === 'text') {
      out += item.text;
      continue;
    }
    const n = item.count;
    switch (item.letter) {
      case 'G':
        out += f.year > 0 ? 'AD' : 'BC';
        break;
      case 'y':
        out += yearText(yearOfEra, n);
        break;
      case 'Y':
        out += yearText(weekOfYear(f).weekYear, n);
        break;
      case 'M':
      case 'L': {
        const name = MONTHS[f.month - 1] ?? '';
        out += n >= 4 ? name : n === 3 ? name.slice(0, 3) : pad(f.month, n);
        break;
      }
      case 'w':
        out += pad(weekOfYear(f).week, n);
        break;
      case 'W':
        out += pad(weekOfMonth(f), n);
        break;
      case 'D':
        out += pad(dayOfYear(f), n);
        break;
      case 'd':
        out += pad(f.day, n);
        break;
      case 'F':
        out += pad(Math.floor((f.day - 1) / 7) + 1, n);
        break;
      case 'E': {
        const name = DAYS[f.dayOfWeek] ?? '';
        out += n >= 4 ? name : name.slice(0, 3);
        break;
      }
      case 'u':
        out += pad(f.dayOfWeek === 0 ? 7 : f.dayOfWeek, n);
        break;
      case 'a':
        out += f.hour < 12 ? 'AM' : 'PM';
        break;
      case 'H':
        out += pad(f.hour, n);
        break;
      case 'k':
        out += pad(f.hour === 0 ? 24 : f.hour, n);
        break;
      case 'K':
        out += pad(f.hour % 12, n);
        break;
      case 'h':
        out += pad(f.hour % 12 === 0 ? 12 : f.hour % 12, n);
        break;
      case 'm':
        out += pad(f.minute, n);
        break;
      case 's':
        out += pad(f.second, n);
        break;
      case 'S':
        out += pad(f.millisecond, n);
        break;
      case 'z':
        out += zone.displayName(epochMs, n >= 4);
        break;
      case 'Z':
      case 'X':
        out += zoneOffsetText(zone.offsetAt(epochMs), item.letter, n);
        break;
    }
  }
  return out;
}

/** Fields `parseDate` reads; week-based letters (Y w W F E u) are matched but do not set the date. */
const NUMERIC_LETTERS = 'yYMLwWDdFuHkKhmsS';

interface ParsedFields {
  year?: number;
  twoDigitYear?: boolean;
  month?: number;
  day?: number;
  dayOfYear?: number;
  hour?: number;
  hour12?: number;
  pm?: boolean;
  minute?: number;
  second?: number;
  millisecond?: number;
  bc?: boolean;
  offsetMs?: number;
}

function isNumericField(item: PatternItem | undefined): boolean {
  if (item?.kind !== 'field') return false;
  if (item.letter === 'M' || item.letter === 'L') return item.count <= 2;
  return NUMERIC_LETTERS.includes(item.letter);
}

function matchName(
  text: string,
  at: number,
  names: readonly string[],
): { index: number; length: number } | undefined {
  let best: { index: number; length: number } | undefined;
  const rest = text.slice(at).toLowerCase();
  names.forEach((name, index) => {
    for (const candidate of [name, name.slice(0, 3)]) {
      if (rest.startsWith(candidate.toLowerCase()) && (!best || candidate.length > best.length)) {
        best = { index, length: candidate.length };
      }
    }
  });
  return best;
}

const OFFSET = /^([+-])([0-9]{2}):?([0-9]{2})?/;
const GMT_OFFSET = /^(?:GMT|UTC)(?:([+-])([0-9]{1,2})(?::?([0-9]{2}))?)?/i;

function parseZone(text: string, at: number): { offsetMs: number; length: number } | undefined {
  const rest = text.slice(at);
  if (rest.startsWith('Z')) return { offsetMs: 0, length: 1 };
  const m = OFFSET.exec(rest) ?? GMT_OFFSET.exec(rest);
  if (!m) return undefined;
  const minutes = Number(m[2] ?? '0') * 60 + Number(m[3] ?? '0');
  return { offsetMs: (m[1] === '-' ? -1 : 1) * minutes * 60_000, length: m[0].length };
}

/**
 * `DateUtil.parseDate`: SimpleDateFormat's lenient parse. A numeric field followed directly by
 * another numeric field (`yyyyMMdd`) takes exactly its letter count of digits; otherwise it takes
 * every digit there is. Missing fields are 1970-01-01 00:00:00.000; out-of-range values roll over
 * (month 13 is January next year); text after the pattern is ignored, as `DateFormat.parse` does.
 * A zone in the text (`Z`, `X`, `z` as an offset or UTC/GMT) wins over `zone`. Two-digit years fall
 * within 80 years before and 20 after `now`, as in Java.
 */
export function parseDate(text: string, pattern: string, zone: ElTimeZone, now: number): number {
  const items = compilePattern(pattern);
  const fail = (why: string): never => {
    throw new ElError(`unparseable date '${text.slice(0, 64)}' for pattern '${pattern}': ${why}`);
  };
  const p: ParsedFields = {};
  let at = 0;
  items.forEach((item, index) => {
    if (item.kind === 'text') {
      if (!text.startsWith(item.text, at)) fail(`expected '${item.text}' at position ${at}`);
      at += item.text.length;
      return;
    }
    const { letter, count } = item;
    if (isNumericField(item)) {
      const abutting = isNumericField(items[index + 1]);
      let end = at;
      while (end < text.length && /[0-9]/.test(text.charAt(end)) && (!abutting || end - at < count)) end += 1;
      if (end === at) fail(`expected digits for '${letter}' at position ${at}`);
      if (end - at > 12) fail(`too many digits at position ${at}`);
      const digits = text.slice(at, end);
      const value = Number(digits);
      at = end;
      switch (letter) {
        case 'y':
          p.year = value;
          p.twoDigitYear = count <= 2 && digits.length === 2;
          break;
        case 'M':
        case 'L':
          p.month = value;
          break;
        case 'd':
          p.day = value;
          break;
        case 'D':
          p.dayOfYear = value;
          break;
        case 'H':
          p.hour = value;
          break;
        case 'k':
          p.hour = value === 24 ? 0 : value;
          break;
        case 'K':
          p.hour12 = value;
          break;
        case 'h':
          p.hour12 = value === 12 ? 0 : value;
          break;
        case 'm':
          p.minute = value;
          break;
        case 's':
          p.second = value;
          break;
        case 'S':
          p.millisecond = value;
          break;
        default:
          // Y w W F u: week-based fields are read past but do not set the date.
          break;
      }
      return;
    }
    switch (letter) {
      case 'M':
      case 'L': {
        const m = matchName(text, at, MONTHS) ?? fail(`expected a month name at position ${at}`);
        p.month = m.index + 1;
        at += m.length;
        break;
      }
      case 'E': {
        const m = matchName(text, at, DAYS) ?? fail(`expected a day name at position ${at}`);
        at += m.length;
        break;
      }
      case 'a': {
        const m = matchName(text, at, ['AM', 'PM']) ?? fail(`expected AM or PM at position ${at}`);
        p.pm = m.index === 1;
        at += m.length;
        break;
      }
      case 'G': {
        const m = matchName(text, at, ['BC', 'AD']) ?? fail(`expected AD or BC at position ${at}`);
        p.bc = m.index === 0;
        at += m.length;
        break;
      }
      default: {
        // z Z X
        const z = parseZone(text, at) ?? fail(`expected a time zone at position ${at}`);
        p.offsetMs = z.offsetMs;
        at += z.length;
      }
    }
  });
  let year = p.year ?? 1970;
  if (p.twoDigitYear) {
    // Java: the century that puts the year within [now - 80 years, now + 20 years).
    const nowYear = new Date(now).getUTCFullYear();
    const start = nowYear - 80;
    year = start - (((start % 100) + 100) % 100) + year;
    if (year < start) year += 100;
  }
  if (p.bc) year = 1 - year;
  let hour = p.hour ?? 0;
  // As in Java, AM/PM applies to the 12-hour letters (h, K) only.
  if (p.hour12 !== undefined && p.hour === undefined) hour = p.hour12 + (p.pm ? 12 : 0);
  const useDayOfYear = p.dayOfYear !== undefined && p.month === undefined && p.day === undefined;
  const wall = wallMillis({
    year,
    month: useDayOfYear ? 1 : (p.month ?? 1),
    day: useDayOfYear ? (p.dayOfYear ?? 1) : (p.day ?? 1),
    hour,
    minute: p.minute ?? 0,
    second: p.second ?? 0,
    millisecond: p.millisecond ?? 0,
  });
  const instant = p.offsetMs !== undefined ? wall - p.offsetMs : instantOfWall(wall, zone);
  if (!Number.isFinite(instant)) fail('the date is out of range');
  return instant;
}
