import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DlfError } from '../../src/domain/dlf-error.js';
import { normaliseConfiguration, normaliseDirectory, parseScriptInput } from '../../src/domain/script.js';
import { isCommentOnly, splitSqlStatements } from '../../src/engines/sql-statements.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof DlfError ? e.code : 'not a DlfError';
  }
  return 'no error';
};

describe('script input', () => {
  it('normalises directories', () => {
    assert.equal(normaliseDirectory(undefined), '/');
    assert.equal(normaliseDirectory(''), '/');
    assert.equal(normaliseDirectory('a/b'), '/a/b');
    assert.equal(normaliseDirectory('/a/b/'), '/a/b');
    assert.equal(
      code(() => normaliseDirectory('/a/../b')),
      'DLF.3051',
    );
    assert.equal(
      code(() => normaliseDirectory('/1/2/3/4/5/6/7/8/9/10/11')),
      'DLF.3051',
    );
  });

  it('stores configuration values as strings', () => {
    assert.deepEqual(normaliseConfiguration({ a: 1, b: true, c: { d: 1 }, e: 'x' }), {
      a: '1',
      b: 'true',
      c: '{"d":1}',
      e: 'x',
    });
  });

  it('maps a missing or unknown type to DLF.6247 and other problems to DLF.3051', () => {
    assert.equal(
      code(() => parseScriptInput({ name: 'a' })),
      'DLF.6247',
    );
    assert.equal(
      code(() => parseScriptInput({ name: 'a', type: 'COBOL' })),
      'DLF.6247',
    );
    assert.equal(
      code(() => parseScriptInput({ name: 'a/b', type: 'Shell' })),
      'DLF.3051',
    );
    assert.equal(
      code(() => parseScriptInput({ name: 'a', type: 'Shell', content: 5 })),
      'DLF.3051',
    );
    assert.equal(
      code(() => parseScriptInput({ name: 'a', type: 'Shell', description: 'x'.repeat(256) })),
      'DLF.3051',
    );
    assert.equal(parseScriptInput({ name: 'a_b.c-d', type: 'SparkPython' }).content, '');
  });
});

describe('SQL statement splitting', () => {
  it('respects quotes, dollar quoting and comments, and drops comment-only pieces', () => {
    assert.deepEqual(
      splitSqlStatements(
        "select 'a;b'; create function f() as $$ begin; end $$; /* x; */ ; select 2; -- end",
        'postgres',
      ),
      ["select 'a;b'", 'create function f() as $$ begin; end $$', 'select 2'],
    );
    assert.equal(isCommentOnly('-- a\n/* b */\n'), true);
    assert.equal(isCommentOnly('-- a\nselect 1'), false);
  });
});
