/**
 * Connections end to end through the API against real services: DWS and RDS connections to the
 * local PostgreSQL and MariaDB (one result per statement, JSON numbers, database errors, the
 * script's `database`, a stop that ends the server-side query, an unreachable port), and HOST
 * connections over SSH to a private sshd (Shell and PYTHON, a stop that leaves no remote process).
 * Every check of "gone" is made from outside the server: pg_stat_activity, the MariaDB process
 * list, /proc.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startTestServer, type ApiClient, type TestServer } from '../helpers/server.js';
import { assertNoContent } from '../helpers/assertions.js';
import { sshdUnavailableReason, startSshd, type TestSshd } from '../helpers/sshd.js';
import { clickHouseUnavailableReason, startClickHouse, type TestClickHouse } from '../helpers/clickhouse.js';

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };
const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };
const suffix = randomBytes(4).toString('hex');
const PG_DB = `opendlf_e2e_${suffix}`;
const PG_DB2 = `opendlf_e2e_${suffix}_b`;
const MY_DB = `opendlf_e2e_${suffix}`;
const MY_DB2 = `opendlf_e2e_${suffix}_b`;

const connPath = (c: ApiClient) => `/v1/${c.projectId}/connections`;

async function createConnection(c: ApiClient, body: unknown): Promise<void> {
  assertNoContent(await c.request('POST', connPath(c), { body }));
}

let scriptCounter = 0;
/** Creates a uniquely named script, executes it and waits for the terminal result. */
async function run(
  c: ApiClient,
  script: { type: string; content: string; connectionName: string; database?: string },
  params?: Record<string, string>,
): Promise<any> {
  scriptCounter += 1;
  const name = `e2e-${scriptCounter}`;
  await c.createScript({ name, ...script });
  const id = await c.execute(name, params);
  return (await c.waitFor(name, id, undefined, 120_000)).json;
}

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function assertFinished(result: any): void {
  assert.equal(result.status, 'FINISHED', JSON.stringify(result).slice(0, 1000));
}

let server: TestServer;
let api: ApiClient;
let pgAdmin: pg.Client;
let myAdmin: mysql.Connection;

before(async () => {
  pgAdmin = new pg.Client(PG);
  await pgAdmin.connect();
  await pgAdmin.query(`CREATE DATABASE ${PG_DB}`);
  await pgAdmin.query(`CREATE DATABASE ${PG_DB2}`);
  myAdmin = await mysql.createConnection(MARIADB);
  await myAdmin.query(`CREATE DATABASE ${MY_DB}`);
  await myAdmin.query(`CREATE DATABASE ${MY_DB2}`);
  server = await startTestServer({ stopGraceMs: 500 });
  api = server.client();
  const pgConfig = { ip: '127.0.0.1', port: '5432', userName: 'postgres', password: 'x' };
  await createConnection(api, {
    name: 'dws',
    type: 'DWS',
    config: { ...pgConfig, sslEnable: false, database: PG_DB },
  });
  await createConnection(api, {
    name: 'rds-pg',
    type: 'RDS',
    config: { ...pgConfig, driverName: 'org.postgresql.Driver', database: PG_DB },
  });
  await createConnection(api, {
    name: 'rds-my',
    type: 'RDS',
    config: {
      ip: '127.0.0.1',
      port: 3306,
      userName: 'root',
      password: '',
      driverName: 'com.mysql.jdbc.Driver',
      database: MY_DB,
    },
  });
});

after(async () => {
  await server?.close();
  await pgAdmin?.query(`DROP DATABASE IF EXISTS ${PG_DB} WITH (FORCE)`).catch(() => undefined);
  await pgAdmin?.query(`DROP DATABASE IF EXISTS ${PG_DB2} WITH (FORCE)`).catch(() => undefined);
  await pgAdmin?.end();
  await myAdmin?.query(`DROP DATABASE IF EXISTS ${MY_DB}`).catch(() => undefined);
  await myAdmin?.query(`DROP DATABASE IF EXISTS ${MY_DB2}`).catch(() => undefined);
  await myAdmin?.end();
});

