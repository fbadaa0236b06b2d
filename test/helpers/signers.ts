/**
 * Client-side AK/SK signers written from docs/compatibility.md §6 (the Python SDK's `Access=` style
 * and gophertelekomcloud's `Credential=` style), independently of src/http/auth/aksk-signature.ts:
 * they share no code with the verifier, so a round trip checks the verifier against a second reading
 * of the specification.
 *
 * Each signer returns the headers its client would send (names spelled as the client spells them).
 * The URL passed is the one that goes on the wire; `pythonQueryString` / `goQueryString` build the
 * query exactly as each client puts it there.
 */
import { createHash, createHmac } from 'node:crypto';

export interface SignArgs {
  method: string;
  /** Absolute URL as sent on the wire. */
  url: string;
  /** Headers present before signing (e.g. `workspace`, a custom `Content-Type`). */
  headers?: Record<string, string>;
  /** Body as sent; a string is sent as UTF-8. */
  body?: string | Buffer;
  ak: string;
  sk: string;
  date: Date;
  /** Adds `X-Project-Id` (PY: before signing, so signed; GO: after signing, unsigned). */
  projectId?: string;
}

export interface GoSignArgs extends SignArgs {
  /** gophertelekomcloud passes none: the scope is then `<yyyymmdd>///sdk_request`. */
  region?: string;
  service?: string;
}

const ALGORITHM = 'SDK-HMAC-SHA256';

