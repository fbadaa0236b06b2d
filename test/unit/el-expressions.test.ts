/**
 * EL expressions: the grammar and operators, StringUtil (commons-lang's documented examples),
 * JSONUtil, Env and Job, the priority of execute params over environment variables, and the
 * errors: unknown objects, methods and properties, bad arguments, cycles and every limit, each
 * naming the parameter and the part that is wrong.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DlfError } from '../../src/domain/dlf-error.js';
import {
  assertValidTemplate,
  needsEnvironment,
  resolveExecutionParameters,
  type ResolvedParameters,
} from '../../src/domain/el/parameter-resolver.js';
import { EL_LIMITS } from '../../src/domain/el/parser.js';
import { resolveTimeZone } from '../../src/domain/el/time-zone.js';

const PLAN = new Date('2024-01-07T01:02:03.004Z');

function resolve(
  params: Record<string, string>,
  environment: Record<string, string> = {},
  content = '',
): ResolvedParameters {
  return resolveExecutionParameters({
    content,
    params,
    environment: new Map(Object.entries(environment)),
    binding: { zone: resolveTimeZone('UTC'), now: PLAN, scriptName: 'daily_load', projectId: 'proj-1' },
  });
}

/** The value of one `#{expression}`. */
function el(expression: string, environment: Record<string, string> = {}): string {
  return resolve({ v: `#{${expression}}` }, environment).fromCaller.v ?? '';
}

/** Asserts the EL error (OPENDLF.0620, 400) and that its message matches every pattern. */
function assertElError(run: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof DlfError, String(error));
    assert.equal(error.code, 'OPENDLF.0620');
    assert.equal(error.httpStatus, 400);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('EL operators', () => {
  it('arithmetic, precedence, parentheses, whole-number division, remainder', () => {
    assert.equal(el('1 + 2 * 3'), '7');
    assert.equal(el('(1 + 2) * 3'), '9');
    assert.equal(el('7 / 2'), '3');
    assert.equal(el('-7 / 2'), '-3');
    assert.equal(el('7 / 2.5'), '2.8');
    assert.equal(el('7 div 2'), '3');
    assert.equal(el('7 % 3'), '1');
    assert.equal(el('7 mod 3'), '1');
    assert.equal(el('-(2 - 5)'), '3');
    assert.equal(el('1.5e2 + 1'), '151');
    assert.equal(el('"40" + 2'), '402', 'a string on either side joins text');
    assert.equal(el('"40" * 2'), '80', 'other operators read numeric strings as numbers');
    assert.equal(el('null + 1'), '1');
  });

  it('comparison and logic, symbols and words', () => {
    assert.equal(el('1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3'), 'true');
    assert.equal(el('1 lt 2 and 2 le 2 and 3 gt 2 and 3 ge 3'), 'true');
    assert.equal(el('1 == 1.0'), 'true');
    assert.equal(el('"1" == 1'), 'true');
    assert.equal(el('"a" eq "a" && "a" ne "b"'), 'true');
    assert.equal(el('"abc" < "abd"'), 'true');
    assert.equal(el('!true || not false'), 'true');
    assert.equal(el('null == null && null != ""'), 'true');
    assert.equal(
      el('false && (1 / 0 == 1)'),
      'false',
      '&& does not evaluate its right side when the left is false',
    );
    assert.equal(el('true || (1 / 0 == 1)'), 'true');
  });

  it('ternary, empty, null, string literals and escapes', () => {
    assert.equal(el('1 > 2 ? "yes" : "no"'), 'no');
    assert.equal(el('true ? false ? "a" : "b" : "c"'), 'b');
    assert.equal(el('empty "" && empty null && !empty "x"'), 'true');
    assert.equal(el('empty StringUtil.split("", ",")'), 'true');
    assert.equal(el('null'), '');
    assert.equal(el(`'it\\'s' + "a \\"quote\\"" + '\\\\'`), `it's` + 'a "quote"' + '\\');
    assert.equal(el('"}"'), '}', 'a } inside a string literal does not end the expression');
  });

  it('text around and between expressions is kept', () => {
    const { fromCaller } = resolve({ v: 'day=#{DateUtil.format(Job.planTime,"yyyyMMdd")}/#{1+1}#{"!"}' });
    assert.equal(fromCaller.v, 'day=20240107/2!');
    assert.equal(
      resolve({ v: 'no expression: ${x} $x #x {y}' }).fromCaller.v,
      'no expression: ${x} $x #x {y}',
    );
    assert.equal(resolve({ v: 'a literal #{"#{"}x}' }).fromCaller.v, 'a literal #{x}');
  });
});

