import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { targetKey } from '../../src/engines/ssh/ssh-pool.js';
import type { SshTarget } from '../../src/engines/ssh/ssh-target.js';

const base: SshTarget = {
  host: 'build.example',
  port: 22,
  username: 'etl',
  password: 'correct horse',
  hostKey: { knownHostsFile: '/data/ssh-known-hosts.json', onUnknown: 'record' },
};

describe('SSH pool key', () => {
  it('is the same for the same login and differs whenever who logs in where differs', () => {
    assert.equal(targetKey({ ...base }), targetKey(base));
    const variants: SshTarget[] = [
      { ...base, host: 'other.example' },
      { ...base, connectAddress: '192.0.2.7' },
      { ...base, port: 2222 },
      { ...base, username: 'root' },
      { ...base, password: 'battery staple' },
      { ...base, privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nx\n' },
      { ...base, passphrase: 'secret' },
      { ...base, hostKey: { ...base.hostKey, onUnknown: 'reject' } },
      { ...base, hostKey: { ...base.hostKey, knownHostsFile: '/elsewhere.json' } },
    ];
    const keys = new Set([targetKey(base), ...variants.map(targetKey)]);
    assert.equal(keys.size, variants.length + 1);
  });

  it('keeps no secret readable in the key', () => {
    const key = targetKey({ ...base, privateKey: 'PRIVATE-KEY-TEXT', passphrase: 'PASSPHRASE' });
    for (const secret of ['correct horse', 'PRIVATE-KEY-TEXT', 'PASSPHRASE']) {
      assert.equal(key.includes(secret), false);
    }
    assert.match(key, /^[0-9a-f]{64}$/);
  });
});
