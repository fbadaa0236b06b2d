/**
 * One ClickHouse HTTP request at a time, with node:http/https: the SQL is the POST body, settings and
 * identifiers are URL parameters (URLSearchParams, never the path), credentials are the
 * `X-ClickHouse-User` / `X-ClickHouse-Key` headers (supported since long before 18.16).
 *
 * Why node:http and not fetch: fetch cannot bound the TCP/TLS connect on its own (only Node's
 * bundled undici Agent can, and undici is not a dependency), and a ClickHouse statement may rightly
 * send no header for minutes, so "time until response" is no connect timeout. Here the connect is
 * timed by the socket's own `connect` event.
 *
 * Connections are kept alive between requests (one TCP and TLS handshake saved per statement and per
 * KILL). The trap: ClickHouse closes idle keep-alive sockets after `keep_alive_timeout` (3 s in its
 * stock config), and a statement sent on a socket the server has just closed fails with
 * ECONNRESET — for an INSERT we could not tell whether it reached the server. So an idle socket is
 * dropped by us first: after `FREE_SOCKET_TIMEOUT_MS`, or one second before the `Keep-Alive:
 * timeout=<s>` the server announces if that is sooner (Node's agent honours the hint only when the
 * agent has a timeout of its own, hence the option).
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { describeDriverError } from '../driver-error.js';

export interface ClickHouseEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly secure: boolean;
  readonly connectTimeoutMs: number;
}

export interface ClickHouseRequest {
  readonly sql: string;
  readonly params: Readonly<Record<string, string>>;
  /** Aborting destroys the request: we stop waiting. The server may go on; KILL QUERY ends it there. */
  readonly signal?: AbortSignal;
  /** Receives the body of a 2xx response; returning false stops reading and closes the connection. */
  onText?(text: string): boolean;
}

/** The server answered with an error status; `message` is its exception text. */
export class ClickHouseServerError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ClickHouseServerError';
  }
}

/** No connection could be opened (refused, unknown host, TLS, connect timeout). */
export class ClickHouseConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClickHouseConnectError';
  }
}

/** An idle kept-alive socket is closed after this (well inside ClickHouse's stock 3 s). */
const FREE_SOCKET_TIMEOUT_MS = 2_000;

/** Bound on the exception text kept (exception texts are a few hundred characters). */
const MAX_ERROR_BODY_CHARS = 4_096;

/**
 * Whether a response comes from ClickHouse: it names itself in `X-ClickHouse-*` headers (display
 * name, query id, exception code, summary — which ones depends on the version), and an error body
 * of any version starts with `Code: <n>`. Anything else — a web server, a cloud metadata service, a
 * proxy's error page — is a foreign body that is never shown to the script's author: connections
 * must not become a way to read other HTTP services.
 */
function isClickHouseResponse(res: IncomingMessage): boolean {
  return Object.keys(res.headers).some((name) => name.startsWith('x-clickhouse-'));
}

const CLICKHOUSE_EXCEPTION = /^Code: \d+[.,]/;

/**
 * Header values are written as latin1 by Node: the UTF-8 bytes of a non-ASCII user name or
 * password, spelled as latin1 characters, reach the server as those same bytes.
 */
const headerValue = (value: string) => Buffer.from(value, 'utf8').toString('latin1');

export class ClickHouseHttp {
  private readonly inFlight = new Set<ClientRequest>();
  private closed = false;
  private readonly agent: http.Agent;

  constructor(private readonly endpoint: ClickHouseEndpoint) {
    const options: http.AgentOptions = { keepAlive: true, timeout: FREE_SOCKET_TIMEOUT_MS };
    this.agent = endpoint.secure ? new https.Agent(options) : new http.Agent(options);
  }

