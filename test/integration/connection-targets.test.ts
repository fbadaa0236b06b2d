/**
 * Issue 10, finding 9 and the connection-target rules: stored connections must not become a way
 * into the server's own host, its cloud metadata service or any network the operator refused, and
 * connection tests must not tell a non-admin which ports are open or which accounts exist.
 *
 * Fake targets are real listeners on 127.0.0.1 that count what reaches them.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startMultiUserServer, type MultiUserServer } from '../helpers/multi-user.js';
import { localPostgresConnection } from '../helpers/connections.js';
import { startTestServer, type ApiClient, type TestServer } from '../helpers/server.js';

interface CountingListener {
  readonly port: number;
  connections: number;
  close(): Promise<void>;
}

/** Accepts, counts, and hangs up at once (an "open port" that speaks no protocol). */
async function countingListener(): Promise<CountingListener> {
  const sockets = new Set<Socket>();
  const listener = { port: 0, connections: 0, close: () => Promise.resolve() };
  const server: Server = createServer((socket) => {
    listener.connections += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  listener.port = typeof address === 'object' && address ? address.port : 0;
  listener.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return listener;
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const SECRET_BODY = 'INTERNAL-SERVICE-SECRET-BODY';

/** An HTTP service that is not ClickHouse: its bodies must never reach a script's author. */
async function foreignHttp(): Promise<{ port: number; requests: number; server: HttpServer }> {
  const state = { port: 0, requests: 0, server: undefined as unknown as HttpServer };
  state.server = createHttpServer((request, response) => {
    state.requests += 1;
    request.resume();
    const status = request.url?.includes('database=ok') ? 200 : 500;
    response.writeHead(status, { 'content-type': 'text/plain' }).end(`${SECRET_BODY} ${status}`);
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  const address = state.server.address();
  state.port = typeof address === 'object' && address ? address.port : 0;
  return state;
}

/** Answers like ClickHouse does for a failing statement. */
async function clickHouseLike(): Promise<{ port: number; server: HttpServer }> {
  const server = createHttpServer((request, response) => {
    request.resume();
    response
      .writeHead(500, { 'x-clickhouse-exception-code': '60', 'content-type': 'text/plain' })
      .end('Code: 60. DB::Exception: Table default.nope does not exist. (UNKNOWN_TABLE)');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, server };
}

const closeHttp = (server: HttpServer) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

const connectionsPath = (c: ApiClient, suffix = '') => `/v1/${c.projectId}/connections${suffix}`;

function pg(name: string, ip: string, port: number | string, extra: Record<string, unknown> = {}) {
  return localPostgresConnection(name, { ip, port: String(port), ...extra });
}

async function createConnection(c: ApiClient, body: unknown): Promise<void> {
  const res = await c.request('POST', connectionsPath(c), { body });
  assert.equal(res.status, 204, res.text);
}

const check = (c: ApiClient, body: { name: string }) =>
  c.request('PUT', connectionsPath(c, `/${body.name}?ischeck=true`), { body });

let scriptCounter = 0;
async function runScript(c: ApiClient, type: string, content: string, connectionName: string): Promise<any> {
  scriptCounter += 1;
  const name = `target-${scriptCounter}`;
  await c.createScript({ name, type, content, connectionName });
  const id = await c.execute(name);
  return (await c.waitFor(name, id, undefined, 60_000)).json;
}

let listener: CountingListener;

before(async () => {
  listener = await countingListener();
});
after(async () => {
  await listener?.close();
});

describe('multi-user defaults', () => {
  let server: MultiUserServer;
  before(async () => {
    server = await startMultiUserServer();
  });
  after(async () => {
    await server?.close();
  });

  it('refuses loopback, link-local, metadata and unspecified targets before connecting', async () => {
    const dev = server.as('developerA');
    await createConnection(dev, pg('inward', '10.0.0.1', 5432));
    const before = listener.connections;
    for (const [ip, rule] of [
      ['127.0.0.1', '127.0.0.0/8'],
      ['127.5.6.7', '127.0.0.0/8'],
      ['::1', '::1/128'],
      ['::ffff:127.0.0.1', '127.0.0.0/8'],
      ['localhost', /127\.0\.0\.0\/8|::1\/128/],
      ['', /127\.0\.0\.0\/8|::1\/128/],
      ['0.0.0.0', '0.0.0.0/8'],
      ['169.254.169.254', '169.254.0.0/16'],
      ['100.100.100.200', '100.100.100.200/32'],
      ['fe80::1', 'fe80::/10'],
    ] as const) {
      const res = await check(dev, pg('inward', ip, listener.port));
      assert.equal(res.status, 400, `${ip}: ${res.text}`);
      assert.equal(res.json.error_code, 'OPENDLF.0611', `${ip}: ${res.text}`);
      if (typeof rule === 'string')
        assert.ok(res.json.error_msg.includes(`multi-user default deny ${rule}`), res.text);
      else assert.match(res.json.error_msg, rule);
    }
    // A socket path or anything else that is not a host is no target either.
    const socket = await check(dev, pg('inward', '/var/run/postgresql', 5432));
    assert.equal(socket.json.error_code, 'OPENDLF.0611', socket.text);
    assert.equal(listener.connections, before, 'a refused target was contacted');
  });

  it('fails an execute on a refused target with the rule, without connecting', async () => {
    const dev = server.as('developerA');
    const admin = server.as('adminA');
    // Stored before the rules could be checked (no ischeck): the execute must still refuse it.
    await createConnection(admin, pg('loopback-pg', '127.0.0.1', listener.port));
    const before = listener.connections;
    const result = await runScript(dev, 'RDSSQL', 'SELECT 1', 'loopback-pg');
    assert.equal(result.status, 'FAILED', JSON.stringify(result));
    assert.match(
      result.message,
      /not allowed on this server \(rule: multi-user default deny 127\.0\.0\.0\/8\)/,
    );
    assert.equal(listener.connections, before);
  });
});

describe('configured rules', () => {
  let server: MultiUserServer;
  let denied: CountingListener;
  before(async () => {
    denied = await countingListener();
    server = await startMultiUserServer({
      connectionTargets: { allow: ['127.0.0.1/32'], deny: [`127.0.0.1/32:${denied.port}`, '10.0.0.0/8'] },
    });
  });
  after(async () => {
    await server?.close();
    await denied?.close();
  });

  it('lets an allow rule open loopback, and a deny rule beat it', async () => {
    const dev = server.as('developerA');
    await createConnection(dev, pg('allowed-pg', '127.0.0.1', 5432));
    const ok = await check(dev, pg('allowed-pg', '127.0.0.1', 5432));
    assert.equal(ok.status, 204, ok.text);
    const refused = await check(dev, pg('allowed-pg', '127.0.0.1', denied.port));
    assert.equal(refused.json.error_code, 'OPENDLF.0611', refused.text);
    assert.ok(refused.json.error_msg.includes(`rule: deny 127.0.0.1/32:${denied.port}`), refused.text);
    const private10 = await check(dev, pg('allowed-pg', '10.1.2.3', 5432));
    assert.ok(private10.json.error_msg.includes('rule: deny 10.0.0.0/8'), private10.text);
    assert.equal(denied.connections, 0);
  });

  it('tells a non-admin only "could not connect", whatever the port or account', async () => {
    const dev = server.as('developerA');
    const admin = server.as('adminA');
    const closed = await closedPort();
    const cases = [
      pg('scan', '127.0.0.1', closed),
      pg('scan', '127.0.0.1', listener.port),
      pg('scan', '127.0.0.1', 5432, { userName: 'no_such_role_xyz' }),
      pg('scan', '127.0.0.1', 5432, { database: 'no_such_database_xyz' }),
    ];
    await createConnection(dev, cases[0]!);
    const developerMessages: string[] = [];
    const adminMessages: string[] = [];
    for (const body of cases) {
      const asDeveloper = await check(dev, body);
      assert.equal(asDeveloper.json.error_code, 'OPENDLF.0602', asDeveloper.text);
      developerMessages.push(asDeveloper.json.error_msg.replace(/request [^)]+/, 'request <id>'));
      const asAdmin = await check(admin, body);
      assert.equal(asAdmin.json.error_code, 'OPENDLF.0602', asAdmin.text);
      adminMessages.push(asAdmin.json.error_msg);
    }
    assert.equal(new Set(developerMessages).size, 1, developerMessages.join('\n'));
    assert.match(developerMessages[0]!, /could not connect/);
    // Admins keep the reason (which is what a developer must not learn).
    assert.equal(new Set(adminMessages).size, cases.length, adminMessages.join('\n'));
  });

  it('never shows a foreign HTTP body through the CLICKHOUSE type, but keeps ClickHouse exceptions', async () => {
    const dev = server.as('developerA');
    const admin = server.as('adminA');
    const foreign = await foreignHttp();
    const ch = await clickHouseLike();
    try {
      for (const database of ['fails', 'ok']) {
        const name = `foreign-${database}`;
        const body = {
          name,
          type: 'CLICKHOUSE',
          config: { ip: '127.0.0.1', port: String(foreign.port), userName: 'default', database },
        };
        await createConnection(dev, body);
        const result = await runScript(dev, 'ClickHouseSQL', 'SELECT 1', name);
        assert.equal(result.status, 'FAILED', JSON.stringify(result));
        assert.ok(!JSON.stringify(result).includes(SECRET_BODY), JSON.stringify(result));
        assert.match(result.message, /unexpected response from 127\.0\.0\.1:\d+ \(HTTP (200|500)\)/);
        const tested = await check(admin, body);
        assert.equal(tested.json.error_code, 'OPENDLF.0602', tested.text);
        assert.ok(!tested.text.includes(SECRET_BODY), tested.text);
      }
      assert.ok(foreign.requests > 0, 'the foreign service was never asked (the test proves nothing)');

      const body = {
        name: 'ch-like',
        type: 'CLICKHOUSE',
        config: { ip: '127.0.0.1', port: String(ch.port) },
      };
      await createConnection(dev, body);
      const result = await runScript(dev, 'ClickHouseSQL', 'SELECT * FROM nope', 'ch-like');
      assert.equal(result.status, 'FAILED');
      assert.match(result.message, /Code: 60\. DB::Exception: Table default\.nope does not exist/);
    } finally {
      await closeHttp(foreign.server);
      await closeHttp(ch.server);
    }
  });
});

describe('single-user mode', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.close();
  });

  it('allows loopback targets as before', async () => {
    const c = server.client();
    await createConnection(c, pg('local-pg', '127.0.0.1', 5432));
    const ok = await check(c, pg('local-pg', '127.0.0.1', 5432));
    assert.equal(ok.status, 204, ok.text);
  });
});
