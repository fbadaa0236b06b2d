import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, DEFAULT_CONFIG, loadConfig } from '../../src/config.js';

describe('configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendlf-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('layers defaults < file < environment < flags', () => {
    const file = join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({ port: 9000, maxConcurrentRuns: 3, localEngine: { python: 'python3.11' } }),
    );
    const config = loadConfig({ file, env: { OPENDLF_PORT: '9100' }, overrides: { maxConcurrentRuns: 4 } });
    assert.equal(config.port, 9100);
    assert.equal(config.maxConcurrentRuns, 4);
    assert.equal(config.localEngine.python, 'python3.11');
    assert.equal(config.localEngine.shell, DEFAULT_CONFIG.localEngine.shell);
    assert.equal(config.host, '127.0.0.1');
  });

  it('rejects unknown keys and bad values with a message naming them', () => {
    assert.throws(
      () => loadConfig({ overrides: { port: 70000 } }),
      (e: unknown) => e instanceof ConfigError && /port/.test(e.message),
    );
    assert.throws(() => loadConfig({ env: { OPENDLF_MAX_CONCURRENT_RUNS: 'many' } }), ConfigError);
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    assert.throws(() => loadConfig({ file }), ConfigError);
  });
});
