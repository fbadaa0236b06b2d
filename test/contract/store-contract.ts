/**
 * The one contract every store adapter passes (guarded transitions, claims, leases, stop requests):
 * the same ports, the same answers, on SQLite and on PostgreSQL. Each adapter's test file is one call to `runStoreContract`.
 * Every test works in its own namespace (or with its own ids), so the tests share one store.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { InstanceState } from '../../src/domain/instance-state.js';
import type { Namespace, ScriptInput } from '../../src/domain/script.js';
import type { Instance } from '../../src/domain/instance.js';
import type { Approval, NewInstance, Store } from '../../src/store/store.js';

export interface StoreContractFixture {
  readonly name: string;
  /** Opens a store on a fresh (or shared but isolated) database; migrations applied. */
  open(): Promise<Store>;
  /** Called after the store is closed (drop the database, remove the file). */
  cleanup(): Promise<void>;
}

const NONE: Approval = { state: 'NONE', by: null };
const uniq = () => randomBytes(6).toString('hex');
const freshNs = (): Namespace => ({ projectId: `p_${uniq()}`, workspaceId: `w_${uniq()}` });

function scriptInput(name: string, overrides: Partial<ScriptInput> = {}): ScriptInput {
  return {
    name,
    type: 'DWSSQL',
    content: 'SELECT 1;',
    directory: '/contract',
    connectionName: 'conn',
    database: 'db',
    queueName: '',
    configuration: { k: 'v' },
    description: 'd',
    ...overrides,
  };
}

/** A script every instance belongs to unless a test names its own (instances need their script). */
let defaultScriptId = '';

function newInstance(ns: Namespace, overrides: Partial<NewInstance> = {}): NewInstance {
  return {
    id: randomUUID(),
    namespace: ns,
    scriptId: defaultScriptId,
    scriptName: 'script',
    connectionName: 'conn',
    engine: 'postgres',
    nodeId: `node_${uniq()}`,
    request: { scriptType: 'DWSSQL', content: 'SELECT 1;', database: 'db' },
    ...overrides,
  };
}

