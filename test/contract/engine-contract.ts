/**
 * The one contract every engine passes (CONTRIBUTING, How to add an engine): run, results, failure mapping, stop
 * before the handle exists, stop while running (graceful and forced), abort by timeout, and — after
 * every stop — proof from outside the engine that the work is gone (`workGone`). Capability-gated
 * sections follow: the connect failure (engines that connect to a server), the limits (a row cap for
 * SQL engines, the output cap for process engines) and recovery (engines that have `recover()`).
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
import type { Engine, EngineLimits, EngineOutcome, EngineRunRequest } from '../../src/engines/engine.js';

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
  /**
   * An engine for a data connection whose server does not listen (a refused port): the run must fail
   * as `connect_failed`, with a message matching every pattern (it names the target and the cause).
   */
  readonly unreachable?: {
    createEngine(): Promise<Engine> | Engine;
    readonly messageMatches: readonly RegExp[];
  };
  /**
   * The engine's limit. SQL engines: `manyRows` is one statement returning more than 3 rows
   * (endless is fine); with `maxResultRows` 3 it is cut to 3 rows marked truncated, the next
   * statement still runs, and the cut statement's work does not go on. Process engines:
   * `endlessOutput` prints without end; with a 64 KiB output cap the run fails as `output_limit`
   * and its work is gone.
   */
  readonly limits?: { readonly manyRows: string } | { readonly endlessOutput: string };
  /**
   * Recovery, required exactly when the engine has `recover()` (its work can outlive the server
   * process): a second engine stands for the next server process and ends a running run's work
   * from its handle alone.
   */
  readonly recovery?: {
    /** The next server process's engine; the fixture's `createEngine` when absent. */
    createEngine?(): Promise<Engine> | Engine;
    /**
     * Handles that look like the run's but name other work (another backend start, another server
     * start, another query prefix): recovering them must leave the run alone.
     */
    otherHandles?(handle: RunHandle): RunHandle[];
    /** More checks once the run's work was recovered (e.g. its remote directory is gone). */
    afterRecover?(handle: RunHandle, outcome: EngineOutcome): Promise<void> | void;
  };
  /** True when nothing of the run identified by `handle` is still executing anywhere. */
  workGone(handle: RunHandle | undefined): Promise<boolean>;
  /** Called before a stop test stops the run: resolves once the work is really executing. */
  waitUntilWorking?(handle: RunHandle | undefined): Promise<void>;
  teardown?(): Promise<void>;
}

/** The contract's sections that an engine may not be able to take part in. */
export type OptionalSection = 'escalation' | 'stopBetweenStatements' | 'unreachable' | 'limits' | 'recovery';

const DEFAULT_LIMITS: EngineLimits = {
  maxResultRows: 1000,
  maxOutputBytes: 30 * 1024 * 1024,
  maxResultOutputBytes: 1024 * 1024,
};
/** The output cap of the limits section (a process engine's run past it fails as output_limit). */
const OUTPUT_CAP_BYTES = 64 * 1024;
/** How long a recovery's kill is given to show before its effect (or its absence) is judged. */
const RECOVER_SETTLES_MS = 100;
/** Bound on one optional or gated section's test. */
const SECTION_TIMEOUT_MS = 60_000;

