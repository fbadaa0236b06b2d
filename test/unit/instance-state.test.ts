import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FAILURE_REASONS,
  type EngineFailureReason,
  type FailureReason,
} from '../../src/domain/failure-reason.js';
import {
  allowedSources,
  assertTransition,
  canTransition,
  causeSettlement,
  END_CAUSES,
  INSTANCE_STATES,
  isTerminal,
  settleChange,
  settlementOf,
  STATE_CHANGES,
  TERMINAL_STATES,
  toApiStatus,
  type EndCause,
  type RunOutcome,
} from '../../src/domain/instance-state.js';

describe('instance state machine', () => {
  it('terminal states have no way out', () => {
    for (const state of TERMINAL_STATES) {
      assert.equal(isTerminal(state), true);
      for (const to of INSTANCE_STATES) assert.equal(canTransition(state, to), false, `${state} -> ${to}`);
    }
  });

  it('maps every state onto the four documented statuses', () => {
    const documented = new Set(['LAUNCHING', 'RUNNING', 'FINISHED', 'FAILED']);
    for (const state of INSTANCE_STATES) assert.ok(documented.has(toApiStatus(state)), state);
    assert.equal(toApiStatus('QUEUED'), 'LAUNCHING');
    assert.equal(toApiStatus('STOPPED'), 'FAILED');
    assert.equal(toApiStatus('TIMED_OUT'), 'FAILED');
    assert.equal(toApiStatus('ABORTED'), 'FAILED');
  });

  it('a queued instance cannot finish without launching', () => {
    assert.equal(canTransition('QUEUED', 'FINISHED'), false);
    assert.throws(() => assertTransition('QUEUED', 'RUNNING'));
    assert.deepEqual(allowedSources('RUNNING'), ['LAUNCHING']);
    assert.deepEqual(allowedSources('STOPPED'), ['QUEUED', 'LAUNCHING', 'RUNNING']);
  });
});

/** The table spelled out once more, pair by pair: a change to TRANSITIONS must change this too. */
const EXPECTED_PAIRS = new Set([
  'QUEUED->LAUNCHING',
  'QUEUED->STOPPED',
  'QUEUED->ABORTED',
  'QUEUED->FAILED',
  'LAUNCHING->RUNNING',
  'LAUNCHING->FINISHED',
  'LAUNCHING->FAILED',
  'LAUNCHING->STOPPED',
  'LAUNCHING->TIMED_OUT',
  'LAUNCHING->ABORTED',
  'RUNNING->FINISHED',
  'RUNNING->FAILED',
  'RUNNING->STOPPED',
  'RUNNING->TIMED_OUT',
  'RUNNING->ABORTED',
]);

describe('instance transitions, every (from, to) pair', () => {
  for (const from of INSTANCE_STATES) {
    for (const to of INSTANCE_STATES) {
      const allowed = EXPECTED_PAIRS.has(`${from}->${to}`);
      it(`${from} -> ${to}: ${allowed ? 'allowed' : 'refused'}`, () => {
        assert.equal(canTransition(from, to), allowed);
        assert.equal(allowedSources(to).includes(from), allowed);
        if (allowed) assertTransition(from, to);
        else assert.throws(() => assertTransition(from, to), /illegal instance transition/);
      });
    }
  }
});

describe('named state changes come from the table', () => {
  it('each named change lists exactly the table sources within its scope', () => {
    assert.deepEqual(STATE_CHANGES.claim, { to: 'LAUNCHING', from: ['QUEUED'] });
    assert.deepEqual(STATE_CHANGES.markRunning, { to: 'RUNNING', from: ['LAUNCHING'] });
    assert.deepEqual(STATE_CHANGES.stopQueued, { to: 'STOPPED', from: ['QUEUED'] });
    assert.deepEqual(STATE_CHANGES.abortOnShutdown, { to: 'ABORTED', from: ['QUEUED'] });
    assert.deepEqual(STATE_CHANGES.abortOnRecovery, {
      to: 'ABORTED',
      from: ['QUEUED', 'LAUNCHING', 'RUNNING'],
    });
    assert.deepEqual(STATE_CHANGES.reap, { to: 'ABORTED', from: ['LAUNCHING', 'RUNNING'] });
    for (const [name, change] of Object.entries(STATE_CHANGES)) {
      for (const from of change.from)
        assert.ok(canTransition(from, change.to), `${name}: ${from} -> ${change.to}`);
    }
  });

  it('a settle starts only from a claimed state, for every terminal state', () => {
    for (const to of TERMINAL_STATES) {
      const { from } = settleChange(to);
      assert.deepEqual(
        from,
        allowedSources(to).filter((s) => s === 'LAUNCHING' || s === 'RUNNING'),
      );
      assert.ok(!(from as readonly string[]).includes('QUEUED'), to);
    }
  });
});

