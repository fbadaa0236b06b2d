/**
 * A typed client of the opendlf HTTP API (the DataArts Factory script API plus opendlf's
 * extensions), shared by the `opendlf` command line, the web console and the tests.
 *
 * Only `fetch`, `URL`, `TextEncoder` and `AbortSignal`: no `node:` import, so the same module runs in
 * Node and in a browser. Authentication is pluggable: none, a token (`X-Auth-Token`), or an async
 * signer callback that returns the headers to send (the AK/SK signers in `aksk-signer.ts`, with
 * `node-signer.ts` for Node and `web-crypto-signer.ts` for browsers).
 *
 * Every non-2xx answer becomes an `ApiError` carrying the DLF body (`error_code`, `error_msg`); a
 * request that never got an answer (refused, DNS, timeout) is an `ApiError` with status 0.
 */

/** What a signer sees: the request exactly as it will be sent (absolute URL, headers set so far). */
export interface SignableRequest {
  method: string;
  /** Absolute URL as it goes on the wire (path and query already encoded). */
  url: string;
  /** Headers set before signing (`Content-Type`, `workspace`, …); the signer must not drop them. */
  headers: Record<string, string>;
  /** The body as sent (UTF-8), undefined for none. */
  body: string | undefined;
}

/** Returns the complete header set to send: the request's headers plus the signature's. */
export type RequestSigner = (request: SignableRequest) => Promise<Record<string, string>>;

export type ClientAuth =
  { kind: 'none' } | { kind: 'token'; token: string } | { kind: 'signer'; sign: RequestSigner };

export interface ApiClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:8080` (a trailing `/` is ignored). */
  endpoint: string;
  projectId: string;
  /** Sent as the `workspace` header on every request when set. */
  workspace?: string;
  /** Default: none. */
  auth?: ClientAuth;
  /**
   * Per-request timeout in ms, on top of any long-poll wait the call asks for. Default 30 s: long
   * enough for a stop (which answers once the instance is terminal, bounded by the server's
   * `stopWaitMs`), short enough that a dead server does not hang a terminal.
   */
  timeoutMs?: number;
  /** Defaults to the global `fetch`; tests and the console may pass their own. */
  fetch?: typeof fetch;
}

/** Default request timeout; see `ApiClientOptions.timeoutMs`. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** A DLF error answer, or status 0 when no answer came. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    /** HTTP status; 0 when the request got no answer. */
    readonly status: number,
    /** The DLF code (`DLF.6201`, `APIGW.0301`, …); `HTTP.<status>` for a non-DLF answer, `NETWORK` for none. */
    readonly error_code: string,
    readonly error_msg: string,
    /** The server's `X-Request-Id`, when it answered. */
    readonly requestId?: string,
  ) {
    super(`${error_code}: ${error_msg}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Wire shapes (docs/compatibility.md; extensions are optional so the client also reads DataArts).

/** The script types the server accepts, exactly as DataArts spells them. */
export { SCRIPT_TYPES } from '../domain/script-types.js';

export interface ScriptInput {
  name: string;
  type: string;
  content: string;
  directory?: string;
  connectionName?: string;
  database?: string;
  queueName?: string;
  configuration?: Record<string, string>;
  description?: string;
  targetStatus?: string;
  approvers?: { approverName: string }[];
}

export interface Script extends ScriptInput {
  id?: string;
  owner?: string;
  version?: number;
  createUser?: string;
  approvalStatus?: string;
}

export interface ScriptPage {
  total: number;
  scripts: Script[];
}

/** The four documented statuses; `detailedStatus` (extension) says more. */
export type ApiStatus = 'LAUNCHING' | 'RUNNING' | 'FINISHED' | 'FAILED';
export const TERMINAL_STATUSES: readonly ApiStatus[] = ['FINISHED', 'FAILED'];

export interface StatementResult {
  /** Ordered single-key objects `{"column":"type"}`. */
  schema: Record<string, string>[];
  rows: unknown[][];
  rowCount: number;
  duration: number;
  message: string;
  truncated?: boolean;
  rawResult?: string;
}

