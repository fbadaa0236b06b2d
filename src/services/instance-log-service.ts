/**
 * Live logs (extension): the output of a Shell/Python instance read by byte range, while it runs
 * and after it ended, from any node. The log is the store's table, written in batches by the node
 * running the instance (runner/run-log-writer.ts), when several nodes share the store, and the
 * run's own output.log on a single node (runner/run-directory-logs.ts); either way it is complete
 * before the instance settles. `follow` walks the log for a stream: whatever is stored, then waits
 * for more (an append on this node, the settle, or a short poll: another node's appends are not
 * signalled), until the instance settles.
 *
 * Offsets are bytes of the output. Text is whole UTF-8 characters: a range that would end inside a
 * character ends before it (the offset handed back resumes there), except at the very end of a
 * settled instance's log.
 */
import { DlfError } from '../domain/dlf-error.js';
import type { Instance } from '../domain/instance.js';
import { isTerminal } from '../domain/instance-state.js';
import type { Namespace, ScriptType } from '../domain/script.js';
import type { InstanceLogStore, InstanceSignals, InstanceStore } from '../store/store.js';
import type { ExecutionService } from './execution-service.js';
import type { RunQueue } from './run-queue.js';
import type { ScriptService } from './script-service.js';

/** The script types whose runs keep a live log (the process engines: local and SSH). */
const LOGGED_TYPES: ReadonlySet<ScriptType> = new Set<ScriptType>(['Shell', 'PYTHON']);

/** Bytes per `data` event of a stream. */
export const STREAM_CHUNK_BYTES = 64 * 1024;
/**
 * How long a stream waits for news before it reads the store again: the bound on how late a
 * stream served by another node than the running one sees new output (appends there are not
 * signalled across nodes), on top of the writer's LOG_FLUSH_MS.
 */
export const LOG_POLL_MS = 500;

/** One page of `GET …/log`. */
export interface LogPage {
  /** The offset asked for. */
  offset: number;
  /** Where the next read starts (`offset` + the bytes of `text`). */
  nextOffset: number;
  /** Bytes stored so far. */
  size: number;
  /** True once the instance has settled and `nextOffset` reached the end: nothing more will come. */
  complete: boolean;
  text: string;
}

export type LogEvent =
  /** `text` is the bytes `[offset, nextOffset)` of the output. */
  | { kind: 'data'; offset: number; nextOffset: number; text: string }
  /**
   * The instance settled and every byte up to `offset` was delivered (or skipped by the caller);
   * `size` is the whole log's.
   */
  | { kind: 'end'; offset: number; size: number; instance: Instance };

/** Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes that start none). */
function sequenceLength(lead: number): number {
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 1;
}

/**
 * Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence (invalid
 * sequences are left as they are: they decode to U+FFFD either way).
 */
export function completeUtf8Length(bytes: Buffer): number {
  const length = bytes.length;
  for (let back = 1; back <= Math.min(4, length); back++) {
    const byte = bytes[length - back]!;
    // A continuation byte: the lead of its sequence is further back.
    if ((byte & 0xc0) === 0x80) continue;
    return back >= sequenceLength(byte) ? length : length - back;
  }
  return length;
}

/** `bytes` read at `offset` cut to whole characters, unless they are the end of a finished log. */
function wholeCharacters(bytes: Buffer, offset: number, size: number, finished: boolean): Buffer {
  if (finished && offset + bytes.length >= size) return bytes;
  return bytes.subarray(0, completeUtf8Length(bytes));
}

export class InstanceLogService {
  constructor(
    private readonly store: {
      readonly instances: Pick<InstanceStore, 'get'>;
      readonly signals: Pick<InstanceSignals, 'subscribe'>;
    },
    /** The store's table (several nodes) or the run directories' output.log files (one node). */
    private readonly logs: Pick<InstanceLogStore, 'read' | 'onAppend'>,
    private readonly scripts: Pick<ScriptService, 'get'>,
    private readonly executions: Pick<ExecutionService, 'getInstance'>,
    private readonly runs: Pick<RunQueue, 'runningHere' | 'waitUntilSettled'>,
  ) {}

