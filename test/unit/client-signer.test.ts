/**
 * The API client's AK/SK signer against the independent Python-SDK signer of the tests
 * (test/helpers/signers.ts) and the server's verifier: same request, same date, same signature.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signAkSk } from '../../src/client/aksk-signer.js';
import { nodeSigningCrypto } from '../../src/client/node-signer.js';
import { webSigningCrypto } from '../../src/client/web-crypto-signer.js';
import { verifySignature } from '../../src/http/auth/aksk-signature.js';
import { asReceived, signPython } from '../helpers/signers.js';

const AK = 'AKCLIENT00000001';
const SK = 'client-secret-key-S3cr3t-0001';
const DATE = new Date('2026-11-28T10:11:12Z');

const cases = [
  {
    method: 'GET',
    url: 'http://127.0.0.1:8080/v1/p1/scripts?limit=1000&offset=0&scriptName=a%20b',
    body: undefined,
  },
  {
    method: 'POST',
    url: 'http://127.0.0.1:8080/v1/p1/scripts/daily/execute?waitSeconds=5',
    body: '{"params":{"date":"2026-11-28 ü"}}',
  },
  { method: 'PUT', url: 'http://localhost:9/v1/p1/connections/c-1?ischeck=true', body: '{"name":"c-1"}' },
];

describe('client AK/SK signer', () => {
  for (const { method, url, body } of cases) {
    it(`signs ${method} ${url} exactly as the Python SDK does`, async () => {
      const headers = {
        'User-Agent': 'opendlf-cli',
        Accept: 'application/json',
        workspace: 'ws1',
        'Content-Type': 'application/json;charset=utf-8',
      };
      const ours = await signAkSk(
        { method, url, headers, body },
        { accessKey: AK, secretKey: SK, projectId: 'p1' },
        nodeSigningCrypto,
        { now: () => DATE },
      );
      const reference = signPython({
        method,
        url,
        headers,
        body,
        ak: AK,
        sk: SK,
        date: DATE,
        projectId: 'p1',
      });
      assert.equal(ours.Authorization, reference.Authorization);

      const viaWebCrypto = await signAkSk(
        { method, url, headers, body },
        { accessKey: AK, secretKey: SK, projectId: 'p1' },
        webSigningCrypto,
        { now: () => DATE },
      );
      assert.deepEqual(viaWebCrypto, ours);

      const received = asReceived({ method, url, headers: { ...ours, Host: new URL(url).host }, body });
      const verdict = verifySignature(received, (ak) => (ak === AK ? SK : undefined), { now: DATE });
      assert.deepEqual(verdict, { ok: true, accessKey: AK, style: 'python' });
    });
  }

  it('a different secret key gives a signature the server refuses', async () => {
    const { method, url, body } = cases[1]!;
    const signed = await signAkSk(
      { method, url, headers: {}, body },
      { accessKey: AK, secretKey: 'wrong' },
      nodeSigningCrypto,
      { now: () => DATE },
    );
    const received = asReceived({ method, url, headers: { ...signed, Host: new URL(url).host }, body });
    const verdict = verifySignature(received, () => SK, { now: DATE });
    assert.equal(verdict.ok, false);
  });
});