/** Instance fields besides the results (all but `status` are opendlf extensions). */
export interface InstanceSummary {
  status: ApiStatus;
  message?: string;
  instanceId?: string;
  scriptName?: string;
  detailedStatus?: string;
  failureReason?: string | null;
  sqlState?: string | null;
  connectionName?: string | null;
  engine?: string | null;
  createTime?: string | null;
  startTime?: string | null;
  endTime?: string | null;
  stopRequestTime?: string | null;
  stoppedBy?: string | null;
  startedBy?: string | null;
  exitCode?: number | null;
  nodeId?: string | null;
  duration?: number | null;
  [extra: string]: unknown;
}

export interface InstanceResult extends InstanceSummary {
  results: StatementResult[];
}

export interface InstancePage {
  total: number;
  instances: InstanceSummary[];
}

/** `{instanceId}`, plus the result when `waitSeconds` was given and the run settled in time. */
export type ExecuteResponse = { instanceId: string } & Partial<InstanceResult>;

export interface ResultPage {
  schema: Record<string, string>[];
  rows: unknown[][];
  /** Rows in the whole statement result. */
  rowCount: number;
  offset: number;
  limit: number;
  truncated?: boolean;
}

export interface LogChunk {
  offset: number;
  nextOffset: number;
  /** Bytes of output so far (when the server says). */
  size?: number;
  /** True once the instance settled and every byte has been read. */
  complete: boolean;
  text: string;
}

export interface Connection {
  name: string;
  type: string;
  config: Record<string, string | boolean>;
  description?: string;
}

export interface ConnectionPage {
  total: number;
  connections: Connection[];
}

export interface InstanceQuery {
  /** API statuses, e.g. `['FAILED']`. */
  status?: string[];
  detailedStatus?: string[];
  /** ISO-8601 or epoch ms bound on the creation time. */
  from?: string;
  to?: string;
  offset?: number;
  limit?: number;
  /** Workspace listing only: exact script name. */
  scriptName?: string;
}

type QueryValue = string | number | boolean | undefined;

// ---------------------------------------------------------------------------------------------------

