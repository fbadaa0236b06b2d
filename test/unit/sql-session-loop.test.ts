/**
 * The shared SQL loop against a fake session: what every SQL engine inherits from it (splitting,
 * stop rules, caps, error results, the order of open → identify → report → arm → statements →
 * finish → release), without a database.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RunHandle, StatementResult } from '../../src/domain/instance.js';
import type { EngineRunContext, EngineRunRequest } from '../../src/engines/engine.js';
import type { StatementResultBuilder } from '../../src/engines/sql-result.js';
import {
  runSqlSession,
  type SqlSessionDriver,
  type SqlSessionEnd,
  type SqlStopControl,
} from '../../src/engines/sql-session-loop.js';
import { ABORTED } from '../../src/engines/stop-ladder.js';

interface FakeSession {
  readonly id: number;
}

/** What one statement does in the fake database: rows to return, an error to throw, a hook while it runs. */
interface FakeStatement {
  rows?: unknown[][];
  error?: Error & { sqlState?: string };
  during?: () => void;
}

class FakeDriver implements SqlSessionDriver<FakeSession> {
  readonly dialect = 'postgres' as const;
  readonly log: string[] = [];
  readonly executed: string[] = [];
  readonly ends: SqlSessionEnd[] = [];
  openError: Error | undefined;
  openAborted = false;
  identifyError: Error | undefined;
  refusal: string | undefined;
  statements = new Map<string, FakeStatement>();

  refuse(): string | undefined {
    return this.refusal;
  }

  open(): Promise<FakeSession | typeof ABORTED> {
    this.log.push('open');
    if (this.openError) return Promise.reject(this.openError);
    return Promise.resolve(this.openAborted ? ABORTED : { id: 1 });
  }

  openFailure(error: unknown): string {
    return `could not connect: ${(error as Error).message}`;
  }

  identify(): Promise<RunHandle> {
    this.log.push('identify');
    if (this.identifyError) return Promise.reject(this.identifyError);
    return Promise.resolve({ engine: 'fake', sessionId: 1 });
  }

  setupFailure(error: unknown): string {
    return `setup: ${(error as Error).message}`;
  }

  stopControl(): SqlStopControl {
    const log = this.log;
    return {
      forced: false,
      arm: () => log.push('arm'),
      finish: () => {
        log.push('finish');
        return Promise.resolve();
      },
    };
  }

  async execute(_session: FakeSession, sql: string, _index: number, builder: StatementResultBuilder) {
    this.executed.push(sql);
    const statement = this.statements.get(sql) ?? { rows: [[1]] };
    statement.during?.();
    await Promise.resolve();
    if (statement.error) throw statement.error;
    builder.setColumns([{ name: 'a', type: 'int', numeric: true }]);
    for (const row of statement.rows ?? []) if (!builder.addRow(row)) break;
    return builder.build();
  }

  statementFailure(error: unknown) {
    const sqlState = (error as { sqlState?: string }).sqlState;
    return { detail: (error as Error).message, ...(sqlState ? { sqlState } : {}) };
  }

  release(_session: FakeSession, end: SqlSessionEnd): Promise<void> {
    this.log.push('release');
    this.ends.push(end);
    return Promise.resolve();
  }
}

function request(content: string, limits: Partial<EngineRunRequest['limits']> = {}): EngineRunRequest {
  return {
    instanceId: 'i1',
    namespace: { projectId: 'p', workspaceId: 'w' },
    scriptType: 'DWSSQL',
    content,
    database: '',
    runDir: '/nonexistent',
    limits: { maxResultRows: 1000, maxOutputBytes: 1, maxResultOutputBytes: 1, ...limits },
  };
}

function context(driverLog: string[], controller = new AbortController()) {
  const handles: RunHandle[] = [];
  const value: EngineRunContext = {
    signal: controller.signal,
    stopGraceMs: 1000,
    reportHandle: (handle) => {
      driverLog.push('report');
      handles.push(handle);
      return Promise.resolve();
    },
  };
  return { value, controller, handles };
}

const firstValues = (results: readonly StatementResult[]) => results.map((r) => r.rows[0]?.[0]);

