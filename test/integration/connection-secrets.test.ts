/**
 * Issue 10, findings 4 and 10 (SSH keys): a stored connection secret is only ever sent to the
 * target it was entered for, and SSH key files are per project.
 *
 * The attack: edit a connection's address (or port, user, database, …) to a server of one's own and
 * send the masked password back with `?ischeck=true` — the server used to log in to the new target
 * with the stored password. Fake targets here are real TCP listeners that count the connections
 * they get: the refusal must happen before any connection.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { PROJECT_A, PROJECT_B, startMultiUserServer, type MultiUserServer } from '../helpers/multi-user.js';
import { localPostgresConnection } from '../helpers/connections.js';
import type { ApiClient } from '../helpers/server.js';

const MASK = '*********';
const STORED_SECRET = 'stored-secret-must-not-travel';

/** A TCP listener on 127.0.0.1 that records every connection and the bytes sent on it. */
interface RecordingTarget {
  readonly port: number;
  readonly received: Buffer[];
  connections: number;
  close(): Promise<void>;
}

async function recordingTarget(): Promise<RecordingTarget> {
  const sockets = new Set<Socket>();
  const target = {
    port: 0,
    received: [] as Buffer[],
    connections: 0,
    close: () => Promise.resolve(),
  };
  const server: Server = createServer((socket) => {
    target.connections += 1;
    sockets.add(socket);
    socket.on('data', (chunk) => target.received.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    // Hang up soon: the client's test fails; what matters is that it came and what it sent.
    setTimeout(() => socket.destroy(), 200).unref();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  target.port = typeof address === 'object' && address ? address.port : 0;
  target.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return target;
}

const connectionsPath = (c: ApiClient, suffix = '') => `/v1/${c.projectId}/connections${suffix}`;
const put = (c: ApiClient, name: string, body: unknown, query = '?ischeck=true') =>
  c.request('PUT', connectionsPath(c, `/${name}${query}`), { body });

function assertRefusedForSecret(res: { status: number; json: any; text: string }): void {
  assert.equal(res.status, 400, res.text);
  assert.equal(res.json.error_code, 'OPENDLF.0610', res.text);
  assert.match(res.json.error_msg, /secret must be given again/);
}

let server: MultiUserServer;
let fake: RecordingTarget;

before(async () => {
  fake = await recordingTarget();
  // The real databases live on loopback, which multi-user mode refuses unless allowed.
  server = await startMultiUserServer({ connectionTargets: { allow: ['127.0.0.1/32'] } });
});

after(async () => {
  await server?.close();
  await fake?.close();
});

describe('secrets follow their target', () => {
  const pgConnection = localPostgresConnection;

  it('tests the stored target with the masked password, and refuses a new address with it before connecting', async () => {
    const dev = server.as('developerA');
    const created = await dev.request('POST', connectionsPath(dev), {
      body: pgConnection('pg-moved', { password: STORED_SECRET }),
    });
    assert.equal(created.status, 204, created.text);
    // The stored target, masked secret: allowed (PostgreSQL at 127.0.0.1 trusts postgres).
    const same = await put(dev, 'pg-moved', pgConnection('pg-moved', { password: MASK }));
    assert.equal(same.status, 204, same.text);

    const before = fake.connections;
    // The masked password, or none at all: both mean "keep the stored one".
    for (const config of [{ port: String(fake.port), password: MASK }, { port: String(fake.port) }]) {
      assertRefusedForSecret(await put(dev, 'pg-moved', pgConnection('pg-moved', config)));
    }
    // Every field that decides where the secret goes or who it logs in as.
    for (const config of [
      { ip: 'localhost', password: MASK },
      { userName: 'someone_else', password: MASK },
      { database: 'postgres' },
      { driverName: 'com.mysql.jdbc.Driver', port: '3306' },
    ]) {
      assertRefusedForSecret(await put(dev, 'pg-moved', pgConnection('pg-moved', config)));
      // Without ischeck too: the edit would send the secret at the next execute.
      assertRefusedForSecret(await put(dev, 'pg-moved', pgConnection('pg-moved', config), ''));
    }
    assert.equal(fake.connections, before, 'the fake target was contacted');
    // The stored connection is unchanged.
    const got = await dev.request('GET', connectionsPath(dev, '/pg-moved'));
    assert.equal(got.json.config.port, '5432');

    // Control: with the secret given again the edit goes through, and the test reaches the new
    // target (so the assertion above could have failed).
    const moved = await put(
      dev,
      'pg-moved',
      pgConnection('pg-moved', { port: String(fake.port), password: 'typed-again' }),
    );
    assert.equal(moved.status, 400, moved.text);
    assert.equal(moved.json.error_code, 'OPENDLF.0602');
    assert.ok(fake.connections > before, 'the control edit did not reach the fake target');
    assert.ok(!Buffer.concat(fake.received).includes(STORED_SECRET));
  });

  it('counts turning TLS off as a new target', async () => {
    const dev = server.as('developerA');
    const created = await dev.request('POST', connectionsPath(dev), {
      body: {
        name: 'dws-tls',
        type: 'DWS',
        config: { ip: '10.0.0.9', port: '8000', userName: 'u', password: STORED_SECRET, sslEnable: true },
      },
    });
    assert.equal(created.status, 204, created.text);
    assertRefusedForSecret(
      await put(
        dev,
        'dws-tls',
        {
          name: 'dws-tls',
          type: 'DWS',
          config: { ip: '10.0.0.9', port: '8000', userName: 'u', password: MASK, sslEnable: false },
        },
        '',
      ),
    );
    // A description-only edit with the mask keeps the secret, as DataArts clients expect.
    const described = await put(
      dev,
      'dws-tls',
      {
        name: 'dws-tls',
        type: 'DWS',
        description: 'd',
        config: { ip: '10.0.0.9', port: '8000', userName: 'u', password: MASK, sslEnable: true },
      },
      '',
    );
    assert.equal(described.status, 204, described.text);
  });

  it('never sends the stored ClickHouse key to a new address (X-ClickHouse-Key)', async () => {
    const dev = server.as('developerA');
    const created = await dev.request('POST', connectionsPath(dev), {
      body: {
        name: 'ch-moved',
        type: 'CLICKHOUSE',
        config: { ip: '10.0.0.7', port: '8123', userName: 'default', password: STORED_SECRET },
      },
    });
    assert.equal(created.status, 204, created.text);
    const before = fake.connections;
    assertRefusedForSecret(
      await put(dev, 'ch-moved', {
        name: 'ch-moved',
        type: 'CLICKHOUSE',
        config: { ip: '127.0.0.1', port: String(fake.port), userName: 'default', password: MASK },
      }),
    );
    assert.equal(fake.connections, before);
  });

  it('refuses an import that moves an existing connection without its secret', async () => {
    const dev = server.as('developerA');
    const created = await dev.request('POST', connectionsPath(dev), {
      body: pgConnection('pg-imported', { password: STORED_SECRET }),
    });
    assert.equal(created.status, 204, created.text);
    const moved = pgConnection('pg-imported', { port: String(fake.port) });
    const zip = Buffer.from(zipSync({ 'connections/pg-imported.conn': strToU8(JSON.stringify(moved)) }));
    const res = await dev.request('POST', connectionsPath(dev, '/import?sameNamePolicy=OVERWRITE'), {
      rawBody: zip,
      headers: { 'content-type': 'application/zip' },
    });
    assert.equal(res.status, 200, res.text);
    let task: any;
    for (let i = 0; i < 200; i += 1) {
      task = (await dev.request('GET', `/v1/${dev.projectId}/system-tasks/${res.json.taskId}`)).json;
      if (task.status !== 'RUNNING') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(task.status, 'FAILED', JSON.stringify(task));
    assert.match(task.subtasks[0].message, /secret must be given again/);
    const got = await dev.request('GET', connectionsPath(dev, '/pg-imported'));
    assert.equal(got.json.config.port, '5432');
  });
});

describe('SSH keys are per project', () => {
  it('resolves keyLocation inside ssh-keys/<project>/ only, refuses links, and shows no server path', async () => {
    const keysA = join(server.dataDir, 'ssh-keys', PROJECT_A);
    const keysB = join(server.dataDir, 'ssh-keys', PROJECT_B);
    mkdirSync(keysA, { recursive: true });
    mkdirSync(keysB, { recursive: true });
    writeFileSync(join(keysB, 'id_b'), 'not really a key of project B\n', { mode: 0o600 });
    // A real (throw-away) key: the SSH client parses it before it connects.
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    writeFileSync(join(keysA, 'id_a'), privateKey, { mode: 0o600 });
    symlinkSync(join(keysB, 'id_b'), join(keysA, 'link_to_b'));
    try {
      const dev = server.as('developerA');
      const host = (keyLocation: string) => ({
        name: 'keyed',
        type: 'HOST',
        config: { ip: '127.0.0.1', port: String(fake.port), userName: 'u', keyLocation },
      });
      const created = await dev.request('POST', connectionsPath(dev), { body: host('id_a') });
      assert.equal(created.status, 204, created.text);
      for (const location of [
        `../${PROJECT_B}/id_b`,
        join(keysB, 'id_b'),
        '../../secret.key',
        '/etc/passwd',
      ]) {
        const res = await put(dev, 'keyed', host(location));
        assert.equal(res.status, 400, res.text);
        assert.equal(res.json.error_code, 'DLF.3051', res.text);
        assert.match(
          res.json.error_msg,
          new RegExp(`inside this project's SSH key directory \\(ssh-keys/${PROJECT_A}/\\)`),
        );
        assert.ok(!res.json.error_msg.includes(server.dataDir), res.json.error_msg);
      }
      const linked = await put(dev, 'keyed', host('link_to_b'));
      assert.equal(linked.json.error_code, 'DLF.3051', linked.text);
      assert.match(linked.json.error_msg, /symbolic link: ssh-keys\/.*\/link_to_b/);
      assert.ok(!linked.json.error_msg.includes(server.dataDir));
      const missing = await put(dev, 'keyed', host('no_such_key'));
      assert.match(
        missing.json.error_msg,
        new RegExp(`no readable regular file: ssh-keys/${PROJECT_A}/no_such_key`),
      );
      assert.ok(!missing.json.error_msg.includes(server.dataDir));

      // Control: the project's own key is read and the test goes on to the (fake) host.
      const before = fake.connections;
      const own = await put(dev, 'keyed', host('id_a'));
      assert.equal(own.json?.error_code, 'OPENDLF.0602', own.text);
      assert.ok(fake.connections > before, 'the own-key test never reached the host');
    } finally {
      rmSync(join(keysA, 'link_to_b'), { force: true });
    }
  });
});