export function runStoreContract(fixture: StoreContractFixture): void {
  describe(`store contract: ${fixture.name}`, () => {
    let store: Store;
    before(async () => {
      store = await fixture.open();
      const ns = freshNs();
      await store.scripts.create(ns, scriptInput('instances'), 'u', NONE);
      defaultScriptId = (await store.scripts.get(ns, 'instances'))?.id ?? assert.fail('script created');
    });

    /** Creates the instance; its script exists, so the guarded insert must insert it. */
    async function createInstance(spec: NewInstance, createdAt: Date): Promise<Instance> {
      return (
        (await store.instances.create(spec, createdAt)) ??
        assert.fail('instance of an existing script created')
      );
    }

    /** A new script's id (the store chooses it). */
    async function newScriptId(ns: Namespace): Promise<string> {
      const name = `s_${uniq()}`;
      await store.scripts.create(ns, scriptInput(name), 'u', NONE);
      return (await store.scripts.get(ns, name))?.id ?? assert.fail('script created');
    }
    after(async () => {
      await store.close();
      await fixture.cleanup();
    });

    it('ping answers', async () => {
      await store.ping();
    });

    describe('scripts', () => {
      it('create, get; a duplicate name in the namespace is refused, in another namespace allowed', async () => {
        const ns = freshNs();
        const input = scriptInput('daily', {
          targetStatus: 'SUBMITTED',
          approvers: [{ approverName: 'alice' }],
        });
        assert.equal(await store.scripts.create(ns, input, 'bob', { state: 'SAVED', by: null }), true);
        assert.equal(await store.scripts.create(ns, scriptInput('daily'), 'eve', NONE), false);
        assert.equal(await store.scripts.create(freshNs(), scriptInput('daily'), 'eve', NONE), true);
        const got = await store.scripts.get(ns, 'daily');
        assert.ok(got);
        assert.equal(got.name, 'daily');
        assert.equal(got.type, 'DWSSQL');
        assert.equal(got.owner, 'bob');
        assert.equal(got.createUser, 'bob');
        assert.equal(got.version, 1);
        assert.equal(got.approvalState, 'SAVED');
        assert.deepEqual(got.namespace, ns);
        assert.deepEqual(got.configuration, { k: 'v' });
        assert.equal(got.targetStatus, 'SUBMITTED');
        assert.deepEqual(got.approvers, [{ approverName: 'alice' }]);
        assert.ok(got.createdAt instanceof Date && !Number.isNaN(got.createdAt.getTime()));
        assert.ok(Math.abs(got.createdAt.getTime() - Date.now()) < 60_000);
        assert.equal(await store.scripts.get(ns, 'missing'), undefined);
        assert.equal(await store.scripts.get(freshNs(), 'daily'), undefined);
      });

      it('update replaces mutable fields and bumps the version; unknown → false', async () => {
        const ns = freshNs();
        await store.scripts.create(ns, scriptInput('s'), 'bob', NONE);
        const ok = await store.scripts.update(ns, scriptInput('s', { content: 'SELECT 2;' }), {
          state: 'PENDING',
          by: null,
        });
        assert.equal(ok, true);
        const got = await store.scripts.get(ns, 's');
        assert.equal(got?.content, 'SELECT 2;');
        assert.equal(got?.version, 2);
        assert.equal(got?.approvalState, 'PENDING');
        assert.equal(got?.targetStatus, undefined);
        assert.equal(await store.scripts.update(ns, scriptInput('nope'), NONE), false);
      });

      it('setApproval is guarded by the source state and the version read', async () => {
        const ns = freshNs();
        await store.scripts.create(ns, scriptInput('s'), 'bob', { state: 'PENDING', by: null });
        const read = await store.scripts.get(ns, 's');
        assert.ok(read);
        const approve = { state: 'APPROVED', by: 'x' } as const;
        assert.equal(
          await store.scripts.setApproval(ns, 's', { states: ['SAVED'], version: read.version }, approve),
          false,
        );
        // Modified after the reviewer read it: the decision must not land on content nobody saw.
        await store.scripts.update(ns, scriptInput('s'), { state: 'PENDING', by: 'bob' });
        assert.equal(
          await store.scripts.setApproval(ns, 's', { states: ['PENDING'], version: read.version }, approve),
          false,
        );
        assert.equal(
          await store.scripts.setApproval(
            ns,
            's',
            { states: ['PENDING'], version: read.version + 1 },
            approve,
          ),
          true,
        );
        const got = await store.scripts.get(ns, 's');
        assert.equal(got?.approvalState, 'APPROVED');
        assert.equal(got?.approvedBy, 'x');
      });

      it('list: creation order, offset/limit, total, count', async () => {
        const ns = freshNs();
        const names = ['zeta', 'alpha', 'mid', 'beta', 'omega'];
        for (const name of names)
          assert.equal(await store.scripts.create(ns, scriptInput(name), 'u', NONE), true);
        const all = await store.scripts.list(ns, { offset: 0, limit: 100, nameContains: '' });
        assert.equal(all.total, 5);
        assert.deepEqual(
          all.scripts.map((s) => s.name),
          names,
        );
        const page = await store.scripts.list(ns, { offset: 1, limit: 2, nameContains: '' });
        assert.equal(page.total, 5);
        assert.deepEqual(
          page.scripts.map((s) => s.name),
          ['alpha', 'mid'],
        );
        const beyond = await store.scripts.list(ns, { offset: 10, limit: 2, nameContains: '' });
        assert.equal(beyond.total, 5);
        assert.deepEqual(beyond.scripts, []);
        assert.equal(await store.scripts.count(ns), 5);
        assert.equal(typeof (await store.scripts.count(ns)), 'number');
        assert.equal(await store.scripts.count(freshNs()), 0);
      });

      it('list pages and totals stay exact across creates, duplicates and deletes (counter, cached order)', async () => {
        const ns = freshNs();
        const other = freshNs();
        const expected: string[] = [];
        const check = async () => {
          for (const [offset, limit] of [
            [0, 100],
            [0, 3],
            [2, 3],
            [expected.length - 1, 5],
            [expected.length, 5],
          ] as const) {
            const page = await store.scripts.list(ns, {
              offset: Math.max(offset, 0),
              limit,
              nameContains: '',
            });
            assert.equal(page.total, expected.length);
            assert.deepEqual(
              page.scripts.map((s) => s.name),
              expected.slice(Math.max(offset, 0), Math.max(offset, 0) + limit),
            );
          }
          assert.equal(await store.scripts.count(ns), expected.length);
          for (const nameContains of ['1', 's', 'x']) {
            const filtered = await store.scripts.list(ns, { offset: 0, limit: 100, nameContains });
            const matching = expected.filter((name) => name.includes(nameContains));
            assert.equal(filtered.total, matching.length);
            assert.deepEqual(
              filtered.scripts.map((s) => s.name),
              matching,
            );
            const second = await store.scripts.list(ns, { offset: 1, limit: 1, nameContains });
            assert.deepEqual(
              second.scripts.map((s) => s.name),
              matching.slice(1, 2),
            );
          }
        };
        await check();
        for (const name of ['s1', 's2', 's3', 's4', 's5', 's6']) {
          assert.equal(await store.scripts.create(ns, scriptInput(name), 'u', NONE), true);
          expected.push(name);
          // Another namespace's scripts interleave in seq order and must never show up here.
          await store.scripts.create(other, scriptInput(name), 'u', NONE);
          await check();
        }
        assert.equal(await store.scripts.create(ns, scriptInput('s3'), 'u', NONE), false);
        await check();
        for (const name of ['s3', 's1', 's6']) {
          assert.ok(await store.scripts.delete(ns, name));
          expected.splice(expected.indexOf(name), 1);
          await check();
        }
        assert.equal(await store.scripts.delete(ns, 's3'), undefined);
        await check();
        assert.equal(await store.scripts.create(ns, scriptInput('s1'), 'u', NONE), true);
        expected.push('s1');
        await check();
        assert.equal((await store.scripts.list(other, { offset: 0, limit: 100, nameContains: '' })).total, 6);
      });

      it('list filter is an exact, case-sensitive substring; % and _ are literal', async () => {
        const ns = freshNs();
        const names = ['a%b', 'axb', 'a_b', 'a-b', 'ABC', 'abc', '100%', 'x_y_z'];
        for (const name of names) await store.scripts.create(ns, scriptInput(name), 'u', NONE);
        const filter = async (nameContains: string) => {
          const page = await store.scripts.list(ns, { offset: 0, limit: 100, nameContains });
          assert.equal(page.total, page.scripts.length);
          return page.scripts.map((s) => s.name);
        };
        assert.deepEqual(await filter('%'), ['a%b', '100%']);
        assert.deepEqual(await filter('a%b'), ['a%b']);
        assert.deepEqual(await filter('_'), ['a_b', 'x_y_z']);
        assert.deepEqual(await filter('a_b'), ['a_b']);
        assert.deepEqual(await filter('bc'), ['abc']);
        assert.deepEqual(await filter('BC'), ['ABC']);
        assert.deepEqual(await filter('nothing'), []);
        const limited = await store.scripts.list(ns, { offset: 1, limit: 1, nameContains: 'b' });
        assert.equal(limited.total, 5);
        assert.deepEqual(
          limited.scripts.map((s) => s.name),
          ['axb'],
        );
      });

      it('delete removes the script (returns its id) and closes it to new instances; deleteForScript removes its instances; unknown → undefined', async () => {
        const ns = freshNs();
        await store.scripts.create(ns, scriptInput('gone'), 'u', NONE);
        await store.scripts.create(ns, scriptInput('kept'), 'u', NONE);
        const gone = await store.scripts.get(ns, 'gone');
        const kept = await store.scripts.get(ns, 'kept');
        assert.ok(gone && kept);
        const a = await createInstance(newInstance(ns, { scriptId: gone.id }), new Date());
        const b = await createInstance(newInstance(ns, { scriptId: kept.id }), new Date());
        assert.equal(await store.scripts.delete(ns, 'gone'), gone.id);
        assert.equal(await store.scripts.get(ns, 'gone'), undefined);
        // The instances stay until the caller has stopped them, but no new one can be created.
        assert.ok(await store.instances.get(a.id));
        const late = newInstance(ns, { scriptId: gone.id });
        assert.equal(await store.instances.create(late, new Date()), undefined);
        assert.equal(
          await store.instances.create(
            { ...newInstance(ns, { scriptId: gone.id }), claim: { leaseMs: 1_000, startedAt: new Date() } },
            new Date(),
          ),
          undefined,
          'nor one inserted already claimed',
        );
        assert.equal(await store.instances.get(late.id), undefined);
        assert.equal(await store.instances.deleteForScript(gone.id), 1);
        assert.equal(await store.instances.get(a.id), undefined);
        assert.ok(await store.instances.get(b.id));
        assert.equal(await store.scripts.delete(ns, 'gone'), undefined);
        assert.equal(await store.scripts.count(ns), 1);
      });

      it('creates racing a delete: every instance created is listed after the delete, none is created after it', async () => {
        for (let round = 0; round < 5; round++) {
          const ns = freshNs();
          const scriptId = await newScriptId(ns);
          const [script] = (await store.scripts.list(ns, { offset: 0, limit: 1, nameContains: '' })).scripts;
          assert.ok(script);
          assert.equal(script.id, scriptId);
          const creates: Promise<string | undefined>[] = [];
          let listedAfterDelete: Promise<string[]> | undefined;
          for (let i = 0; i < 40; i++) {
            creates.push(
              store.instances.create(newInstance(ns, { scriptId }), new Date()).then((inst) => inst?.id),
            );
            if (i === 20) {
              listedAfterDelete = store.scripts.delete(ns, script.name).then(async (id) => {
                assert.equal(id, scriptId);
                return (await store.instances.listForScript(scriptId, 1_000)).map((inst) => inst.id);
              });
            }
          }
          const created = (await Promise.all(creates)).filter((id) => id !== undefined);
          const listed = new Set(await listedAfterDelete);
          const unseen = created.filter((id) => !listed.has(id));
          assert.deepEqual(unseen, [], 'instances created after the delete listed the script’s instances');
          assert.equal(await store.instances.create(newInstance(ns, { scriptId }), new Date()), undefined);
        }
      });
    });

    describe('instances', () => {
      it('create and get round-trip every field', async () => {
        const ns = freshNs();
        const created = new Date(1_700_000_000_123);
        const spec = newInstance(ns);
        const inst = await createInstance(spec, created);
        assert.equal(inst.state, 'QUEUED');
        assert.equal(inst.createdAt.getTime(), created.getTime());
        const got = await store.instances.get(spec.id);
        assert.deepEqual(got, {
          id: spec.id,
          namespace: ns,
          scriptId: spec.scriptId,
          scriptName: 'script',
          state: 'QUEUED',
          connectionName: 'conn',
          engine: 'postgres',
          nodeId: spec.nodeId,
          createdAt: created,
          startedAt: null,
          endedAt: null,
          stopRequestedAt: null,
          stopRequestedBy: null,
          startedBy: null,
          leaseExpiresAt: null,
          message: '',
          exitCode: null,
          failureReason: null,
          sqlState: null,
          results: [],
          runHandle: null,
        });
        assert.equal(await store.instances.get(randomUUID()), undefined);
      });

      it('transition is guarded: wrong source → undefined; the patch is applied with the state', async () => {
        const inst = await createInstance(newInstance(freshNs()), new Date());
        assert.equal(await store.instances.transition(inst.id, ['RUNNING'], 'FINISHED', {}), undefined);
        assert.equal(await store.instances.transition(inst.id, [], 'LAUNCHING', {}), undefined);
        assert.equal(await store.instances.transition(randomUUID(), ['QUEUED'], 'LAUNCHING', {}), undefined);
        const started = new Date(1_700_000_001_000);
        const running = await store.instances.transition(inst.id, ['QUEUED', 'LAUNCHING'], 'RUNNING', {
          startedAt: started,
          runHandle: { engine: 'postgres', backendPid: 42 },
        });
        assert.equal(running?.state, 'RUNNING');
        assert.equal(running?.startedAt?.getTime(), started.getTime());
        assert.deepEqual(running?.runHandle, { engine: 'postgres', backendPid: 42 });
        const ended = new Date(1_700_000_002_000);
        const done = await store.instances.transition(inst.id, ['RUNNING'], 'FAILED', {
          endedAt: ended,
          message: 'boom',
          exitCode: 3,
          failureReason: 'script_error',
          sqlState: '42P01',
          results: [{ schema: [{ a: 'int' }], rows: [[1]], rowCount: 1, duration: 0.5, message: '' }],
          runHandle: null,
        });
        assert.equal(done?.state, 'FAILED');
        assert.equal(done?.endedAt?.getTime(), ended.getTime());
        assert.equal(done?.message, 'boom');
        assert.equal(done?.exitCode, 3);
        assert.equal(done?.failureReason, 'script_error');
        assert.equal(done?.sqlState, '42P01');
        assert.deepEqual(done?.results, [
          { schema: [{ a: 'int' }], rows: [[1]], rowCount: 1, duration: 0.5, message: '' },
        ]);
        assert.equal(done?.runHandle, null);
        assert.equal(done?.startedAt?.getTime(), started.getTime(), 'unpatched fields are kept');
      });

      it('a terminal state never changes', async () => {
        const inst = await createInstance(newInstance(freshNs()), new Date());
        await store.instances.transition(inst.id, ['QUEUED'], 'STOPPED', { endedAt: new Date() });
        const all: InstanceState[] = ['QUEUED', 'LAUNCHING', 'RUNNING'];
        for (const to of ['FINISHED', 'FAILED', 'TIMED_OUT', 'ABORTED', 'RUNNING'] as const) {
          assert.equal(await store.instances.transition(inst.id, all, to, { message: 'late' }), undefined);
        }
        const got = await store.instances.get(inst.id);
        assert.equal(got?.state, 'STOPPED');
        assert.equal(got?.message, '');
      });

      it('50 concurrent transitions RUNNING → different terminal states: exactly one wins', async () => {
        const inst = await createInstance(newInstance(freshNs()), new Date());
        await store.instances.transition(inst.id, ['QUEUED'], 'RUNNING', { startedAt: new Date() });
        const terminals = ['FINISHED', 'FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED'] as const;
        const outcomes = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            store.instances.transition(inst.id, ['RUNNING'], terminals[i % terminals.length] ?? 'FAILED', {
              endedAt: new Date(),
              message: `writer ${i}`,
            }),
          ),
        );
        const winners = outcomes.filter((o) => o !== undefined);
        assert.equal(winners.length, 1);
        const winner = winners[0];
        const got = await store.instances.get(inst.id);
        assert.equal(got?.state, winner?.state);
        assert.equal(got?.message, winner?.message);
      });

      it('requestStop: a QUEUED instance is stopped by the write itself, a claimed one records the request; only the owner’s active instances', async () => {
        const ns = freshNs();
        const scriptId = await newScriptId(ns);
        const owner = { scriptName: 'script', namespace: ns };
        const settlement = { message: 'stopped', failureReason: 'stopped' } as const;
        const at = new Date(1_700_000_004_000);
        const queued = await createInstance(newInstance(ns, { scriptId }), new Date());
        const stopped = await store.instances.requestStop(queued.id, owner, { at, by: 'alice' }, settlement);
        assert.equal(stopped?.state, 'STOPPED');
        assert.equal(stopped?.endedAt?.getTime(), at.getTime());
        assert.equal(stopped?.message, 'stopped');
        assert.equal(stopped?.failureReason, 'stopped');
        assert.equal(stopped?.stopRequestedAt?.getTime(), at.getTime());
        assert.equal(stopped?.stopRequestedBy, 'alice');
        assert.equal(stopped?.startedAt, null, 'never claimed');
        // Terminal now: a second request writes nothing.
        assert.equal(
          await store.instances.requestStop(queued.id, owner, { at: new Date(), by: 'bob' }, settlement),
          undefined,
        );
        assert.equal((await store.instances.get(queued.id))?.stopRequestedBy, 'alice');

        const claimed = await createInstance(
          { ...newInstance(ns, { scriptId }), claim: { leaseMs: 30_000, startedAt: new Date() } },
          new Date(),
        );
        const recorded = await store.instances.requestStop(
          claimed.id,
          owner,
          { at, by: 'carol' },
          settlement,
        );
        assert.equal(
          recorded?.state,
          'LAUNCHING',
          'a claimed instance keeps its state until its run settles',
        );
        assert.equal(recorded?.endedAt, null);
        assert.equal(recorded?.message, '');
        assert.equal(recorded?.stopRequestedBy, 'carol');
        const again = await store.instances.requestStop(
          claimed.id,
          owner,
          { at: new Date(), by: 'dave' },
          settlement,
        );
        assert.equal(again?.stopRequestedBy, 'carol', 'the first request wins');
        assert.equal(again?.stopRequestedAt?.getTime(), at.getTime());

        // Another script's or namespace's caller writes nothing.
        const other = await createInstance(newInstance(ns, { scriptId }), new Date());
        for (const wrong of [
          { scriptName: 'another', namespace: ns },
          { scriptName: 'script', namespace: freshNs() },
        ]) {
          assert.equal(
            await store.instances.requestStop(other.id, wrong, { at, by: 'eve' }, settlement),
            undefined,
          );
        }
        const untouched = await store.instances.get(other.id);
        assert.equal(untouched?.state, 'QUEUED');
        assert.equal(untouched?.stopRequestedAt, null);
        assert.equal(
          await store.instances.requestStop(randomUUID(), owner, { at, by: 'eve' }, settlement),
          undefined,
        );
        await store.instances.transition(other.id, ['QUEUED'], 'STOPPED', { endedAt: new Date() });
        await store.instances.transition(claimed.id, ['LAUNCHING'], 'STOPPED', { endedAt: new Date() });
      });

      it('recordStopRequest records once, and never on a terminal instance', async () => {
        const inst = await createInstance(newInstance(freshNs()), new Date());
        const at = new Date(1_700_000_003_000);
        assert.equal(await store.instances.recordStopRequest(inst.id, at, 'alice'), true);
        assert.equal(await store.instances.recordStopRequest(inst.id, new Date(), 'bob'), false);
        const got = await store.instances.get(inst.id);
        assert.equal(got?.stopRequestedAt?.getTime(), at.getTime());
        assert.equal(got?.stopRequestedBy, 'alice');
        const done = await createInstance(newInstance(freshNs()), new Date());
        await store.instances.transition(done.id, ['QUEUED'], 'FINISHED', { endedAt: new Date() });
        assert.equal(await store.instances.recordStopRequest(done.id, new Date(), 'alice'), false);
        assert.equal(await store.instances.recordStopRequest(randomUUID(), new Date(), 'alice'), false);
        // Left QUEUED with a request, it would never be claimed (see the queue tests): settle it.
        await store.instances.transition(inst.id, ['QUEUED'], 'STOPPED', { endedAt: new Date() });
      });

      it('listUnreleased: active instances of a node, and settled ones still holding a run handle', async () => {
        const ns = freshNs();
        const node = `node_${uniq()}`;
        const queued = await createInstance(newInstance(ns, { nodeId: node }), new Date());
        const running = await createInstance(newInstance(ns, { nodeId: node }), new Date());
        await store.instances.transition(running.id, ['QUEUED'], 'RUNNING', {});
        const finished = await createInstance(newInstance(ns, { nodeId: node }), new Date());
        await store.instances.transition(finished.id, ['QUEUED'], 'FINISHED', { endedAt: new Date() });
        const orphan = await createInstance(newInstance(ns, { nodeId: node }), new Date());
        const handle = { engine: 'local-shell', pgid: 42 };
        await store.instances.transition(orphan.id, ['QUEUED'], 'ABORTED', { runHandle: handle });
        await createInstance(newInstance(ns), new Date());
        const unreleased = await store.instances.listUnreleased(node);
        assert.deepEqual(unreleased.map((i) => i.id).sort(), [queued.id, running.id, orphan.id].sort());
        await store.instances.releaseHandle(orphan.id);
        assert.equal((await store.instances.get(orphan.id))?.runHandle, null);
        assert.equal((await store.instances.listUnreleased(node)).length, 2);
        assert.deepEqual(await store.instances.listUnreleased(`node_${uniq()}`), []);
      });

      it('listEndedBefore finds terminal instances ended before the cut-off; deleteMany removes them', async () => {
        const ns = freshNs();
        // Far in the past, so instances of other tests (ended now) never fall under the cut-off.
        const base = 1_000_000_000_000;
        const old1 = await createInstance(newInstance(ns), new Date(base));
        const old2 = await createInstance(newInstance(ns), new Date(base));
        const recent = await createInstance(newInstance(ns), new Date(base));
        const active = await createInstance(newInstance(ns), new Date(base));
        await store.instances.transition(old1.id, ['QUEUED'], 'FINISHED', { endedAt: new Date(base + 1) });
        await store.instances.transition(old2.id, ['QUEUED'], 'FAILED', { endedAt: new Date(base + 2) });
        await store.instances.transition(recent.id, ['QUEUED'], 'STOPPED', { endedAt: new Date(base + 10) });
        // A non-terminal instance with an end time (not a real case) must not be listed either.
        await store.instances.transition(active.id, ['QUEUED'], 'RUNNING', { endedAt: new Date(base + 1) });
        const cutoff = new Date(base + 5);
        const ids = await store.instances.listEndedBefore(cutoff, 100);
        assert.deepEqual([...ids].sort(), [old1.id, old2.id].sort());
        assert.equal((await store.instances.listEndedBefore(cutoff, 1)).length, 1);
        assert.equal(await store.instances.deleteMany(ids), 2);
        assert.equal(await store.instances.deleteMany([]), 0);
        assert.equal(await store.instances.deleteMany([randomUUID()]), 0);
        assert.equal(await store.instances.get(old1.id), undefined);
        assert.ok(await store.instances.get(recent.id));
        assert.deepEqual(await store.instances.listEndedBefore(cutoff, 100), []);
      });

      it('listForScript: newest first, limited, only that script', async () => {
        const ns = freshNs();
        const scriptId = await newScriptId(ns);
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) {
          const inst = await createInstance(newInstance(ns, { scriptId }), new Date(1_700_000_000_000 + i));
          ids.push(inst.id);
        }
        await createInstance(newInstance(ns), new Date(1_800_000_000_000));
        const all = await store.instances.listForScript(scriptId, 10);
        assert.deepEqual(
          all.map((i) => i.id),
          [...ids].reverse(),
        );
        const two = await store.instances.listForScript(scriptId, 2);
        assert.deepEqual(
          two.map((i) => i.id),
          [ids[3], ids[2]],
        );
      });
    });

    describe('run history', () => {
      const at = (i: number) => new Date(1_700_000_000_000 + i * 1_000);
      /** Six instances of two scripts in one namespace, created a second apart, settled variously. */
      async function history() {
        const ns = freshNs();
        const scriptA = await newScriptId(ns);
        const scriptB = await newScriptId(ns);
        const plan: { scriptId: string; scriptName: string; end?: InstanceState }[] = [
          { scriptId: scriptA, scriptName: 'a', end: 'FINISHED' },
          { scriptId: scriptB, scriptName: 'b', end: 'FAILED' },
          { scriptId: scriptA, scriptName: 'a', end: 'STOPPED' },
          { scriptId: scriptA, scriptName: 'a' },
          { scriptId: scriptB, scriptName: 'b', end: 'FINISHED' },
          { scriptId: scriptA, scriptName: 'a', end: 'TIMED_OUT' },
        ];
        const ids: string[] = [];
        for (const [i, step] of plan.entries()) {
          const inst = await createInstance(
            newInstance(ns, { scriptId: step.scriptId, scriptName: step.scriptName, startedBy: `user${i}` }),
            at(i),
          );
          ids.push(inst.id);
          if (step.end === 'FINISHED') {
            await store.instances.transition(inst.id, ['QUEUED'], 'LAUNCHING', { startedAt: at(i) });
            await store.instances.transition(inst.id, ['LAUNCHING'], 'FINISHED', {
              endedAt: new Date(at(i).getTime() + 250),
              results: [{ schema: [], rows: [['big']], rowCount: 1, duration: 0, message: '' }],
            });
          } else if (step.end) {
            await store.instances.transition(inst.id, ['QUEUED'], step.end, {
              endedAt: at(i),
              message: 'ended',
              ...(step.end === 'STOPPED' ? { stopRequest: { at: at(i), by: 'stopper' } } : {}),
            });
          }
        }
        return { ns, scriptA, scriptB, ids };
      }
      const idsOf = (page: { instances: Instance[] | { id: string }[] }) => page.instances.map((i) => i.id);

      it('newest first; filters by script, states and creation time; total counts every match', async () => {
        const { ns, scriptA, ids } = await history();
        const all = await store.instances.history(ns, { offset: 0, limit: 100 });
        assert.equal(all.total, 6);
        assert.deepEqual(idsOf(all), [...ids].reverse());
        const [i0, i1, i2, i3, i4, i5] = ids;
        const byName = await store.instances.history(ns, { scriptName: 'a', offset: 0, limit: 100 });
        assert.deepEqual(idsOf(byName), [i5, i3, i2, i0]);
        assert.equal(byName.total, 4);
        const byId = await store.instances.history(ns, { scriptId: scriptA, offset: 0, limit: 100 });
        assert.deepEqual(idsOf(byId), [i5, i3, i2, i0]);
        // Name and id must both hold: a script re-created under the name is another script.
        const otherId = await store.instances.history(ns, {
          scriptName: 'a',
          scriptId: randomUUID(),
          offset: 0,
          limit: 100,
        });
        assert.deepEqual(otherId, { total: 0, instances: [] });
        const failed = await store.instances.history(ns, {
          states: ['FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED'],
          offset: 0,
          limit: 100,
        });
        assert.deepEqual(idsOf(failed), [i5, i2, i1]);
        assert.equal(failed.total, 3);
        const queued = await store.instances.history(ns, { states: ['QUEUED'], offset: 0, limit: 100 });
        assert.deepEqual(idsOf(queued), [i3]);
        // from inclusive, to exclusive: adjacent windows share nothing.
        const window = await store.instances.history(ns, {
          createdFrom: at(1),
          createdBefore: at(4),
          offset: 0,
          limit: 100,
        });
        assert.deepEqual(idsOf(window), [i3, i2, i1]);
        const after = await store.instances.history(ns, { createdFrom: at(4), offset: 0, limit: 100 });
        assert.deepEqual(idsOf(after), [i5, i4]);
        const combined = await store.instances.history(ns, {
          scriptName: 'a',
          states: ['FINISHED', 'STOPPED'],
          createdBefore: at(3),
          offset: 0,
          limit: 100,
        });
        assert.deepEqual(idsOf(combined), [i2, i0]);
        assert.equal(combined.total, 2);
        assert.deepEqual(await store.instances.history(ns, { states: [], offset: 0, limit: 100 }), {
          total: 0,
          instances: [],
        });
      });

      it('pages without overlap; past the end answers the total and no rows', async () => {
        const { ns, ids } = await history();
        const seen: string[] = [];
        for (let offset = 0; offset < 6; offset += 4) {
          const page = await store.instances.history(ns, { offset, limit: 4 });
          assert.equal(page.total, 6);
          seen.push(...idsOf(page));
        }
        assert.deepEqual(seen, [...ids].reverse());
        assert.deepEqual(await store.instances.history(ns, { offset: 6, limit: 4 }), {
          total: 6,
          instances: [],
        });
        const filtered = await store.instances.history(ns, { scriptName: 'b', offset: 1, limit: 1 });
        assert.equal(filtered.total, 2);
        assert.deepEqual(idsOf(filtered), [ids[1]]);
      });

      it('rows carry who started and stopped them, the times and the state, without results', async () => {
        const { ns, ids } = await history();
        const page = await store.instances.history(ns, { offset: 0, limit: 100 });
        const byId = new Map(page.instances.map((i) => [i.id, i]));
        const finished = byId.get(ids[0] ?? '');
        assert.ok(finished);
        assert.equal(finished.startedBy, 'user0');
        assert.equal(finished.state, 'FINISHED');
        assert.deepEqual(finished.startedAt, at(0));
        assert.deepEqual(finished.endedAt, new Date(at(0).getTime() + 250));
        assert.deepEqual(finished.namespace, ns);
        assert.equal('results' in finished, false);
        assert.equal('runHandle' in finished, false);
        const stopped = byId.get(ids[2] ?? '');
        assert.equal(stopped?.state, 'STOPPED');
        assert.equal(stopped?.stopRequestedBy, 'stopper');
        assert.deepEqual(stopped?.stopRequestedAt, at(2));
        assert.equal(stopped?.message, 'ended');
        // The full row still has them.
        const full = await store.instances.get(ids[0] ?? '');
        assert.equal(full?.startedBy, 'user0');
        assert.equal(full?.results.length, 1);
        // Not given: null.
        const anonymous = await createInstance(newInstance(ns), at(10));
        assert.equal(anonymous.startedBy, null);
      });

      it('only the namespace asked for', async () => {
        const { ns } = await history();
        const sameProject = { projectId: ns.projectId, workspaceId: `w_${uniq()}` };
        const sameWorkspaceName = { projectId: `p_${uniq()}`, workspaceId: ns.workspaceId };
        for (const other of [sameProject, sameWorkspaceName]) {
          assert.deepEqual(await store.instances.history(other, { offset: 0, limit: 100 }), {
            total: 0,
            instances: [],
          });
        }
      });
    });

    describe('queue, leases and reaper', () => {
      // Claims take the oldest QUEUED rows of the whole store: each test first claims every row
      // other tests left queued (tests in a describe run one after another).
      const drain = () => store.instances.claim(`drain_${uniq()}`, 100_000, 3_600_000, new Date());

      it('claim skips a QUEUED instance with a stop request: a stop written first wins', async () => {
        await drain();
        const ns = freshNs();
        const stopped = await createInstance(newInstance(ns), new Date(Date.now() - 1_000));
        const other = await createInstance(newInstance(ns), new Date());
        assert.equal(await store.instances.recordStopRequest(stopped.id, new Date(), 'alice'), true);
        const claimed = await store.instances.claim('node-a', 1, 60_000, new Date());
        assert.deepEqual(
          claimed.map((c) => c.instance.id),
          [other.id],
          'the older instance has a stop request',
        );
        assert.deepEqual(await store.instances.claim('node-a', 5, 60_000, new Date()), []);
        assert.equal((await store.instances.get(stopped.id))?.startedAt, null);
        await store.instances.transition(stopped.id, ['QUEUED'], 'STOPPED', { endedAt: new Date() });
      });

      it('claim: oldest first, each instance once, owner and lease recorded, run request returned', async () => {
        await drain();
        const ns = freshNs();
        const base = Date.now();
        const ids: string[] = [];
        for (let i = 0; i < 3; i += 1) {
          const request = { scriptType: 'Shell' as const, content: `echo ${i}`, database: `d${i}` };
          ids.push((await createInstance(newInstance(ns, { request }), new Date(base + i))).id);
        }
        assert.equal(await store.instances.countQueued(), 3);
        const a = await store.instances.claim('node-a', 2, 60_000, new Date(base + 10));
        assert.deepEqual(
          a.map((c) => c.instance.id),
          ids.slice(0, 2),
        );
        for (const [i, c] of a.entries()) {
          assert.equal(c.instance.state, 'LAUNCHING');
          assert.equal(c.instance.nodeId, 'node-a');
          assert.equal(c.instance.startedAt?.getTime(), base + 10);
          assert.deepEqual(c.request, { scriptType: 'Shell', content: `echo ${i}`, database: `d${i}` });
          const lease = c.instance.leaseExpiresAt?.getTime() ?? 0;
          // The database clock runs on this machine too: the lease ends about a minute from now.
          assert.ok(Math.abs(lease - (Date.now() + 60_000)) < 10_000, `lease ${lease}`);
        }
        const b = await store.instances.claim('node-b', 5, 60_000, new Date());
        assert.deepEqual(
          b.map((c) => c.instance.id),
          ids.slice(2),
        );
        assert.deepEqual(await store.instances.claim('node-b', 5, 60_000, new Date()), []);
        assert.equal(await store.instances.countQueued(), 0);
        assert.deepEqual(await store.instances.claim('node-b', 0, 60_000, new Date()), []);
      });

      it('concurrent claimers: 60 instances, 6 claimers → every instance claimed exactly once', async () => {
        await drain();
        const ns = freshNs();
        const created = new Set<string>();
        for (let i = 0; i < 60; i += 1) created.add((await createInstance(newInstance(ns), new Date())).id);
        const claimer = async (node: string) => {
          const mine: string[] = [];
          for (;;) {
            const got = await store.instances.claim(node, 3, 60_000, new Date());
            if (got.length === 0) return mine;
            mine.push(...got.map((c) => c.instance.id));
          }
        };
        const results = await Promise.all(Array.from({ length: 6 }, (_, i) => claimer(`claimer-${i}`)));
        const all = results.flat();
        assert.equal(all.length, 60, 'no instance claimed twice');
        assert.deepEqual(new Set(all), created);
      });

      it("renewLeases extends only the node's claimed instances; reapExpired settles an expired lease once", async () => {
        await drain();
        const ns = freshNs();
        const keep = await createInstance(newInstance(ns), new Date());
        const [kept] = await store.instances.claim('alive', 1, 60_000, new Date());
        assert.equal(kept?.instance.id, keep.id);
        const lose = await createInstance(newInstance(ns), new Date());
        const [lost] = await store.instances.claim('lost', 1, 1, new Date());
        assert.equal(lost?.instance.id, lose.id);
        await store.instances.transition(lose.id, ['LAUNCHING'], 'RUNNING', {
          runHandle: { engine: 'local-shell', pgid: 7 },
        });
        assert.deepEqual(await store.instances.renewLeases('alive', [keep.id, lose.id], 120_000), [keep.id]);
        assert.deepEqual(await store.instances.renewLeases('alive', [], 120_000), []);
        const renewedUntil = (await store.instances.get(keep.id))?.leaseExpiresAt?.getTime() ?? 0;
        assert.ok(renewedUntil > Date.now() + 90_000, 'lease extended');
        await new Promise((r) => setTimeout(r, 30));
        const reaped = await store.instances.reapExpired('node lost: test', new Date(), 100);
        assert.ok(reaped.includes(lose.id));
        assert.ok(!reaped.includes(keep.id));
        const settled = await store.instances.get(lose.id);
        assert.equal(settled?.state, 'ABORTED');
        assert.match(settled?.message ?? '', /^node lost: test \(node lost\)$/);
        assert.equal(settled?.failureReason, 'node_lost');
        assert.equal(settled?.leaseExpiresAt, null);
        assert.deepEqual(
          settled?.runHandle,
          { engine: 'local-shell', pgid: 7 },
          'handle kept for the lost node',
        );
        assert.ok(!(await store.instances.reapExpired('again', new Date(), 100)).includes(lose.id));
        assert.deepEqual(
          await store.instances.renewLeases('lost', [lose.id], 60_000),
          [],
          'a reaped instance is not renewed',
        );
        const done = await store.instances.transition(keep.id, ['LAUNCHING'], 'FINISHED', {
          endedAt: new Date(),
        });
        assert.equal(done?.leaseExpiresAt, null, 'settling releases the lease');
      });

      it('reapExpired spares the instances the calling node still runs, whatever their lease says', async () => {
        await drain();
        const ns = freshNs();
        const held = await store.instances.create(newInstance(ns), new Date());
        assert.ok(held);
        const [claimed] = await store.instances.claim('busy', 1, 1, new Date());
        assert.equal(claimed?.instance.id, held.id);
        await new Promise((r) => setTimeout(r, 30));
        const spared = await store.instances.reapExpired('node lost: test', new Date(), 100, [held.id]);
        assert.ok(!spared.includes(held.id));
        assert.equal((await store.instances.get(held.id))?.state, 'LAUNCHING');
        assert.ok((await store.instances.reapExpired('node lost: test', new Date(), 100)).includes(held.id));
      });

      it("listStopRequested: the node's claimed instances with a stop request", async () => {
        await drain();
        const ns = freshNs();
        const node = `node_${uniq()}`;
        const one = await createInstance(newInstance(ns), new Date());
        const two = await createInstance(newInstance(ns), new Date());
        await store.instances.claim(node, 2, 60_000, new Date());
        assert.deepEqual(await store.instances.listStopRequested(node), []);
        await store.instances.recordStopRequest(two.id, new Date(), 'alice');
        assert.deepEqual(await store.instances.listStopRequested(node), [two.id]);
        assert.deepEqual(await store.instances.listStopRequested(`node_${uniq()}`), []);
        assert.ok(one.id);
      });

      it('adoptSetting: the first value wins', async () => {
        const name = `setting_${uniq()}`;
        assert.equal(await store.adoptSetting(name, 'first'), 'first');
        assert.equal(await store.adoptSetting(name, 'second'), 'first');
      });

      it('readSetting: undefined until adopted, then the first value, without writing', async () => {
        const name = `setting_${uniq()}`;
        assert.equal(await store.readSetting(name), undefined);
        assert.equal(await store.readSetting(name), undefined);
        await store.adoptSetting(name, 'kept');
        assert.equal(await store.readSetting(name), 'kept');
      });
    });

    describe('connections', () => {
      it('create, duplicate, get, update (version bump), list with types and filter, delete', async () => {
        const ns = freshNs();
        const input = {
          name: 'wh_1',
          type: 'DWS' as const,
          config: { host: 'h', sslEnable: true },
          description: 'x',
        };
        assert.equal(await store.connections.create(ns, input), true);
        assert.equal(await store.connections.create(ns, { ...input, description: 'dup' }), false);
        assert.equal(
          await store.connections.create(ns, {
            name: 'ch%',
            type: 'CLICKHOUSE',
            config: {},
            description: '',
          }),
          true,
        );
        assert.equal(
          await store.connections.create(ns, { name: 'rds', type: 'RDS', config: {}, description: '' }),
          true,
        );
        const got = await store.connections.get(ns, 'wh_1');
        assert.equal(got?.type, 'DWS');
        assert.deepEqual(got?.config, { host: 'h', sslEnable: true });
        assert.equal(got?.version, 1);
        assert.ok(got?.createdAt instanceof Date && !Number.isNaN(got.createdAt.getTime()));
        assert.equal(await store.connections.update(ns, { ...input, config: { host: 'h2' } }), true);
        const updated = await store.connections.get(ns, 'wh_1');
        assert.equal(updated?.version, 2);
        assert.deepEqual(updated?.config, { host: 'h2' });
        assert.equal(await store.connections.update(ns, { ...input, name: 'nope' }), false);

        const list = await store.connections.list(ns, {
          offset: 0,
          limit: 10,
          nameContains: '',
          types: ['DWS', 'RDS'],
        });
        assert.equal(list.total, 2);
        assert.deepEqual(
          list.connections.map((c) => c.name),
          ['wh_1', 'rds'],
        );
        const pct = await store.connections.list(ns, {
          offset: 0,
          limit: 10,
          nameContains: '%',
          types: ['DWS', 'RDS', 'CLICKHOUSE'],
        });
        assert.deepEqual(
          pct.connections.map((c) => c.name),
          ['ch%'],
        );
        const under = await store.connections.list(ns, {
          offset: 0,
          limit: 10,
          nameContains: '_',
          types: ['DWS', 'RDS'],
        });
        assert.deepEqual(
          under.connections.map((c) => c.name),
          ['wh_1'],
        );
        const none = await store.connections.list(ns, { offset: 0, limit: 10, nameContains: '', types: [] });
        assert.deepEqual(none, { total: 0, connections: [] });
        const paged = await store.connections.list(ns, {
          offset: 1,
          limit: 1,
          nameContains: '',
          types: ['DWS', 'RDS'],
        });
        assert.equal(paged.total, 2);
        assert.deepEqual(
          paged.connections.map((c) => c.name),
          ['rds'],
        );

        assert.equal(await store.connections.delete(ns, 'wh_1'), true);
        assert.equal(await store.connections.delete(ns, 'wh_1'), false);
        assert.equal(await store.connections.get(ns, 'wh_1'), undefined);
      });
    });

    describe('system tasks', () => {
      it('save inserts then replaces; get is scoped to the namespace', async () => {
        const ns = freshNs();
        const id = randomUUID();
        const task = {
          id,
          namespace: ns,
          name: 'import',
          status: 'RUNNING' as const,
          message: '',
          subtasks: [
            { id: 'a', name: 'c1', status: 'RUNNING' as const, message: '', lastUpdate: 1_700_000_000_001 },
          ],
          startTime: 1_700_000_000_000,
          endTime: null,
          lastUpdate: 1_700_000_000_001,
        };
        await store.systemTasks.save(task);
        assert.deepEqual(await store.systemTasks.get(ns, id), task);
        const done = {
          ...task,
          status: 'SUCCESSFUL' as const,
          endTime: 1_700_000_000_500,
          lastUpdate: 1_700_000_000_500,
        };
        await store.systemTasks.save(done);
        assert.deepEqual(await store.systemTasks.get(ns, id), done);
        assert.equal(await store.systemTasks.get(freshNs(), id), undefined);
        assert.equal(await store.systemTasks.get(ns, randomUUID()), undefined);
      });
    });

    describe('credentials', () => {
      it('put, get, replace (rotation), list, count, remove', async () => {
        // Credentials are global: count relative to what is already there.
        const before = await store.credentials.count();
        const id = `AK${uniq()}`.toUpperCase();
        const record = {
          kind: 'aksk' as const,
          id,
          secret: 'sealed-1',
          projects: ['p1'],
          grants: [{ workspace: '*', role: 'developer' as const }],
          expiresAt: new Date(1_900_000_000_000),
          createdAt: new Date(1_700_000_000_000),
        };
        await store.credentials.put(record);
        assert.deepEqual(await store.credentials.get('aksk', id), record);
        assert.equal(await store.credentials.get('token', id), undefined);
        const rotated = { ...record, secret: 'sealed-2', expiresAt: null };
        await store.credentials.put(rotated);
        assert.deepEqual(await store.credentials.get('aksk', id), rotated);
        const token = { ...record, kind: 'token' as const, id: uniq(), secret: 'hash' };
        await store.credentials.put(token);
        assert.equal(await store.credentials.count(), before + 2);
        const listed = await store.credentials.list();
        assert.ok(listed.some((r) => r.kind === 'aksk' && r.id === id && r.secret === 'sealed-2'));
        assert.ok(listed.some((r) => r.kind === 'token' && r.id === token.id));
        assert.equal(await store.credentials.remove('aksk', id), true);
        assert.equal(await store.credentials.remove('aksk', id), false);
        assert.equal(await store.credentials.count(), before + 1);
        assert.equal(typeof (await store.credentials.count()), 'number');
      });
    });

    describe('environment variables', () => {
      it('put creates then replaces, get and list are scoped to the namespace, delete', async () => {
        const ns = freshNs();
        const other = freshNs();
        const t1 = new Date(1_700_000_000_000);
        const t2 = new Date(1_700_000_060_000);
        assert.equal(await store.environmentVariables.put(ns, 'b_var', '#{Job.name}', t1, 10), 'created');
        assert.equal(await store.environmentVariables.put(ns, 'A_var', 'one', t1, 10), 'created');
        assert.equal(await store.environmentVariables.put(ns, 'b_var', 'two', t2, 10), 'updated');
        assert.deepEqual(await store.environmentVariables.get(ns, 'b_var'), {
          name: 'b_var',
          value: 'two',
          createdAt: t1,
          updatedAt: t2,
        });
        // By name in code-point order on both stores (uppercase first), whatever the database collation.
        assert.deepEqual(
          (await store.environmentVariables.list(ns)).map((v) => [v.name, v.value]),
          [
            ['A_var', 'one'],
            ['b_var', 'two'],
          ],
        );
        assert.equal(await store.environmentVariables.get(other, 'b_var'), undefined);
        assert.deepEqual(await store.environmentVariables.list(other), []);
        assert.equal(await store.environmentVariables.delete(other, 'b_var'), false);
        assert.equal(await store.environmentVariables.delete(ns, 'b_var'), true);
        assert.equal(await store.environmentVariables.delete(ns, 'b_var'), false);
        assert.equal(await store.environmentVariables.get(ns, 'b_var'), undefined);
      });

      it('put refuses a new name past the per-namespace limit, still replaces existing ones', async () => {
        const ns = freshNs();
        const at = new Date(1_700_000_000_000);
        assert.equal(await store.environmentVariables.put(ns, 'v1', 'a', at, 2), 'created');
        assert.equal(await store.environmentVariables.put(ns, 'v2', 'b', at, 2), 'created');
        assert.equal(await store.environmentVariables.put(ns, 'v3', 'c', at, 2), 'limit');
        assert.equal(await store.environmentVariables.get(ns, 'v3'), undefined);
        assert.equal(await store.environmentVariables.put(ns, 'v2', 'b2', at, 2), 'updated');
        assert.equal(await store.environmentVariables.put(freshNs(), 'v3', 'c', at, 2), 'created');
      });
    });
  });
}