/** RFC 3986 unreserved kept, everything else `%XX` (what the official SDKs put on the wire). */
export function encodeRfc3986(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

function queryString(query: Record<string, QueryValue> | undefined): string {
  if (!query) return '';
  const parts = Object.entries(query)
    .filter((entry): entry is [string, string | number | boolean] => entry[1] !== undefined)
    .map(([key, value]) => `${encodeRfc3986(key)}=${encodeRfc3986(String(value))}`);
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

interface CallOptions {
  query?: Record<string, QueryValue>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Added to the timeout: a long poll may legitimately take this long. */
  waitMs?: number;
  signal?: AbortSignal;
}

export class DlfApiClient {
  readonly endpoint: string;
  readonly projectId: string;
  readonly workspace: string | undefined;
  private readonly auth: ClientAuth;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ApiClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '');
    this.projectId = options.projectId;
    this.workspace = options.workspace === '' ? undefined : options.workspace;
    this.auth = options.auth ?? { kind: 'none' };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Bound to globalThis: a browser's fetch throws "Illegal invocation" when called as a method.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  // ---- scripts ------------------------------------------------------------------------------------

  listScripts(query: { offset?: number; limit?: number; scriptName?: string } = {}): Promise<ScriptPage> {
    return this.json<ScriptPage>('GET', this.scriptsPath(), { query });
  }

  /** Every script (pages of 1000, the API's maximum), optionally filtered by name substring. */
  async listAllScripts(scriptName?: string): Promise<Script[]> {
    const scripts: Script[] = [];
    for (;;) {
      const page = await this.listScripts({ offset: scripts.length, limit: 1000, scriptName });
      scripts.push(...page.scripts);
      if (page.scripts.length === 0 || scripts.length >= page.total) return scripts;
    }
  }

  getScript(name: string): Promise<Script> {
    return this.json<Script>('GET', this.scriptPath(name));
  }

  async createScript(script: ScriptInput): Promise<void> {
    await this.call('POST', this.scriptsPath(), { body: script });
  }

  async updateScript(name: string, script: Omit<ScriptInput, 'name'> & { name?: string }): Promise<void> {
    await this.call('PUT', this.scriptPath(name), { body: script });
  }

  async deleteScript(name: string): Promise<void> {
    await this.call('DELETE', this.scriptPath(name));
  }

  /**
   * `waitSeconds` (0-60, extension) waits for the instance to settle and then includes its result;
   * `idempotencyKey` (extension) makes a retried execute return the first instance.
   */
  executeScript(
    name: string,
    params?: Record<string, string>,
    options: { waitSeconds?: number; idempotencyKey?: string; timeoutSeconds?: number } = {},
  ): Promise<ExecuteResponse> {
    const body: Record<string, unknown> = {};
    if (params && Object.keys(params).length > 0) body.params = params;
    if (options.timeoutSeconds !== undefined) body.timeoutSeconds = options.timeoutSeconds;
    return this.json<ExecuteResponse>('POST', `${this.scriptPath(name)}/execute`, {
      body,
      query: { waitSeconds: options.waitSeconds },
      headers: options.idempotencyKey === undefined ? {} : { 'Idempotency-Key': options.idempotencyKey },
      waitMs: (options.waitSeconds ?? 0) * 1000,
    });
  }

  // ---- instances ----------------------------------------------------------------------------------

  /** `waitSeconds` (0-60, extension): answers as soon as the instance settles, or after that long. */
  getInstance(
    name: string,
    instanceId: string,
    options: { waitSeconds?: number; signal?: AbortSignal } = {},
  ): Promise<InstanceResult> {
    return this.json<InstanceResult>('GET', this.instancePath(name, instanceId), {
      query: { waitSeconds: options.waitSeconds },
      waitMs: (options.waitSeconds ?? 0) * 1000,
      signal: options.signal,
    });
  }

  /** Idempotent: stopping a terminal instance changes nothing. Returns once the instance is terminal. */
  async stopInstance(name: string, instanceId: string): Promise<void> {
    await this.call('POST', `${this.instancePath(name, instanceId)}/stop`);
  }

  /** Run history of one script, newest first (extension). */
  listScriptInstances(name: string, query: Omit<InstanceQuery, 'scriptName'> = {}): Promise<InstancePage> {
    return this.json<InstancePage>('GET', `${this.scriptPath(name)}/instances`, {
      query: instanceQuery(query),
    });
  }

  /** Run history of the workspace, newest first (extension). */
  listInstances(query: InstanceQuery = {}): Promise<InstancePage> {
    return this.json<InstancePage>('GET', `/v1/${encodeRfc3986(this.projectId)}/instances`, {
      query: { ...instanceQuery(query), scriptName: query.scriptName },
    });
  }

  /** One page of statement `statement`'s (0-based) full result (extension). */
  getResultPage(
    name: string,
    instanceId: string,
    statement: number,
    page: { offset?: number; limit?: number } = {},
  ): Promise<ResultPage> {
    return this.json<ResultPage>('GET', `${this.instancePath(name, instanceId)}/results/${statement}`, {
      query: page,
    });
  }

  /**
   * A whole statement result as CSV or JSON Lines (extension). The response is returned unread so a
   * caller can stream its body (`response.body`) instead of holding it in memory.
   */
  downloadResult(
    name: string,
    instanceId: string,
    statement: number,
    format: 'csv' | 'jsonl',
  ): Promise<Response> {
    return this.call('GET', `${this.instancePath(name, instanceId)}/results/${statement}.${format}`);
  }

  /** Output of a Shell/Python instance from byte `offset` (extension). */
  getLog(
    name: string,
    instanceId: string,
    range: { offset?: number; limit?: number } = {},
    signal?: AbortSignal,
  ): Promise<LogChunk> {
    return this.json<LogChunk>('GET', `${this.instancePath(name, instanceId)}/log`, {
      query: range,
      signal,
    });
  }

  // ---- connections --------------------------------------------------------------------------------

  listConnections(
    query: { offset?: number; limit?: number; connectionName?: string; includeExtensionTypes?: boolean } = {},
  ): Promise<ConnectionPage> {
    return this.json<ConnectionPage>('GET', this.connectionsPath(), { query });
  }

  getConnection(name: string): Promise<Connection> {
    return this.json<Connection>('GET', `${this.connectionsPath()}/${encodeRfc3986(name)}`);
  }

  /**
   * Connects to the target and runs the smallest script (`SELECT 1`, `exit 0`): the v1 API has no
   * test call, so this is an edit with `ischeck=true` sending the connection back unchanged (the
   * masked secrets mean "keep the stored one"). It therefore needs the right to edit connections.
   */
  async testConnection(name: string): Promise<void> {
    const connection = await this.getConnection(name);
    await this.call('PUT', `${this.connectionsPath()}/${encodeRfc3986(name)}`, {
      query: { ischeck: true },
      body: {
        name: connection.name,
        type: connection.type,
        config: connection.config,
        description: connection.description ?? '',
      },
    });
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  private scriptsPath(): string {
    return `/v1/${encodeRfc3986(this.projectId)}/scripts`;
  }

  private scriptPath(name: string): string {
    return `${this.scriptsPath()}/${encodeRfc3986(name)}`;
  }

  private instancePath(name: string, instanceId: string): string {
    return `${this.scriptPath(name)}/instances/${encodeRfc3986(instanceId)}`;
  }

  private connectionsPath(): string {
    return `/v1/${encodeRfc3986(this.projectId)}/connections`;
  }

  private async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const response = await this.call(method, path, options);
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(
        response.status,
        `HTTP.${response.status}`,
        `the server answered ${method} ${path} with a body that is not JSON`,
        response.headers.get('x-request-id') ?? undefined,
      );
    }
  }

  /** Sends one request; resolves with a 2xx response, rejects with an ApiError otherwise. */
  async call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
    const url = `${this.endpoint}${path}${queryString(options.query)}`;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    let headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
    if (body !== undefined) headers['Content-Type'] = 'application/json;charset=utf-8';
    if (this.workspace !== undefined) headers['workspace'] = this.workspace;
    if (this.auth.kind === 'token') headers['X-Auth-Token'] = this.auth.token;
    if (this.auth.kind === 'signer') headers = await this.auth.sign({ method, url, headers, body });

    const timeout = AbortSignal.timeout(this.timeoutMs + (options.waitMs ?? 0));
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let response: Response;
    try {
      response = await this.fetchImpl(url, { method, headers, body, signal });
    } catch (error) {
      if (options.signal?.aborted) throw error; // The caller's own cancel is not a network failure.
      const reason = timeout.aborted
        ? `no answer within ${Math.round((this.timeoutMs + (options.waitMs ?? 0)) / 1000)} s`
        : describeFetchError(error);
      throw new ApiError(0, 'NETWORK', `${method} ${this.endpoint}: ${reason}`);
    }
    if (response.ok) return response;
    throw await errorOf(response);
  }
}

function instanceQuery(query: InstanceQuery): Record<string, QueryValue> {
  return {
    status: query.status?.join(','),
    detailedStatus: query.detailedStatus?.join(','),
    from: query.from,
    to: query.to,
    offset: query.offset,
    limit: query.limit,
  };
}

/** Undici wraps the useful part ("ECONNREFUSED …") in `cause`. */
function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    return typeof code === 'string' ? `${code} (${cause.message})` : cause.message;
  }
  return error.message;
}

async function errorOf(response: Response): Promise<ApiError> {
  const requestId = response.headers.get('x-request-id') ?? undefined;
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error_code?: unknown; error_msg?: unknown };
    if (typeof body.error_code === 'string' && typeof body.error_msg === 'string') {
      return new ApiError(response.status, body.error_code, body.error_msg, requestId);
    }
  } catch {
    // Not a DLF body (a proxy's HTML page, say): fall through to the generic error.
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(
    response.status,
    `HTTP.${response.status}`,
    snippet === '' ? response.statusText || 'error' : snippet,
    requestId,
  );
}
