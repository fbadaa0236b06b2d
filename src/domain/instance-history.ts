/**
 * Run history (extension): which instances a listing asks for. The query parameters of
 * `GET …/scripts/{name}/instances` and `GET /v1/{project_id}/instances` are parsed here into one
 * filter the store answers with an index-backed query, newest first.
 *
 *   status          one or more of the four API statuses, comma-separated (`FINISHED,FAILED`)
 *   detailedStatus  one or more internal states (`STOPPED,TIMED_OUT`); with `status`, both must hold
 *   from, to        bounds on the creation time: `from` inclusive, `to` exclusive, so adjacent
 *                   windows never share an instance; epoch milliseconds or ISO-8601
 *   offset, limit   paging: offset 0–1,000,000,000 (default 0), limit 1–1000 (default 10)
 *   scriptName      (workspace listing) the exact script name
 *
 * Anything malformed is DLF.3051 naming the parameter: a filter that is silently ignored would
 * show the wrong history.
 */
import { invalidParameter } from './dlf-error.js';
import { integerParam } from './integer-param.js';
import {
  INSTANCE_STATES,
  isInstanceState,
  toApiStatus,
  type ApiStatus,
  type InstanceState,
} from './instance-state.js';
import { SCRIPT_NAME_PATTERN } from './script.js';

/** The four API statuses, derived from the state mapping so the two can never disagree. */
export const API_STATUSES: readonly ApiStatus[] = [...new Set(INSTANCE_STATES.map(toApiStatus))];

/** The internal states shown as `status` (the inverse of toApiStatus). */
export function statesOfApiStatus(status: ApiStatus): InstanceState[] {
  return INSTANCE_STATES.filter((state) => toApiStatus(state) === status);
}

export const HISTORY_DEFAULT_LIMIT = 10;
export const HISTORY_MAX_LIMIT = 1000;
/** As the script and connection lists: past it an OFFSET only walks the index for nothing. */
export const HISTORY_MAX_OFFSET = 1_000_000_000;
/** The largest instant a JavaScript Date holds (±8.64e15 ms). */
const MAX_EPOCH_MS = 8_640_000_000_000_000;

/** What the store is asked for. Absent fields do not filter. */
export interface InstanceHistoryQuery {
  /** Only instances of this script (its id: a script re-created under the same name is another). */
  readonly scriptId?: string;
  /** Only instances created under this exact script name. */
  readonly scriptName?: string;
  /** Only instances in one of these states; never empty (an empty set matches nothing: no query). */
  readonly states?: readonly InstanceState[];
  /** createdAt ≥ this. */
  readonly createdFrom?: Date;
  /** createdAt < this. */
  readonly createdBefore?: Date;
  readonly offset: number;
  readonly limit: number;
}

/** The raw query parameters (undefined when absent). */
export interface InstanceHistoryParams {
  readonly status?: string | undefined;
  readonly detailedStatus?: string | undefined;
  readonly from?: string | undefined;
  readonly to?: string | undefined;
  readonly offset?: string | undefined;
  readonly limit?: string | undefined;
  readonly scriptName?: string | undefined;
}

/**
 * The filter of a listing, or `'none'` when the status filters exclude each other (nothing can
 * match: the caller answers an empty page without asking the store).
 */
export function parseInstanceHistoryParams(
  params: InstanceHistoryParams,
): Omit<InstanceHistoryQuery, 'scriptId'> | 'none' {
  const offset = integerParam('offset', params.offset, 0, HISTORY_MAX_OFFSET, 0);
  const limit = integerParam('limit', params.limit, 1, HISTORY_MAX_LIMIT, HISTORY_DEFAULT_LIMIT);
  const createdFrom = parseTimeBound('from', params.from);
  const createdBefore = parseTimeBound('to', params.to);
  if (createdFrom && createdBefore && createdFrom.getTime() > createdBefore.getTime()) {
    throw invalidParameter('from must not be later than to');
  }
  const byStatus = parseList('status', params.status, (item) =>
    (API_STATUSES as readonly string[]).includes(item) ? statesOfApiStatus(item as ApiStatus) : undefined,
  );
  const byDetail = parseList('detailedStatus', params.detailedStatus, (item) =>
    isInstanceState(item) ? [item] : undefined,
  );
  let states: InstanceState[] | undefined;
  if (byStatus && byDetail) states = byStatus.filter((state) => byDetail.includes(state));
  else states = byStatus ?? byDetail;
  if (states?.length === 0) return 'none';
  let scriptName: string | undefined;
  if (params.scriptName !== undefined && params.scriptName !== '') {
    if (!SCRIPT_NAME_PATTERN.test(params.scriptName)) {
      throw invalidParameter('scriptName must be a script name (1-128 of letters, digits, _ . -)');
    }
    scriptName = params.scriptName;
  }
  return {
    offset,
    limit,
    ...(states ? { states } : {}),
    ...(createdFrom ? { createdFrom } : {}),
    ...(createdBefore ? { createdBefore } : {}),
    ...(scriptName !== undefined ? { scriptName } : {}),
  };
}

/** A comma list of known values (spaces around commas allowed); the states they stand for, deduplicated. */
function parseList(
  name: string,
  raw: string | undefined,
  statesOf: (item: string) => readonly InstanceState[] | undefined,
): InstanceState[] | undefined {
  if (raw === undefined || raw === '') return undefined;
  const states = new Set<InstanceState>();
  for (const item of raw.split(',')) {
    const found = statesOf(item.trim());
    if (!found) {
      const allowed = name === 'status' ? API_STATUSES : INSTANCE_STATES;
      throw invalidParameter(`${name} must be one or more of ${allowed.join(', ')}, comma-separated`);
    }
    for (const state of found) states.add(state);
  }
  return [...states];
}

const ISO_DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+ -]\d{2}:?\d{2}))?$/;

/**
 * Epoch milliseconds (digits only) or ISO-8601: a date (`2026-12-01`, midnight UTC) or a date and
 * time with `Z` or an offset (`2026-12-01T10:00:00+08:00`). A time without an offset is refused:
 * it would mean the server's local time, which differs between nodes. A `+` sent unencoded in a
 * query string arrives as a space and is read as `+`. Impossible dates (February 30) are refused,
 * not rolled over.
 */
export function parseTimeBound(name: string, raw: string | undefined): Date | undefined {
  if (raw === undefined || raw === '') return undefined;
  const refuse = () =>
    invalidParameter(
      `${name} must be epoch milliseconds or an ISO-8601 date or date-time with Z or an offset`,
    );
  if (/^\d{1,16}$/.test(raw)) {
    const ms = Number(raw);
    if (ms > MAX_EPOCH_MS) throw refuse();
    return new Date(ms);
  }
  const match = ISO_DATE_TIME.exec(raw);
  if (!match) throw refuse();
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', zone = 'Z'] = match;
  if (match[4] !== undefined && match[8] === undefined) throw refuse();
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const local = Date.UTC(
    year,
    month - 1,
    day,
    hour,
    minute,
    second,
    Number(fraction.padEnd(3, '0').slice(0, 3)),
  );
  const check = new Date(local);
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw refuse();
  }
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const zoneHours = Number(digits.slice(0, 2));
    const zoneMinutes = Number(digits.slice(2));
    if (zoneHours > 23 || zoneMinutes > 59) throw refuse();
    offsetMinutes = sign * (zoneHours * 60 + zoneMinutes);
  }
  return new Date(local - offsetMinutes * 60_000);
}
