/**
 * A fake engine for fast unit tests of the runner: what a run does is chosen by its script content,
 * and the test can watch runs start and release them. No processes, no database.
 *
 *   ok            succeeds at once with one result row
 *   fail          fails at once (an SQL error with a SQLSTATE)
 *   hang          reports its handle, then waits for the abort and reports `aborted`
 *   hang-silent   waits for the abort without ever reporting a handle (the launching phase)
 *   gate          reports its handle, then waits until `release(id)` (or the abort)
 *   finish-late   reports its handle; on abort it still succeeds (the work completed first)
 *   gate-ends-with-process  as gate, but its handle is reported as work that ends by itself when
 *                 this process is gone (a PostgreSQL session with the connection check)
 */
import type { RunHandle } from '../../src/domain/instance.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../../src/engines/engine.js';

export class FakeEngine implements Engine {
  readonly name = 'fake';
  readonly capabilities = { recoversFromAnyNode: false } as const;
  /** Present when constructed `recoverable` (the Engine port's sign that work outlives the process). */
  readonly recover?: (handle: RunHandle) => Promise<void>;
  /** Instance ids in the order their runs started. */
  readonly started: string[] = [];
  /** Handles passed to `recover`. */
  readonly recovered: RunHandle[] = [];
  private readonly startWaiters = new Map<string, () => void>();
  private readonly gates = new Map<string, () => void>();

  /** @param recoverable true: behaves like a process engine (RUNNING is written before the work). */
  constructor(recoverable = false) {
    if (recoverable) {
      this.recover = (handle) => {
        this.recovered.push(handle);
        return Promise.resolve();
      };
    }
  }

  readonly connectionProbe = { scriptType: 'Shell', content: 'exit 0' } as const;

  supports(): boolean {
    return true;
  }

  /** Resolves once the run of `id` has started (and reported its handle, if it does). */
  whenStarted(id: string): Promise<void> {
    if (this.started.includes(id)) return Promise.resolve();
    return new Promise((resolve) => this.startWaiters.set(id, resolve));
  }

  /** Lets a `gate` run succeed. */
  release(id: string): void {
    this.gates.get(id)?.();
  }

  async run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    const id = request.instanceId;
    const results = [{ schema: [{ one: 'INTEGER' }], rows: [[1]], rowCount: 1, duration: 0, message: '' }];
    const started = () => {
      this.started.push(id);
      this.startWaiters.get(id)?.();
    };
    const aborted = new Promise<void>((resolve) => {
      if (context.signal.aborted) resolve();
      context.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    switch (request.content) {
      case 'ok':
        started();
        return { kind: 'succeeded', results };
      case 'fail':
        started();
        return { kind: 'failed', results: [], message: 'relation "nope" does not exist', sqlState: '42P01' };
      case 'hang-silent':
        started();
        await aborted;
        return { kind: 'aborted', results: [] };
      case 'hang':
        await context.reportHandle({ engine: this.name });
        started();
        await aborted;
        return { kind: 'aborted', results: [] };
      case 'gate': {
        await context.reportHandle({ engine: this.name });
        const released = new Promise<void>((resolve) => this.gates.set(id, resolve));
        started();
        await Promise.race([released, aborted]);
        return context.signal.aborted ? { kind: 'aborted', results: [] } : { kind: 'succeeded', results };
      }
      case 'gate-ends-with-process': {
        await context.reportHandle({ engine: this.name }, { endsWithThisProcess: true });
        const released = new Promise<void>((resolve) => this.gates.set(id, resolve));
        started();
        await Promise.race([released, aborted]);
        return context.signal.aborted ? { kind: 'aborted', results: [] } : { kind: 'succeeded', results };
      }
      case 'unserialisable':
        // A value JSON cannot hold: saving the results throws while the settle is written.
        started();
        return { kind: 'succeeded', results: [{ ...results[0]!, rows: [[1n]] }] };
      case 'fail-unserialisable':
        started();
        return {
          kind: 'failed',
          results: [{ ...results[0]!, rows: [[1n]] }],
          message: 'relation "nope" does not exist',
          sqlState: '42P01',
        };
      case 'hang-unserialisable':
        await context.reportHandle({ engine: this.name });
        started();
        await aborted;
        return { kind: 'aborted', results: [{ ...results[0]!, rows: [[1n]] }] };
      case 'finish-late':
        await context.reportHandle({ engine: this.name });
        started();
        await aborted;
        return { kind: 'succeeded', results };
      default:
        throw new Error(`fake engine: unknown content ${request.content}`);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