/** `YYYYMMDDTHHMMSSZ` of a Date (UTC). */
export function sdkDate(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** RFC 3986 unreserved kept, everything else %XX of its UTF-8 bytes (Python `quote(s, safe='~')`). */
function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/** Go's `url.QueryEscape`. */
function goQueryEscape(text: string): string {
  return rfc3986(text).replace(/%20/g, '+');
}

/** Compares strings by Unicode code point (Python's str order; UTF-16 order differs for astral chars). */
function byCodePoint(a: string, b: string): number {
  const ca = Array.from(a, (c) => c.codePointAt(0) ?? 0);
  const cb = Array.from(b, (c) => c.codePointAt(0) ?? 0);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const d = (ca[i] ?? 0) - (cb[i] ?? 0);
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmacSha256 = (key: string | Buffer, data: string): Buffer =>
  createHmac('sha256', key).update(data, 'utf8').digest();

const bodyBuffer = (body: string | Buffer | undefined): Buffer =>
  body === undefined ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;

/** The path as the client library holds it (decoded), segments re-encoded, `/`-terminated. */
function canonicalPath(url: URL): string {
  const decoded = decodeURIComponent(url.pathname);
  const path = decoded
    .split('/')
    .map((segment) => rfc3986(segment))
    .join('/');
  return path.endsWith('/') ? path : `${path}/`;
}

/** The query string the Python SDK sends: its canonical query (pairs sorted, `%20` for spaces). */
export function pythonQueryString(pairs: ReadonlyArray<readonly [string, string]>): string {
  return [...pairs]
    .sort((a, b) => byCodePoint(a[0], b[0]) || byCodePoint(a[1], b[1]))
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .join('&');
}

/** The query string gophertelekomcloud sends: Go's `url.Values.Encode()` (keys sorted, `+` for spaces). */
export function goQueryString(pairs: ReadonlyArray<readonly [string, string]>): string {
  const keys: string[] = [];
  const values = new Map<string, string[]>();
  for (const [k, v] of pairs) {
    if (!values.has(k)) {
      keys.push(k);
      values.set(k, []);
    }
    values.get(k)?.push(v);
  }
  keys.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  return keys
    .flatMap((k) => (values.get(k) ?? []).map((v) => `${goQueryEscape(k)}=${goQueryEscape(v)}`))
    .join('&');
}

function findHeader(headers: Record<string, string>, name: string): string | undefined {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/** Signs as the official Python SDK does (§7.2). */
export function signPython(args: SignArgs): Record<string, string> {
  const url = new URL(args.url);
  const body = bodyBuffer(args.body);
  const headers: Record<string, string> = { ...args.headers };
  if (findHeader(headers, 'content-type') === undefined) {
    headers['Content-Type'] = body.length > 0 ? 'application/json;charset=utf-8' : 'application/json';
  }
  if (findHeader(headers, 'user-agent') === undefined) headers['User-Agent'] = 'huaweicloud-usdk-python/3.0';
  if (args.projectId !== undefined) headers['X-Project-Id'] = args.projectId;
  if (findHeader(headers, 'x-sdk-date') === undefined) headers['X-Sdk-Date'] = sdkDate(args.date);
  if (findHeader(headers, 'host') === undefined) headers['Host'] = url.host;

  // The SDK holds the query as decoded (key, value) pairs; the wire query is their encoding.
  const pairs = url.search
    .slice(1)
    .split('&')
    .filter((part) => part !== '')
    .map((part): [string, string] => {
      const [k = '', ...rest] = part.split('=');
      return [decodeURIComponent(k), decodeURIComponent(rest.join('='))];
    });

  const names = Object.keys(headers)
    .filter((name) => !name.includes('_'))
    .map((name) => name.toLowerCase())
    .sort(byCodePoint);
  const canonicalHeaders = names
    .map((name) => `${name}:${(findHeader(headers, name) ?? '').trim()}\n`)
    .join('');
  const payload = findHeader(headers, 'x-sdk-content-sha256') ?? sha256(body);
  const canonical = [
    args.method.toUpperCase(),
    canonicalPath(url),
    pythonQueryString(pairs),
    canonicalHeaders,
    names.join(';'),
    payload,
  ].join('\n');
  const date = findHeader(headers, 'x-sdk-date') ?? '';
  const stringToSign = `${ALGORITHM}\n${date}\n${sha256(Buffer.from(canonical, 'utf8'))}`;
  const signature = hmacSha256(Buffer.from(args.sk, 'utf8'), stringToSign).toString('hex');
  headers['Authorization'] =
    `${ALGORITHM} Access=${args.ak}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}

/** Signs as gophertelekomcloud's `signer_helper.go` does (§7.3). */
export function signGo(args: GoSignArgs): Record<string, string> {
  const url = new URL(args.url);
  const body = bodyBuffer(args.body);
  const hasBody = body.length > 0;
  const method = args.method.toUpperCase();
  const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'golangsdk/2.0.0' };
  if (hasBody) headers['Content-Type'] = 'application/json';
  Object.assign(headers, args.headers);
  headers['Host'] = url.host;
  const date = sdkDate(args.date);
  headers['X-Sdk-Date'] = date;

  const postWithoutBody = method === 'POST' && !hasBody;
  const params = new URLSearchParams(url.search); // Go's ParseQuery: `+` is a space
  let canonicalQuery = '';
  if (!postWithoutBody) {
    const firstValues = new Map<string, string>();
    for (const [k, v] of params) if (!firstValues.has(k)) firstValues.set(k, v);
    canonicalQuery = [...firstValues]
      .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
      .sort((a, b) => {
        const x = a[0].toLowerCase();
        const y = b[0].toLowerCase();
        return x < y ? -1 : x > y ? 1 : 0;
      })
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
  }

  const names = Object.keys(headers).sort((a, b) => {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const canonicalHeaders = names
    .map((name) => `${name.toLowerCase()}:${(headers[name] ?? '').replace(/[\t\n\f\r ]+/g, ' ')}\n`)
    .join('');
  const signedHeaders = names.map((name) => name.toLowerCase()).join(';');
  const declared = findHeader(headers, 'x-sdk-content-sha256');
  const payload = declared ?? (postWithoutBody ? sha256(goQueryString([...params])) : sha256(body));
  const canonical = [
    method,
    canonicalPath(url),
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    payload,
  ].join('\n');

  const day = date.slice(0, 8);
  const region = args.region ?? '';
  const service = args.service ?? '';
  const scope = `${day}/${region}/${service}/sdk_request`;
  const stringToSign = `${ALGORITHM}\n${date}\n${scope}\n${sha256(Buffer.from(canonical, 'utf8'))}`;
  let key = hmacSha256(`SDK${args.sk}`, day);
  for (const step of [region, service, 'sdk_request']) key = hmacSha256(key, step);
  const signature = hmacSha256(key, stringToSign).toString('hex');
  headers['Authorization'] =
    `${ALGORITHM} Credential=${args.ak}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  if (args.projectId !== undefined) headers['X-Project-Id'] = args.projectId; // added after signing
  return headers;
}

/** Byte order of the UTF-8 encodings (Go's `sort.Strings`). */
const byBytes = (a: string, b: string): number =>
  Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * The query string huaweicloud-sdk-go-v3 sends: `url.Values.Encode()` (keys in byte order, values in
 * insertion order) with `+` turned into `%20`, and `=` dropped after empty values.
 */
export function huaweiGoV3QueryString(pairs: ReadonlyArray<readonly [string, string]>): string {
  return goQueryString(pairs)
    .replace(/\+/g, '%20')
    .replace(/=(?=&|$)/g, '');
}

export interface HuaweiGoV3SignArgs extends Omit<SignArgs, 'headers'> {
  /** Header parameters set before signing, e.g. `workspace`. */
  headers?: Record<string, string>;
  /** The request definition's content type; the dgc v1 client gives one on every call. */
  contentType?: string;
}

/**
 * Signs as the official Huawei Cloud Go SDK (huaweicloud-sdk-go-v3 `core/auth/signer`) does, written
 * from a reading of its behaviour, not its code:
 * - headers set before signing: the caller's, `User-Agent: huaweicloud-usdk-go/3.0`, the request's
 *   `Content-Type`, `X-Project-Id` (basic credentials with a project id), `X-Sdk-Date`, and
 *   `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` when the content type is neither JSON nor BSON;
 * - signed: every one of them except `Content-Type` and names with `_`, lower-cased, in byte order —
 *   never `Host` (the HTTP client adds it after signing);
 * - canonical request as the Python SDK's: path segments escaped with a trailing `/`, query pairs
 *   sorted by key then value, header values trimmed, payload hash from X-Sdk-Content-Sha256 if set;
 * - `Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=…, Signature=…`, HMAC keyed by the SK.
 * Returns the headers sent, `Host` excluded (the HTTP client of the test adds it).
 */
export function signHuaweiGoV3(args: HuaweiGoV3SignArgs): Record<string, string> {
  const url = new URL(args.url);
  const body = bodyBuffer(args.body);
  const headers: Record<string, string> = { ...args.headers, 'User-Agent': 'huaweicloud-usdk-go/3.0' };
  const contentType = args.contentType ?? 'application/json;charset=UTF-8';
  headers['Content-Type'] = contentType;
  if (args.projectId !== undefined) headers['X-Project-Id'] = args.projectId;
  if (!contentType.includes('application/json') && !contentType.includes('application/bson')) {
    headers['X-Sdk-Content-Sha256'] = 'UNSIGNED-PAYLOAD';
  }
  const date = sdkDate(args.date);
  headers['X-Sdk-Date'] = date;

  const signed = Object.keys(headers)
    .filter((name) => !name.toLowerCase().startsWith('content-type') && !name.includes('_'))
    .map((name) => name.toLowerCase())
    .sort(byBytes);
  const canonicalHeaders = signed
    .map((name) => `${name}:${(findHeader(headers, name) ?? '').trim()}\n`)
    .join('');

  const byKey = new Map<string, string[]>();
  for (const [k, v] of new URLSearchParams(url.search)) byKey.set(k, [...(byKey.get(k) ?? []), v]);
  const canonicalQuery = [...byKey.keys()]
    .sort(byBytes)
    .flatMap((k) => [...(byKey.get(k) ?? [])].sort(byBytes).map((v) => `${rfc3986(k)}=${rfc3986(v)}`))
    .join('&');

  const canonical = [
    args.method.toUpperCase(),
    canonicalPath(url),
    canonicalQuery,
    canonicalHeaders,
    signed.join(';'),
    findHeader(headers, 'x-sdk-content-sha256') ?? sha256(body),
  ].join('\n');
  const stringToSign = `${ALGORITHM}\n${date}\n${sha256(Buffer.from(canonical, 'utf8'))}`;
  const signature = hmacSha256(Buffer.from(args.sk, 'utf8'), stringToSign).toString('hex');
  headers['Authorization'] =
    `${ALGORITHM} Access=${args.ak}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  return headers;
}

/** A request as Node's HTTP server hands it over: lower-cased names, values trimmed and Latin-1-decoded. */
export interface ReceivedRequest {
  method: string;
  rawUrl: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export function asReceived(args: {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}): ReceivedRequest {
  const url = new URL(args.url);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(args.headers)) {
    headers[name.toLowerCase()] = Buffer.from(value.trim(), 'utf8').toString('latin1');
  }
  return {
    method: args.method.toUpperCase(),
    rawUrl: url.pathname + url.search,
    headers,
    body: bodyBuffer(args.body),
  };
}