  /**
   * The instance, checked like a result read (DLF.6201 script, DLF.6205 instance), and only for a
   * Shell/Python script (OPENDLF.0660 otherwise).
   */
  async instanceOf(ns: Namespace, scriptName: string, instanceId: string): Promise<Instance> {
    const instance = await this.executions.getInstance(ns, scriptName, instanceId);
    const script = await this.scripts.get(ns, scriptName);
    if (!LOGGED_TYPES.has(script.type)) {
      throw new DlfError(
        'OPENDLF.0660',
        `Live logs exist only for Shell and PYTHON script instances; ${script.name} is a ${script.type} script: read its results instead.`,
      );
    }
    return instance;
  }

  /** Up to `limit` bytes of the output from `offset`. */
  async read(
    ns: Namespace,
    scriptName: string,
    instanceId: string,
    offset: number,
    limit: number,
  ): Promise<LogPage> {
    const instance = await this.instanceOf(ns, scriptName, instanceId);
    // Read before the log: settled then, its log was already complete (stored before the settle).
    const finished = isTerminal(instance.state);
    const range = await this.logs.read(instanceId, offset, limit);
    const bytes = wholeCharacters(range.bytes, offset, range.size, finished);
    const nextOffset = offset + bytes.length;
    return {
      offset,
      nextOffset,
      size: range.size,
      complete: finished && nextOffset >= range.size,
      text: bytes.toString('utf8'),
    };
  }

  /**
   * The output from `from` on as it is stored, then `end` once the instance has settled and
   * everything was delivered. Returns early (without `end`) when `signal` aborts or the instance
   * is deleted meanwhile.
   */
  async *follow(instanceId: string, from: number, signal: AbortSignal): AsyncGenerator<LogEvent> {
    let offset = from;
    // A settled row read before the last log read: that read saw the complete log.
    let settled: Instance | undefined;
    while (!signal.aborted) {
      const range = await this.logs.read(instanceId, offset, STREAM_CHUNK_BYTES);
      const bytes = wholeCharacters(range.bytes, offset, range.size, settled !== undefined);
      if (bytes.length > 0) {
        const nextOffset = offset + bytes.length;
        yield { kind: 'data', offset, nextOffset, text: bytes.toString('utf8') };
        offset = nextOffset;
        continue;
      }
      if (settled) {
        yield { kind: 'end', offset, size: range.size, instance: settled };
        return;
      }
      const current = await this.store.instances.get(instanceId);
      if (!current) return;
      if (isTerminal(current.state)) {
        settled = current;
        continue;
      }
      await this.news(instanceId, signal);
    }
  }

  /**
   * Resolves when there may be more to read: an append on this node, the instance settling (held
   * here, or a `settled` signal from another node), LOG_POLL_MS, or `signal` aborting.
   */
  private news(instanceId: string, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const cleanups: (() => void)[] = [];
      let woken = false;
      const done = () => {
        if (woken) return;
        woken = true;
        for (const cleanup of cleanups) cleanup();
        resolve();
      };
      const timer = setTimeout(done, LOG_POLL_MS);
      cleanups.push(() => clearTimeout(timer));
      cleanups.push(
        this.logs.onAppend((id) => {
          if (id === instanceId) done();
        }),
      );
      cleanups.push(
        this.store.signals.subscribe((s) => {
          if (s.kind === 'settled' && s.instanceId === instanceId) done();
        }),
      );
      signal.addEventListener('abort', done, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', done));
      // Held here: its settle wakes this at once, without a store read (settle-waiters.ts).
      if (this.runs.runningHere(instanceId)) {
        void this.runs.waitUntilSettled(instanceId, LOG_POLL_MS).then((row) => {
          if (row) done();
        });
      }
    });
  }
}
