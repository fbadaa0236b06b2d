/**
 * Time zones for EL dates: an IANA zone (through Intl, i.e. the ICU data Node ships) or a fixed
 * `GMT±hh[:mm]` offset (Java's custom zone ids, which DataArts' `formatWithTimeZone` examples use).
 * Wall-clock fields are computed as Java's GregorianCalendar does in the proleptic Gregorian
 * calendar; a wall time that does not exist (spring forward) or exists twice (fall back) resolves
 * as Java resolves it: see {@link instantOfWall}.
 */
import { ElError } from './el-error.js';

export interface ElTimeZone {
  /** The id as given (`Asia/Shanghai`, `UTC`, `GMT+08:00`). */
  readonly id: string;
  /** Offset from UTC in milliseconds at this instant (DST included). */
  offsetAt(epochMs: number): number;
  /** Java's `z` text: `long` for four or more pattern letters. */
  displayName(epochMs: number, long: boolean): string;
}

/** The Date range (±100,000,000 days around 1970). */
const MAX_EPOCH_MS = 8.64e15;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** `GMT+8`, `GMT+08:00`, `UTC-0530`, `GMT+0`: Java's custom time zone ids (hours 0-23). */
const CUSTOM_ZONE = /^(?:GMT|UTC)([+-])([0-9]{1,2})(?::?([0-9]{2}))?$/;