describe('StringUtil (commons-lang StringUtils)', () => {
  const cases: [string, string][] = [
    ['StringUtil.substringAfter("No.0010", ".")', '0010'],
    ['StringUtil.split("No,0020", ",")[1]', '0020'],
    ['StringUtil.getDigits("1123~45")', '112345'],
    ['StringUtil.getDigits("abc")', ''],
    ['StringUtil.substring("abc", -2)', 'bc'],
    ['StringUtil.substring("abc", 4)', ''],
    ['StringUtil.substring("abc", 0, 2)', 'ab'],
    ['StringUtil.substring("abc", -4, 2)', 'ab'],
    ['StringUtil.substring("abc", 2, 0)', ''],
    ['StringUtil.left("abc", 2)', 'ab'],
    ['StringUtil.right("abc", 2)', 'bc'],
    ['StringUtil.mid("abc", 0, 2)', 'ab'],
    ['StringUtil.mid("abc", 4, 2)', ''],
    ['StringUtil.mid("abc", -2, 2)', 'ab'],
    ['StringUtil.substringBefore("abc", "c")', 'ab'],
    ['StringUtil.substringBefore("abc", "d")', 'abc'],
    ['StringUtil.substringBefore("abc", "")', ''],
    ['StringUtil.substringAfter("abc", "d")', ''],
    ['StringUtil.substringAfter("abc", "")', 'abc'],
    ['StringUtil.substringBeforeLast("abcba", "b")', 'abc'],
    ['StringUtil.substringBeforeLast("a", "z")', 'a'],
    ['StringUtil.substringAfterLast("abcba", "b")', 'a'],
    ['StringUtil.substringAfterLast("abc", "c")', ''],
    ['StringUtil.substringBetween("yabcz", "y", "z")', 'abc'],
    ['StringUtil.substringBetween("tagabctag", "tag")', 'abc'],
    ['StringUtil.substringBetween("wx[b]yz", "[", "]")', 'b'],
    ['StringUtil.substringBetween("abc", "[", "]")', ''],
    ['StringUtil.join(StringUtil.split("a..b.c", "."), "-")', 'a-b-c'],
    ['StringUtil.join(StringUtil.split("a b  c"), "|")', 'a|b|c'],
    ['StringUtil.split("ab:cd:ef", ":")', '["ab","cd","ef"]'],
    ['StringUtil.leftPad("bat", 5)', '  bat'],
    ['StringUtil.leftPad("bat", 8, "yz")', 'yzyzybat'],
    ['StringUtil.rightPad("bat", 8, "yz")', 'batyzyzy'],
    ['StringUtil.leftPad("bat", 1)', 'bat'],
    ['StringUtil.leftPad(7, 3, "0")', '007'],
    ['StringUtil.repeat("ab", 3)', 'ababab'],
    ['StringUtil.abbreviate("abcdefg", 6)', 'abc...'],
    ['StringUtil.abbreviate("abcdefg", 7)', 'abcdefg'],
    ['StringUtil.capitalize("cat")', 'Cat'],
    ['StringUtil.uncapitalize("Cat")', 'cat'],
    ['StringUtil.reverse("bat")', 'tab'],
    ['StringUtil.upperCase("aBc")', 'ABC'],
    ['StringUtil.lowerCase("aBc")', 'abc'],
    ['StringUtil.upperCase(null)', ''],
    ['StringUtil.trim("  abc \\t")', 'abc'],
    ['StringUtil.strip("  abc  ")', 'abc'],
    ['StringUtil.length("abc")', '3'],
    ['StringUtil.length(null)', '0'],
    ['StringUtil.isEmpty(" ")', 'false'],
    ['StringUtil.isBlank(" ")', 'true'],
    ['StringUtil.isNotEmpty("a")', 'true'],
    ['StringUtil.isNotBlank(" ")', 'false'],
    ['StringUtil.indexOf("aabaabaa", "b")', '2'],
    ['StringUtil.lastIndexOf("aabaabaa", "b")', '5'],
    ['StringUtil.contains("abc", "bc")', 'true'],
    ['StringUtil.startsWith("abc", "ab")', 'true'],
    ['StringUtil.endsWith("abc", "ab")', 'false'],
    ['StringUtil.equals("abc", "abc")', 'true'],
    ['StringUtil.equalsIgnoreCase("abc", "ABC")', 'true'],
    ['StringUtil.replace("aba", "a", "z")', 'zbz'],
    ['StringUtil.remove("queued", "ue")', 'qd'],
    ['StringUtil.countMatches("abba", "a")', '2'],
    ['StringUtil.countMatches("abba", "ab")', '1'],
    ['StringUtil.defaultIfEmpty("", "NULL")', 'NULL'],
    ['StringUtil.defaultIfBlank(" ", "NULL")', 'NULL'],
    ['StringUtil.defaultString(null, "x")', 'x'],
    ['StringUtil.defaultString("a")', 'a'],
  ];
  for (const [expression, expected] of cases) {
    it(expression, () => assert.equal(el(expression), expected));
  }
});

