/**
 * The MySQL engine against the local MariaDB (127.0.0.1:3306, root without password). The file
 * creates its own database (and a password-protected user) and drops them at the end; stops are
 * proven from outside through information_schema.PROCESSLIST.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { RunHandle } from '../../src/domain/instance.js';
import type { Engine, EngineOutcome } from '../../src/engines/engine.js';
import { MysqlEngine, type MysqlTarget } from '../../src/engines/mysql/mysql-engine.js';
import {
  goneWithin,
  runEngineContract,
  startEngineRun,
  type EngineRunOptions,
  typedSelectCheck,
} from './engine-contract.js';

const SERVER = { host: '127.0.0.1', port: 3306, user: 'root', password: '' };
const SUFFIX = randomBytes(4).toString('hex');
const DB = `opendlf_contract_my_${SUFFIX}`;
const PW_USER = `opendlf_pw_${SUFFIX}`;
/** The engine's default database is another one: scripts select theirs through `database`. */
const TARGET: MysqlTarget = { ...SERVER, database: 'test', connectTimeoutMs: 5_000 };

const admin = await mysql.createConnection({ ...SERVER, database: 'test' });
await admin.query(`CREATE DATABASE ${DB}`);
await admin.query(`CREATE USER '${PW_USER}'@'%' IDENTIFIED BY 'right-password'`);
/** Observes the server from outside the engine under test. */
const observer = mysql.createPool({ ...SERVER, database: DB, connectionLimit: 3 });
await observer.query('CREATE TABLE between_probe(a INT) ENGINE=InnoDB');
await observer.query('CREATE TABLE lock_probe(id INT PRIMARY KEY) ENGINE=InnoDB');
await observer.query('INSERT INTO lock_probe VALUES (1)');
// Cancel-proof: a CONTINUE handler swallows the interruption of each SLEEP, so KILL QUERY never
// ends the CALL; only KILL (the connection) does.
await observer.query(
  'CREATE PROCEDURE ignore_kill_query() BEGIN DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END; LOOP DO SLEEP(1); END LOOP; END',
);

after(async () => {
  await observer.end();
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
  await admin.query(`DROP USER IF EXISTS '${PW_USER}'@'%'`);
  await admin.end();
});

const threadId = (handle: RunHandle | undefined) => Number(handle?.['threadId']);

/** The thread's process-list entry while it runs a statement ('Killed' counts as still running). */
async function runningEntry(id: number): Promise<Record<string, unknown> | undefined> {
  const [rows] = await observer.query<mysql.RowDataPacket[]>(
    "SELECT COMMAND, STATE, TIME, INFO FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND IN ('Query', 'Killed')",
    [id],
  );
  return rows[0] ? { ...rows[0] } : undefined;
}

const isRunning = async (id: number) => (await runningEntry(id)) !== undefined;