/** Java's text for an offset: `GMT+08:00`, `GMT-05:30`. */
export function gmtOffsetText(offsetMs: number): string {
  const sign = offsetMs < 0 ? '-' : '+';
  const minutes = Math.abs(Math.round(offsetMs / MINUTE_MS));
  return `GMT${sign}${pad2(Math.floor(minutes / 60))}:${pad2(minutes % 60)}`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

class FixedOffsetZone implements ElTimeZone {
  constructor(
    readonly id: string,
    private readonly offsetMs: number,
  ) {}
  offsetAt(): number {
    return this.offsetMs;
  }
  displayName(): string {
    return gmtOffsetText(this.offsetMs);
  }
}

/**
 * Java's short names where CLDR (Intl) has only `GMT+8`: the zones DataArts users meet most.
 * Intl's name is used for every other zone (and where it has an abbreviation it agrees with Java's).
 */
const JAVA_SHORT_NAMES: Readonly<Record<string, readonly [standard: string, daylight: string]>> = {
  'Asia/Shanghai': ['CST', 'CDT'],
  'Asia/Chongqing': ['CST', 'CDT'],
  'Asia/Harbin': ['CST', 'CDT'],
  'Asia/Taipei': ['CST', 'CDT'],
  PRC: ['CST', 'CDT'],
  'Asia/Hong_Kong': ['HKT', 'HKST'],
  'Asia/Macau': ['CST', 'CDT'],
  'Asia/Singapore': ['SGT', 'SGT'],
  'Asia/Tokyo': ['JST', 'JDT'],
  'Asia/Seoul': ['KST', 'KDT'],
  'Asia/Kolkata': ['IST', 'IST'],
  'Asia/Dubai': ['GST', 'GST'],
  'Asia/Bangkok': ['ICT', 'ICT'],
  'Asia/Jakarta': ['WIB', 'WIB'],
  'Europe/Moscow': ['MSK', 'MSK'],
  'America/Sao_Paulo': ['BRT', 'BRST'],
};

class IanaZone implements ElTimeZone {
  private readonly fields: Intl.DateTimeFormat;
  private readonly names = new Map<string, Intl.DateTimeFormat>();

  constructor(readonly id: string) {
    this.fields = new Intl.DateTimeFormat('en-US', {
      timeZone: id,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  offsetAt(epochMs: number): number {
    // Intl throws a RangeError outside the Date range: an EL error instead (e.g. addYears by 300,000).
    if (!(Math.abs(epochMs) <= MAX_EPOCH_MS)) throw new ElError('the date is out of range');
    const second = Math.floor(epochMs / 1000) * 1000;
    const parts: Record<string, string> = {};
    for (const part of this.fields.formatToParts(second)) parts[part.type] = part.value;
    const yearOfEra = Number(parts.year);
    const year = parts.era === 'BC' || parts.era === 'B' ? 1 - yearOfEra : yearOfEra;
    const wall = new Date(0);
    wall.setUTCFullYear(year, Number(parts.month) - 1, Number(parts.day));
    wall.setUTCHours(Number(parts.hour), Number(parts.minute), Number(parts.second), 0);
    return wall.getTime() - second;
  }

  displayName(epochMs: number, long: boolean): string {
    if (!long) {
      const java = Object.hasOwn(JAVA_SHORT_NAMES, this.id) ? JAVA_SHORT_NAMES[this.id] : undefined;
      if (java) return this.isDaylight(epochMs) ? java[1] : java[0];
    }
    const style = long ? 'long' : 'short';
    for (const locale of long ? ['en-US'] : ['en-US', 'en-GB']) {
      const name = this.nameIn(locale, style, epochMs);
      if (!/^GMT|^UTC[+-]/.test(name) || name === 'GMT') return name;
    }
    // No abbreviation in CLDR: Java prints the offset the same way.
    return gmtOffsetText(this.offsetAt(epochMs));
  }

  private nameIn(locale: string, style: 'long' | 'short', epochMs: number): string {
    const key = `${locale}/${style}`;
    let format = this.names.get(key);
    if (!format) {
      format = new Intl.DateTimeFormat(locale, { timeZone: this.id, timeZoneName: style });
      this.names.set(key, format);
    }
    return format.formatToParts(epochMs).find((p) => p.type === 'timeZoneName')?.value ?? this.id;
  }

  /** Daylight time: the offset is above the lower of January's and July's offsets that year. */
  private isDaylight(epochMs: number): boolean {
    const year = new Date(epochMs + this.offsetAt(epochMs)).getUTCFullYear();
    const january = this.offsetAt(Date.UTC(year, 0, 1));
    const july = this.offsetAt(Date.UTC(year, 6, 1));
    return this.offsetAt(epochMs) > Math.min(january, july);
  }
}

const zones = new Map<string, ElTimeZone>();

/** The zone named by `id`; throws an ElError for an id that names none. */
export function resolveTimeZone(id: string): ElTimeZone {
  const known = zones.get(id);
  if (known) return known;
  let zone: ElTimeZone;
  const custom = CUSTOM_ZONE.exec(id);
  if (custom) {
    const hours = Number(custom[2]);
    const minutes = Number(custom[3] ?? '0');
    if (hours > 23 || minutes > 59) throw new ElError(`unknown time zone '${id}'`);
    const offset = (hours * HOUR_MS + minutes * MINUTE_MS) * (custom[1] === '-' ? -1 : 1);
    zone = new FixedOffsetZone(id, offset);
  } else {
    if (id.length > 64) throw new ElError('unknown time zone (the id is too long)');
    try {
      zone = new IanaZone(id);
    } catch {
      throw new ElError(`unknown time zone '${id}'`);
    }
  }
  if (zones.size < 1_000) zones.set(id, zone);
  return zone;
}

/** True when `id` names a zone this server knows (for the configuration check). */
export function isKnownTimeZone(id: string): boolean {
  try {
    resolveTimeZone(id);
    return true;
  } catch {
    return false;
  }
}

/** Wall-clock fields of an instant in a zone. Months 1-12, day of week 0 (Sunday) to 6. */
export interface WallFields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
  dayOfWeek: number;
}

export function wallFieldsOf(epochMs: number, zone: ElTimeZone): WallFields {
  const wall = new Date(epochMs + zone.offsetAt(epochMs));
  return {
    year: wall.getUTCFullYear(),
    month: wall.getUTCMonth() + 1,
    day: wall.getUTCDate(),
    hour: wall.getUTCHours(),
    minute: wall.getUTCMinutes(),
    second: wall.getUTCSeconds(),
    millisecond: wall.getUTCMilliseconds(),
    dayOfWeek: wall.getUTCDay(),
  };
}

/**
 * Wall-clock fields as UTC milliseconds ("local time as if it were UTC"). Out-of-range fields roll
 * over (month 13 is January of the next year), as in a lenient Java Calendar.
 */
export function wallMillis(f: Omit<WallFields, 'dayOfWeek'>): number {
  const d = new Date(0);
  d.setUTCFullYear(f.year, f.month - 1, f.day);
  d.setUTCHours(f.hour, f.minute, f.second, f.millisecond);
  return d.getTime();
}

/**
 * The instant showing wall time `wall` (from {@link wallMillis}) in `zone`, as Java's
 * GregorianCalendar resolves it: a wall time skipped by a forward transition is read with the
 * offset before it (02:30 on a spring-forward night is 03:30 daylight time); a wall time that occurs
 * twice is read with the offset after the transition (the later instant, standard time).
 */
export function instantOfWall(wall: number, zone: ElTimeZone): number {
  const before = zone.offsetAt(wall - DAY_MS);
  const after = zone.offsetAt(wall + DAY_MS);
  let best: number | undefined;
  for (const offset of before === after ? [before] : [before, after]) {
    const instant = wall - offset;
    if (zone.offsetAt(instant) === offset && (best === undefined || instant > best)) best = instant;
  }
  if (best !== undefined) return best;
  // Neither offset around it produces this wall time: it lies in a gap.
  return wall - before;
}
