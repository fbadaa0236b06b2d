/**
 * Verification of the AK/SK request signatures sent by the two official clients (docs/compatibility.md §6).
 * Pure: no I/O, no clock of its own, never throws on malformed input.
 *
 * Both clients use the algorithm name `SDK-HMAC-SHA256` but differ in the Authorization format, the
 * canonical query, the header normalisation and the key:
 *
 * - Python SDK (`Access=<AK>`): HMAC keyed by the SK itself; canonical query = every (key, value) pair
 *   sorted in byte order; header values trimmed.
 * - gophertelekomcloud (`Credential=<AK>/<yyyymmdd>/<region>/<service>/sdk_request`): HMAC keyed by a
 *   key derived from "SDK"+SK; canonical query = first value per key, keys sorted case-insensitively,
 *   and empty for a POST without body (whose payload hash then covers the form-encoded query);
 *   header values with whitespace runs collapsed; a scope line in the string to sign.
 *
 * The Python SDK and the official Go SDK (huaweicloud-sdk-go-v3) share the `Access=` style: same key,
 * same canonical query (every pair, sorted), same header trimming. The Go SDK signs `x-sdk-date` and
 * the headers it set itself but never `host` (nor `content-type`), so `host` is required to be signed
 * only in the `Credential=` style; an `Access=` signature still binds method, path, query, body and
 * date, and a replay is bounded by the date skew (a request replayed to another server holding the
 * same access key is the price of supporting that SDK).
 *
 * `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` leaves the body unsigned. It is accepted only when the
 * caller says the route takes raw bodies (the zip import) and the content type is present and not
 * JSON — on a JSON request the body could be swapped for another script or another command.
 *
 * Everything is rebuilt from the bytes as received. Node decodes the request line and header values
 * as Latin-1, so every such string is first turned back into the bytes that were on the wire; those
 * bytes are what both clients hashed (the Python SDK signs the Unicode value and transmits its UTF-8
 * encoding, so "decode as UTF-8, then hash the UTF-8" is the same as hashing the wire bytes).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNING_ALGORITHM = 'SDK-HMAC-SHA256';
/** The scope terminator of the gophertelekomcloud credential. */
export const GO_SCOPE_TERMINATOR = 'sdk_request';
/** Tolerance between X-Sdk-Date and the server clock when the caller gives none (not in the sources). */
export const DEFAULT_MAX_SKEW_MS = 15 * 60 * 1000;

export interface SignedRequest {
  method: string;
  /** Path + query exactly as received, e.g. `request.raw.url`. */
  rawUrl: string;
  /** Node's lower-cased headers (values decoded as Latin-1 by Node). */
  headers: Record<string, string | string[] | undefined>;
  /** The raw body bytes; an empty Buffer when there is none. */
  body: Buffer;
}

export type ParsedAuthorization =
  | { style: 'python'; accessKey: string; signedHeaders: string[]; signature: string }
  | {
      style: 'go';
      accessKey: string;
      scopeDate: string;
      region: string;
      service: string;
      signedHeaders: string[];
      signature: string;
    };

export type VerifyResult =
  { ok: true; accessKey: string; style: 'python' | 'go' } | { ok: false; reason: string };

// ---------------------------------------------------------------------------------------------------
// Authorization header

/** A lower-case HTTP header name (RFC 9110 token); both clients lower-case the signed names. */
const SIGNED_HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const SCOPE_DATE = /^\d{8}$/;

/**
 * Parses `SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` (Python SDK) or
 * `SDK-HMAC-SHA256 Credential=<AK>/<yyyymmdd>/<region>/<service>/sdk_request, SignedHeaders=…, Signature=…`
 * (gophertelekomcloud). Anything else — another algorithm, a missing, duplicated or unknown field, an
 * empty signed-header list — gives undefined.
 */
