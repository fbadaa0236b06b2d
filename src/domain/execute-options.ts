/**
 * Extensions of execute (README "Execute extensions"): a per-call timeout (`timeoutSeconds` in the
 * body, or the script's `opendlf.timeoutSeconds` configuration entry) and the `Idempotency-Key`
 * header. Pure rules; the service applies them, the store keeps the keys.
 */
import { createHash } from 'node:crypto';
import { invalidParameter } from './dlf-error.js';

/**
 * The script `configuration` key holding a default timeout for its runs. `configuration` is DLI's
 * job conf map, whose keys are namespaced (`dli.sql.`, `spark.sql.`, …): opendlf's own namespace
 * cannot collide with one of them.
 */
export const SCRIPT_TIMEOUT_KEY = 'opendlf.timeoutSeconds';

/** Seconds with at most millisecond precision: `1`, `0.5`, `90.125`. */
const SECONDS = /^(?:0|[1-9]\d{0,9})(?:\.\d{1,3})?$/;

function secondsOf(raw: unknown): number | undefined {
  if (typeof raw === 'number' && Number.isFinite(raw)) return SECONDS.test(String(raw)) ? raw : undefined;
  if (typeof raw === 'string' && SECONDS.test(raw)) return Number(raw);
  return undefined;
}

function refuseSeconds(field: string, maxSeconds?: number): never {
  const bound = maxSeconds === undefined ? '' : ` and at most ${formatSeconds(maxSeconds * 1000)}`;
  throw invalidParameter(`${field} must be a number of seconds greater than 0${bound} (at most 3 decimals)`);
}

/** `1000` → `1`, `1500` → `1.5`: the limit as the API took it. */
export function formatSeconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}

/**
 * The `timeoutSeconds` of an execute body, in milliseconds; undefined when absent. It may not
 * exceed the server's own instance timeout (`maxMs`): a caller can shorten a run, never lengthen it.
 */
export function parseCallTimeoutMs(body: unknown, maxMs: number): number | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const raw = (body as Record<string, unknown>).timeoutSeconds;
  if (raw === undefined || raw === null) return undefined;
  const seconds = secondsOf(raw);
  if (seconds === undefined || seconds <= 0 || seconds * 1000 > maxMs) {
    refuseSeconds('timeoutSeconds', maxMs / 1000);
  }
  return Math.round(seconds * 1000);
}

/** Checks the script's default when a create or modify sets it (the server's maximum applies at execute). */
export function assertScriptTimeout(value: string): void {
  const seconds = secondsOf(value);
  if (seconds === undefined || seconds <= 0) refuseSeconds(`configuration.${SCRIPT_TIMEOUT_KEY}`);
}

/**
 * The limit of one run: the call's `timeoutSeconds`, else the script's default (capped at the
 * server's instance timeout, which may have been lowered since the script was saved), else none
 * (the runner applies the server's instance timeout). Undefined keeps the stored run request as
 * it was before this extension.
 */
export function runTimeoutMs(
  callMs: number | undefined,
  configuration: Readonly<Record<string, string>>,
  maxMs: number,
): number | undefined {
  if (callMs !== undefined) return callMs;
  const value = configuration[SCRIPT_TIMEOUT_KEY];
  if (value === undefined) return undefined;
  assertScriptTimeout(value);
  return Math.min(Math.round(Number(value) * 1000), maxMs);
}

/** Keys expire after this: a repeat within 24 h gets the first instance, a later one runs again. */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 3_600_000;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** Printable ASCII, space included (a UUID, a job run id, anything a client can put in a header). */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]+$/;

/** The `Idempotency-Key` header: undefined when absent; DLF.3051 when empty, too long, or not printable ASCII. */
export function parseIdempotencyKey(header: string | readonly string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string') throw invalidParameter('Idempotency-Key may be given only once');
  if (header.length === 0 || header.length > MAX_IDEMPOTENCY_KEY_LENGTH || !IDEMPOTENCY_KEY.test(header)) {
    throw invalidParameter(
      `Idempotency-Key must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`,
    );
  }
  return header;
}

/**
 * What "the same request" means for a key: the SHA-256 of the JSON body with object keys sorted
 * (key order and white space do not count); no body is `{}`.
 */
export function executeRequestHash(body: unknown): string {
  let text: string;
  try {
    text = canonicalJson(body ?? {});
  } catch (error) {
    // canonicalJson recurses: a body nested thousands of levels deep overflows the stack.
    if (error instanceof RangeError) throw invalidParameter('the request body is nested too deeply');
    throw error;
  }
  return createHash('sha256').update(text).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