describe('JSONUtil, Env and Job', () => {
  const cities = JSON.stringify({
    cities: [
      { name: 'city1', areaCode: '1000' },
      { name: 'city2', areaCode: '2000' },
    ],
  });

  it('JSONUtil.path (the documented example), parse and member access, toString', () => {
    const env = { str: cities };
    assert.equal(el('JSONUtil.path(Env.get("str"), "cities[0].areaCode")', env), '1000');
    assert.equal(el('JSONUtil.path(Env.get("str"), "$.cities[1][\'name\']")', env), 'city2');
    assert.equal(el('JSONUtil.path(Env.get("str"), "cities[5].name")', env), '');
    assert.equal(el('JSONUtil.parse(Env.get("str")).cities[1].areaCode', env), '2000');
    assert.equal(el('JSONUtil.parse(Env.get("str"))["cities"][0]["name"]', env), 'city1');
    assert.equal(el('JSONUtil.path(Env.get("str"), "cities[0]")', env), '{"name":"city1","areaCode":"1000"}');
    assert.equal(el('JSONUtil.toString(StringUtil.split("a,b", ","))'), '["a","b"]');
    assert.equal(el('JSONUtil.toString("x")'), '"x"');
  });

  it('JSON objects expose own properties only (no prototype names)', () => {
    assert.equal(el('JSONUtil.parse("{}").constructor'), '');
    assert.equal(el('JSONUtil.parse("{}")["__proto__"]'), '');
    assert.equal(el('JSONUtil.parse("{\\"__proto__\\": 1}")["__proto__"]'), '1');
    assertElError(() => el('JSONUtil.constructor'), /unknown property JSONUtil\.constructor/);
    assertElError(() => el('JSONUtil.toString'), /JSONUtil\.toString is a method/);
    assertElError(
      () => el('JSONUtil.toString.call(1)'),
      /only methods of DateUtil, StringUtil, JSONUtil, Env and Job can be called/,
    );
    assertElError(() => el('StringUtil.hasOwnProperty("x")'), /unknown method StringUtil\.hasOwnProperty/);
  });

  it('Env.get reads an environment variable (null when absent), evaluating its own #{…}', () => {
    const env = { region: 'cn-north-4', bucket: 'obs://data-#{Env.get("region")}/#{Job.name}' };
    assert.equal(el('Env.get("region")', env), 'cn-north-4');
    assert.equal(el('Env.get("bucket")', env), 'obs://data-cn-north-4/daily_load');
    assert.equal(el('Env.get("missing")', env), '');
    assert.equal(el('Env.get("missing") == null', env), 'true');
  });

  it('Job is the execution: name, projectId, planTime, getParam', () => {
    assert.equal(el('Job.name'), 'daily_load');
    assert.equal(el('Job.projectId'), 'proj-1');
    assert.equal(el('DateUtil.getTime(Job.planTime)'), String(PLAN.getTime()));
    const { fromCaller } = resolve({ a: 'A', b: '#{Job.getParam("a")}-#{Job.getParam("e")}' }, { e: 'E' });
    assert.equal(fromCaller.b, 'A-E');
  });
});