  /**
   * Sends one statement. Resolves `{ complete: true }` when the whole body was read, `{ complete:
   * false }` when `onText` asked to stop early. Rejects with ClickHouseServerError for an error
   * status, ClickHouseConnectError when no connection could be made, or the abort/socket error.
   */
  post(request: ClickHouseRequest): Promise<{ complete: boolean }> {
    if (this.closed) return Promise.reject(new Error('the ClickHouse engine is closed'));
    const { host, port, user, password, secure, connectTimeoutMs } = this.endpoint;
    const body = Buffer.from(request.sql, 'utf8');
    return new Promise((resolve, reject) => {
      let settled = false;
      let connected = false;
      const settle = (error: Error | undefined, complete = true) => {
        if (settled) return;
        settled = true;
        this.inFlight.delete(req);
        if (error) reject(error);
        else resolve({ complete });
      };
      let req: ClientRequest;
      try {
        req = (secure ? https : http).request({
          host,
          port,
          method: 'POST',
          path: `/?${new URLSearchParams(request.params).toString()}`,
          agent: this.agent,
          headers: {
            'Content-Type': 'text/plain; charset=UTF-8',
            'Content-Length': body.length,
            'X-ClickHouse-User': headerValue(user),
            'X-ClickHouse-Key': headerValue(password),
          },
          ...(request.signal ? { signal: request.signal } : {}),
        });
      } catch (error) {
        // Invalid header characters (a control character in the password) are thrown here.
        reject(new ClickHouseConnectError(describeDriverError(error)));
        return;
      }
      this.inFlight.add(req);

      req.on('socket', (socket) => {
        if (!socket.connecting) {
          connected = true;
          return;
        }
        const timer = setTimeout(
          () => req.destroy(new ClickHouseConnectError(`no connection within ${connectTimeoutMs} ms`)),
          connectTimeoutMs,
        );
        socket.once(secure ? 'secureConnect' : 'connect', () => {
          connected = true;
          clearTimeout(timer);
        });
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('error', (error) => {
        if (error instanceof ClickHouseConnectError || !connected) {
          settle(
            error.name === 'AbortError' ? error : new ClickHouseConnectError(describeDriverError(error)),
          );
        } else settle(error);
      });
      req.on('response', (res: IncomingMessage) => {
        res.setEncoding('utf8');
        const status = res.statusCode ?? 0;
        res.on('error', (error) => settle(error));
        res.on('close', () => {
          if (!res.complete)
            settle(new Error('the connection to ClickHouse closed before the response ended'));
        });
        const fromClickHouse = isClickHouseResponse(res);
        const unexpected = () =>
          new ClickHouseServerError(
            status,
            `unexpected response from ${host.includes(':') ? `[${host}]` : host}:${port} (HTTP ${status}): not a ClickHouse server`,
          );
        if (status < 200 || status >= 300) {
          let text = '';
          res.on('data', (chunk: string) => {
            if (text.length < MAX_ERROR_BODY_CHARS) text += chunk;
          });
          res.on('end', () => {
            const message = text.trim().slice(0, MAX_ERROR_BODY_CHARS);
            if (!fromClickHouse && !CLICKHOUSE_EXCEPTION.test(message)) {
              settle(unexpected());
              return;
            }
            settle(
              new ClickHouseServerError(
                status,
                message || `HTTP ${status} ${res.statusMessage ?? ''}`.trim(),
              ),
            );
          });
          return;
        }
        res.on('data', (chunk: string) => {
          if (settled) return;
          if (!fromClickHouse && chunk.length > 0) {
            // A success status with a body, from something that is not ClickHouse: never parsed into rows.
            settle(unexpected());
            req.destroy();
            return;
          }
          if (request.onText && !request.onText(chunk)) {
            settle(undefined, false);
            req.destroy();
          }
        });
        res.on('end', () => settle(undefined, true));
      });
      req.end(body);
    });
  }

  /** Destroys every request in flight; later requests are refused. */
  close(): void {
    this.closed = true;
    for (const req of this.inFlight) req.destroy(new Error('the ClickHouse engine was closed'));
    this.inFlight.clear();
    this.agent.destroy();
  }
}
