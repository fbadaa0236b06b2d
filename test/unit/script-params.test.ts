import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DlfError } from '../../src/domain/dlf-error.js';
import { parseExecuteParams, substituteParams } from '../../src/domain/script-params.js';

describe('script parameters', () => {
  it('substitutes only names that have a value', () => {
    assert.equal(
      substituteParams('select ${a}, ${b}, $c, ${HOME} from ${a}', { a: 'x', b: '' }),
      'select x, , $c, ${HOME} from x',
    );
  });

  it('is textual (no quoting) and does not re-substitute values', () => {
    assert.equal(substituteParams("'${v}'", { v: "it's ${v}" }), "'it's ${v}'");
  });

  it('treats an absent body or params as none and coerces values to strings', () => {
    assert.deepEqual(parseExecuteParams(undefined), {});
    assert.deepEqual(parseExecuteParams({}), {});
    assert.deepEqual(parseExecuteParams({ params: { n: 5, b: true, z: null } }), {
      n: '5',
      b: 'true',
      z: '',
    });
  });

  it('rejects bad names and shapes with DLF.3051', () => {
    for (const body of [
      { params: { 'bad name': 'x' } },
      { params: { abcdefghijklmnopq: 'x' } },
      { params: [] },
      [],
    ]) {
      assert.throws(
        () => parseExecuteParams(body),
        (e: unknown) => e instanceof DlfError && e.code === 'DLF.3051',
      );
    }
  });
});
