import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthFailureThrottle, FAILURE_WINDOW_MS } from '../../src/http/auth/auth-failure-throttle.js';

describe('AuthFailureThrottle', () => {
  it('refuses an address or a key past its limit for the rest of the window, and only that one', () => {
    let now = 1_000_000;
    const throttle = new AuthFailureThrottle({ perAddress: 3, perAccessKey: 2 }, () => now);
    throttle.recordFailure('10.0.0.1', 'AKAAAAAAAA');
    assert.equal(throttle.retryAfterSeconds('10.0.0.1', 'AKAAAAAAAA'), undefined);
    throttle.recordFailure('10.0.0.2', 'AKAAAAAAAA');
    // The key reached its limit from two addresses; a third address naming it waits as well.
    assert.equal(throttle.retryAfterSeconds('10.0.0.3', 'AKAAAAAAAA'), 60);
    assert.equal(throttle.retryAfterSeconds('10.0.0.3', 'AKBBBBBBBB'), undefined);
    assert.equal(throttle.retryAfterSeconds('10.0.0.1', undefined), undefined);
    throttle.recordFailure('10.0.0.1', undefined);
    throttle.recordFailure('10.0.0.1', undefined);
    now += 20_500;
    assert.equal(throttle.retryAfterSeconds('10.0.0.1', undefined), 40);
    assert.equal(throttle.retryAfterSeconds('10.0.0.2', 'AKBBBBBBBB'), undefined);
    now += FAILURE_WINDOW_MS;
    assert.equal(throttle.retryAfterSeconds('10.0.0.1', 'AKAAAAAAAA'), undefined);
  });

  it('a new window starts counting from zero', () => {
    let now = 0;
    const throttle = new AuthFailureThrottle({ perAddress: 2, perAccessKey: 100 }, () => now);
    throttle.recordFailure('a', undefined);
    now = FAILURE_WINDOW_MS + 1;
    throttle.recordFailure('a', undefined);
    assert.equal(throttle.retryAfterSeconds('a', undefined), undefined);
    throttle.recordFailure('a', undefined);
    assert.equal(throttle.retryAfterSeconds('a', undefined), 60);
  });
});
