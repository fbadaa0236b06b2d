/**
 * The query checks that moved from handlers into route schemas: the schema's pattern accepts
 * exactly what the handler's check accepted, so no caller sees a different answer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { WAIT_SECONDS_PATTERN } from '../../src/http/schemas/script-schemas.js';

/** The handler's check before it moved (app.ts): up to two digits, up to three decimals, at most 60. */
const handlerAccepted = (raw: string) => /^\d{1,2}(\.\d{1,3})?$/.test(raw) && Number(raw) <= 60;
const schemaAccepts = (raw: string) => new RegExp(WAIT_SECONDS_PATTERN, 'u').test(raw);

/** Every string of exactly `length` characters of `alphabet`. */
function* allStrings(alphabet: string, length: number): Generator<string> {
  if (length === 0) {
    yield '';
    return;
  }
  for (const prefix of allStrings(alphabet, length - 1)) for (const c of alphabet) yield prefix + c;
}

describe('waitSeconds route schema', () => {
  it('accepts exactly what the handler accepted (every string of 0-7 characters of 0156.9)', () => {
    let accepted = 0;
    for (let length = 0; length <= 7; length += 1) {
      for (const raw of allStrings('0156.9', length)) {
        assert.equal(schemaAccepts(raw), handlerAccepted(raw), JSON.stringify(raw));
        if (handlerAccepted(raw)) accepted += 1;
      }
    }
    assert.ok(accepted > 1000, `only ${accepted} accepted strings were compared`);
  });

  it('agrees with the handler on arbitrary strings', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.stringMatching(/^[0-9.+\-e ]{0,8}$/), fc.double().map(String)),
        (raw) => schemaAccepts(raw) === handlerAccepted(raw),
      ),
      { numRuns: 20_000 },
    );
  });
});