describe('PostgreSQL through DWS and RDS connections', () => {
  it('runs a DWSSQL script: one result per statement, JSON numbers, NULLs', async () => {
    const result = await run(api, {
      type: 'DWSSQL',
      connectionName: 'dws',
      content:
        'CREATE TABLE items(id int, name text, amount numeric(10,2), big bigint, ok boolean);\n' +
        "INSERT INTO items VALUES (1, 'a', 1.50, 9007199254740991, true), (2, 'b', NULL, -5, false);\n" +
        'SELECT id, name, amount, big, ok FROM items ORDER BY id;\n' +
        'SELECT count(*) AS n, sum(id) AS s, avg(id)::float8 AS m FROM items;',
    });
    assertFinished(result);
    assert.equal(result.results.length, 4);
    assert.deepEqual(result.results[0].rows, []);
    assert.deepEqual(result.results[2].schema, [
      { id: 'int4' },
      { name: 'text' },
      { amount: 'numeric' },
      { big: 'int8' },
      { ok: 'bool' },
    ]);
    assert.deepEqual(result.results[2].rows, [
      [1, 'a', 1.5, 9007199254740991, true],
      [2, 'b', null, -5, false],
    ]);
    assert.equal(result.results[2].rowCount, 2);
    assert.deepEqual(result.results[3].rows, [[2, 3, 1.5]]);
    // The table is really in the connection's database.
    const direct = new pg.Client({ ...PG, database: PG_DB });
    await direct.connect();
    try {
      assert.equal((await direct.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 2);
    } finally {
      await direct.end();
    }
  });

  it('uses the RDS connection with org.postgresql.Driver as PostgreSQL', async () => {
    const result = await run(api, {
      type: 'RDSSQL',
      connectionName: 'rds-pg',
      content: 'SELECT version() AS v; SELECT 40 + 2 AS answer',
    });
    assertFinished(result);
    assert.equal(result.results.length, 2);
    assert.match(result.results[0].rows[0][0], /^PostgreSQL /);
    assert.deepEqual(result.results[1].rows, [[42]]);
  });

  it("selects the database from the script's database field", async () => {
    const byConnection = await run(api, {
      type: 'DWSSQL',
      connectionName: 'dws',
      content: 'SELECT current_database() AS db',
    });
    assertFinished(byConnection);
    assert.deepEqual(byConnection.results[0].rows, [[PG_DB]]);
    const byScript = await run(api, {
      type: 'DWSSQL',
      connectionName: 'dws',
      database: PG_DB2,
      content: 'SELECT current_database() AS db',
    });
    assertFinished(byScript);
    assert.deepEqual(byScript.results[0].rows, [[PG_DB2]]);
  });

  it("fails a script on a failing statement with the database's message", async () => {
    const result = await run(api, {
      type: 'DWSSQL',
      connectionName: 'dws',
      content: 'SELECT 1 AS one;\nSELECT * FROM no_such_table_xyz;\nSELECT 2 AS two;',
    });
    assert.equal(result.status, 'FAILED');
    assert.match(result.message, /relation "no_such_table_xyz" does not exist/);
    assert.deepEqual(result.results[0].rows, [[1]]);
    assert.ok(
      !result.results.some((r: any) => JSON.stringify(r.rows) === '[[2]]'),
      'a statement after the failure ran',
    );
  });

  it('stops a running pg_sleep: the backend query ends and the instance is STOPPED', async () => {
    const marker = `stop_marker_${randomBytes(6).toString('hex')}`;
    await api.createScript({
      name: 'pg-sleep',
      type: 'DWSSQL',
      connectionName: 'dws',
      content: `SELECT pg_sleep(300), '${marker}'`,
    });
    const id = await api.execute('pg-sleep');
    const activeSleeps = async () =>
      (
        await pgAdmin.query(
          "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
          [`%pg_sleep%${marker}%`],
        )
      ).rows;
    await until('the pg_sleep backend', async () => ((await activeSleeps()).length > 0 ? true : undefined));
    assertNoContent(await api.stop('pg-sleep', id));
    assert.deepEqual(await activeSleeps(), []);
    const result = (await api.result('pg-sleep', id)).json;
    assert.equal(result.status, 'FAILED');
    assert.equal(result.detailedStatus, 'STOPPED');
    // The connection keeps working after the stop.
    assertFinished(await run(api, { type: 'DWSSQL', connectionName: 'dws', content: 'SELECT 1' }));
  });

  it('uses an edited connection from the next run on; ischeck tests the real server; deleted ⇒ DLF.6322', async () => {
    const config = { ip: '127.0.0.1', port: '5432', userName: 'postgres', password: 'x', sslEnable: false };
    await createConnection(api, { name: 'dws-edit', type: 'DWS', config: { ...config, database: PG_DB } });
    const script = { type: 'DWSSQL', connectionName: 'dws-edit', content: 'SELECT current_database() AS db' };
    assert.deepEqual((await run(api, script)).results[0].rows, [[PG_DB]]);

    const path = `${connPath(api)}/dws-edit`;
    const edited = {
      name: 'dws-edit',
      type: 'DWS',
      // Another database: the password is given again (a masked one only serves the stored target).
      config: { ...config, database: PG_DB2 },
    };
    assertNoContent(await api.request('PUT', `${path}?ischeck=true`, { body: edited }));
    assert.deepEqual((await run(api, script)).results[0].rows, [[PG_DB2]]);

    // A failing check stores nothing: the next run still uses PG_DB2.
    const broken = { ...edited, config: { ...edited.config, port: '1' } };
    const check = await api.request('PUT', `${path}?ischeck=true`, { body: broken });
    assert.equal(check.status, 400, check.text);
    assert.equal(check.json.error_code, 'OPENDLF.0602');
    assert.deepEqual((await run(api, script)).results[0].rows, [[PG_DB2]]);

    assertNoContent(await api.request('DELETE', path));
    await api.createScript({ name: 'after-delete', ...script });
    const res = await api.request('POST', api.path('/after-delete/execute'), { body: {} });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error_code, 'DLF.6322');
  });

  it('fails an instance (not the HTTP call) when the database port refuses connections', async () => {
    await createConnection(api, {
      name: 'dws-refused',
      type: 'DWS',
      config: { ip: '127.0.0.1', port: '1', userName: 'postgres', password: 'x', sslEnable: false },
    });
    const result = await run(api, { type: 'DWSSQL', connectionName: 'dws-refused', content: 'SELECT 1' });
    assert.equal(result.status, 'FAILED');
    assert.match(result.message, /refused|ECONNREFUSED/i);
    assert.match(result.message, /127\.0\.0\.1/);
  });
});

