/** Small request/response helpers shared by the route modules. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { invalidParameter } from '../domain/dlf-error.js';
import type { Namespace } from '../domain/script.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import { JSON_CONTENT_TYPE } from './error-handler.js';

export type Query = Record<string, string | string[] | undefined>;

/** Parses a raw body: empty ⇒ undefined (PY/GO send empty bodies with JSON content types). */
export function jsonBody(request: FastifyRequest): unknown {
  const raw = request.body;
  if (!Buffer.isBuffer(raw) || raw.length === 0) return undefined;
  const text = raw.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalidParameter('the request body is not valid JSON');
  }
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
  return reply.status(status).header('content-type', JSON_CONTENT_TYPE).send(JSON.stringify(body));
}