describe('params and environment variables', () => {
  it('execute params win over environment variables; ${name} is substituted from the merged set', () => {
    const resolved = resolve(
      { day: '2024-01-01' },
      { day: '1999-01-01', table: 'sales', unused: 'x' },
      'select ${day}, ${table}, ${other}',
    );
    assert.deepEqual(resolved.values, { table: 'sales', day: '2024-01-01' });
    assert.deepEqual(resolved.fromCaller, { day: '2024-01-01' });
  });

  it('an environment variable is evaluated only when used: a broken unused one does not fail the execute', () => {
    const env = { broken: '#{Nope.x()}', fine: '#{1+1}' };
    assert.deepEqual(resolve({}, env, 'select ${fine}').values, { fine: '2' });
    assertElError(
      () => resolve({}, env, 'select ${broken}'),
      /environment variable 'broken'/,
      /unknown object 'Nope'/,
    );
    // A param of the same name hides the broken variable entirely.
    assert.deepEqual(resolve({ broken: 'ok' }, env, 'select ${broken}').values, { broken: 'ok' });
  });

  it('a variable that refers back to itself is an error naming the chain', () => {
    const env = { a: '#{Env.get("b")}', b: 'x#{Env.get("a")}' };
    assertElError(() => resolve({}, env, '${a}'), /refers back to itself \(a → b → a\)/);
    assertElError(() => resolve({ p: '#{Job.getParam("p")}' }), /parameter 'p'.*refers back to itself/);
  });

  it('a long chain of references is refused, not a stack overflow', () => {
    const chain = (n: number) =>
      Object.fromEntries(
        Array.from({ length: n }, (_, i) => [`v${i}`, i === n - 1 ? 'end' : `#{Env.get("v${i + 1}")}`]),
      );
    assert.deepEqual(resolve({}, chain(30), '${v0}').values, { v0: 'end' });
    assertElError(() => resolve({}, chain(1000), '${v0}'), /more than 32 levels deep/);
  });

  it('needsEnvironment: only when a ${name} has no param or a value holds #{', () => {
    assert.equal(needsEnvironment('select ${a}', { a: '1' }), false);
    assert.equal(needsEnvironment('select 1', { a: '1' }), false);
    assert.equal(needsEnvironment('select ${b}', { a: '1' }), true);
    assert.equal(needsEnvironment('select 1', { a: '#{1}' }), true);
  });
});