describe('MariaDB through an RDS connection', () => {
  it('runs an RDSSQL script: one result per statement, JSON numbers, NULLs', async () => {
    const result = await run(api, {
      type: 'RDSSQL',
      connectionName: 'rds-my',
      content:
        'CREATE TABLE items(id INT, name VARCHAR(10), amount DECIMAL(10,2), big BIGINT);\n' +
        "INSERT INTO items VALUES (1, 'a', 1.50, 9007199254740991), (2, 'b', NULL, -5);\n" +
        'SELECT id, name, amount, big FROM items ORDER BY id;\n' +
        'SELECT COUNT(*) AS n, SUM(id) AS s, VERSION() AS v FROM items;',
    });
    assertFinished(result);
    assert.equal(result.results.length, 4);
    assert.deepEqual(result.results[2].rows, [
      [1, 'a', 1.5, 9007199254740991],
      [2, 'b', null, -5],
    ]);
    assert.deepEqual(
      result.results[2].schema.map((column: Record<string, string>) => Object.keys(column)[0]),
      ['id', 'name', 'amount', 'big'],
    );
    const [n, s, v] = result.results[3].rows[0];
    assert.equal(n, 2);
    assert.equal(s, 3);
    assert.match(v, /MariaDB/);
    const [rows] = await myAdmin.query(`SELECT COUNT(*) AS n FROM ${MY_DB}.items`);
    assert.equal(Number((rows as any[])[0].n), 2);
  });

  it("selects the database from the script's database field", async () => {
    const byConnection = await run(api, {
      type: 'RDSSQL',
      connectionName: 'rds-my',
      content: 'SELECT DATABASE() AS db',
    });
    assertFinished(byConnection);
    assert.deepEqual(byConnection.results[0].rows, [[MY_DB]]);
    const byScript = await run(api, {
      type: 'RDSSQL',
      connectionName: 'rds-my',
      database: MY_DB2,
      content: 'SELECT DATABASE() AS db',
    });
    assertFinished(byScript);
    assert.deepEqual(byScript.results[0].rows, [[MY_DB2]]);
  });

  it("fails a script on a failing statement with the database's message", async () => {
    const result = await run(api, {
      type: 'RDSSQL',
      connectionName: 'rds-my',
      content: 'SELECT 1 AS one;\nSELECT * FROM no_such_table_xyz;\nSELECT 2 AS two;',
    });
    assert.equal(result.status, 'FAILED');
    assert.match(result.message, /no_such_table_xyz' doesn't exist/);
    assert.deepEqual(result.results[0].rows, [[1]]);
    assert.ok(
      !result.results.some((r: any) => JSON.stringify(r.rows) === '[[2]]'),
      'a statement after the failure ran',
    );
  });

  it('stops a running SLEEP: the query leaves the process list and the instance is STOPPED', async () => {
    const marker = `stop_marker_${randomBytes(6).toString('hex')}`;
    await api.createScript({
      name: 'my-sleep',
      type: 'RDSSQL',
      connectionName: 'rds-my',
      content: `SELECT SLEEP(300), '${marker}'`,
    });
    const id = await api.execute('my-sleep');
    const sleeping = async () => {
      const [rows] = await myAdmin.query(
        'SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()',
        [`%SLEEP(300)%${marker}%`],
      );
      return rows as { ID: number }[];
    };
    await until('the SLEEP query', async () => ((await sleeping()).length > 0 ? true : undefined));
    assertNoContent(await api.stop('my-sleep', id));
    assert.deepEqual(await sleeping(), []);
    const result = (await api.result('my-sleep', id)).json;
    assert.equal(result.status, 'FAILED');
    assert.equal(result.detailedStatus, 'STOPPED');
    assertFinished(await run(api, { type: 'RDSSQL', connectionName: 'rds-my', content: 'SELECT 1' }));
  });

  it('fails an instance (not the HTTP call) when the port refuses connections', async () => {
    await createConnection(api, {
      name: 'rds-refused',
      type: 'RDS',
      config: { ip: '127.0.0.1', port: '1', userName: 'root', driverName: 'com.mysql.jdbc.Driver' },
    });
    const result = await run(api, { type: 'RDSSQL', connectionName: 'rds-refused', content: 'SELECT 1' });
    assert.equal(result.status, 'FAILED');
    assert.match(result.message, /refused|ECONNREFUSED/i);
  });
});

