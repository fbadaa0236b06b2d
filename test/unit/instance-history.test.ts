/** Run-history query parameters (domain/instance-history.ts): status mapping, time bounds, errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DlfError } from '../../src/domain/dlf-error.js';
import {
  API_STATUSES,
  parseInstanceHistoryParams,
  parseTimeBound,
  statesOfApiStatus,
} from '../../src/domain/instance-history.js';
import { INSTANCE_STATES, toApiStatus } from '../../src/domain/instance-state.js';

const refused = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DlfError);
    assert.equal(error.code, 'DLF.3051');
    assert.match(error.message, pattern);
    return true;
  });

describe('run history parameters', () => {
  it('API statuses are the four documented ones, and each maps back onto its states', () => {
    assert.deepEqual([...API_STATUSES].sort(), ['FAILED', 'FINISHED', 'LAUNCHING', 'RUNNING']);
    assert.deepEqual(statesOfApiStatus('FAILED'), ['FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED']);
    assert.deepEqual(statesOfApiStatus('LAUNCHING'), ['QUEUED', 'LAUNCHING']);
    // Every state is under exactly one status.
    const covered = API_STATUSES.flatMap(statesOfApiStatus);
    assert.deepEqual([...covered].sort(), [...INSTANCE_STATES].sort());
    for (const status of API_STATUSES) {
      for (const state of statesOfApiStatus(status)) assert.equal(toApiStatus(state), status);
    }
  });

  it('defaults, and status with detailedStatus intersect', () => {
    assert.deepEqual(parseInstanceHistoryParams({}), { offset: 0, limit: 10 });
    assert.deepEqual(
      parseInstanceHistoryParams({ status: 'LAUNCHING,FINISHED', limit: '1000', offset: '5' }),
      {
        offset: 5,
        limit: 1000,
        states: ['QUEUED', 'LAUNCHING', 'FINISHED'],
      },
    );
    assert.deepEqual(parseInstanceHistoryParams({ status: 'FAILED', detailedStatus: 'STOPPED, FINISHED' }), {
      offset: 0,
      limit: 10,
      states: ['STOPPED'],
    });
    assert.equal(parseInstanceHistoryParams({ status: 'FINISHED', detailedStatus: 'STOPPED' }), 'none');
    assert.deepEqual(parseInstanceHistoryParams({ status: '', detailedStatus: '', scriptName: '' }), {
      offset: 0,
      limit: 10,
    });
  });

  it('reads epoch milliseconds and ISO-8601 with Z or an offset (a space for an unencoded +)', () => {
    const at = Date.UTC(2026, 11, 1, 10, 0, 0);
    assert.equal(parseTimeBound('from', String(at))?.getTime(), at);
    assert.equal(parseTimeBound('from', '0')?.getTime(), 0);
    assert.equal(parseTimeBound('from', '2026-12-01')?.getTime(), Date.UTC(2026, 11, 1));
    assert.equal(parseTimeBound('from', '2026-12-01T10:00Z')?.getTime(), at);
    assert.equal(parseTimeBound('from', '2026-12-01T10:00:00.5Z')?.getTime(), at + 500);
    assert.equal(parseTimeBound('from', '2026-12-01T10:00:00.123456789Z')?.getTime(), at + 123);
    assert.equal(parseTimeBound('from', '2026-12-01T18:00:00+08:00')?.getTime(), at);
    assert.equal(parseTimeBound('from', '2026-12-01T18:00:00 08:00')?.getTime(), at);
    assert.equal(parseTimeBound('from', '2026-12-01T18:00:00+0800')?.getTime(), at);
    assert.equal(parseTimeBound('from', '2026-12-01T05:30:00-04:30')?.getTime(), at);
    assert.equal(parseTimeBound('from', '2026-12-01 10:00:00Z')?.getTime(), at);
    assert.equal(parseTimeBound('from', '2024-02-29')?.getTime(), Date.UTC(2024, 1, 29));
    assert.equal(parseTimeBound('from', undefined), undefined);
    assert.equal(parseTimeBound('from', ''), undefined);
  });

  it('refuses what it cannot read unambiguously', () => {
    for (const raw of [
      '2026-12-01T10:00:00',
      '2025-02-29',
      '2026-04-31',
      '2026-13-01',
      '2026-12-01T24:00:00Z',
      '2026-12-01T10:60:00Z',
      '2026-12-01T10:00:60Z',
      '2026-12-01T10:00:00+24:00',
      '2026-12-01T10:00:00+08:60',
      '0050-01-01',
      '26-12-01',
      '-1',
      '1.5',
      '1e12',
      '8640000000000001',
      '99999999999999999',
      'today',
      ' 2026-12-01',
    ]) {
      refused(() => parseTimeBound('from', raw), /from must be epoch milliseconds/);
    }
    refused(
      () => parseInstanceHistoryParams({ from: '2026-12-02', to: '2026-12-01' }),
      /from must not be later/,
    );
    refused(
      () => parseInstanceHistoryParams({ status: 'QUEUED' }),
      /status must be one or more of LAUNCHING/,
    );
    refused(() => parseInstanceHistoryParams({ detailedStatus: 'failed' }), /detailedStatus/);
    refused(() => parseInstanceHistoryParams({ detailedStatus: ',' }), /detailedStatus/);
    refused(() => parseInstanceHistoryParams({ scriptName: 'a/b' }), /scriptName/);
    refused(() => parseInstanceHistoryParams({ offset: '1000000001' }), /offset/);
    refused(() => parseInstanceHistoryParams({ limit: '0' }), /limit/);
  });
});
