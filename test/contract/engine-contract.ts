/**
 * The one contract every engine passes (CONTRIBUTING, How to add an engine): run, results, failure mapping, stop
 * before the handle exists, stop while running (graceful and forced), abort by timeout, and — after
 * every stop — proof from outside the engine that the work is gone (`workGone`).
 * Each engine's test file is one call to `runEngineContract`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunHandle, StatementResult } from '../../src/domain/instance.js';
import type { Namespace, ScriptType } from '../../src/domain/script.js';
import type { Engine, EngineOutcome, EngineRunRequest } from '../../src/engines/engine.js';

export interface EngineContractFixture {
  readonly name: string;
  createEngine(): Promise<Engine> | Engine;
  readonly scriptType: ScriptType;
  readonly database?: string;
  /** Succeeds; `check` asserts on its results. */
  readonly succeeding: { content: string; check(results: StatementResult[]): void };
  /** Fails as a script error; the outcome message must include `messageIncludes`. */
  readonly failing: { content: string; messageIncludes: string };
  /** Runs for minutes unless stopped. */
  readonly longRunning: string;
  /** Runs for minutes and ignores the polite cancel (omit when the engine has no polite step). */
  readonly ignoresPoliteCancel?: string;
  /** Two statements, the first long: stopping during it must prevent the second (SQL engines). */
  readonly stopBetweenStatements?: { content: string; secondRanProbe(): Promise<boolean> };
  /**
   * Why an optional section does not apply to this engine. A fixture that leaves a section's case
   * out names it here with the reason, so the report lists it as skipped instead of it vanishing.
   */
  readonly skip?: { readonly [section in OptionalSection]?: string };
  /** True when nothing of the run identified by `handle` is still executing anywhere. */
  workGone(handle: RunHandle | undefined): Promise<boolean>;
  /** Called before a stop test stops the run: resolves once the work is really executing. */
  waitUntilWorking?(handle: RunHandle | undefined): Promise<void>;
  teardown?(): Promise<void>;
}

/** The contract's sections that an engine may not be able to take part in. */
export type OptionalSection = 'escalation' | 'stopBetweenStatements';

