/**
 * The one place that turns errors into responses. A DlfError becomes its registry status and the
 * DLF envelope; framework errors (body too large, bad request line) map to documented codes;
 * a full disk (ENOSPC, SQLITE_FULL) is OPENDLF.0507; anything else is logged with the request id and
 * answered as a generic 500 without internals.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DlfError, ERROR_REGISTRY, type DlfErrorCode } from '../domain/dlf-error.js';
import { isStorageFull } from '../domain/storage-full.js';

export const JSON_CONTENT_TYPE = 'application/json;charset=UTF-8';

/** PY reads the top-level pair; Terraform reads `errors[0]` for some calls: send both (compatibility.md §2). */
export function errorBody(code: DlfErrorCode, message: string) {
  return { error_code: code, error_msg: message, errors: [{ error_code: code, error_msg: message }] };
}

export function sendError(reply: FastifyReply, code: DlfErrorCode, message?: string): FastifyReply {
  const entry = ERROR_REGISTRY[code];
  return reply
    .status(entry.status)
    .header('content-type', JSON_CONTENT_TYPE)
    .send(errorBody(code, message ?? entry.message));
}

export function handleError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  if (error instanceof DlfError) {
    // Not a bug, but the operator's to know (the cause names the failed link or the missed deadline).
    if (error.code === 'OPENDLF.0504') request.log.warn({ err: error }, 'store unavailable');
    return sendError(reply, error.code, error.message);
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return sendError(reply, 'APIGW.0201');
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return sendError(reply, 'DLF.3051', `The request parameter is invalid: ${fastifyError.message}`);
  }
  if (isStorageFull(error)) {
    // The environment's failure, not a bug: named to the caller, and it clears once space is freed.
    request.log.error({ err: error }, 'storage full');
    return sendError(reply, 'OPENDLF.0507');
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendError(reply, 'OPENDLF.0500');
}

/**
 * Fastify's `frameworkErrors`: router failures that happen before any hook runs (so without the
 * x-request-id the onRequest hook sets): a path whose %-escapes do not decode (`%ZZ`, overlong UTF-8
 * such as `%C0%AF`) or a path parameter longer than `maxParamLength`. Both are invalid parameters.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  void reply.header('x-request-id', request.id);
  if (error.code === 'FST_ERR_BAD_URL') {
    void sendError(
      reply,
      'DLF.3051',
      'The request parameter is invalid: the URL path is not validly percent-encoded',
    );
  } else if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void sendError(reply, 'DLF.3051', 'The request parameter is invalid: a URL path segment is too long');
  } else {
    void handleError(error, request, reply);
  }
}

/**
 * onRequest hook: HTTP/1.1 requires a Host header (RFC 9112 §3.2). node:http would answer its
 * absence itself with a bodiless 400, so its check is turned off (`requireHostHeader: false`) and
 * done here, with the DLF envelope.
 */
export function requireHostHeader(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
    void sendError(reply, 'DLF.3051', 'The request parameter is invalid: the Host header is required');
    return;
  }
  done();
}