/** State and process group of a pid from /proc/<pid>/stat (fields 3 and 5); undefined when gone. */
function statOf(pid: number): { state: string; pgid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', pgid: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

/**
 * Every live process in a process group (this machine is the SSH server). Zombies are dead — they
 * only wait for this container's init to reap them — so they do not count.
 */
function groupMembers(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      const stat = statOf(pid);
      return stat !== undefined && stat.pgid === pgid && stat.state !== 'Z';
    });
}

const sshSkip = sshdUnavailableReason();

describe('HOST connections over SSH', { skip: sshSkip }, () => {
  let sshd: TestSshd;
  let dir: string;

  before(async () => {
    sshd = await startSshd();
    dir = mkdtempSync(join(tmpdir(), 'opendlf-e2e-host-'));
    await createConnection(api, {
      name: 'host',
      type: 'HOST',
      config: { ip: sshd.host, port: String(sshd.port), userName: 'root', privateKey: sshd.privateKey },
    });
  });
  after(async () => {
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a Shell script on the host', async () => {
    const result = await run(api, {
      type: 'Shell',
      connectionName: 'host',
      content: 'echo hello\necho $((6 * 7))\nid -un\n',
    });
    assertFinished(result);
    assert.equal(result.results.length, 1);
    assert.deepEqual(result.results[0].rows, [['hello'], ['42'], ['root']]);
  });

  it('runs a PYTHON script on the host', async () => {
    const result = await run(api, {
      type: 'PYTHON',
      connectionName: 'host',
      content: 'import sys\nprint(6 * 7)\nprint(sys.version_info[0])\n',
    });
    assertFinished(result);
    assert.deepEqual(result.results[0].rows, [['42'], ['3']]);
  });

  it('fails a Shell script that exits non-zero', async () => {
    const result = await run(api, {
      type: 'Shell',
      connectionName: 'host',
      content: 'echo before\nexit 3\n',
    });
    assert.equal(result.status, 'FAILED');
    assert.match(result.message, /3/);
    assert.deepEqual(result.results[0].rows, [['before']]);
  });

  it('stops a long remote script and leaves no process of its group', async () => {
    const runDir = mkdtempSync(join(dir, 'stop-'));
    const pidFile = join(runDir, 'pid');
    await api.createScript({
      name: 'host-sleep',
      type: 'Shell',
      connectionName: 'host',
      content:
        'sleep 300 &\n( sleep 300 & sleep 300 ) &\necho $$ > ${dir}/pid.tmp && mv ${dir}/pid.tmp ${dir}/pid\nsleep 300\n',
    });
    const id = await api.execute('host-sleep', { dir: runDir });
    const pid = await until('the remote pid file', () =>
      existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined,
    );
    const pgid = statOf(pid)?.pgid;
    assert.ok(pgid !== undefined && pgid > 1, `no live process ${pid}`);
    // The script and its four sleeps (and the subshell) share the group.
    await until('the remote sleeps', () => (groupMembers(pgid).length >= 5 ? true : undefined));
    assertNoContent(await api.stop('host-sleep', id));
    assert.deepEqual(groupMembers(pgid), [], 'remote processes survived the stop');
    assert.ok([undefined, 'Z'].includes(statOf(pid)?.state), `the script's shell ${pid} survived the stop`);
    const result = (await api.result('host-sleep', id)).json;
    assert.equal(result.status, 'FAILED');
    assert.equal(result.detailedStatus, 'STOPPED');
  });

  it('fails an instance when the SSH port refuses connections', async () => {
    await createConnection(api, {
      name: 'host-refused',
      type: 'HOST',
      config: { ip: '127.0.0.1', port: '1', userName: 'root', privateKey: sshd.privateKey },
    });
    const result = await run(api, { type: 'Shell', connectionName: 'host-refused', content: 'echo hi' });
    assert.equal(result.status, 'FAILED');
    assert.match(result.message, /refused|ECONNREFUSED/i);
  });
});

