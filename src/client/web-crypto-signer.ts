/**
 * The AK/SK signer's hash primitives from Web Crypto (`crypto.subtle`), for the web console. Browsers
 * offer `crypto.subtle` only in a secure context (HTTPS, or `http://127.0.0.1`/`localhost`): on plain
 * HTTP to another host `webCryptoAvailable()` is false and AK/SK sign-in cannot be offered there.
 * No `node:` import (Node 20 has the same global, which the unit test uses).
 */
import {
  createAkSkSigner,
  type AkSkCredentials,
  type AkSkSignerOptions,
  type SigningCrypto,
} from './aksk-signer.js';
import type { RequestSigner } from './api-client.js';

const toHex = (bytes: ArrayBuffer): string =>
  Array.from(new Uint8Array(bytes), (byte) => byte.toString(16).padStart(2, '0')).join('');

/** Web Crypto takes only ArrayBuffer-backed views; a copy also detaches it from a shared buffer. */
const own = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);

/** Whether this page may sign (Web Crypto's digest and HMAC are present). */
export function webCryptoAvailable(): boolean {
  return typeof globalThis.crypto?.subtle?.importKey === 'function';
}

/** SHA-256 and HMAC-SHA256 through `crypto.subtle`. */
export const webSigningCrypto: SigningCrypto = {
  async sha256Hex(data) {
    return toHex(await globalThis.crypto.subtle.digest('SHA-256', own(data)));
  },
  async hmacSha256(key, data) {
    const hmacKey = await globalThis.crypto.subtle.importKey(
      'raw',
      own(key),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    return new Uint8Array(await globalThis.crypto.subtle.sign('HMAC', hmacKey, own(data)));
  },
};

/** A `RequestSigner` for `DlfApiClient` that signs in the browser. */
export function createWebCryptoSigner(
  credentials: AkSkCredentials,
  options: AkSkSignerOptions = {},
): RequestSigner {
  return createAkSkSigner(credentials, webSigningCrypto, options);
}
