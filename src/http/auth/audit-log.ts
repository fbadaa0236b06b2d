/**
 * The audit trail: one structured log line (`"audit":true`) for every request that changes state
 * — create, modify, delete, execute, stop, connection changes — whether it succeeded or was
 * refused, with who asked, from where, what, and the outcome. Reads are not audited.
 *
 * An execute also records its parameters as `paramNames` (sorted) and `paramsSha256`: the SHA-256
 * (hex) of the canonical JSON of the values — `[[name, value], …]` sorted by name, values as the
 * strings substituted — never the values themselves, which may be personal or secret data. The hash
 * is unkeyed on purpose: whoever holds the values (an investigator, the caller) can recompute and
 * match it on any node. Its limit: a value from a small set (a date, a flag) can be guessed from
 * it by whoever reads the log, who can read the instance's stored script anyway.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseExecuteParams } from '../../domain/script-params.js';

/** What an execute's audit line says about its parameters. */
export interface AuditedParams {
  readonly names: readonly string[];
  readonly sha256: string;
}

/** The names and hash of execute's params, or null when the body is not valid (execute refuses it). */
export function auditedParams(body: unknown): AuditedParams | null {
  let params: Readonly<Record<string, string>>;
  try {
    params = parseExecuteParams(body);
  } catch {
    return null;
  }
  const entries = Object.entries(params).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    names: entries.map(([name]) => name),
    sha256: createHash('sha256').update(JSON.stringify(entries), 'utf8').digest('hex'),
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by execute: the instance it created, which the URL does not name. */
    createdInstanceId: string | null;
    /** Set by execute: its parameters' names and hash (never their values). */
    auditedParams: AuditedParams | null;
  }
}

/**
 * Decorates the requests and returns the audit step of the app's one onResponse hook (app.ts):
 * it writes the request's audit line when the request is one that changes state. `route` is the
 * matched route template (request-helpers.ts `routeOf`).
 */
export function registerAuditLog(
  app: FastifyInstance,
): (request: FastifyRequest, reply: FastifyReply, route: string | undefined) => void {
  app.decorateRequest('createdInstanceId', null);
  app.decorateRequest('auditedParams', null);
  return (request, reply, route) => {
    if (request.method === 'GET' || request.method === 'HEAD' || route?.startsWith('/v1/') !== true) return;
    const params = request.params as Record<string, string | undefined>;
    request.log.info(
      {
        audit: true,
        actor: request.principal?.id ?? null,
        actorKind: request.principal?.kind ?? null,
        ip: request.ip,
        method: request.method,
        route,
        projectId: params.projectId ?? null,
        workspace: request.headers.workspace ?? null,
        script: params.scriptName ?? null,
        instanceId: params.instanceId ?? request.createdInstanceId,
        connection: params.connectionName ?? null,
        ...(request.auditedParams
          ? { paramNames: request.auditedParams.names, paramsSha256: request.auditedParams.sha256 }
          : {}),
        statusCode: reply.statusCode,
      },
      'audit',
    );
  };
}
