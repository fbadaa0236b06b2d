/**
 * The live-log store (InstanceLogStore) on both stores — SQLite in a temporary file, PostgreSQL in
 * a database this file creates and drops — and the RunLogWriter that batches a run's output into
 * it: byte ranges cut across stored chunks, the size, nothing stored for a deleted instance, the
 * rows going with their instances, the in-process append notification; the writer stores nothing
 * without output, everything in order on close, and retries a failed write without losing bytes.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import type { Namespace } from '../../src/domain/script.js';
import { LOG_FLUSH_BYTES, RunLogWriter } from '../../src/runner/run-log-writer.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { InstanceLogStore, Store } from '../../src/store/store.js';
import { until } from '../helpers/assertions.js';

const silent = pino({ level: 'silent' });

function runContract(name: string, open: () => Promise<Store>, cleanup: () => Promise<void>): void {
  describe(`instance logs: ${name} store`, () => {
    let store: Store;
    const ns: Namespace = { projectId: `p_${randomBytes(4).toString('hex')}`, workspaceId: 'w' };
    let scriptId = '';

    before(async () => {
      store = await open();
      const script = `s_${randomBytes(4).toString('hex')}`;
      await store.scripts.create(
        ns,
        {
          name: script,
          type: 'Shell',
          content: 'echo',
          directory: '/',
          connectionName: 'local',
          database: '',
          queueName: '',
          configuration: {},
          description: '',
        },
        'u',
        { state: 'NONE', by: null },
      );
      scriptId = (await store.scripts.get(ns, script))?.id ?? assert.fail('script created');
    });
    after(async () => {
      await store.close();
      await cleanup();
    });

    async function newInstance(): Promise<string> {
      const id = randomUUID();
      const created = await store.instances.create(
        {
          id,
          namespace: ns,
          scriptId,
          scriptName: 'logs',
          connectionName: 'local',
          engine: 'local-shell',
          nodeId: 'n',
          request: { scriptType: 'Shell', content: 'echo', database: '' },
        },
        new Date(),
      );
      assert.ok(created);
      return id;
    }

    it('reads byte ranges across stored chunks, and the size', async () => {
      const id = await newInstance();
      assert.deepEqual(await store.instanceLogs.read(id, 0, 100), { bytes: Buffer.alloc(0), size: 0 });
      const chunks = ['hello ', 'wörld\n', '', 'third chunk\n'].map((s) => Buffer.from(s));
      let offset = 0;
      for (const chunk of chunks) {
        await store.instanceLogs.append(id, offset, chunk);
        offset += chunk.length;
      }
      const all = Buffer.concat(chunks);
      const whole = await store.instanceLogs.read(id, 0, 1_000);
      assert.deepEqual(whole.bytes, all);
      assert.equal(whole.size, all.length);
      // Every range, also starting and ending inside chunks.
      for (let from = 0; from <= all.length + 1; from += 3) {
        for (const limit of [1, 4, 7, 100]) {
          const range = await store.instanceLogs.read(id, from, limit);
          assert.deepEqual(range.bytes, all.subarray(from, from + limit), `[${from}, +${limit})`);
          assert.equal(range.size, all.length);
        }
      }
      // Binary bytes come back as they went in.
      const binary = Buffer.from([0, 255, 10, 13, 0xc3]);
      await store.instanceLogs.append(id, offset, binary);
      assert.deepEqual((await store.instanceLogs.read(id, offset, 10)).bytes, binary);
      // A repeated write of the same chunk (an unknown outcome retried) changes nothing.
      await store.instanceLogs.append(id, offset, binary);
      assert.equal((await store.instanceLogs.read(id, 0, 1)).size, all.length + binary.length);
    });

    it('stores nothing for an instance that does not exist, and notifies appends in this process', async () => {
      const seen: string[] = [];
      const unsubscribe = store.instanceLogs.onAppend((id) => seen.push(id));
      const ghost = randomUUID();
      await store.instanceLogs.append(ghost, 0, Buffer.from('nobody'));
      assert.equal((await store.instanceLogs.read(ghost, 0, 10)).size, 0);
      const id = await newInstance();
      await store.instanceLogs.append(id, 0, Buffer.from('x'));
      unsubscribe();
      await store.instanceLogs.append(id, 1, Buffer.from('y'));
      assert.deepEqual(seen, [id]);
    });

    it('deletes the log with its instance (retention) and with its script', async () => {
      const kept = await newInstance();
      const retained = await newInstance();
      await store.instanceLogs.append(kept, 0, Buffer.from('kept'));
      await store.instanceLogs.append(retained, 0, Buffer.from('gone'));
      assert.equal(await store.instances.deleteMany([retained]), 1);
      assert.equal((await store.instanceLogs.read(retained, 0, 10)).size, 0);
      assert.equal((await store.instanceLogs.read(kept, 0, 10)).size, 4);
      await store.instances.deleteForScript(scriptId);
      assert.equal((await store.instanceLogs.read(kept, 0, 10)).size, 0);
    });

    it('RunLogWriter: no write without output, all bytes in order on close, a failed write retried', async () => {
      let writes = 0;
      let failNext = 0;
      const counting: Pick<InstanceLogStore, 'append'> = {
        append: async (id, offset, bytes) => {
          writes += 1;
          if (failNext > 0) {
            failNext -= 1;
            throw new Error('store unreachable');
          }
          await store.instanceLogs.append(id, offset, bytes);
        },
      };
      const silentRun = await newInstance();
      const idle = new RunLogWriter(counting, silentRun, silent);
      await idle.close();
      assert.equal(writes, 0, 'a run without output writes nothing');

      const id = await newInstance();
      const writer = new RunLogWriter(counting, id, silent);
      const expected: Buffer[] = [];
      for (let i = 0; i < 2_000; i++) {
        const line = Buffer.from(`line ${i}\n`);
        expected.push(line);
        writer.append(line);
      }
      await writer.close();
      const all = Buffer.concat(expected);
      assert.deepEqual((await store.instanceLogs.read(id, 0, all.length + 1)).bytes, all);
      assert.ok(writes < 2_000 / 10, `batched: ${writes} writes for 2,000 chunks`);

      // More than LOG_FLUSH_BYTES pending is written without waiting for close; a failure in
      // between is retried and nothing is lost or doubled.
      const busy = await newInstance();
      const big = new RunLogWriter(counting, busy, silent);
      failNext = 1;
      const block = Buffer.alloc(LOG_FLUSH_BYTES + 1, 'a');
      big.append(block);
      await until('the retried write', async () =>
        (await store.instanceLogs.read(busy, 0, 1)).size === block.length ? true : undefined,
      );
      big.append(Buffer.from('tail'));
      await big.close();
      assert.deepEqual(
        (await store.instanceLogs.read(busy, 0, block.length + 10)).bytes,
        Buffer.concat([block, Buffer.from('tail')]),
      );
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'opendlf-log-store-'));
runContract(
  'sqlite',
  () => openSqliteStore(join(dir, 'store.sqlite')),
  () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
);

const SERVER = 'postgres://postgres@127.0.0.1:5432';
const DB = `opendlf_logs_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: `${SERVER}/postgres` });
admin.on('error', () => undefined);
await admin.connect();
await admin.query(`CREATE DATABASE ${DB}`);
runContract(
  'postgres',
  () => openPostgresStore(`${SERVER}/${DB}`, { maxConnections: 4 }),
  async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await admin.end();
  },
);
