import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import {
  ConnectionTargetPolicy,
  ConnectionTargetRuleError,
} from '../../src/domain/connection-target-policy.js';

describe('ConnectionTargetPolicy', () => {
  it('refuses loopback, link-local, metadata and unspecified addresses in multi-user mode only', () => {
    const multi = new ConnectionTargetPolicy({ allow: [], deny: [] }, true);
    const single = new ConnectionTargetPolicy({ allow: [], deny: [] }, false);
    for (const address of [
      '127.0.0.1',
      '127.255.0.9',
      '::1',
      '::ffff:127.0.0.1',
      '0.0.0.0',
      '::',
      '169.254.169.254',
      'fe80::1%eth0',
      '100.100.100.200',
    ]) {
      assert.equal(multi.check(address, 5432).allowed, false, address);
      assert.equal(single.check(address, 5432).allowed, true, address);
    }
    assert.equal(single.unrestricted, true);
    assert.equal(multi.unrestricted, false);
    assert.equal(new ConnectionTargetPolicy({ deny: ['10.0.0.0/8'], allow: [] }, false).unrestricted, false);
    assert.deepEqual(multi.check('10.1.2.3', 5432), { allowed: true });
    assert.deepEqual(multi.check('2001:db8::1', 22), { allowed: true });
  });

  it('lets allow rules open defaults, with ports and port ranges, and deny beat allow', () => {
    const policy = new ConnectionTargetPolicy(
      {
        allow: ['127.0.0.1/32:5432-5439', '::1/128:22', '169.254.10.0/24'],
        deny: ['127.0.0.1/32:5433', '10.0.0.0/8'],
      },
      true,
    );
    assert.deepEqual(policy.check('127.0.0.1', 5432), { allowed: true });
    assert.deepEqual(policy.check('127.0.0.1', 5433), { allowed: false, rule: 'deny 127.0.0.1/32:5433' });
    assert.deepEqual(policy.check('127.0.0.1', 5440), {
      allowed: false,
      rule: 'multi-user default deny 127.0.0.0/8',
    });
    assert.deepEqual(policy.check('::1', 22), { allowed: true });
    assert.equal(policy.check('::1', 23).allowed, false);
    assert.deepEqual(policy.check('169.254.10.7', 80), { allowed: true });
    assert.equal(policy.check('169.254.169.254', 80).allowed, false);
    assert.deepEqual(policy.check('10.9.9.9', 5432), { allowed: false, rule: 'deny 10.0.0.0/8' });
    assert.deepEqual(policy.check('::ffff:10.9.9.9', 5432), { allowed: false, rule: 'deny 10.0.0.0/8' });
  });

  it('refuses malformed rules with a message naming them', () => {
    for (const rule of ['10.0.0.0', '10.0.0.0/33', 'host/8', '10.0.0.0/8:0', '10.0.0.0/8:9-3', '::1/129']) {
      assert.throws(
        () => new ConnectionTargetPolicy({ allow: [rule], deny: [] }, true),
        (error: unknown) => error instanceof ConnectionTargetRuleError && error.message.includes(rule),
        rule,
      );
    }
  });

  it('stops the configuration load at a malformed rule, naming it', () => {
    assert.throws(
      () => loadConfig({ overrides: { connectionTargets: { deny: ['10.0.0.0/8', 'intranet'] } } }),
      (error: unknown) => error instanceof ConfigError && error.message.includes("'intranet'"),
    );
    assert.deepEqual(
      loadConfig({ overrides: { connectionTargets: { allow: ['127.0.0.1/32'] } } }).connectionTargets,
      {
        allow: ['127.0.0.1/32'],
      },
    );
  });
});
