/** Small request/response helpers shared by the route modules. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { invalidParameter } from '../domain/dlf-error.js';
import { integerParam } from '../domain/integer-param.js';
import type { Namespace } from '../domain/script.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import { JSON_CONTENT_TYPE } from './error-handler.js';

export type Query = Record<string, string | string[] | undefined>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The matched route template once {@link routeOf} read it; '' when no route matched. */
    routeTemplate: string | null;
  }
}

/**
 * The matched route template (`/v1/:projectId/scripts`), undefined when no route matched. Fastify's
 * `request.routeOptions` is a getter that builds a new thirteen-field object on every read, and the
 * hooks of one request need the template four or five times (authentication, audit, metrics, the
 * access line): it is read once and kept on the request (decorated by buildApp).
 */
export function routeOf(request: FastifyRequest): string | undefined {
  let route = request.routeTemplate;
  if (route === null) route = request.routeTemplate = request.routeOptions.url ?? '';
  return route === '' ? undefined : route;
}

/**
 * No DataArts body nests deeper than a handful of levels. Deeper documents are refused before any
 * recursive code (JSON.stringify of a `configuration` value, error messages) can overflow the stack.
 */
export const MAX_JSON_DEPTH = 64;

/** Nesting depth of a text already known to be valid JSON: an iterative scan, no recursion. */
function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character (which may be a quote).
      if (c === 0x5c) i += 1;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth += 1;
      if (depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth -= 1;
  }
  return false;
}

/** Fatal: invalid UTF-8 is refused rather than silently turned into U+FFFD and stored. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses a raw body: empty ⇒ undefined (PY/GO send empty bodies with JSON content types).
 * Invalid UTF-8, malformed JSON and nesting deeper than {@link MAX_JSON_DEPTH} ⇒ DLF.3051.
 */
export function jsonBody(request: FastifyRequest): unknown {
  const raw = request.body;
  if (!Buffer.isBuffer(raw) || raw.length === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw invalidParameter('the request body is not valid UTF-8');
  }
  if (text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalidParameter('the request body is not valid JSON');
  }
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    throw invalidParameter(`the request body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  return parsed;
}

export function singleQuery(query: Query, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) throw invalidParameter(`${name} may be given only once`);
  return value;
}

/** `true`/`false` (any case); absent ⇒ false. DataArts documents `ischeck` as a string. */
export function booleanQuery(query: Query, name: string): boolean {
  const value = singleQuery(query, name);
  if (value === undefined || value === '') return false;
  const lower = value.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false' || lower === 'no') return false;
  throw invalidParameter(`${name} must be true or false`);
}

export function namespaceOf(
  workspaces: WorkspaceResolver,
  request: FastifyRequest<{ Params: { projectId?: string } }>,
): Namespace {
  const header = request.headers.workspace;
  if (Array.isArray(header)) throw invalidParameter('the workspace header may be given only once');
  return workspaces.resolve(request.params.projectId ?? '', header);
}

export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return sendJsonText(reply, status, JSON.stringify(body));
}

/** A body already serialised as JSON (as text, or UTF-8 bytes). */
export function sendJsonText(reply: FastifyReply, status: number, json: string | Buffer): FastifyReply {
  return reply.status(status).header('content-type', JSON_CONTENT_TYPE).send(json);
}

/**
 * `?offset=&limit=` of a paged extension read (log bytes, result rows): offset from 0, limit from 1
 * to `maxLimit`, each DLF.3051 naming the parameter when it is not such an integer.
 */
export function offsetAndLimit(
  query: Query,
  maxLimit: number,
  defaultLimit: number,
): { offset: number; limit: number } {
  return {
    offset: integerParam('offset', singleQuery(query, 'offset'), 0, Number.MAX_SAFE_INTEGER, 0),
    limit: integerParam('limit', singleQuery(query, 'limit'), 1, maxLimit, defaultLimit),
  };
}