export function parseAuthorization(header: string): ParsedAuthorization | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^\s*(\S+)\s+(.*?)\s*$/s.exec(header);
  if (!match || match[1] !== SIGNING_ALGORITHM) return undefined;
  const fields = new Map<string, string>();
  for (const part of (match[2] ?? '').split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (!['access', 'credential', 'signedheaders', 'signature'].includes(key)) return undefined;
    if (fields.has(key) || value === '' || /\s/.test(value)) return undefined;
    fields.set(key, value);
  }
  const signature = fields.get('signature');
  const signedHeaderList = fields.get('signedheaders');
  if (signature === undefined || signedHeaderList === undefined) return undefined;
  const signedHeaders = signedHeaderList.split(';');
  if (signedHeaders.some((name) => !SIGNED_HEADER_NAME.test(name))) return undefined;
  if (new Set(signedHeaders).size !== signedHeaders.length) return undefined;

  const access = fields.get('access');
  const credential = fields.get('credential');
  if (access !== undefined && credential === undefined) {
    return { style: 'python', accessKey: access, signedHeaders, signature };
  }
  if (credential !== undefined && access === undefined) {
    const parts = credential.split('/');
    if (parts.length !== 5) return undefined;
    const [accessKey = '', scopeDate = '', region = '', service = '', terminator] = parts;
    if (accessKey === '' || !SCOPE_DATE.test(scopeDate) || terminator !== GO_SCOPE_TERMINATOR)
      return undefined;
    return { style: 'go', accessKey, scopeDate, region, service, signedHeaders, signature };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Byte-level encoding helpers

/** A string Node decoded as Latin-1 back to its wire bytes; a string that cannot be Latin-1 as UTF-8. */
function wireBytes(text: string): Buffer {
  // eslint-disable-next-line no-control-regex
  return /^[\u0000-\u00ff]*$/.test(text) ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf8');
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/**
 * Percent-decodes bytes. A `%` not followed by two hex digits stays literal (as Python's `unquote`
 * does); `plusAsSpace` applies the form rule used for query components.
 */
function percentDecode(input: Buffer, plusAsSpace: boolean): Buffer {
  const out = Buffer.alloc(input.length);
  let length = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i] ?? 0;
    if (byte === 0x25 && i + 2 < input.length) {
      const high = hexValue(input[i + 1] ?? -1);
      const low = hexValue(input[i + 2] ?? -1);
      if (high >= 0 && low >= 0) {
        out[length++] = high * 16 + low;
        i += 2;
        continue;
      }
    }
    out[length++] = plusAsSpace && byte === 0x2b ? 0x20 : byte;
  }
  return out.subarray(0, length);
}

function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x2e || // .
    byte === 0x5f || // _
    byte === 0x7e // ~
  );
}

const HEX = '0123456789ABCDEF';
const escapeByte = (byte: number): string => `%${HEX[byte >> 4] ?? ''}${HEX[byte & 15] ?? ''}`;

/** RFC 3986 encoding with only the unreserved set kept (both clients' canonical encoder). */
function canonicalEncode(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) out += isUnreserved(byte) ? String.fromCharCode(byte) : escapeByte(byte);
  return out;
}

/** Go's `url.QueryEscape`: unreserved kept, space as `+`, everything else escaped. */
function goQueryEscape(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    if (isUnreserved(byte)) out += String.fromCharCode(byte);
    else if (byte === 0x20) out += '+';
    else out += escapeByte(byte);
  }
  return out;
}

const sha256Hex = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer, data: Buffer | string): Buffer => createHmac('sha256', key).update(data).digest();

// ---------------------------------------------------------------------------------------------------
// Canonical request

interface QueryPair {
  key: Buffer;
  value: Buffer;
}

/** Splits a raw request target into path and query bytes (origin-form; absolute-form tolerated). */
function splitTarget(rawUrl: string): { path: Buffer; query: Buffer } {
  let target = rawUrl;
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?]*/i.exec(target);
  if (absolute) target = target.slice(absolute[0].length);
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  return { path: wireBytes(path), query: wireBytes(query) };
}

