/** What EL expressions compute with, and how a value becomes text. */
import { ElError } from './el-error.js';
import { EL_LIMITS } from './parser.js';
import { formatDate } from './simple-date-format.js';
import type { ElTimeZone } from './time-zone.js';

/** A java.util.Date: an instant, shown in the EL time zone. */
export class ElDate {
  constructor(readonly epochMs: number) {
    // Two days inside the Date range, so its wall-clock time in any zone is a Date too.
    if (!(Math.abs(epochMs) <= 8.64e15 - 172_800_000)) throw new ElError('the date is out of range');
  }
}

export type ElValue = null | boolean | number | string | ElDate | readonly ElValue[] | ElObject;
/** A JSON object (from JSONUtil.parse/path): own properties only. */
export interface ElObject {
  readonly [key: string]: ElValue;
}

export function isElObject(value: ElValue): value is ElObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof ElDate);
}

export function typeName(value: ElValue): string {
  if (value === null) return 'null';
  if (value instanceof ElDate) return 'a date';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

export function checkedString(value: string): string {
  if (value.length > EL_LIMITS.maxStringLength) {
    throw new ElError(`a string longer than ${EL_LIMITS.maxStringLength} characters`);
  }
  return value;
}

/** Java's Date.toString: `Tue Dec 01 06:35:18 UTC 2026`. */
const DATE_TO_STRING = 'EEE MMM dd HH:mm:ss z yyyy';

/** How a value appears in the text of a parameter: null is empty, dates as Java prints them, JSON as JSON. */
export function toText(value: ElValue, zone: ElTimeZone): string {
  if (value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof ElDate) return formatDate(value.epochMs, DATE_TO_STRING, zone);
  return toJson(value);
}

/** JSON text; dates as epoch milliseconds (fastjson's default for java.util.Date). */
export function toJson(value: ElValue): string {
  const text = JSON.stringify(value, (_key, v: unknown) => (v instanceof ElDate ? v.epochMs : v));
  return checkedString(text);
}

/** JSON text into EL values (objects without prototypes, so no inherited names are reachable). */
export function fromJson(text: string): ElValue {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ElError(`not valid JSON: '${text.slice(0, 64)}'`);
  }
  return toElValue(parsed, 0);
}

const MAX_JSON_DEPTH = 256;

function toElValue(value: unknown, depth: number): ElValue {
  if (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'boolean'
  ) {
    return value;
  }
  if (depth >= MAX_JSON_DEPTH) throw new ElError(`JSON nested more than ${MAX_JSON_DEPTH} levels deep`);
  if (Array.isArray(value)) return value.map((v) => toElValue(v, depth + 1));
  const out: Record<string, ElValue> = Object.create(null) as Record<string, ElValue>;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = toElValue(v, depth + 1);
  return out;
}

/** Text for an error message. */
export function preview(value: ElValue): string {
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  if (value instanceof ElDate) return `date ${new Date(value.epochMs).toISOString()}`;
  if (value === null || typeof value !== 'object') return String(value);
  return typeName(value);
}