const clickHouseSkip = clickHouseUnavailableReason() ?? false;

describe('ClickHouse through a CLICKHOUSE (extension) connection', { skip: clickHouseSkip }, () => {
  let ch: TestClickHouse;

  before(async () => {
    ch = await startClickHouse();
    await createConnection(api, {
      name: 'ch',
      type: 'CLICKHOUSE',
      config: { ip: ch.host, port: String(ch.port), userName: 'default' },
    });
  });
  after(() => ch?.stop());

  it('runs ClickHouseSQL: one result per statement, JSON numbers', async () => {
    const result = await run(api, {
      type: 'ClickHouseSQL',
      connectionName: 'ch',
      content: "SELECT 1 AS one, toUInt64(42) AS big, 'x' AS s; SELECT number FROM system.numbers LIMIT 3",
    });
    assertFinished(result);
    assert.equal(result.results.length, 2);
    assert.deepEqual(result.results[0].rows, [[1, 42, 'x']]);
    assert.deepEqual(result.results[1].rows, [[0], [1], [2]]);
  });

  it('stops a long query: no query of the run is left in system.processes', async () => {
    const marker = `odlf_${randomBytes(4).toString('hex')}`;
    await api.createScript({
      name: 'ch-long',
      type: 'ClickHouseSQL',
      connectionName: 'ch',
      content: `SELECT sleepEachRow(1), '${marker}' FROM system.numbers LIMIT 300 SETTINGS max_block_size = 1`,
    });
    const id = await api.execute('ch-long');
    const running = () =>
      ch.query(
        `SELECT count() FROM system.processes WHERE query LIKE '%${marker}%' AND query NOT LIKE '%system.processes%'`,
      );
    await until('the query to run on the server', async () =>
      Number((await running()).trim()) > 0 ? true : undefined,
    );
    assertNoContent(await api.stop('ch-long', id));
    assert.equal(Number((await running()).trim()), 0, 'the query still runs on the ClickHouse server');
    const result = (await api.result('ch-long', id)).json;
    assert.equal(result.detailedStatus, 'STOPPED');
  });
});