/** Decoded path, split on `/`, each segment re-encoded, trailing `/` appended (both clients). */
function canonicalUri(path: Buffer): string {
  const decoded = percentDecode(path, false);
  const segments: string[] = [];
  let start = 0;
  for (let i = 0; i <= decoded.length; i++) {
    if (i === decoded.length || decoded[i] === 0x2f) {
      segments.push(canonicalEncode(decoded.subarray(start, i)));
      start = i + 1;
    }
  }
  let uri = segments.join('/');
  if (!uri.startsWith('/')) uri = `/${uri}`;
  if (!uri.endsWith('/')) uri += '/';
  return uri;
}

/** `k=v&k2` ⇒ decoded pairs in order of appearance (form rules: `+` is a space; empty parts skipped). */
function parseQuery(query: Buffer): QueryPair[] {
  const pairs: QueryPair[] = [];
  let start = 0;
  for (let i = 0; i <= query.length; i++) {
    if (i < query.length && query[i] !== 0x26) continue;
    const part = query.subarray(start, i);
    start = i + 1;
    if (part.length === 0) continue;
    const eq = part.indexOf(0x3d);
    const key = eq < 0 ? part : part.subarray(0, eq);
    const value = eq < 0 ? Buffer.alloc(0) : part.subarray(eq + 1);
    pairs.push({ key: percentDecode(key, true), value: percentDecode(value, true) });
  }
  return pairs;
}

/** Python SDK: all pairs sorted by (key, value) in byte (= code point) order. */
function pythonCanonicalQuery(pairs: QueryPair[]): string {
  return [...pairs]
    .sort((a, b) => Buffer.compare(a.key, b.key) || Buffer.compare(a.value, b.value))
    .map((pair) => `${canonicalEncode(pair.key)}=${canonicalEncode(pair.value)}`)
    .join('&');
}

/** Pairs grouped by decoded key, like Go's url.Values: the values of a key stay in order of appearance. */
function groupByKey(pairs: QueryPair[]): Map<string, { key: Buffer; values: Buffer[] }> {
  const groups = new Map<string, { key: Buffer; values: Buffer[] }>();
  for (const pair of pairs) {
    const id = pair.key.toString('latin1');
    const group = groups.get(id);
    if (group) group.values.push(pair.value);
    else groups.set(id, { key: pair.key, values: [pair.value] });
  }
  return groups;
}

/**
 * gophertelekomcloud: keys encoded, sorted case-insensitively (ties — keys differing only in case,
 * which Go orders arbitrarily — broken by byte order), the first value of each key.
 */
function goCanonicalQuery(pairs: QueryPair[]): string {
  const entries = [...groupByKey(pairs).values()].map((group) => ({
    key: canonicalEncode(group.key),
    value: canonicalEncode(group.values[0] ?? Buffer.alloc(0)),
  }));
  entries.sort((a, b) => {
    const la = a.key.toLowerCase();
    const lb = b.key.toLowerCase();
    if (la !== lb) return la < lb ? -1 : 1;
    return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  });
  return entries.map((entry) => `${entry.key}=${entry.value}`).join('&');
}

/** Go's `url.Values.Encode()`: keys in byte order, every value in order, QueryEscape'd. */
function goEncodedQuery(pairs: QueryPair[]): string {
  const groups = [...groupByKey(pairs).values()].sort((a, b) => Buffer.compare(a.key, b.key));
  const parts: string[] = [];
  for (const group of groups) {
    for (const value of group.values) parts.push(`${goQueryEscape(group.key)}=${goQueryEscape(value)}`);
  }
  return parts.join('&');
}

function headerValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Python: `strip()`. Go: runs of `[\t\n\f\r ]` collapsed to one space (Go transmits the value trimmed). */
function canonicalHeaderValue(value: string, style: 'python' | 'go'): Buffer {
  const bytes = wireBytes(value).toString('latin1');
  // ASCII whitespace only: a byte like 0xA0 may be the tail of a UTF-8 sequence.
  const normalised =
    style === 'go'
      ? bytes.replace(/[\t\n\f\r ]+/g, ' ').replace(/^ | $/g, '')
      : bytes.replace(/^[\t\n\v\f\r ]+|[\t\n\v\f\r ]+$/g, '');
  return Buffer.from(normalised, 'latin1');
}

