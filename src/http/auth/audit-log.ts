/**
 * The audit trail: one structured log line (`"audit":true`) for every request that changes state
 * — create, modify, delete, execute, stop, connection changes — whether it succeeded or was
 * refused, with who asked, from where, what, and the outcome. Reads are not audited.
 */
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by execute: the instance it created, which the URL does not name. */
    createdInstanceId: string | null;
  }
}

export function registerAuditLog(app: FastifyInstance): void {
  app.decorateRequest('createdInstanceId', null);
  app.addHook('onResponse', (request, reply, done) => {
    if (
      request.method !== 'GET' &&
      request.method !== 'HEAD' &&
      (request.routeOptions.url ?? '').startsWith('/v1/')
    ) {
      const params = request.params as Record<string, string | undefined>;
      request.log.info(
        {
          audit: true,
          actor: request.principal?.id ?? null,
          actorKind: request.principal?.kind ?? null,
          ip: request.ip,
          method: request.method,
          route: request.routeOptions.url ?? null,
          projectId: params.projectId ?? null,
          workspace: request.headers.workspace ?? null,
          script: params.scriptName ?? null,
          instanceId: params.instanceId ?? request.createdInstanceId,
          connection: params.connectionName ?? null,
          statusCode: reply.statusCode,
        },
        'audit',
      );
    }
    done();
  });
}