/** `withBody: false` for HEAD: a body there would be read as the start of the next response. */
function rawErrorResponse(code: DlfErrorCode, message: string, withBody = true): string {
  const status = ERROR_REGISTRY[code].status;
  const body = JSON.stringify(errorBody(code, message));
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `x-request-id: ${randomUUID()}\r\n` +
    `content-type: ${JSON_CONTENT_TYPE}\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    `connection: close\r\n\r\n${withBody ? body : ''}`
  );
}

/**
 * Fastify's `clientErrorHandler`: the HTTP parser refused the request (bad request line or header
 * characters, unknown method, conflicting Content-Length/Transfer-Encoding, headers over the size
 * limit, header timeout). No request object exists, so the DLF envelope is written to the socket
 * directly, with `Connection: close` because the connection cannot be reused.
 */
export function handleClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code: DlfErrorCode =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? 'OPENDLF.0431'
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 'OPENDLF.0408'
        : 'DLF.3051';
  const message =
    code === 'DLF.3051'
      ? 'The request parameter is invalid: malformed HTTP request'
      : ERROR_REGISTRY[code].message;
  // A response already under way (parser error in a pipelined request) must not be interleaved.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  const { rawPacket, bytesParsed } = error as { rawPacket?: unknown; bytesParsed?: unknown };
  const head =
    Buffer.isBuffer(rawPacket) &&
    refusedRequestMethod(rawPacket, typeof bytesParsed === 'number' ? bytesParsed : rawPacket.length) ===
      'HEAD';
  if (socket.writable && !inFlight?.headersSent) socket.write(rawErrorResponse(code, message, !head));
  socket.destroy(error);
}

/**
 * The method of the request the parser refused, read from the chunk it was parsing. The chunk need
 * not start with that request: on a kept-alive connection it can begin with the rest of the previous
 * request's body (the server may answer before reading all of it, and the client then sends the next
 * request right behind it, without a line break). So the method is the token before the request
 * target on the line where parsing stopped (an error in the request line), or on the last complete
 * request line before it (an error in a header). Undefined when no request line is in the chunk.
 */
export function refusedRequestMethod(packet: Buffer, bytesParsed: number): string | undefined {
  // Linear scans only, no regular expressions: the chunk can be as long as the header size limit.
  const end = Math.max(0, Math.min(bytesParsed + 1, packet.length));
  const text = packet.subarray(0, end).toString('latin1');
  const lineStart = text.lastIndexOf('\n') + 1;
  // The line where parsing stopped: an error within the target (the method is before the last
  // space), or at or after its end (before the one before it: the header size limit can be reached
  // right at the space before the version).
  const lastSpace = text.lastIndexOf(' ');
  if (lastSpace >= lineStart) {
    const method =
      uppercaseRunBefore(text, lastSpace, lineStart) ??
      uppercaseRunBefore(text, text.lastIndexOf(' ', lastSpace - 1), lineStart);
    if (method !== undefined) return method;
  }
  // An error in a header: the last complete request line before it ("METHOD target HTTP/x.y").
  let lineEnd = lineStart - 1;
  while (lineEnd > 0) {
    const start = text.lastIndexOf('\n', lineEnd - 1) + 1;
    const line = text.slice(start, text[lineEnd - 1] === '\r' ? lineEnd - 1 : lineEnd);
    const versionAt = line.length - ' HTTP/1.1'.length;
    if (versionAt > 0 && line.startsWith(' HTTP/', versionAt)) {
      const method = uppercaseRunBefore(line, line.lastIndexOf(' ', versionAt - 1), 0);
      if (method !== undefined) return method;
    }
    lineEnd = start - 1;
  }
  return undefined;
}

/** The run of A-Z letters that ends just before `index` (not before `floor`), if any. */
function uppercaseRunBefore(text: string, index: number, floor: number): string | undefined {
  if (index <= floor) return undefined;
  let start = index;
  while (start > floor && text.charCodeAt(start - 1) >= 65 && text.charCodeAt(start - 1) <= 90) start--;
  return start < index ? text.slice(start, index) : undefined;
}

/**
 * Requests node:http answers itself unless told otherwise, bypassing fastify: CONNECT (the socket
 * would be dropped without a response) and an `Expect` other than 100-continue (a bare 417).
 */
export function installServerErrorHandlers(server: Server): void {
  server.on('connect', (_request: IncomingMessage, socket: Socket) => {
    if (socket.writable) socket.write(rawErrorResponse('APIGW.0101', ERROR_REGISTRY['APIGW.0101'].message));
    socket.destroy();
  });
  server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) => {
    const body = JSON.stringify(errorBody('OPENDLF.0417', ERROR_REGISTRY['OPENDLF.0417'].message));
    response.writeHead(417, {
      'x-request-id': randomUUID(),
      'content-type': JSON_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    response.end(body);
  });
}