type Failure = { ok: false; reason: string };
const fail = (reason: string): Failure => ({ ok: false, reason });

/** A declared content type that is not JSON (nor BSON, which the Go SDK also signs). */
function isNonJsonContentType(request: SignedRequest): boolean {
  const contentType = headerValue(request.headers['content-type'])?.trim().toLowerCase() ?? '';
  return contentType !== '' && !/json|bson/.test(contentType);
}

function payloadHash(
  request: SignedRequest,
  auth: ParsedAuthorization,
  goPostWithoutBody: boolean,
  pairs: QueryPair[],
  allowUnsignedPayload: boolean,
): string | Failure {
  const bodyHash = sha256Hex(request.body);
  // A client that sets X-Sdk-Content-Sha256 signs it (both sign every header present at signing
  // time); an unsigned one could be forged, so it is honoured only when signed.
  if (auth.signedHeaders.includes('x-sdk-content-sha256')) {
    const declared = headerValue(request.headers['x-sdk-content-sha256']);
    if (declared !== undefined) {
      const literal = declared.trim();
      if (literal === 'UNSIGNED-PAYLOAD') {
        return allowUnsignedPayload && isNonJsonContentType(request)
          ? literal
          : fail('UNSIGNED-PAYLOAD is accepted only for non-JSON uploads');
      }
      const expected = goPostWithoutBody ? sha256Hex(goEncodedQuery(pairs)) : bodyHash;
      if (literal.toLowerCase() !== expected) return fail('X-Sdk-Content-Sha256 does not match the body');
      return literal;
    }
  }
  if (goPostWithoutBody) return sha256Hex(goEncodedQuery(pairs));
  return bodyHash;
}

function canonicalRequest(
  request: SignedRequest,
  auth: ParsedAuthorization,
  allowUnsignedPayload: boolean,
): Buffer | Failure {
  const method = request.method.toUpperCase();
  const { path, query } = splitTarget(request.rawUrl);
  const pairs = parseQuery(query);
  const goPostWithoutBody = auth.style === 'go' && method === 'POST' && request.body.length === 0;
  const canonicalQuery =
    auth.style === 'python' ? pythonCanonicalQuery(pairs) : goPostWithoutBody ? '' : goCanonicalQuery(pairs);

  const headerLines: Buffer[] = [];
  for (const name of auth.signedHeaders) {
    const value = headerValue(request.headers[name]);
    if (value === undefined) return fail(`signed header ${name} is missing from the request`);
    headerLines.push(
      Buffer.from(`${name}:`, 'latin1'),
      canonicalHeaderValue(value, auth.style),
      Buffer.from('\n'),
    );
  }
  const hash = payloadHash(request, auth, goPostWithoutBody, pairs, allowUnsignedPayload);
  if (typeof hash !== 'string') return hash;

  return Buffer.concat([
    Buffer.from(`${method}\n${canonicalUri(path)}\n${canonicalQuery}\n`, 'latin1'),
    ...headerLines,
    Buffer.from(`\n${auth.signedHeaders.join(';')}\n${hash}`, 'latin1'),
  ]);
}

// ---------------------------------------------------------------------------------------------------
// Date