const NS: Namespace = { projectId: 'contract', workspaceId: 'ws1' };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function runEngineContract(fixture: EngineContractFixture): void {
  describe(`engine contract: ${fixture.name}`, () => {
    let engine: Engine;
    let dir: string;
    let seq = 0;

    before(async () => {
      engine = await fixture.createEngine();
      dir = mkdtempSync(join(tmpdir(), 'opendlf-contract-'));
    });
    after(async () => {
      await engine.close();
      await fixture.teardown?.();
      rmSync(dir, { recursive: true, force: true });
    });

    function request(content: string): EngineRunRequest {
      seq += 1;
      return {
        instanceId: `contract-${seq}`,
        namespace: NS,
        scriptType: fixture.scriptType,
        content,
        database: fixture.database ?? '',
        runDir: join(dir, `run-${seq}`),
        limits: { maxResultRows: 1000, maxOutputBytes: 30 * 1024 * 1024, maxResultOutputBytes: 1024 * 1024 },
      };
    }

    /** Starts a run; `handle` resolves when the engine reports it. */
    function start(content: string, controller = new AbortController(), stopGraceMs = 500) {
      let reportHandle!: (h: RunHandle) => void;
      const handle = new Promise<RunHandle>((resolve) => (reportHandle = resolve));
      let handles = 0;
      const outcome: Promise<EngineOutcome> = engine.run(request(content), {
        signal: controller.signal,
        stopGraceMs,
        reportHandle: (h) => {
          handles += 1;
          reportHandle(h);
          return Promise.resolve();
        },
      });
      return { outcome, handle, controller, handleCount: () => handles };
    }

    async function stopAndProve(content: string, stopGraceMs: number) {
      const run = start(content, new AbortController(), stopGraceMs);
      const handle = await run.handle;
      await fixture.waitUntilWorking?.(handle);
      run.controller.abort('stop');
      const outcome = await run.outcome;
      assert.equal(outcome.kind, 'aborted');
      assert.equal(
        await fixture.workGone(handle),
        true,
        'the work is still running after the engine returned',
      );
      return outcome;
    }

    it('supports its script type', () => {
      assert.equal(engine.supports(fixture.scriptType), true);
    });

    it('runs a script and returns its results', async () => {
      const run = start(fixture.succeeding.content);
      const outcome = await run.outcome;
      assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
      assert.equal(run.handleCount(), 1, 'reportHandle is called exactly once');
      fixture.succeeding.check(outcome.results);
    });

    it('maps a script error to a failed outcome with the cause in the message', async () => {
      const outcome = await start(fixture.failing.content).outcome;
      assert.equal(outcome.kind, 'failed');
      assert.ok(
        outcome.kind === 'failed' && outcome.message.includes(fixture.failing.messageIncludes),
        JSON.stringify(outcome),
      );
    });

    it('never starts work when the signal is already aborted', async () => {
      const controller = new AbortController();
      controller.abort('stop');
      const run = start(fixture.longRunning, controller);
      const outcome = await run.outcome;
      assert.equal(outcome.kind, 'aborted');
    });

    it('stops a running script (polite cancel) and the work is gone', async () => {
      await stopAndProve(fixture.longRunning, 5_000);
    });

    /** A section without its case is skipped with the fixture's reason; without a reason it fails. */
    function optional<T>(
      section: OptionalSection,
      title: string,
      value: T | undefined,
      test: (value: T) => Promise<void>,
    ): void {
      const reason = fixture.skip?.[section];
      if (value !== undefined) {
        it(title, () => test(value));
      } else if (reason !== undefined) {
        it(title, { skip: reason }, () => {});
      } else {
        it(title, () => {
          assert.fail(`the fixture gives neither a ${section} case nor skip.${section} with the reason`);
        });
      }
    }

    optional(
      'escalation',
      'escalates when the work ignores the polite cancel, and the work is gone',
      fixture.ignoresPoliteCancel,
      async (content) => {
        await stopAndProve(content, 300);
      },
    );

    it('ends the work when a timeout aborts the signal', async () => {
      const controller = new AbortController();
      const run = start(fixture.longRunning, controller, 500);
      const handle = await run.handle;
      await fixture.waitUntilWorking?.(handle);
      setTimeout(() => controller.abort('timeout'), 50);
      const outcome = await run.outcome;
      assert.equal(outcome.kind, 'aborted');
      assert.equal(await fixture.workGone(handle), true);
    });

    optional(
      'stopBetweenStatements',
      'runs no further statement once stopped',
      fixture.stopBetweenStatements,
      async ({ content, secondRanProbe }) => {
        const run = start(content);
        const handle = await run.handle;
        await fixture.waitUntilWorking?.(handle);
        await sleep(50);
        run.controller.abort('stop');
        const outcome = await run.outcome;
        assert.equal(outcome.kind, 'aborted');
        assert.equal(await secondRanProbe(), false, 'a statement after the stop ran');
      },
    );
  });
}

export interface EngineRunOptions {
  database?: string;
  maxResultRows?: number;
  stopGraceMs?: number;
}

/**
 * Starts one run directly on an engine (for the engine-specific tests beside the contract);
 * `handle` resolves when the engine reports it, `controller` aborts it.
 */
export function startEngineRun(
  engine: Engine,
  scriptType: ScriptType,
  content: string,
  options: EngineRunOptions = {},
) {
  const controller = new AbortController();
  let reported!: (h: RunHandle) => void;
  const handle = new Promise<RunHandle>((resolve) => (reported = resolve));
  const outcome: Promise<EngineOutcome> = engine.run(
    {
      instanceId: `extra-${randomBytes(3).toString('hex')}`,
      namespace: NS,
      scriptType,
      content,
      database: options.database ?? '',
      runDir: '/nonexistent',
      limits: { maxResultRows: options.maxResultRows ?? 1000, maxOutputBytes: 1, maxResultOutputBytes: 1 },
    },
    {
      signal: controller.signal,
      stopGraceMs: options.stopGraceMs ?? 2_000,
      reportHandle: (h) => {
        reported(h);
        return Promise.resolve();
      },
    },
  );
  return { controller, handle, outcome };
}

/**
 * The `succeeding.check` shared by the SQL engines' fixtures: three statements (create, insert,
 * select) whose select returns (1, 'x', 1.50, 2^53-1) and a row of NULLs, with `schema` as given.
 */
export function typedSelectCheck(schema: Record<string, string>[]) {
  return (results: StatementResult[]): void => {
    assert.equal(results.length, 3, 'one result per statement');
    const select = results[2]!;
    assert.deepEqual(select.schema, schema);
    assert.deepEqual(select.rows, [
      [1, 'x', 1.5, 9007199254740991],
      [null, null, null, null],
    ]);
    assert.equal(select.rowCount, 2);
    assert.equal(typeof select.duration, 'number');
  };
}
