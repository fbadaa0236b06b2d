/**
 * The runner on the embedded SQLite store with a fake engine (test/helpers/fake-engine.ts): queue →
 * claim → run → settle, stop in each phase, timeout, shutdown, recovery, and the first terminal
 * state winning. Fast and deterministic: the fake engine's runs start and end when the test says.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import type { Instance } from '../../src/domain/instance.js';
import { RUNNING_WRITE_DELAY_MS } from '../../src/runner/run-lifecycle.js';
import { RunSupervisor, type SupervisorConfig } from '../../src/runner/run-supervisor.js';
import type { RunSubmission } from '../../src/services/run-queue.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { FakeEngine } from '../helpers/fake-engine.js';

const NS = { projectId: 'p1', workspaceId: 'w1' };
/** The id of the script every submission runs (instances are only created for existing scripts). */
let scriptId = '';
const owner = () => ({ scriptName: 's1', namespace: NS });

function submission(content: string): RunSubmission {
  return {
    namespace: NS,
    scriptId,
    scriptName: 's1',
    connectionName: 'fake',
    engine: 'fake',
    request: { scriptType: 'DWSSQL', content, database: '' },
  };
}

describe('RunSupervisor with a fake engine on SQLite', () => {
  let dir: string;
  let store: Store;
  let engine: FakeEngine;
  let supervisor: RunSupervisor;

  async function startSupervisor(overrides: Partial<SupervisorConfig> = {}, recoverable = false) {
    engine = new FakeEngine(recoverable);
    supervisor = new RunSupervisor(
      store,
      () => Promise.resolve(engine),
      {
        nodeId: 'node-a',
        maxConcurrentRuns: 2,
        instanceTimeoutMs: 60_000,
        stopGraceMs: 50,
        stopWaitMs: 5_000,
        leaseMs: 30_000,
        pollMs: 50,
        runsDir: join(dir, 'runs'),
        limits: { maxResultRows: 10, maxOutputBytes: 1024, maxResultOutputBytes: 1024 },
        ...overrides,
      },
      pino({ level: 'silent' }),
    );
    await supervisor.recover();
    supervisor.start();
  }

  async function submit(content: string): Promise<Instance> {
    return (await supervisor.submit(submission(content))) ?? assert.fail('the script exists: submitted');
  }

  async function settled(instance: Instance): Promise<Instance> {
    const row =
      (await supervisor.waitUntilSettled(instance.id, 5_000)) ?? (await store.instances.get(instance.id));
    assert.ok(row, 'instance exists');
    return row;
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'opendlf-runner-'));
    store = await openSqliteStore(join(dir, 'store.sqlite'));
    const input = {
      name: 's1',
      type: 'DWSSQL',
      content: '',
      directory: '',
      connectionName: 'fake',
      database: '',
      queueName: '',
      configuration: {},
      description: '',
    } as const;
    await store.scripts.create(NS, input, 'test', { state: 'NONE', by: null });
    scriptId = (await store.scripts.get(NS, 's1'))?.id ?? assert.fail('script created');
  });
  afterEach(async () => {
    await supervisor.shutdown(0, 2_000);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a submitted instance to FINISHED; with a free slot it is inserted already claimed', async () => {
    await startSupervisor();
    // The first claim (at start) tells the node its queue is empty; from then on a free slot
    // means the instance is inserted claimed.
    assert.equal((await settled(await submit('ok'))).state, 'FINISHED');
    const instance = await submit('ok');
    assert.equal(instance.state, 'LAUNCHING', 'claimed at insert: no QUEUED row, no claim query');
    assert.equal(instance.nodeId, 'node-a');
    assert.ok(instance.leaseExpiresAt, 'leased from the insert on');
    const done = await settled(instance);
    assert.equal(done.state, 'FINISHED');
    assert.equal(done.failureReason, null);
    assert.deepEqual(done.results[0]?.rows, [[1]]);
    assert.equal(done.runHandle, null, 'the handle is released with the settle');
    assert.equal(done.leaseExpiresAt, null);
  });

  it('a script failure is FAILED with reason script_error and the SQLSTATE', async () => {
    await startSupervisor();
    const done = await settled(await submit('fail'));
    assert.equal(done.state, 'FAILED');
    assert.equal(done.failureReason, 'script_error');
    assert.equal(done.sqlState, '42P01');
    assert.match(done.message, /does not exist/);
  });

  it('results that cannot be saved: FAILED (engine_error) with the cause, never left active', async () => {
    await startSupervisor();
    const done = await settled(await submit('unserialisable'));
    assert.equal(done.state, 'FAILED');
    assert.equal(done.failureReason, 'engine_error');
    assert.match(done.message, /^The script's results could not be saved: TypeError: .*BigInt/);
    assert.deepEqual(done.results, []);
    assert.equal(done.runHandle, null);
  });

  it('a failed run whose results cannot be saved stays FAILED with its own reason, the cause added', async () => {
    await startSupervisor();
    const done = await settled(await submit('fail-unserialisable'));
    assert.equal(done.state, 'FAILED');
    assert.equal(done.failureReason, 'script_error');
    assert.equal(done.sqlState, '42P01');
    assert.match(done.message, /^relation "nope" does not exist\. Its results could not be saved: TypeError/);
    assert.deepEqual(done.results, []);
  });

  it('a stopped run whose results cannot be saved stays STOPPED, the cause added to its message', async () => {
    await startSupervisor();
    const instance = await submit('hang-unserialisable');
    await engine.whenStarted(instance.id);
    const stopped = await supervisor.stop(instance.id, 'grace', owner());
    assert.equal(stopped?.state, 'STOPPED');
    assert.equal(stopped?.failureReason, 'stopped');
    assert.equal(stopped?.stopRequestedBy, 'grace');
    assert.match(
      stopped?.message ?? '',
      /^The script instance is stopped\. Its results could not be saved: TypeError/,
    );
  });

  it('queues beyond the slots, claims in order when a slot frees, and stops a queued one before it starts', async () => {
    await startSupervisor({ maxConcurrentRuns: 1 });
    const first = await submit('gate');
    await engine.whenStarted(first.id);
    const second = await submit('ok');
    const third = await submit('ok');
    assert.equal(second.state, 'QUEUED');
    assert.equal(third.state, 'QUEUED');
    const stopped = await supervisor.stop(second.id, 'alice', owner());
    assert.equal(stopped?.state, 'STOPPED');
    assert.equal(stopped?.stopRequestedBy, 'alice');
    assert.equal(stopped?.failureReason, 'stopped');
    engine.release(first.id);
    assert.equal((await settled(first)).state, 'FINISHED');
    assert.equal((await settled(third)).state, 'FINISHED');
    assert.deepEqual(engine.started, [first.id, third.id], 'the stopped instance never started');
  });

  it('stops a run in its launching phase (no handle yet) and records who asked', async () => {
    await startSupervisor();
    const instance = await submit('hang-silent');
    await engine.whenStarted(instance.id);
    assert.equal((await store.instances.get(instance.id))?.state, 'LAUNCHING');
    const stopped = await supervisor.stop(instance.id, 'bob', owner());
    assert.equal(stopped?.state, 'STOPPED');
    assert.equal(stopped?.stopRequestedBy, 'bob', 'recorded with the settle');
    assert.ok(stopped?.stopRequestedAt);
    assert.equal(stopped?.failureReason, 'stopped');
  });

  it('stops a running run (RUNNING written first by an engine whose work outlives the process)', async () => {
    await startSupervisor({}, true);
    const instance = await submit('hang');
    await engine.whenStarted(instance.id);
    const running = await store.instances.get(instance.id);
    assert.equal(running?.state, 'RUNNING');
    assert.deepEqual(running?.runHandle, { engine: 'fake' });
    const stopped = await supervisor.stop(instance.id, 'carol', owner());
    assert.equal(stopped?.state, 'STOPPED');
    assert.equal(stopped?.stopRequestedBy, 'carol');
    assert.equal(stopped?.runHandle, null);
  });

  it('stopHere aborts a run of this node at once, only when the caller says it belongs', async () => {
    await startSupervisor();
    const instance = await submit('hang');
    await engine.whenStarted(instance.id);
    assert.equal(
      supervisor.stopHere(instance.id, 'eve', () => false),
      false,
      'not the caller’s run',
    );
    assert.equal(
      supervisor.stopHere(instance.id, 'dave', (i) => i.scriptName === 's1'),
      true,
    );
    const done = await settled(instance);
    assert.equal(done.state, 'STOPPED');
    assert.equal(done.stopRequestedBy, 'dave');
  });

  it('settlingHere: a read may wait for the settle of aborted in-process work, and only for that', async () => {
    await startSupervisor();
    const instance = await submit('hang');
    await engine.whenStarted(instance.id);
    assert.equal(supervisor.settlingHere(instance.id, 1_000), undefined, 'not aborted: nothing to wait for');
    assert.equal(
      supervisor.stopHere(instance.id, 'dave', () => true),
      true,
    );
    const settling = supervisor.settlingHere(instance.id, 5_000);
    assert.ok(settling, 'aborted in-process work is settling');
    const row = await settling;
    assert.equal(row?.state, 'STOPPED');
    assert.equal(row?.stopRequestedBy, 'dave');
    assert.equal(supervisor.settlingHere(instance.id, 1_000), undefined, 'settled: nothing to wait for');
  });

  it('settlingHere does not wait for work that outlives the process (its stop may take the grace period)', async () => {
    await startSupervisor({}, true);
    const instance = await submit('hang');
    await engine.whenStarted(instance.id);
    assert.equal(
      supervisor.stopHere(instance.id, 'dave', () => true),
      true,
    );
    assert.equal(supervisor.settlingHere(instance.id, 1_000), undefined);
    assert.equal((await settled(instance)).state, 'STOPPED');
  });

  it('an in-process run is RUNNING here at once, and in the store once it has gone on a moment', async () => {
    await startSupervisor();
    const instance = await submit('hang');
    await engine.whenStarted(instance.id);
    assert.equal(supervisor.runningHere(instance.id), true);
    for (let i = 0; i < 200 && (await store.instances.get(instance.id))?.state !== 'RUNNING'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal((await store.instances.get(instance.id))?.state, 'RUNNING');
    await supervisor.stop(instance.id, 'x', owner());
    assert.equal(supervisor.runningHere(instance.id), false);
  });

  it('recoverable work writes RUNNING with its handle before it goes on; work that ends with this process only once it has gone on a moment', async () => {
    await startSupervisor({}, true);
    const writes: string[] = [];
    const transition = store.instances.transition.bind(store.instances);
    store.instances.transition = (id, from, to, patch) => {
      writes.push(`${id}:${to}`);
      return transition(id, from, to, patch);
    };
    const outlives = await submit('gate');
    await engine.whenStarted(outlives.id);
    assert.equal(
      (await store.instances.get(outlives.id))?.state,
      'RUNNING',
      'stored before the work went on',
    );
    assert.ok(writes.includes(`${outlives.id}:RUNNING`));
    engine.release(outlives.id);
    assert.equal((await settled(outlives)).state, 'FINISHED');

    // A quick run: LAUNCHING → FINISHED in its one settling update, no RUNNING write.
    const quick = await submit('gate-ends-with-process');
    await engine.whenStarted(quick.id);
    assert.equal(supervisor.runningHere(quick.id), true, 'RUNNING on this node at once');
    assert.equal((await store.instances.get(quick.id))?.state, 'LAUNCHING', 'not yet in the store');
    engine.release(quick.id);
    assert.equal((await settled(quick)).state, 'FINISHED');
    await new Promise((resolve) => setTimeout(resolve, RUNNING_WRITE_DELAY_MS + 100));
    assert.deepEqual(
      writes.filter((write) => write.startsWith(quick.id)),
      [`${quick.id}:FINISHED`],
      'one store write after the claimed insert: the settle',
    );

    // A run that goes on: RUNNING and its handle reach the store after the delay.
    const long = await submit('gate-ends-with-process');
    await engine.whenStarted(long.id);
    for (let i = 0; i < 200 && (await store.instances.get(long.id))?.state !== 'RUNNING'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const running = await store.instances.get(long.id);
    assert.equal(running?.state, 'RUNNING');
    assert.deepEqual(running?.runHandle, { engine: 'fake' });
    engine.release(long.id);
    assert.equal((await settled(long)).state, 'FINISHED');
  });

  it('heldUnsettled gives the claimed instance until the settle is written, and a long poll then gets the settled row', async () => {
    await startSupervisor();
    const instance = await submit('hang');
    await engine.whenStarted(instance.id);
    assert.equal(supervisor.heldUnsettled(instance.id)?.id, instance.id);
    const poll = supervisor.waitUntilSettled(instance.id, 5_000);
    await supervisor.stop(instance.id, 'erin', owner());
    assert.equal((await poll)?.state, 'STOPPED');
    assert.equal(supervisor.heldUnsettled(instance.id), undefined);
  });

  it('ends a run that exceeds the timeout as TIMED_OUT', async () => {
    await startSupervisor({ instanceTimeoutMs: 30 });
    const done = await settled(await submit('hang'));
    assert.equal(done.state, 'TIMED_OUT');
    assert.equal(done.failureReason, 'timeout');
  });

  it('the first terminal state wins: work that completed before a late stop is FINISHED and stays so', async () => {
    await startSupervisor();
    const instance = await submit('finish-late');
    await engine.whenStarted(instance.id);
    const first = await supervisor.stop(instance.id, 'frank', owner());
    assert.equal(first?.state, 'FINISHED');
    assert.equal(first?.failureReason, null);
    // Terminal: the stop writes nothing and says so (the service then answers with the row as read).
    assert.equal(await supervisor.stop(instance.id, 'frank', owner()), undefined);
    assert.equal(await store.instances.transition(instance.id, ['FINISHED'], 'STOPPED', {}), undefined);
    assert.equal((await store.instances.get(instance.id))?.state, 'FINISHED');
  });

  it('shutdown aborts queued instances and, after the drain, running ones', async () => {
    await startSupervisor({ maxConcurrentRuns: 1 });
    const running = await submit('hang');
    await engine.whenStarted(running.id);
    const queued = await submit('ok');
    await supervisor.shutdown(20, 2_000);
    const a = await store.instances.get(running.id);
    const b = await store.instances.get(queued.id);
    assert.equal(a?.state, 'ABORTED');
    assert.equal(a?.failureReason, 'shutdown');
    assert.equal(b?.state, 'ABORTED');
    assert.equal(b?.failureReason, 'shutdown');
    assert.equal(supervisor.accepting, false);
  });

  it('an instance inserted claimed while shutdown begins is aborted, never started', async () => {
    await startSupervisor();
    assert.equal((await settled(await submit('ok'))).state, 'FINISHED');
    const submitting = submit('hang');
    const shuttingDown = supervisor.shutdown(0, 1_000);
    const instance = await submitting;
    await shuttingDown;
    const row = await store.instances.get(instance.id);
    assert.equal(row?.state, 'ABORTED');
    assert.equal(row?.failureReason, 'shutdown');
    assert.ok(!engine.started.includes(instance.id));
  });

  it('recovery settles what a previous process of this node left active (reason restart)', async () => {
    const left = await store.instances.create(
      {
        ...submission('hang'),
        id: '00000000-0000-4000-8000-000000000001',
        nodeId: 'node-a',
        claim: { leaseMs: 30_000, startedAt: new Date() },
      },
      new Date(),
    );
    assert.ok(left);
    await store.instances.transition(left.id, ['LAUNCHING'], 'RUNNING', {
      runHandle: { engine: 'fake', pid: 1 },
    });
    await startSupervisor({}, true);
    const recovered = await store.instances.get(left.id);
    assert.equal(recovered?.state, 'ABORTED');
    assert.equal(recovered?.failureReason, 'restart');
    assert.equal(recovered?.runHandle, null);
    assert.deepEqual(engine.recovered, [{ engine: 'fake', pid: 1 }]);
  });
});