const SDK_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** `YYYYMMDDTHHMMSSZ` ⇒ epoch ms, or undefined when malformed or not a real instant. */
function parseSdkDate(text: string): number | undefined {
  const m = SDK_DATE.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const d = new Date(ms);
  const valid =
    d.getUTCFullYear() === year &&
    d.getUTCMonth() === month - 1 &&
    d.getUTCDate() === day &&
    d.getUTCHours() === hour &&
    d.getUTCMinutes() === minute &&
    d.getUTCSeconds() === second;
  return valid ? ms : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Verification

export interface VerifyOptions {
  now: Date;
  maxSkewMs?: number;
  /** The route takes raw (non-JSON) bodies, so `UNSIGNED-PAYLOAD` may be honoured there. Default false. */
  allowUnsignedPayload?: boolean;
}

/**
 * Verifies an AK/SK-signed request (docs/compatibility.md §6). `lookupSecretKey` gives the SK of an
 * access key, undefined when unknown. The reasons returned are safe to show to the client.
 */
export function verifySignature(
  request: SignedRequest,
  lookupSecretKey: (accessKey: string) => string | undefined,
  options: VerifyOptions,
): VerifyResult {
  try {
    return verify(request, lookupSecretKey, options);
  } catch {
    // Defensive: nothing above is expected to throw, but a verifier must never crash a request.
    return fail('the request could not be verified');
  }
}

function verify(
  request: SignedRequest,
  lookupSecretKey: (accessKey: string) => string | undefined,
  options: VerifyOptions,
): VerifyResult {
  const authorization = headerValue(request.headers['authorization']);
  if (authorization === undefined || authorization.trim() === '') return fail('missing Authorization header');
  const algorithm = /^\s*(\S+)/.exec(authorization)?.[1];
  if (algorithm !== SIGNING_ALGORITHM) return fail('unsupported algorithm');
  const auth = parseAuthorization(authorization);
  if (!auth) return fail('malformed Authorization header');

  const dateHeader = headerValue(request.headers['x-sdk-date']);
  if (dateHeader === undefined) return fail('missing X-Sdk-Date header');
  const sdkDate = dateHeader.trim();
  const signedAt = parseSdkDate(sdkDate);
  if (signedAt === undefined) return fail('malformed X-Sdk-Date (expected YYYYMMDDTHHMMSSZ)');
  if (!auth.signedHeaders.includes('x-sdk-date')) return fail('X-Sdk-Date must be signed');
  if (auth.style === 'go' && !auth.signedHeaders.includes('host')) return fail('Host must be signed');
  if (auth.style === 'go' && auth.scopeDate !== sdkDate.slice(0, 8)) {
    return fail('credential scope date does not match X-Sdk-Date');
  }
  const maxSkewMs =
    options.maxSkewMs !== undefined && Number.isFinite(options.maxSkewMs) && options.maxSkewMs >= 0
      ? options.maxSkewMs
      : DEFAULT_MAX_SKEW_MS;
  const now = options.now.getTime();
  if (!Number.isFinite(now) || Math.abs(now - signedAt) > maxSkewMs) {
    return fail('X-Sdk-Date outside the allowed skew');
  }

  const secretKey = lookupSecretKey(auth.accessKey);
  if (secretKey === undefined) return fail('unknown access key');

  const canonical = canonicalRequest(request, auth, options.allowUnsignedPayload === true);
  if (!Buffer.isBuffer(canonical)) return canonical;
  const canonicalHash = sha256Hex(canonical);

  let expected: Buffer;
  if (auth.style === 'python') {
    expected = hmac(Buffer.from(secretKey, 'utf8'), `${SIGNING_ALGORITHM}\n${sdkDate}\n${canonicalHash}`);
  } else {
    const scope = `${auth.scopeDate}/${auth.region}/${auth.service}/${GO_SCOPE_TERMINATOR}`;
    const kDate = hmac(Buffer.from(`SDK${secretKey}`, 'utf8'), auth.scopeDate);
    const kRegion = hmac(kDate, auth.region);
    const kService = hmac(kRegion, auth.service);
    const kSigning = hmac(kService, GO_SCOPE_TERMINATOR);
    expected = hmac(kSigning, `${SIGNING_ALGORITHM}\n${sdkDate}\n${scope}\n${canonicalHash}`);
  }

  // Exactly 64 hex digits: Buffer.from(…, 'hex') silently drops a trailing odd digit or junk.
  const provided = /^[0-9a-fA-F]{64}$/.test(auth.signature)
    ? Buffer.from(auth.signature, 'hex')
    : Buffer.alloc(0);
  if (provided.length !== expected.length || !timingSafeEqual(provided, expected)) {
    return fail('signature mismatch');
  }
  return { ok: true, accessKey: auth.accessKey, style: auth.style };
}
