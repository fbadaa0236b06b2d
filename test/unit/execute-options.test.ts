/** The execute extensions' pure rules: timeouts, idempotency keys, the request hash. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DlfError } from '../../src/domain/dlf-error.js';
import {
  executeRequestHash,
  formatSeconds,
  parseCallTimeoutMs,
  parseIdempotencyKey,
  runTimeoutMs,
  SCRIPT_TIMEOUT_KEY,
} from '../../src/domain/execute-options.js';

const refused = (fn: () => unknown) =>
  assert.throws(fn, (error) => error instanceof DlfError && error.code === 'DLF.3051');

describe('execute options', () => {
  it('timeoutSeconds: a positive number of seconds up to the server maximum, ms precision', () => {
    assert.equal(parseCallTimeoutMs({}, 10_000), undefined);
    assert.equal(parseCallTimeoutMs(undefined, 10_000), undefined);
    assert.equal(parseCallTimeoutMs({ timeoutSeconds: null }, 10_000), undefined);
    assert.equal(parseCallTimeoutMs({ timeoutSeconds: 1 }, 10_000), 1000);
    assert.equal(parseCallTimeoutMs({ timeoutSeconds: '2.5' }, 10_000), 2500);
    assert.equal(parseCallTimeoutMs({ timeoutSeconds: 10 }, 10_000), 10_000);
    for (const bad of [0, -1, 10.001, 11, 0.0001, 1e21, Number.NaN, 'x', '', ' 1', '01', true, [], {}]) {
      refused(() => parseCallTimeoutMs({ timeoutSeconds: bad }, 10_000));
    }
  });

  it("the script default is checked, capped by the server maximum, and the call's value wins", () => {
    assert.equal(runTimeoutMs(undefined, {}, 5000), undefined);
    assert.equal(runTimeoutMs(undefined, { [SCRIPT_TIMEOUT_KEY]: '3' }, 5000), 3000);
    assert.equal(runTimeoutMs(undefined, { [SCRIPT_TIMEOUT_KEY]: '3600' }, 5000), 5000);
    assert.equal(runTimeoutMs(1000, { [SCRIPT_TIMEOUT_KEY]: '3' }, 5000), 1000);
    refused(() => runTimeoutMs(undefined, { [SCRIPT_TIMEOUT_KEY]: 'soon' }, 5000));
  });

  it('the limit is named as given', () => {
    assert.equal(formatSeconds(1000), '1');
    assert.equal(formatSeconds(1500), '1.5');
    assert.equal(formatSeconds(86_400_000), '86400');
  });

  it('Idempotency-Key: 1-255 printable ASCII characters, once', () => {
    assert.equal(parseIdempotencyKey(undefined), undefined);
    assert.equal(parseIdempotencyKey('a b~'), 'a b~');
    assert.equal(parseIdempotencyKey('k'.repeat(255)), 'k'.repeat(255));
    for (const bad of ['', 'k'.repeat(256), 'caf\u00e9', 'a\tb', 'a\u0000b'])
      refused(() => parseIdempotencyKey(bad));
    refused(() => parseIdempotencyKey(['a', 'b']));
  });

  it('the request hash ignores key order and white space, not values', () => {
    const a = executeRequestHash({ params: { x: '1', y: '2' }, timeoutSeconds: 5 });
    assert.equal(a, executeRequestHash(JSON.parse('{ "timeoutSeconds": 5, "params": {"y":"2","x":"1"} }')));
    assert.notEqual(a, executeRequestHash({ params: { x: '1', y: '3' }, timeoutSeconds: 5 }));
    assert.notEqual(a, executeRequestHash({ params: { x: '1', y: '2' } }));
    assert.equal(executeRequestHash(undefined), executeRequestHash({}));
    assert.notEqual(executeRequestHash({ a: [1, 2] }), executeRequestHash({ a: [2, 1] }));
  });
});
