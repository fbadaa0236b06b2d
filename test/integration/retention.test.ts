/**
 * Retention: ended instances older than the retention period are deleted with their run files;
 * younger ones and active ones stay. Real SQLite store, real run directories.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { RetentionSweeper } from '../../src/runner/retention-sweeper.js';
import { RunSupervisor } from '../../src/runner/run-supervisor.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { tempDir } from '../helpers/server.js';

const DAY = 86_400_000;

describe('instance retention', () => {
  let dir: string;
  let store: Store;
  let sweeper: RetentionSweeper;
  const runsDir = () => join(dir, 'runs');
  const NS = { projectId: 'p', workspaceId: 'w' };
  let scriptId = '';

  before(async () => {
    dir = tempDir();
    store = await openSqliteStore(join(dir, 'store.sqlite'));
    // Instances are only created for an existing script.
    const script = { name: 'x', type: 'Shell', content: '', directory: '', connectionName: 'local' } as const;
    const more = { database: '', queueName: '', configuration: {}, description: '' };
    await store.scripts.create(NS, { ...script, ...more }, 'test', { state: 'NONE', by: null });
    scriptId = (await store.scripts.get(NS, 'x'))?.id ?? assert.fail('script created');
    const log = pino({ level: 'silent' });
    const supervisor = new RunSupervisor(
      store,
      () => Promise.resolve(undefined),
      {
        nodeId: 'n',
        leaseMs: 30_000,
        pollMs: 1_000,
        maxConcurrentRuns: 1,
        instanceTimeoutMs: 1000,
        stopGraceMs: 100,
        stopWaitMs: 100,
        runsDir: runsDir(),
        limits: { maxResultRows: 1, maxOutputBytes: 1, maxResultOutputBytes: 1 },
      },
      log,
    );
    sweeper = new RetentionSweeper(store.instances, supervisor, 7 * DAY, log);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function instanceEndedAt(id: string, endedAt: Date | null) {
    await store.instances.create(
      {
        id,
        namespace: NS,
        scriptId,
        scriptName: 'x',
        connectionName: 'local',
        engine: 'local-shell',
        nodeId: 'n',
        request: { scriptType: 'Shell', content: '', database: '' },
      },
      new Date(0),
    );
    mkdirSync(join(runsDir(), id), { recursive: true });
    writeFileSync(join(runsDir(), id, 'output.log'), 'out');
    if (endedAt) await store.instances.transition(id, ['QUEUED'], 'STOPPED', { endedAt, message: 'x' });
  }

  it('deletes only ended instances older than the retention period, with their files', async () => {
    const now = new Date('2026-06-15T00:00:00Z');
    await instanceEndedAt('old', new Date(now.getTime() - 8 * DAY));
    await instanceEndedAt('young', new Date(now.getTime() - 6 * DAY));
    await instanceEndedAt('active', null);

    assert.equal(await sweeper.sweep(now), 1);
    assert.equal(await store.instances.get('old'), undefined);
    assert.equal(existsSync(join(runsDir(), 'old')), false);
    assert.ok(await store.instances.get('young'));
    assert.ok(existsSync(join(runsDir(), 'young', 'output.log')));
    assert.ok(await store.instances.get('active'));
    assert.equal(await sweeper.sweep(now), 0);
  });

  it('removes run directories whose instance no longer exists (deleted by another node)', async () => {
    const gone = randomUUID();
    const kept = randomUUID();
    await instanceEndedAt(kept, null);
    mkdirSync(join(runsDir(), gone), { recursive: true });
    writeFileSync(join(runsDir(), gone, 'output.log'), 'out');
    mkdirSync(join(runsDir(), 'not-an-instance'), { recursive: true });
    await sweeper.sweep(new Date());
    assert.equal(existsSync(join(runsDir(), gone)), false);
    assert.ok(existsSync(join(runsDir(), kept, 'output.log')));
    assert.ok(existsSync(join(runsDir(), 'not-an-instance')), 'only instance-named directories are touched');
  });
});
