/**
 * The AK/SK signer for Node: `aksk-signer.ts`'s canonicalisation with node:crypto's SHA-256 and
 * HMAC. The command line and the tests use it; browsers use `web-crypto-signer.ts`.
 */
import { createHash, createHmac } from 'node:crypto';
import type { RequestSigner } from './api-client.js';
import {
  createAkSkSigner,
  type AkSkCredentials,
  type AkSkSignerOptions,
  type SigningCrypto,
} from './aksk-signer.js';

export const nodeSigningCrypto: SigningCrypto = {
  sha256Hex: (data) => Promise.resolve(createHash('sha256').update(data).digest('hex')),
  hmacSha256: (key, data) => Promise.resolve(new Uint8Array(createHmac('sha256', key).update(data).digest())),
};

export function createNodeSigner(
  credentials: AkSkCredentials,
  options: AkSkSignerOptions = {},
): RequestSigner {
  return createAkSkSigner(credentials, nodeSigningCrypto, options);
}