describe('the shared SQL session loop', () => {
  it('runs every statement in order on one session, one result each, in the documented order of steps', async () => {
    const driver = new FakeDriver();
    driver.statements.set('SELECT 2', { rows: [[2]] });
    const ctx = context(driver.log);
    const outcome = await runSqlSession(
      driver,
      request('SELECT 1; SELECT 2; -- trailing comment'),
      ctx.value,
    );
    assert.equal(outcome.kind, 'succeeded');
    assert.deepEqual(driver.executed, ['SELECT 1', 'SELECT 2']);
    assert.deepEqual(firstValues(outcome.results), [1, 2]);
    assert.deepEqual(driver.log, ['open', 'identify', 'report', 'arm', 'finish', 'release']);
    assert.deepEqual(ctx.handles, [{ engine: 'fake', sessionId: 1 }]);
    assert.deepEqual(driver.ends, [{ stopped: false, forced: false, statements: ['SELECT 1', 'SELECT 2'] }]);
  });

  it('starts no statement after a stop', async () => {
    const driver = new FakeDriver();
    const ctx = context(driver.log);
    driver.statements.set('SELECT 1', { rows: [[1]], during: () => ctx.controller.abort('stop') });
    const outcome = await runSqlSession(driver, request('SELECT 1; SELECT 2'), ctx.value);
    assert.equal(outcome.kind, 'aborted');
    assert.deepEqual(driver.executed, ['SELECT 1']);
    assert.equal(driver.ends[0]?.stopped, true);
  });

  it('a stop during the last statement still counts as a stop, even when the statement succeeds', async () => {
    const driver = new FakeDriver();
    const ctx = context(driver.log);
    driver.statements.set('SELECT 1', { rows: [[1]], during: () => ctx.controller.abort('stop') });
    const outcome = await runSqlSession(driver, request('SELECT 1'), ctx.value);
    assert.equal(outcome.kind, 'aborted');
    assert.deepEqual(firstValues(outcome.results), [1]);
  });

  it('a statement cancelled by the stop is aborted, not failed', async () => {
    const driver = new FakeDriver();
    const ctx = context(driver.log);
    driver.statements.set('SELECT 1', {
      error: new Error('canceling statement due to user request'),
      during: () => ctx.controller.abort('stop'),
    });
    const outcome = await runSqlSession(driver, request('SELECT 1'), ctx.value);
    assert.equal(outcome.kind, 'aborted');
  });

  it('a failing statement ends the run: earlier results kept, an error result, its SQLSTATE, no later statement', async () => {
    const driver = new FakeDriver();
    driver.statements.set('SELECT boom', {
      error: Object.assign(new Error('column "boom" does not exist'), { sqlState: '42703' }),
    });
    const ctx = context(driver.log);
    const outcome = await runSqlSession(driver, request('SELECT 1; SELECT boom; SELECT 3'), ctx.value);
    assert.equal(outcome.kind, 'failed');
    assert.ok(outcome.kind === 'failed');
    assert.equal(outcome.message, 'Statement 2 failed: column "boom" does not exist');
    assert.equal(outcome.reason, 'script_error');
    assert.equal(outcome.sqlState, '42703');
    assert.deepEqual(driver.executed, ['SELECT 1', 'SELECT boom']);
    assert.equal(outcome.results.length, 2);
    assert.deepEqual(outcome.results[1]?.rows, []);
    assert.equal(outcome.results[1]?.message, outcome.message);
    assert.deepEqual(driver.log.slice(-2), ['finish', 'release']);
  });

  it('caps rows per statement and bytes across the statements of the run', async () => {
    const driver = new FakeDriver();
    driver.statements.set('SELECT many', { rows: [[1], [2], [3], [4]] });
    driver.statements.set('SELECT big', { rows: [['x'.repeat(100)]] });
    const ctx = context(driver.log);
    const outcome = await runSqlSession(
      driver,
      request('SELECT many; SELECT big', { maxResultRows: 2, maxResultBytes: 50 }),
      ctx.value,
    );
    assert.equal(outcome.kind, 'succeeded');
    assert.deepEqual(outcome.results[0]?.rows, [[1], [2]]);
    assert.equal(outcome.results[0]?.truncated, true);
    // 100 characters do not fit in what the first statement left of 50 bytes.
    assert.deepEqual(outcome.results[1]?.rows, []);
    assert.equal(outcome.results[1]?.truncated, true);
  });

  it('a refused script opens no session', async () => {
    const driver = new FakeDriver();
    driver.refusal = 'not allowed here';
    const outcome = await runSqlSession(driver, request('SELECT 1'), context(driver.log).value);
    assert.deepEqual(outcome, {
      kind: 'failed',
      results: [],
      message: 'not allowed here',
      reason: 'script_error',
    });
    assert.deepEqual(driver.log, []);
  });

  it('a connect failure is a failed outcome with the driver message, and nothing to release', async () => {
    const driver = new FakeDriver();
    driver.openError = new Error('ECONNREFUSED');
    const outcome = await runSqlSession(driver, request('SELECT 1'), context(driver.log).value);
    assert.deepEqual(outcome, {
      kind: 'failed',
      results: [],
      message: 'could not connect: ECONNREFUSED',
      reason: 'connect_failed',
    });
    assert.deepEqual(driver.log, ['open']);
  });

  it('a session that cannot tell who it is fails the run and is still released', async () => {
    const driver = new FakeDriver();
    driver.identifyError = new Error('gone');
    const outcome = await runSqlSession(driver, request('SELECT 1'), context(driver.log).value);
    assert.equal(outcome.kind, 'failed');
    assert.ok(outcome.kind === 'failed' && outcome.message === 'setup: gone');
    assert.deepEqual(driver.log, ['open', 'identify', 'release']);
    assert.deepEqual(driver.executed, []);
  });

  it('a stop before the session opened, or while it opened, runs nothing', async () => {
    const early = new FakeDriver();
    const ctx = context(early.log);
    ctx.controller.abort('stop');
    assert.equal((await runSqlSession(early, request('SELECT 1'), ctx.value)).kind, 'aborted');
    assert.deepEqual(early.log, []);

    const opening = new FakeDriver();
    opening.openAborted = true;
    assert.equal(
      (await runSqlSession(opening, request('SELECT 1'), context(opening.log).value)).kind,
      'aborted',
    );
    assert.deepEqual(opening.log, ['open']);
  });

  it('a stop while the handle is reported starts no statement', async () => {
    const driver = new FakeDriver();
    const controller = new AbortController();
    const value: EngineRunContext = {
      signal: controller.signal,
      stopGraceMs: 1000,
      reportHandle: () => {
        controller.abort('stop');
        return Promise.resolve();
      },
    };
    const outcome = await runSqlSession(driver, request('SELECT 1'), value);
    assert.equal(outcome.kind, 'aborted');
    assert.deepEqual(driver.executed, []);
    assert.deepEqual(driver.log, ['open', 'identify', 'release']);
  });

  it("waits for the handle's write before the first statement, unless the database ends a lost client's work itself", async () => {
    const deferredWrite = (log: string[]) => {
      let finishWrite!: () => void;
      const value: EngineRunContext = {
        signal: new AbortController().signal,
        stopGraceMs: 1000,
        reportHandle: () => {
          log.push('report');
          return new Promise<void>((resolve) => (finishWrite = resolve)).then(() => {
            log.push('written');
          });
        },
      };
      return { value, finish: () => finishWrite() };
    };
    const settled = (outcome: Promise<unknown>) => {
      let done = false;
      void outcome.then(() => (done = true));
      return () => done;
    };
    const turns = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
    };

    // Default: the handle is stored before any statement (recovery may need it to end the work).
    const careful = new FakeDriver();
    const carefulWrite = deferredWrite(careful.log);
    const carefulRun = runSqlSession(careful, request('SELECT 1'), carefulWrite.value);
    await turns(5);
    assert.deepEqual(careful.executed, [], 'no statement before the handle is stored');
    carefulWrite.finish();
    assert.equal((await carefulRun).kind, 'succeeded');
    assert.deepEqual(careful.log, ['open', 'identify', 'report', 'written', 'arm', 'finish', 'release']);

    // The database ends the statement of a vanished client: the write goes on beside the statement,
    // and the outcome still waits for it (the settle follows the RUNNING write).
    const beside = new FakeDriver();
    const besideDriver: SqlSessionDriver<FakeSession> = Object.assign(Object.create(beside) as FakeDriver, {
      endsWorkOfLostClient: () => true,
    });
    const besideWrite = deferredWrite(beside.log);
    const besideRun = runSqlSession(besideDriver, request('SELECT 1; SELECT 2'), besideWrite.value);
    const besideDone = settled(besideRun);
    await turns(5);
    assert.deepEqual(
      beside.executed,
      ['SELECT 1', 'SELECT 2'],
      'the statements ran while the write was pending',
    );
    assert.equal(besideDone(), false, 'the outcome waits for the handle to be stored');
    besideWrite.finish();
    assert.equal((await besideRun).kind, 'succeeded');
    assert.deepEqual(beside.log, ['open', 'identify', 'report', 'arm', 'written', 'finish', 'release']);
  });

  it('a failing begin step is one error result with the driver message', async () => {
    const driver = new FakeDriver();
    const withBegin: SqlSessionDriver<FakeSession> = Object.assign(Object.create(driver) as FakeDriver, {
      begin: () => Promise.reject(new Error('no such database')),
      beginFailure: (error: unknown) => ({
        message: `Database x cannot be used: ${(error as Error).message}`,
      }),
    });
    const outcome = await runSqlSession(withBegin, request('SELECT 1'), context(driver.log).value);
    assert.equal(outcome.kind, 'failed');
    assert.ok(outcome.kind === 'failed');
    assert.equal(outcome.message, 'Database x cannot be used: no such database');
    assert.equal(outcome.reason, 'script_error');
    assert.equal(outcome.results.length, 1);
    assert.deepEqual(driver.executed, []);
  });

  it("a begin step that cannot reach the server fails with the driver's reason", async () => {
    const driver = new FakeDriver();
    const unreachable: SqlSessionDriver<FakeSession> = Object.assign(Object.create(driver) as FakeDriver, {
      begin: () => Promise.reject(new Error('ECONNREFUSED')),
      beginFailure: () => ({ message: 'Could not connect: ECONNREFUSED', reason: 'connect_failed' as const }),
    });
    const outcome = await runSqlSession(unreachable, request('SELECT 1'), context(driver.log).value);
    assert.ok(outcome.kind === 'failed');
    assert.equal(outcome.reason, 'connect_failed');
    assert.equal(outcome.message, 'Could not connect: ECONNREFUSED');
    assert.deepEqual(driver.executed, []);
  });
});