const NS: Namespace = { projectId: 'contract', workspaceId: 'ws1' };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * True once `present` says false, polled every `everyMs` for at most `boundMs`; false if it still
 * says true then. For work a server ends a moment after it answered (or after the client's error).
 */
export async function goneWithin(
  present: () => Promise<boolean>,
  boundMs: number,
  everyMs = 10,
): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  while ((await present()) && Date.now() < deadline) await sleep(everyMs);
  return !(await present());
}

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

    function request(content: string, limits: EngineLimits = DEFAULT_LIMITS): EngineRunRequest {
      seq += 1;
      return {
        instanceId: `contract-${seq}`,
        namespace: NS,
        scriptType: fixture.scriptType,
        content,
        database: fixture.database ?? '',
        runDir: join(dir, `run-${seq}`),
        limits,
      };
    }

    /** Starts a run; `handle` resolves when the engine reports it. */
    function start(
      content: string,
      controller = new AbortController(),
      stopGraceMs = 500,
      limits: EngineLimits = DEFAULT_LIMITS,
      on: Engine = engine,
    ) {
      let reportHandle!: (h: RunHandle) => void;
      const handle = new Promise<RunHandle>((resolve) => (reportHandle = resolve));
      let handles = 0;
      const outcome: Promise<EngineOutcome> = on.run(request(content, limits), {
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
        // Bounded: an engine that ignores a limit would otherwise run its endless case for ever.
        it(title, { timeout: SECTION_TIMEOUT_MS }, () => test(value));
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

    optional(
      'unreachable',
      'fails a run as connect_failed, with a message naming the target, when its server cannot be reached',
      fixture.unreachable,
      async ({ createEngine, messageMatches }) => {
        const unreachable = await createEngine();
        try {
          const outcome = await start(
            fixture.succeeding.content,
            undefined,
            undefined,
            undefined,
            unreachable,
          ).outcome;
          assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
          assert.equal(outcome.kind === 'failed' ? outcome.reason : undefined, 'connect_failed');
          for (const pattern of messageMatches) {
            assert.match(outcome.kind === 'failed' ? outcome.message : '', pattern);
          }
        } finally {
          await unreachable.close();
        }
      },
    );

    optional(
      'limits',
      'keeps to its limit (rows or output) and leaves no work behind',
      fixture.limits,
      async (limit) => {
        if ('manyRows' in limit) {
          const run = start(`${limit.manyRows};\nSELECT 1 AS after_cap`, undefined, undefined, {
            ...DEFAULT_LIMITS,
            maxResultRows: 3,
          });
          const outcome = await run.outcome;
          assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome).slice(0, 500));
          const [capped, after] = outcome.results;
          assert.equal(capped?.rows.length, 3, JSON.stringify(capped?.rows));
          assert.equal(capped?.rowCount, 3);
          assert.equal(capped?.truncated, true);
          assert.deepEqual(after?.rows, [[1]], 'the statement after the capped one ran');
          assert.equal(after?.truncated, undefined);
          assert.equal(await fixture.workGone(await run.handle), true, 'the capped statement goes on');
        } else {
          const run = start(limit.endlessOutput, undefined, undefined, {
            ...DEFAULT_LIMITS,
            maxOutputBytes: OUTPUT_CAP_BYTES,
          });
          const outcome = await run.outcome;
          assert.equal(outcome.kind, 'failed', JSON.stringify(outcome).slice(0, 500));
          assert.equal(outcome.kind === 'failed' ? outcome.reason : undefined, 'output_limit');
          assert.match(outcome.kind === 'failed' ? outcome.message : '', /exceeds the 64 KiB/);
          assert.equal(await fixture.workGone(await run.handle), true, 'the work goes on past the limit');
        }
      },
    );

    // Gated by the engine itself: an engine has recover() exactly when its work can outlive the
    // server process, and then the fixture must exercise it (or name why it cannot).
    it(
      'recover() ends the work of a run left by an earlier server process, and only that work',
      { timeout: SECTION_TIMEOUT_MS },
      async (t) => {
        if (engine.recover === undefined) {
          assert.equal(
            fixture.recovery,
            undefined,
            'the fixture has a recovery case for an engine without recover()',
          );
          t.skip("the engine has no recover(): its work ends with the server's process");
          return;
        }
        const reason = fixture.skip?.recovery;
        if (fixture.recovery === undefined) {
          if (reason !== undefined) {
            t.skip(reason);
            return;
          }
          assert.fail(
            'the engine has recover(): the fixture gives neither a recovery case nor skip.recovery with the reason',
          );
        }
        const { createEngine, otherHandles, afterRecover } = fixture.recovery;
        const run = start(fixture.longRunning);
        const handle = await run.handle;
        await fixture.waitUntilWorking?.(handle);
        const restarted = await (createEngine ?? fixture.createEngine)();
        try {
          assert.ok(restarted.recover, 'the next process has recover() too');
          for (const other of otherHandles?.(handle) ?? []) {
            await restarted.recover(other);
            // A kill some servers carry out after answering (MySQL's KILL) would show by now.
            await sleep(RECOVER_SETTLES_MS);
            assert.equal(
              await fixture.workGone(handle),
              false,
              `recovering ${JSON.stringify(other)} ended this run`,
            );
          }
          await restarted.recover(handle);
          const outcome = await run.outcome;
          assert.equal(
            outcome.kind,
            'failed',
            `the run sees its work ended from outside: ${JSON.stringify(outcome).slice(0, 300)}`,
          );
          // recover() may answer before the server has finished the kill (MySQL's KILL CONNECTION
          // marks the thread, which ends a moment later): gone within a bound, not necessarily at once.
          assert.equal(
            await goneWithin(async () => !(await fixture.workGone(handle)), RECOVER_SETTLES_MS * 50, 20),
            true,
            'the work is still running after recover()',
          );
          await afterRecover?.(handle, outcome);
        } finally {
          run.controller.abort('stop');
          await run.outcome.catch(() => undefined);
          await restarted.close();
        }
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