describe('settlementOf: every (outcome, end cause) pair', () => {
  const TIMEOUT_MS = 90_000;
  const outcomes: Record<RunOutcome['kind'], RunOutcome> = {
    succeeded: { kind: 'succeeded', exitCode: 0 },
    failed: { kind: 'failed', message: 'syntax error at or near "SELEC"', exitCode: 3, sqlState: '42601' },
    aborted: { kind: 'aborted' },
  };
  const causes: (EndCause | undefined)[] = [undefined, ...END_CAUSES];
  const expected: Record<string, { state: string; reason: FailureReason | null; message: RegExp }> = {
    'succeeded/none': { state: 'FINISHED', reason: null, message: /^$/ },
    'succeeded/stop': { state: 'FINISHED', reason: null, message: /^$/ },
    'succeeded/timeout': { state: 'FINISHED', reason: null, message: /^$/ },
    'succeeded/shutdown': { state: 'FINISHED', reason: null, message: /^$/ },
    'succeeded/fenced': { state: 'FINISHED', reason: null, message: /^$/ },
    'failed/none': { state: 'FAILED', reason: 'script_error', message: /SELEC/ },
    'failed/stop': { state: 'STOPPED', reason: 'stopped', message: /^The script instance is stopped\.$/ },
    'failed/timeout': { state: 'TIMED_OUT', reason: 'timeout', message: /timeout of 90 s/ },
    'failed/shutdown': { state: 'ABORTED', reason: 'shutdown', message: /shut down/ },
    'failed/fenced': { state: 'ABORTED', reason: 'fenced', message: /lost its lease/ },
    'aborted/none': { state: 'STOPPED', reason: 'stopped', message: /stopped/ },
    'aborted/stop': { state: 'STOPPED', reason: 'stopped', message: /stopped/ },
    'aborted/timeout': { state: 'TIMED_OUT', reason: 'timeout', message: /timeout of 90 s/ },
    'aborted/shutdown': { state: 'ABORTED', reason: 'shutdown', message: /shut down/ },
    'aborted/fenced': { state: 'ABORTED', reason: 'fenced', message: /lost its lease/ },
  };
  for (const [kind, outcome] of Object.entries(outcomes)) {
    for (const cause of causes) {
      const key = `${kind}/${cause ?? 'none'}`;
      it(key, () => {
        const want = expected[key];
        assert.ok(want, `no expectation for ${key}`);
        const got = settlementOf(outcome, cause, TIMEOUT_MS);
        assert.equal(got.state, want.state);
        assert.equal(got.failureReason, want.reason);
        assert.match(got.message, want.message);
        // The exit code and SQLSTATE the engine saw are kept, whatever ended the run.
        assert.equal(got.exitCode, kind === 'aborted' ? null : kind === 'failed' ? 3 : 0);
        assert.equal(got.sqlState, kind === 'failed' ? '42601' : null);
        assert.ok(isTerminal(got.state));
      });
    }
  }

  it('an engine-given reason wins; without one the wording is classified', () => {
    const failed = (message: string, reason?: EngineFailureReason) =>
      settlementOf({ kind: 'failed', message, ...(reason ? { reason } : {}) }, undefined, 1000).failureReason;
    assert.equal(failed('whatever', 'session_lost'), 'session_lost');
    assert.equal(failed('Could not connect to MySQL at db:3306: refused'), 'connect_failed');
    assert.equal(failed('The script output exceeds the 64 MB limit; the run was ended.'), 'output_limit');
    assert.equal(
      failed('The SSH connection to h was lost while the script was running (reset); x.'),
      'session_lost',
    );
    assert.equal(failed('exit code 1'), 'script_error');
  });

  it('the end-cause settlements carry their reason and no exit code', () => {
    for (const cause of END_CAUSES) {
      const s = causeSettlement(cause, 1000);
      assert.equal(s.exitCode, null);
      assert.ok(s.failureReason && FAILURE_REASONS.includes(s.failureReason));
    }
  });
});
