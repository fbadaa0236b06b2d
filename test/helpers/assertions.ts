/** Wire-format assertions shared by the API tests. */
import assert from 'node:assert/strict';
import type { ApiResponse } from './server.js';

export const JSON_CT = 'application/json;charset=UTF-8';

/** A DLF error: status, JSON content type, request id, and the envelope with its `errors[0]` twin. */
export function assertError(res: ApiResponse, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${res.text.slice(0, 300)}`);
  assert.equal(res.headers.get('content-type'), JSON_CT);
  assert.match(res.headers.get('x-request-id') ?? '', /^\S+$/);
  assert.ok(res.json !== undefined, `error body is not JSON: ${res.text.slice(0, 200)}`);
  assert.deepEqual(Object.keys(res.json ?? {}).sort(), ['error_code', 'error_msg', 'errors']);
  assert.equal(res.json.error_code, code, res.text.slice(0, 300));
  assert.equal(typeof res.json.error_msg, 'string');
  assert.ok(res.json.error_msg.length > 0);
  assert.deepEqual(res.json.errors, [{ error_code: code, error_msg: res.json.error_msg }]);
}

/** 204 with an empty body (create/modify/delete/stop). */
export function assertNoContent(res: ApiResponse): void {
  assert.equal(res.status, 204, res.text.slice(0, 300));
  assert.equal(res.text, '');
}

/** 200 with a JSON body and a request id. */
export function assertOk(res: ApiResponse): void {
  assert.equal(res.status, 200, res.text.slice(0, 300));
  assert.equal(res.headers.get('content-type'), JSON_CT);
  assert.match(res.headers.get('x-request-id') ?? '', /^\S+$/);
}

/** Polls `probe` every `everyMs` until it gives a value (returned), or throws after `timeoutMs`. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