/** Resolves once the thread runs a statement matching `like` (bounded; throws after 10 s). */
async function waitUntilRunning(id: number, like = '%'): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [rows] = await observer.query<mysql.RowDataPacket[]>(
      "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND = 'Query' AND INFO LIKE ?",
      [id, like],
    );
    if (rows.length > 0) return;
    if (Date.now() > deadline) throw new Error(`thread ${id} never started its statement`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

runEngineContract({
  name: 'mysql (MariaDB)',
  createEngine: () => new MysqlEngine('mysql', TARGET),
  scriptType: 'RDSSQL',
  database: DB,
  succeeding: {
    content:
      'CREATE TABLE c1(a INT, b VARCHAR(10), d DECIMAL(10,2), e BIGINT);\n' +
      "INSERT INTO c1 VALUES (1, 'x', 1.50, 9007199254740991), (NULL, NULL, NULL, NULL);\n" +
      'SELECT * FROM c1 ORDER BY a IS NULL, a; -- trailing comment',
    check: typedSelectCheck([{ a: 'INT' }, { b: 'VARCHAR' }, { d: 'DECIMAL' }, { e: 'BIGINT' }]),
  },
  failing: { content: 'SELECT 1; SELECT * FROM no_such_table; SELECT 2', messageIncludes: 'no_such_table' },
  longRunning: 'SELECT SLEEP(300)',
  ignoresPoliteCancel: 'CALL ignore_kill_query()',
  stopBetweenStatements: {
    content: 'SELECT SLEEP(300); INSERT INTO between_probe VALUES (1);',
    secondRanProbe: async () => {
      const [rows] = await observer.query<mysql.RowDataPacket[]>('SELECT 1 FROM between_probe');
      return rows.length > 0;
    },
  },
  unreachable: {
    createEngine: () => new MysqlEngine('mysql', { ...TARGET, port: 1 }),
    messageMatches: [/Could not connect to MySQL at 127\.0\.0\.1:1/, /ECONNREFUSED/],
  },
  // MariaDB's Sequence engine: five rows.
  limits: { manyRows: 'SELECT seq FROM seq_1_to_5' },
  recovery: {
    // The same thread id on what looks like an earlier start of the server is not this run's.
    otherHandles: (handle) => [{ ...handle, serverStartedAt: Number(handle['serverStartedAt']) - 3600 }],
  },
  waitUntilWorking: (handle) => waitUntilRunning(threadId(handle)),
  // A stopped run's statement has ended when the engine returns: its ROLLBACK was answered after
  // it (polite stop), or the engine waited for the thread to leave the process list (KILL). Yet the
  // full suite once saw the thread still listed as Query or Killed right after the polite-stop
  // case returned, which 12 runs of that case under load and 600 probes of a killed-then-closed
  // connection did not show again. So: gone within a bound (the PostgreSQL fixture waits the same
  // way), and what was listed is printed for the record. (A `recover()` KILL answers before its
  // thread has ended: the thread shows as Killed, still in its SLEEP, for a few ms.)
  workGone: async (handle) => {
    const id = threadId(handle);
    const first = await runningEntry(id);
    if (!first) return true;
    const started = Date.now();
    const gone = await goneWithin(() => isRunning(id), 2_000);
    // Still there: the caller's assertion speaks (a recover of another handle expects exactly that).
    if (gone) {
      console.log(
        `# thread ${id} was listed as ${JSON.stringify(first)} when first probed; gone within ${Date.now() - started} ms`,
      );
    }
    return gone;
  },
});

/** Starts a run on `engine` in the test database; see startEngineRun. */
function start(engine: Engine, content: string, options: EngineRunOptions = {}) {
  return startEngineRun(engine, 'RDSSQL', content, { database: DB, ...options });
}

/** Another session locks the row; a 2 s lock wait makes a leftover lock fail the test instead of hanging it. */
async function rowLockIsFree(): Promise<void> {
  const connection = await observer.getConnection();
  try {
    await connection.query('SET SESSION innodb_lock_wait_timeout = 2');
    await connection.query('START TRANSACTION');
    await connection.query('SELECT * FROM lock_probe WHERE id = 1 FOR UPDATE');
  } finally {
    await connection.query('ROLLBACK').catch(() => undefined);
    connection.release();
  }
}

function assertFailed(outcome: EngineOutcome, ...parts: string[]): void {
  assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
  for (const part of parts) {
    assert.ok(
      outcome.kind === 'failed' && outcome.message.includes(part),
      `${part} not in ${JSON.stringify(outcome)}`,
    );
  }
}

describe('mysql engine: sessions, failures, types', () => {
  const engine = new MysqlEngine('mysql', TARGET, { maxConnections: 2 });
  after(() => engine.close());

  it('a stop inside an open transaction leaves no row lock held', async () => {
    const run = start(engine, 'START TRANSACTION; SELECT * FROM lock_probe FOR UPDATE; SELECT SLEEP(300);');
    const id = threadId(await run.handle);
    await waitUntilRunning(id, '%SLEEP%');
    run.controller.abort('stop');
    assert.equal((await run.outcome).kind, 'aborted');
    await rowLockIsFree();
    assert.equal(await isRunning(id), false);
  });

  it('a forced stop (the statement ignores KILL QUERY) inside a transaction leaves no row lock held', async () => {
    const run = start(
      engine,
      'START TRANSACTION; SELECT * FROM lock_probe FOR UPDATE; CALL ignore_kill_query();',
      {
        stopGraceMs: 300,
      },
    );
    const id = threadId(await run.handle);
    await waitUntilRunning(id, '%SLEEP%');
    run.controller.abort('stop');
    assert.equal((await run.outcome).kind, 'aborted');
    const [rows] = await observer.query<mysql.RowDataPacket[]>(
      'SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?',
      [id],
    );
    assert.equal(rows.length, 0, 'the killed thread is gone');
    await rowLockIsFree();
  });

  it('a transaction the script leaves open is rolled back', async () => {
    const first = await start(engine, 'START TRANSACTION; INSERT INTO between_probe VALUES (42);').outcome;
    assert.equal(first.kind, 'succeeded', JSON.stringify(first));
    const [rows] = await observer.query<mysql.RowDataPacket[]>('SELECT 1 FROM between_probe WHERE a = 42');
    assert.equal(rows.length, 0);
  });

  it('a transaction the script leaves open holds no row lock once the run has returned', async () => {
    const outcome = await start(engine, 'START TRANSACTION; SELECT * FROM lock_probe FOR UPDATE').outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    // NOWAIT: a lock released a moment after the run returned would still fail here.
    const connection = await observer.getConnection();
    try {
      await connection.query('START TRANSACTION');
      await connection.query('SELECT * FROM lock_probe WHERE id = 1 FOR UPDATE NOWAIT');
    } finally {
      await connection.query('ROLLBACK').catch(() => undefined);
      connection.release();
    }
  });

  it('a reused connection carries no session state into the next run', async () => {
    const single = new MysqlEngine('mysql', TARGET, { maxConnections: 1 });
    try {
      const firstRun = start(
        single,
        "SET @leaked = 1; SET SESSION sql_mode = 'ANSI'; CREATE TEMPORARY TABLE leaked(a int); SELECT GET_LOCK('opendlf_leak', 0)",
      );
      const first = await firstRun.outcome;
      assert.equal(first.kind, 'succeeded', JSON.stringify(first));
      const secondRun = start(
        single,
        "SELECT @leaked; SELECT @@SESSION.sql_mode = 'ANSI'; SELECT IS_USED_LOCK('opendlf_leak') IS NULL; CREATE TEMPORARY TABLE leaked(a int)",
      );
      const second = await secondRun.outcome;
      assert.equal(second.kind, 'succeeded', JSON.stringify(second));
      // One connection at most: the second run got the first run's thread, reset (its temporary
      // table gone, or creating it again would fail).
      assert.equal(threadId(await secondRun.handle), threadId(await firstRun.handle));
      assert.deepEqual(
        second.results.map((r) => r.rows[0]?.[0]),
        [null, 0, 1, undefined],
      );
    } finally {
      await single.close();
    }
  });

  it('a run that changed the character set does not hand its connection to the next run', async () => {
    const single = new MysqlEngine('mysql', TARGET, { maxConnections: 1 });
    try {
      const first = await start(single, 'SET NAMES latin1; SELECT 1').outcome;
      assert.equal(first.kind, 'succeeded', JSON.stringify(first));
      const second = await start(single, "SELECT 'é✓'").outcome;
      assert.equal(second.kind, 'succeeded', JSON.stringify(second));
      assert.equal(second.results[0]?.rows[0]?.[0], 'é✓');
    } finally {
      await single.close();
    }
  });

  it('a run that switched databases with USE does not hand its connection to the next run', async () => {
    const single = new MysqlEngine('mysql', TARGET, { maxConnections: 1 });
    try {
      const first = await start(single, 'USE information_schema; SELECT 1').outcome;
      assert.equal(first.kind, 'succeeded', JSON.stringify(first));
      const second = await start(single, 'SELECT DATABASE()').outcome;
      assert.equal(second.kind, 'succeeded', JSON.stringify(second));
      assert.equal(second.results[0]?.rows[0]?.[0], DB);
    } finally {
      await single.close();
    }
  });

  it('shapes results: numbers for numeric types, text otherwise, null for NULL', async () => {
    const outcome = await start(
      engine,
      'CREATE TABLE types_probe(i INT, b BIGINT, n DECIMAL(10,2), f DOUBLE, t VARCHAR(10), x TEXT, yes BOOLEAN, ' +
        'd DATE, dt DATETIME, bits BIT(3), u INT UNSIGNED);\n' +
        "INSERT INTO types_probe VALUES (1, 9007199254740991, 12.50, 2.5, 'x', 'long', TRUE, '2024-01-02', " +
        "'2024-01-02 03:04:05', b'101', 7), (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);\n" +
        'SELECT * FROM types_probe ORDER BY i IS NULL;\n' +
        'DROP TABLE types_probe',
    ).outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    const [create, insert, select] = outcome.results;
    assert.deepEqual(create?.schema, []);
    assert.deepEqual(insert?.rows, []);
    assert.deepEqual(select?.schema, [
      { i: 'INT' },
      { b: 'BIGINT' },
      { n: 'DECIMAL' },
      { f: 'DOUBLE' },
      { t: 'VARCHAR' },
      { x: 'TEXT' },
      { yes: 'TINYINT' },
      { d: 'DATE' },
      { dt: 'DATETIME' },
      { bits: 'BIT' },
      { u: 'INT UNSIGNED' },
    ]);
    assert.deepEqual(select?.rows, [
      [1, 9007199254740991, 12.5, 2.5, 'x', 'long', 1, '2024-01-02', '2024-01-02 03:04:05', 5, 7],
      [null, null, null, null, null, null, null, null, null, null, null],
    ]);
  });

  it('a stop whose warm KILL connection was lost still kills the query politely (through the control pool)', async () => {
    // As the test's own user, so the connection killed below is this engine's.
    await observer.query(`GRANT SELECT ON ${DB}.* TO '${PW_USER}'@'%'`);
    const own = new MysqlEngine('mysql', { ...TARGET, user: PW_USER, password: 'right-password' });
    try {
      // A grace longer than the test: only KILL QUERY can end the statement in time.
      const run = start(own, 'SELECT SLEEP(300)', { stopGraceMs: 600_000 });
      const id = threadId(await run.handle);
      await waitUntilRunning(id, '%SLEEP%');
      const deadline = Date.now() + 10_000;
      for (;;) {
        const [others] = await observer.query<mysql.RowDataPacket[]>(
          'SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> ?',
          [PW_USER, id],
        );
        if (others.length > 0) {
          for (const other of others) await observer.query(`KILL ${Number(other.ID)}`);
          break;
        }
        assert.ok(Date.now() < deadline, 'the warm KILL connection never connected');
        await new Promise((r) => setTimeout(r, 10));
      }
      run.controller.abort('stop');
      assert.equal((await run.outcome).kind, 'aborted');
      assert.equal(await isRunning(id), false);
    } finally {
      await own.close();
    }
  });

  it('the server dropping the connection mid-run fails the run with a clear message', async () => {
    const run = start(engine, 'SELECT 1; SELECT SLEEP(300); SELECT 2');
    const id = threadId(await run.handle);
    await waitUntilRunning(id);
    await observer.query(`KILL CONNECTION ${Number(id)}`);
    const outcome = await run.outcome;
    assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
    assert.ok(outcome.results.length <= 2, 'the third statement never ran');
    assert.ok(
      outcome.kind === 'failed' && /connection|lost|closed|killed/i.test(outcome.message),
      JSON.stringify(outcome),
    );
    assert.equal((await start(engine, 'SELECT 1').outcome).kind, 'succeeded');
  });

  it('an unknown database is a failed outcome with a clear message', async () => {
    const outcome = await start(engine, 'SELECT 1', { database: 'opendlf_no_such_database' }).outcome;
    assertFailed(outcome, "Unknown database 'opendlf_no_such_database'");
  });

  it('a wrong password is a failed outcome with a clear message', async () => {
    const wrong = new MysqlEngine('mysql', { ...TARGET, user: PW_USER, password: 'wrong-password' });
    try {
      assertFailed(await start(wrong, 'SELECT 1').outcome, 'Could not connect to MySQL', 'Access denied');
    } finally {
      await wrong.close();
    }
  });
});
