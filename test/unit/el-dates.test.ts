/**
 * EL dates against a real JVM: every SimpleDateFormat letter at several lengths, Calendar.add and
 * lenient parsing, as recorded from OpenJDK 17 (fixtures/el-java/generate.ts), at instants around
 * month ends, leap days, DST changes and year ends in several zones. Then the same behaviour
 * through EL expressions, readably, with the zone always set explicitly (never the machine's).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BUILTIN_OBJECTS, type ElContext } from '../../src/domain/el/builtins.js';
import { ElError } from '../../src/domain/el/el-error.js';
import { resolveExecutionParameters } from '../../src/domain/el/parameter-resolver.js';
import { formatDate, parseDate } from '../../src/domain/el/simple-date-format.js';
import { resolveTimeZone } from '../../src/domain/el/time-zone.js';
import { ElDate } from '../../src/domain/el/values.js';

type Row = [op: string, zone: string, input: string, argument: string, java: string];
const rows = JSON.parse(
  readFileSync(new URL('fixtures/el-java/java-known-answers.json', import.meta.url), 'utf8'),
) as Row[];

/** Two-digit years are read relative to "now" (Java: the formatter's creation); the fixture was recorded in 2026. */
const RECORDED_AT = Date.parse('2026-12-01T00:00:00Z');

function ours([op, zoneId, input, argument]: Row): string {
  const zone = resolveTimeZone(zoneId);
  if (op === 'format') return formatDate(Date.parse(input), argument, zone);
  if (op === 'parse') {
    try {
      return new Date(parseDate(input, argument, zone, RECORDED_AT)).toISOString();
    } catch (error) {
      if (error instanceof ElError) return 'ERR';
      throw error;
    }
  }
  const method = BUILTIN_OBJECTS.DateUtil?.methods[op];
  assert.ok(method, op);
  const ctx: ElContext = {
    zone,
    now: RECORDED_AT,
    job: { name: 'j', projectId: 'p', planTime: RECORDED_AT, startTime: RECORDED_AT },
    env: () => null,
    param: () => null,
  };
  const result = method.call([new ElDate(Date.parse(input)), Number(argument)], ctx);
  assert.ok(result instanceof ElDate);
  return new Date(result.epochMs).toISOString();
}

function assertRows(selected: Row[]): void {
  assert.ok(selected.length > 0, 'no cases selected');
  const wrong = selected
    .map((row) => ({ row, got: ours(row) }))
    .filter(({ row, got }) => got !== row[4])
    .map(({ row, got }) => `${row.slice(0, 4).join(' | ')}: Java ${row[4]}, opendlf ${got}`);
  assert.deepEqual(wrong, [], `${wrong.length} of ${selected.length} differ from Java`);
}

describe('SimpleDateFormat letters, known answers from OpenJDK', () => {
  for (const letter of 'GyYMLwWDdFEuaHkKhmsSzZX') {
    it(`letter ${letter}`, () => {
      assertRows(rows.filter((r) => r[0] === 'format' && new RegExp(`^${letter}+$`).test(r[3])));
    });
  }

  it('combined patterns, quotes and literal text', () => {
    assertRows(rows.filter((r) => r[0] === 'format' && !/^([A-Za-z])\1*$/.test(r[3])));
  });
});

describe('DateUtil arithmetic and parseDate, known answers from OpenJDK', () => {
  for (const op of ['addYears', 'addMonths', 'addWeeks', 'addDays', 'addHours', 'addMinutes', 'addSeconds']) {
    it(op, () => assertRows(rows.filter((r) => r[0] === op)));
  }
  it('parseDate (lenient, abutting fields, two-digit years, zones in the text)', () => {
    assertRows(rows.filter((r) => r[0] === 'parse'));
  });
});

/** Evaluates `expression` in `zone` with Job.planTime at `planTime`. */
function el(expression: string, zone: string, planTime: string): string {
  const { fromCaller } = resolveExecutionParameters({
    content: '',
    params: { v: `#{${expression}}` },
    environment: new Map(),
    binding: { zone: resolveTimeZone(zone), now: new Date(planTime), scriptName: 'daily', projectId: 'p1' },
  });
  return fromCaller.v ?? '';
}