describe('EL errors name the parameter and the bad part', () => {
  it('unknown objects, methods and properties', () => {
    assertElError(
      () => el('Foo.bar()'),
      /parameter 'v'/,
      /unknown object 'Foo' \(known: DateUtil, StringUtil, JSONUtil, Env, Job\)/,
    );
    assertElError(
      () => el('DateUtil.addDayz(Job.planTime, 1)'),
      /unknown method DateUtil\.addDayz/,
      /at position 11/,
    );
    assertElError(() => el('Job.eventData'), /unknown property Job\.eventData/);
    assertElError(() => el('DateUtil.now'), /DateUtil\.now is a method: call it as DateUtil\.now\(…\)/);
    assertElError(() => el('Job'), /'Job' is an object/);
    assertElError(() => el('process.exit(1)'), /unknown object 'process'/);
    assertElError(
      () => el('"x".length()'),
      /only methods of DateUtil, StringUtil, JSONUtil, Env and Job can be called/,
    );
  });

  it('arguments: count and type', () => {
    assertElError(() => el('DateUtil.addDays(Job.planTime)'), /DateUtil\.addDays takes 2 arguments, not 1/);
    assertElError(
      () => el('DateUtil.format("2024-01-01", "yyyy")'),
      /argument 1 of DateUtil\.format must be a date/,
    );
    assertElError(
      () => el('DateUtil.addDays(Job.planTime, "x")'),
      /argument 2 of DateUtil\.addDays must be an integer, not 'x'/,
    );
    assertElError(() => el('DateUtil.addDays(Job.planTime, 1.5)'), /must be an integer/);
    assertElError(() => el('DateUtil.format(Job.planTime, "yyyy-MM-dd Q")'), /illegal pattern character 'Q'/);
    assertElError(
      () => el('DateUtil.parseDate("2024/01/05", "yyyy-MM-dd")'),
      /unparseable date '2024\/01\/05'/,
    );
    assertElError(
      () => el('DateUtil.formatWithTimeZone(Job.planTime, "HH", "Mars/Base")'),
      /unknown time zone 'Mars\/Base'/,
    );
    assertElError(() => el('JSONUtil.parse("{")'), /not valid JSON/);
    assertElError(() => el('StringUtil.abbreviate("abcdefg", 3)'), /minimum abbreviation width is 4/);
  });

  it('evaluation errors: division by zero, index out of range, non-numbers', () => {
    assertElError(() => el('1 / 0'), /division by zero/);
    assertElError(() => el('1 % 0'), /division by zero/);
    assertElError(
      () => el('StringUtil.split("a,b", ",")[2]'),
      /index 2 is out of range \(the array has 2 items\)/,
    );
    assertElError(() => el('"abc" * 2'), /'abc' is not a number/);
    assertElError(() => el('Job.name.x'), /'daily_load' has no property 'x'/);
  });

  it('syntax errors', () => {
    assertElError(() => resolve({ v: '#{1 + }' }), /unexpected '}'/);
    assertElError(
      () => resolve({ v: '#{DateUtil.format(Job.planTime, "yyyy"' }),
      /'#\{' is not closed by '\}'|expected ',' or '\)'/,
    );
    assertElError(() => resolve({ v: 'a #{1 + 2' }), /'#\{' is not closed by '\}'/);
    assertElError(() => resolve({ v: '#{"abc}' }), /unterminated string literal/);
    assertElError(() => resolve({ v: '#{1 ; 2}' }), /unexpected character ';'/);
    assertElError(() => resolve({ v: '#{}' }), /unexpected '}'/);
    assertElError(() => resolve({ v: '#{a = 1}' }), /unexpected character '='|expected '}'/);
  });

  it('assertValidTemplate refuses at save time what can never evaluate, and accepts what may', () => {
    assert.doesNotThrow(() =>
      assertValidTemplate('environment variable', 'ok', 'x-#{DateUtil.format(Job.planTime,"yyyy")}'),
    );
    assert.doesNotThrow(() => assertValidTemplate('environment variable', 'plain', 'no expressions here'));
    assertElError(
      () => assertValidTemplate('environment variable', 'bad', '#{Job.nam}'),
      /environment variable 'bad'/,
      /unknown property Job\.nam/,
    );
    assertElError(
      () => assertValidTemplate('environment variable', 'bad', '#{StringUtil.upperCase()}'),
      /takes 1 argument/,
    );
  });
});

