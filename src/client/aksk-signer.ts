/**
 * AK/SK request signing as the official Huawei Cloud Python SDK does it (`SDK-HMAC-SHA256
 * Access=<AK>, SignedHeaders=…, Signature=…`, HMAC keyed by the SK; docs/compatibility.md §6), for
 * the API client. The canonicalisation is written here once; the two hash primitives come from the
 * platform (`node-signer.ts`: node:crypto; `web-crypto-signer.ts`: Web Crypto), so Node and the
 * browser sign byte for byte alike. No `node:` import.
 *
 * Canonical request: method, the decoded path with each segment RFC 3986 re-encoded and a trailing
 * `/`, every query pair decoded and sorted by key then value (code-point order), `name:value\n` for
 * each signed header (lower-cased, sorted, values trimmed), the signed header list, and the SHA-256
 * of the body bytes. String to sign: `SDK-HMAC-SHA256\n<X-Sdk-Date>\n<sha256(canonical)>`.
 */
import { encodeRfc3986, type RequestSigner, type SignableRequest } from './api-client.js';

/** The two primitives a platform provides. */
export interface SigningCrypto {
  sha256Hex(data: Uint8Array): Promise<string>;
  hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Uint8Array>;
}

export interface AkSkCredentials {
  accessKey: string;
  secretKey: string;
  /**
   * Sent (and signed) as `X-Project-Id`, like the Python SDK with basic credentials. The server
   * checks it matches the project in the path.
   */
  projectId?: string;
}

export interface AkSkSignerOptions {
  /**
   * Whether `Host` is signed (the Python SDK signs it). A browser behind a proxy that rewrites
   * `Host` must not sign it; `Access=` signatures are accepted without it (method, path, query,
   * body and date stay bound). Default true.
   */
  signHost?: boolean;
  /** The clock; tests pass a fixed one. */
  now?: () => Date;
}

export const SIGNING_ALGORITHM = 'SDK-HMAC-SHA256';

const encoder = new TextEncoder();

/** `YYYYMMDDTHHMMSSZ` (UTC), the X-Sdk-Date format. */
export function sdkDate(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

function compareCodePoints(a: string, b: string): number {
  const ca = Array.from(a, (c) => c.codePointAt(0) ?? 0);
  const cb = Array.from(b, (c) => c.codePointAt(0) ?? 0);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const d = (ca[i] ?? 0) - (cb[i] ?? 0);
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

/** Form decoding of one query component (`+` is a space), as the server parses the wire query. */
function decodeQueryComponent(text: string): string {
  return decodeURIComponent(text.replace(/\+/g, ' '));
}

function canonicalPath(pathname: string): string {
  const path = pathname
    .split('/')
    .map((segment) => encodeRfc3986(decodeURIComponent(segment)))
    .join('/');
  return path.endsWith('/') ? path : `${path}/`;
}

function canonicalQuery(search: string): string {
  return search
    .replace(/^\?/, '')
    .split('&')
    .filter((part) => part !== '')
    .map((part): [string, string] => {
      const eq = part.indexOf('=');
      return eq < 0
        ? [decodeQueryComponent(part), '']
        : [decodeQueryComponent(part.slice(0, eq)), decodeQueryComponent(part.slice(eq + 1))];
    })
    .sort((a, b) => compareCodePoints(a[0], b[0]) || compareCodePoints(a[1], b[1]))
    .map(([key, value]) => `${encodeRfc3986(key)}=${encodeRfc3986(value)}`)
    .join('&');
}

const toHex = (bytes: Uint8Array): string =>
  Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');

/**
 * Signs one request; returns every header to send (the request's, `X-Sdk-Date`, `X-Project-Id`,
 * `Authorization`, and `Host` when it is signed — fetch sets the same value itself).
 */
export async function signAkSk(
  request: SignableRequest,
  credentials: AkSkCredentials,
  crypto: SigningCrypto,
  options: AkSkSignerOptions = {},
): Promise<Record<string, string>> {
  const url = new URL(request.url);
  const headers: Record<string, string> = {};
  // One spelling per name: a caller's `content-type` and ours would otherwise both be signed.
  for (const [name, value] of Object.entries(request.headers)) {
    for (const existing of Object.keys(headers)) {
      if (existing.toLowerCase() === name.toLowerCase()) delete headers[existing];
    }
    headers[name] = value;
  }
  const date = sdkDate((options.now ?? (() => new Date()))());
  headers['X-Sdk-Date'] = date;
  if (credentials.projectId !== undefined) headers['X-Project-Id'] = credentials.projectId;

  const signed = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) {
    // The SDK skips names with `_` (proxies drop them); `authorization` is what we are computing.
    const lower = name.toLowerCase();
    if (lower.includes('_') || lower === 'authorization') continue;
    signed.set(lower, value.trim());
  }
  if (options.signHost !== false) signed.set('host', url.host);
  const names = [...signed.keys()].sort(compareCodePoints);

  const canonical = [
    request.method.toUpperCase(),
    canonicalPath(url.pathname),
    canonicalQuery(url.search),
    names.map((name) => `${name}:${signed.get(name) ?? ''}\n`).join(''),
    names.join(';'),
    await crypto.sha256Hex(encoder.encode(request.body ?? '')),
  ].join('\n');
  const stringToSign = `${SIGNING_ALGORITHM}\n${date}\n${await crypto.sha256Hex(encoder.encode(canonical))}`;
  const signature = toHex(
    await crypto.hmacSha256(encoder.encode(credentials.secretKey), encoder.encode(stringToSign)),
  );
  headers['Authorization'] =
    `${SIGNING_ALGORITHM} Access=${credentials.accessKey}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}

/** A `RequestSigner` for `DlfApiClient` from credentials and the platform's primitives. */
export function createAkSkSigner(
  credentials: AkSkCredentials,
  crypto: SigningCrypto,
  options: AkSkSignerOptions = {},
): RequestSigner {
  return (request) => signAkSk(request, credentials, crypto, options);
}
