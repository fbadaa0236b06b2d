import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allowedSources,
  assertTransition,
  canTransition,
  INSTANCE_STATES,
  isTerminal,
  TERMINAL_STATES,
  toApiStatus,
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
