/**
 * Extension: every row of a statement's result, however large — pages (`offset`/`limit`) and whole
 * exports (CSV, JSON Lines) of statement n of a settled instance. Rows past the inline caps come
 * from the statement's spill (engines/result-spill.ts); a statement that fitted the caps is served
 * from the instance row itself, so every statement of every SQL instance pages the same way.
 */
import { Readable } from 'node:stream';
import { DlfError } from '../domain/dlf-error.js';
import type { StatementResult } from '../domain/instance.js';
import { isTerminal } from '../domain/instance-state.js';
import type { Namespace } from '../domain/script.js';
import type { ResultSpills } from '../engines/result-spill.js';
import { csvLine, csvLineFromJson } from './csv.js';
import type { ExecutionService } from './execution-service.js';

/** Rows per page when `limit` is absent, and at most. */
export const DEFAULT_PAGE_ROWS = 1_000;
export const MAX_PAGE_ROWS = 10_000;
/**
 * Characters of CSV gathered before a chunk is handed to the response: kept under V8's large-object
 * size (128 KiB), as the spill's 64 KiB reads are. With 256 KiB pieces and every row parsed into an
 * array, a 10M-row export grew the server's RSS by ~250 MiB; rows are now converted from their JSON
 * text (csvLineFromJson) and the export stays within a few MiB (bench/large-results.ts).
 */
const CSV_CHUNK_CHARS = 64 * 1024;

export interface ResultPage {
  readonly schema: readonly Record<string, string>[];
  /** Each row as its JSON array text. */
  readonly rows: readonly string[];
  /** Rows of the whole statement result (in the spill, or inline when it was not capped). */
  readonly rowCount: number;
  readonly offset: number;
  readonly limit: number;
  /** The spill limit (`maxSpillBytes`) ended the result before the statement's last row. */
  readonly truncated: boolean;
}

export interface ResultExport {
  readonly schema: readonly Record<string, string>[];
  /** The body, produced as the response consumes it. */
  readonly body: Readable;
}

/** Where the rows of a statement are: the spill, or the instance row. */
type RowSource =
  | {
      readonly kind: 'spill';
      readonly spills: ResultSpills;
      readonly instanceId: string;
      readonly index: number;
    }
  | { readonly kind: 'inline'; readonly result: StatementResult };

interface Located {
  readonly schema: readonly Record<string, string>[];
  readonly rowCount: number;
  readonly truncated: boolean;
  readonly source: RowSource;
}

export class ResultService {
  constructor(
    private readonly executions: ExecutionService,
    /** Absent: spills are off on this server; only results that fitted the caps can be paged. */
    private readonly spills: ResultSpills | undefined,
  ) {}

  async page(
    ns: Namespace,
    scriptName: string,
    instanceId: string,
    index: number,
    offset: number,
    limit: number,
  ): Promise<ResultPage> {
    const located = await this.locate(ns, scriptName, instanceId, index);
    const { source } = located;
    const rows =
      source.kind === 'spill'
        ? await source.spills.page(source.instanceId, source.index, offset, limit)
        : source.result.rows.slice(offset, offset + limit).map((row) => JSON.stringify(row));
    return {
      schema: located.schema,
      rows,
      rowCount: located.rowCount,
      offset,
      limit,
      truncated: located.truncated,
    };
  }

  /** The whole result as CSV: a header row of column names, then every row (csv.ts). */
  async csv(ns: Namespace, scriptName: string, instanceId: string, index: number): Promise<ResultExport> {
    const located = await this.locate(ns, scriptName, instanceId, index);
    const header = csvLine(located.schema.map((column) => Object.keys(column)[0] ?? ''));
    const batches = this.batches(located.source);
    async function* chunks(): AsyncGenerator<string> {
      let chunk = header;
      for await (const batch of batches) {
        for (const json of batch) {
          chunk += csvLineFromJson(json);
          if (chunk.length >= CSV_CHUNK_CHARS) {
            yield chunk;
            chunk = '';
          }
        }
      }
      if (chunk !== '') yield chunk;
    }
    return { schema: located.schema, body: Readable.from(chunks(), { objectMode: false }) };
  }

  /** The whole result as JSON Lines: one JSON array per row, in `schema` order. */
  async jsonLines(
    ns: Namespace,
    scriptName: string,
    instanceId: string,
    index: number,
  ): Promise<ResultExport> {
    const located = await this.locate(ns, scriptName, instanceId, index);
    const { source } = located;
    if (source.kind === 'spill') {
      return { schema: located.schema, body: source.spills.jsonLines(source.instanceId, source.index) };
    }
    const text = source.result.rows.map((row) => `${JSON.stringify(row)}\n`).join('');
    return { schema: located.schema, body: Readable.from([text], { objectMode: false }) };
  }

  private batches(source: RowSource): AsyncIterable<readonly string[]> {
    if (source.kind === 'spill') return source.spills.lines(source.instanceId, source.index);
    // One batch: the inline rows are already in memory (and within the caps).
    return toAsync([source.result.rows.map((row) => JSON.stringify(row))]);
  }

  /**
   * Statement `index` of a settled instance of the script: its spill when it has one, else its
   * inline rows when those are all of them. DLF.6201/6205 as a result read; OPENDLF.0650–0652.
   */
  private async locate(
    ns: Namespace,
    scriptName: string,
    instanceId: string,
    index: number,
  ): Promise<Located> {
    const instance = await this.executions.getInstance(ns, scriptName, instanceId);
    if (!isTerminal(instance.state)) throw new DlfError('OPENDLF.0651');
    const result = instance.results[index];
    if (!result) {
      throw new DlfError(
        'OPENDLF.0650',
        `The instance has no statement result ${index}: it has ${instance.results.length} (numbered from 0).`,
      );
    }
    const { spills } = this;
    const spilled = await spills?.describe(instance.id, index);
    if (spills && spilled) {
      return {
        schema: spilled.schema,
        rowCount: spilled.rowCount,
        truncated: spilled.truncated,
        source: { kind: 'spill', spills, instanceId: instance.id, index },
      };
    }
    // Shell/Python output is not a table of rows to export; its `rows` are the output lines, so
    // they page like any other result that fitted the caps.
    if (result.truncated) throw new DlfError('OPENDLF.0652');
    return {
      schema: result.schema,
      rowCount: result.rows.length,
      truncated: false,
      source: { kind: 'inline', result },
    };
  }
}

function toAsync<T>(items: readonly T[]): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]: () => {
      let next = 0;
      return {
        next: () =>
          Promise.resolve(
            next < items.length
              ? { done: false as const, value: items[next++] as T }
              : { done: true as const, value: undefined },
          ),
      };
    },
  };
}