describe('EL date expressions', () => {
  it("DataArts' documented examples", () => {
    const plan = '2024-01-07T01:01:00+08:00';
    assert.equal(
      el('DateUtil.format(Job.planTime,"yyyy-MM-dd HH:mm:ss:SSS")', 'Asia/Shanghai', plan),
      '2024-01-07 01:01:00:000',
    );
    assert.equal(
      el('DateUtil.format(DateUtil.addDays(Job.planTime,-1),"yyyyw")', 'Asia/Shanghai', plan),
      '20241',
    );
    assert.equal(
      el('DateUtil.format(DateUtil.addDays(Job.planTime,-1),"yyyyww")', 'Asia/Shanghai', plan),
      '202401',
    );
    assert.equal(
      el('DateUtil.format(DateUtil.addDays(Job.planTime,-7),"YYYYww")', 'Asia/Shanghai', plan),
      '202401',
    );
    assert.equal(
      el('DateUtil.format(DateUtil.addMonths(Job.planTime,-1),"yyyy-MM")', 'Asia/Shanghai', plan),
      '2023-12',
    );
    assert.equal(
      el(
        '"obs://test/"+DateUtil.format(DateUtil.addDays(Job.planTime,-1),"yyyy-MM-dd")',
        'Asia/Shanghai',
        plan,
      ),
      'obs://test/2024-01-06',
    );
    assert.equal(
      el(
        'DateUtil.formatWithTimeZone(Job.planTime,"yyyy-MM-dd HH:mm", "GMT+0")',
        'Asia/Shanghai',
        '2025-09-17T15:24:00+08:00',
      ),
      '2025-09-17 07:24',
    );
    assert.equal(el('DateUtil.getDay(DateUtil.parseDate("2018-09-14","yyyy-MM-dd"))', 'UTC', plan), '14');
    assert.equal(el('DateUtil.getMonth(DateUtil.parseDate("2018-09-14","yyyy-MM-dd"))', 'UTC', plan), '9');
    assert.equal(el('DateUtil.getYear(DateUtil.parseDate("2018-09-14","yyyy-MM-dd"))', 'UTC', plan), '2018');
  });

  it('month ends clamp (Calendar.add), leap days, year ends', () => {
    const f = (e: string, plan: string) => el(`DateUtil.format(${e},"yyyy-MM-dd HH:mm")`, 'UTC', plan);
    assert.equal(f('DateUtil.addMonths(Job.planTime,1)', '2024-01-31T10:00:00Z'), '2024-02-29 10:00');
    assert.equal(f('DateUtil.addMonths(Job.planTime,1)', '2023-01-31T10:00:00Z'), '2023-02-28 10:00');
    assert.equal(f('DateUtil.addMonths(Job.planTime,-1)', '2024-03-31T10:00:00Z'), '2024-02-29 10:00');
    assert.equal(
      f('DateUtil.addMonths(DateUtil.addMonths(Job.planTime,1),1)', '2024-01-31T10:00:00Z'),
      '2024-03-29 10:00',
    );
    assert.equal(f('DateUtil.addYears(Job.planTime,1)', '2024-02-29T10:00:00Z'), '2025-02-28 10:00');
    assert.equal(f('DateUtil.addYears(Job.planTime,4)', '2024-02-29T10:00:00Z'), '2028-02-29 10:00');
    assert.equal(f('DateUtil.addDays(Job.planTime,1)', '2024-02-28T10:00:00Z'), '2024-02-29 10:00');
    assert.equal(f('DateUtil.addDays(Job.planTime,1)', '2023-02-28T10:00:00Z'), '2023-03-01 10:00');
    assert.equal(f('DateUtil.addDays(Job.planTime,1)', '2023-12-31T23:59:00Z'), '2024-01-01 23:59');
    assert.equal(f('DateUtil.addHours(Job.planTime,1)', '2023-12-31T23:30:00Z'), '2024-01-01 00:30');
    assert.equal(f('DateUtil.addMinutes(Job.planTime,-1)', '2024-03-01T00:00:00Z'), '2024-02-29 23:59');
    assert.equal(f('DateUtil.addSeconds(Job.planTime,1)', '2024-12-31T23:59:59Z'), '2025-01-01 00:00');
    assert.equal(f('DateUtil.addWeeks(Job.planTime,1)', '2024-02-26T08:00:00Z'), '2024-03-04 08:00');
    assert.equal(el('DateUtil.format(Job.planTime,"D")', 'UTC', '2024-12-31T12:00:00Z'), '366');
    assert.equal(el('DateUtil.format(Job.planTime,"D")', 'UTC', '2023-12-31T12:00:00Z'), '365');
  });

  it('the zone decides the calendar day: the same instant in three zones', () => {
    const instant = '2023-12-31T16:30:00Z';
    const day = (zone: string) => el('DateUtil.format(Job.planTime,"yyyy-MM-dd HH:mm z")', zone, instant);
    assert.equal(day('UTC'), '2023-12-31 16:30 UTC');
    assert.equal(day('Asia/Shanghai'), '2024-01-01 00:30 CST');
    assert.equal(day('America/New_York'), '2023-12-31 11:30 EST');
    assert.equal(el('DateUtil.getYear(Job.planTime)', 'Asia/Shanghai', instant), '2024');
    assert.equal(el('DateUtil.getYear(Job.planTime)', 'UTC', instant), '2023');
    assert.equal(el('DateUtil.getTime(Job.planTime)', 'Asia/Shanghai', instant), String(Date.parse(instant)));
  });

  it('a day across a DST change keeps the wall time where it exists (New York)', () => {
    const f = (e: string, plan: string) =>
      el(`DateUtil.format(${e},"yyyy-MM-dd HH:mm z")`, 'America/New_York', plan);
    // 12:00 EST; a day later is 12:00 EDT, 23 hours; 24 hours later is 13:00.
    assert.equal(f('DateUtil.addDays(Job.planTime,1)', '2024-03-09T17:00:00Z'), '2024-03-10 12:00 EDT');
    assert.equal(f('DateUtil.addHours(Job.planTime,24)', '2024-03-09T17:00:00Z'), '2024-03-10 13:00 EDT');
    assert.equal(f('DateUtil.addHours(Job.planTime,1)', '2024-03-10T06:30:00Z'), '2024-03-10 03:30 EDT');
    assert.equal(f('DateUtil.addDays(Job.planTime,1)', '2024-11-02T16:00:00Z'), '2024-11-03 12:00 EST');
  });

  it('parseDate then format round-trips in the EL zone', () => {
    assert.equal(
      el(
        'DateUtil.format(DateUtil.parseDate("2024-02-29 23:59:59","yyyy-MM-dd HH:mm:ss"),"yyyy-MM-dd\'T\'HH:mm:ssXXX")',
        'Asia/Kolkata',
        '2024-01-01T00:00:00Z',
      ),
      '2024-02-29T23:59:59+05:30',
    );
  });

  it('DateUtil.now() and Job.startTime are the execute time; a date shows as Java prints it', () => {
    const at = '2026-12-01T06:35:18Z';
    assert.equal(el('DateUtil.getTime(DateUtil.now())', 'UTC', at), String(Date.parse(at)));
    assert.equal(el('DateUtil.getTime(Job.startTime) == DateUtil.getTime(Job.planTime)', 'UTC', at), 'true');
    assert.equal(el('Job.planTime', 'UTC', at), 'Tue Dec 01 06:35:18 UTC 2026');
    assert.equal(el('Job.planTime', 'Asia/Shanghai', at), 'Tue Dec 01 14:35:18 CST 2026');
    assert.equal(el('Job.getPlanTime("yyyyMMdd")', 'Asia/Shanghai', at), '20261201');
  });

  it('zone ids: IANA, GMT offsets; unknown zones and patterns are errors', () => {
    assert.equal(resolveTimeZone('GMT+8').offsetAt(0), 8 * 3_600_000);
    assert.equal(resolveTimeZone('UTC-05:30').offsetAt(0), -5.5 * 3_600_000);
    assert.throws(() => resolveTimeZone('Mars/Olympus'), /unknown time zone/);
    assert.throws(() => resolveTimeZone('GMT+25'), /unknown time zone/);
    assert.throws(
      () => formatDate(0, 'yyyy-MM-dd Q', resolveTimeZone('UTC')),
      /illegal pattern character 'Q'/,
    );
    assert.throws(() => formatDate(0, "yyyy 'open", resolveTimeZone('UTC')), /unterminated quote/);
    assert.throws(() => formatDate(0, 'XXXX', resolveTimeZone('UTC')), /invalid ISO 8601/);
  });
});
