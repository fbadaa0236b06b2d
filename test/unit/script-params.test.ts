import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DlfError } from '../../src/domain/dlf-error.js';
import {
  assertParamsAreData,
  parseExecuteParams,
  sqlPlaceholdersOutsideStrings,
  substituteParams,
} from '../../src/domain/script-params.js';

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

  it('finds SQL placeholders outside plain single-quoted literals and comments', () => {
    const outside = (sql: string) => [...sqlPlaceholdersOutsideStrings(sql)].sort();
    assert.deepEqual(outside("select ${a}, '${b}', 'it''s ${c}' -- ${d}\n/* ${e} */ ${f}"), ['a', 'f']);
    // Identifiers, backslashes in literals, MySQL `--x` and `#`, executable comments, dollar quotes
    // and unterminated literals all count as code.
    assert.deepEqual(outside('select "${a}", `${b}`'), ['a', 'b']);
    assert.deepEqual(outside("select 'x\\' , '${a}'"), ['a']);
    assert.deepEqual(outside('select 5--${a}\n'), ['a']);
    assert.deepEqual(outside('select 1 # ${a}'), ['a']);
    assert.deepEqual(outside('select /*! ${a} */ 1, /*+ ${b} */ 2'), ['a', 'b']);
    assert.deepEqual(outside("do $$ begin perform '${a}'; end $$"), ['a']);
    assert.deepEqual(outside("select '${a}"), ['a']);
    assert.deepEqual(outside("select '${a}'"), []);
    // MySQL reads 'x\' , ' as one literal: what follows a backslash literal is never trusted.
    assert.deepEqual(outside("select 'x\\' , '${a}', '${b}'"), ['a', 'b']);
    // A quote inside a quoted identifier does not start a literal.
    assert.deepEqual(outside(`select "it's" \${a} 'x'`), ['a']);
  });

  it('accepts plain data from callers without write permission and refuses code, naming the parameter', () => {
    const refused = (kind: 'sql' | 'shell' | 'python', content: string, value: string) =>
      assert.throws(
        () => assertParamsAreData(kind, content, { p: value }),
        (e: unknown) => e instanceof DlfError && e.code === 'DLF.3051' && e.message.includes("parameter 'p'"),
        `${kind} ${JSON.stringify(value)}`,
      );
    const quoted = "select * from t where d = '${p}'";
    const bare = 'select * from t where id = ${p}';
    for (const value of ['2026-11-28', 'Ada Lovelace', 'a.b@c.d', '1,2', 'x=y', '']) {
      assertParamsAreData('sql', quoted, { p: value });
    }
    for (const value of ['42', '3.5']) assertParamsAreData('sql', bare, { p: value });
    for (const value of [
      "'",
      "' or 1=1",
      '1; drop table t',
      'x -- y',
      '--',
      '/*',
      'a\\',
      'x\ny',
      '$1',
      '#',
    ]) {
      refused('sql', quoted, value);
    }
    for (const value of ['id', '1 or 1=1', '-1', '1e9', '2026-11-28']) refused('sql', bare, value);
    for (const value of ['2026-11-28', 'name_1', 'a/b', '7']) {
      assertParamsAreData('shell', 'echo ${p}', { p: value });
      assertParamsAreData('python', 'print("${p}")', { p: value });
    }
    for (const value of ['x y', 'x;id', '$(id)', '`id`', '-rf', '*', '~', '..', 'x\nid', 'a(b)', '&']) {
      refused('shell', 'echo ${p}', value);
      refused('python', 'print(${p})', value);
    }
    refused('shell', 'echo ${p}', 'x'.repeat(257));
    // Parameters the script does not use are checked too: the rule is about the value.
    refused('sql', 'select 1', '1; drop table t');
  });
});