describe('EL limits', () => {
  it('expression length', () => {
    const long = `"${'a'.repeat(EL_LIMITS.maxExpressionLength)}"`;
    assertElError(() => resolve({ v: `#{${long}}` }), /longer than 4096 characters/);
    assert.equal(
      el(`"${'a'.repeat(EL_LIMITS.maxExpressionLength - 10)}"`).length,
      EL_LIMITS.maxExpressionLength - 10,
    );
  });

  it('nesting depth and node count', () => {
    assertElError(() => el(`${'('.repeat(40)}1${')'.repeat(40)}`), /nested more than 32 levels deep/);
    assertElError(() => el(`${'-'.repeat(40)}1`), /nested more than 32 levels deep/);
    let nested = 'Job.name';
    for (let i = 0; i < 40; i++) nested = `StringUtil.trim(${nested})`;
    assertElError(() => el(nested), /nested more than 32 levels deep/);
    assertElError(() => el(Array.from({ length: 600 }, () => '1').join('+')), /more than 1024 parts/);
    assert.equal(el(Array.from({ length: 300 }, () => '1').join('+')), '300');
  });

  it('expressions per value', () => {
    assertElError(() => resolve({ v: '#{1}'.repeat(65) }), /at most 64 #\{…\} expressions/);
    assert.equal(resolve({ v: '#{1}'.repeat(64) }).fromCaller.v, '1'.repeat(64));
  });

  it('strings an expression builds', () => {
    assertElError(() => el('StringUtil.repeat("ab", 600000)'), /too long/);
    assertElError(() => el('StringUtil.leftPad("a", 2000000)'), /too large/);
    assertElError(
      () => el('StringUtil.replace(StringUtil.repeat("a", 1000), "a", StringUtil.repeat("b", 2000))'),
      /longer than 1048576/,
    );
    assertElError(
      () => el('StringUtil.repeat("a", 600000) + StringUtil.repeat("a", 600000)'),
      /longer than 1048576/,
    );
    assertElError(
      () => resolve({ v: `#{StringUtil.repeat("a", 1000000)}#{StringUtil.repeat("a", 100000)}` }),
      /the value becomes longer than 1048576/,
    );
    assert.equal(el('StringUtil.repeat("ab", 500000)').length, 1_000_000);
  });

  it('JSON nesting', () => {
    const deep = `${'['.repeat(300)}${']'.repeat(300)}`;
    assertElError(
      () => resolve({ v: '#{JSONUtil.parse(Env.get("d"))}' }, { d: deep }),
      /JSON nested more than 256 levels/,
    );
  });
});

describe('EL under random input', () => {
  const atoms = [
    'Job.planTime',
    'Job.name',
    'DateUtil.now()',
    '1',
    '-1',
    '0',
    '2.5',
    '300000',
    '999999999999999',
    '"yyyy-MM-dd"',
    '"x"',
    '""',
    'null',
    'true',
    '"{\\"a\\":[1,{\\"b\\":2}]}"',
    '"a,b"',
    "'Q'",
    "'G y Y M L w W D d F E u a H k K h m s S z Z X'",
    '"GMT+8"',
    '"Mars/X"',
    'Env.get("e")',
    'StringUtil.split("a,b,c", ",")',
    'JSONUtil.parse("[1,2]")',
  ];
  const methods = [
    'DateUtil.format',
    'DateUtil.formatWithTimeZone',
    'DateUtil.parseDate',
    'DateUtil.addYears',
    'DateUtil.addMonths',
    'DateUtil.addDays',
    'DateUtil.addHours',
    'DateUtil.getDay',
    'DateUtil.getTime',
    'StringUtil.substring',
    'StringUtil.split',
    'StringUtil.join',
    'StringUtil.leftPad',
    'StringUtil.repeat',
    'StringUtil.replace',
    'StringUtil.mid',
    'JSONUtil.parse',
    'JSONUtil.path',
    'JSONUtil.toString',
    'Env.get',
    'Job.getParam',
    'Job.getPlanTime',
    'Foo.bar',
  ];
  const operators = ['+', '-', '*', '/', '%', '==', '!=', '<', '>=', '&&', '||'];
  const { expression } = fc.letrec<{ expression: string }>((tie) => ({
    expression: fc.oneof(
      { depthSize: 'small' },
      fc.constantFrom(...atoms),
      fc
        .tuple(fc.constantFrom(...methods), fc.array(tie('expression'), { maxLength: 3 }))
        .map(([m, args]) => `${m}(${args.join(',')})`),
      fc
        .tuple(tie('expression'), fc.constantFrom(...operators), tie('expression'))
        .map(([a, op, b]) => `(${a} ${op} ${b})`),
      fc
        .tuple(tie('expression'), tie('expression'), tie('expression'))
        .map(([a, b, c]) => `(${a} ? ${b} : ${c})`),
      fc.tuple(tie('expression'), fc.nat(5)).map(([a, i]) => `${a}[${i}]`),
      fc.tuple(tie('expression'), fc.constantFrom('x', 'length', 'constructor')).map(([a, p]) => `${a}.${p}`),
      fc.tuple(fc.constantFrom('!', '-', 'empty '), tie('expression')).map(([op, a]) => `${op}${a}`),
    ),
  }));

  it('evaluates or answers OPENDLF.0620, never anything else (no 500)', () => {
    let evaluated = 0;
    let refused = 0;
    const text = fc.string({ maxLength: 60 });
    fc.assert(
      fc.property(
        fc.oneof(
          expression.map((e) => `#{${e}}`),
          text.map((t) => `#{${t}}`),
          text,
        ),
        fc.constantFrom('UTC', 'America/New_York', 'Asia/Shanghai'),
        (value, zone) => {
          try {
            resolveExecutionParameters({
              content: '${e}',
              params: { v: value },
              environment: new Map([['e', '#{Job.name}']]),
              binding: { zone: resolveTimeZone(zone), now: PLAN, scriptName: 's', projectId: 'p' },
            });
            evaluated += 1;
          } catch (error) {
            if (!(error instanceof DlfError) || error.code !== 'OPENDLF.0620') throw error;
            refused += 1;
          }
        },
      ),
      { numRuns: 3_000 },
    );
    // Both outcomes occur: the generator reaches evaluation, not only errors.
    assert.ok(evaluated > 100 && refused > 100, `${evaluated} evaluated, ${refused} refused`);
  });
});
