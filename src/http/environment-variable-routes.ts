/**
 * Extension endpoints for workspace environment variables (docs/compatibility.md): list, read,
 * set and delete, in the workspace the `workspace` header names. Reading needs `read`, changing
 * needs `write` (a value is trusted like script content: it is substituted unchecked).
 */
import type { FastifyInstance } from 'fastify';
import type {
  EnvironmentVariable,
  EnvironmentVariableService,
} from '../services/environment-variable-service.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import type { Action } from '../domain/access.js';
import { authorizedNamespace } from './auth/authenticate.js';
import { jsonBody, sendJson } from './request-helpers.js';
import { environmentVariableSchemas } from './schemas/environment-variable-schemas.js';

type Params = { projectId: string; name: string };

function representation(variable: EnvironmentVariable) {
  return {
    name: variable.name,
    value: variable.value,
    createTime: variable.createdAt.toISOString(),
    updateTime: variable.updatedAt.toISOString(),
  };
}

export function registerEnvironmentVariableRoutes(
  app: FastifyInstance,
  deps: { environmentVariables: EnvironmentVariableService; workspaces: WorkspaceResolver },
): void {
  const base = '/v1/:projectId/environment-variables';
  const ns = (request: Parameters<typeof authorizedNamespace>[1], action: Action) =>
    authorizedNamespace(deps.workspaces, request, action);
  const service = deps.environmentVariables;

  app.get<{ Params: Params }>(base, { schema: environmentVariableSchemas.list }, async (request, reply) => {
    const variables = await service.list(ns(request, 'read'));
    return sendJson(reply, 200, { total: variables.length, variables: variables.map(representation) });
  });

  app.get<{ Params: Params }>(
    `${base}/:name`,
    { schema: environmentVariableSchemas.get },
    async (request, reply) => {
      return sendJson(
        reply,
        200,
        representation(await service.get(ns(request, 'read'), request.params.name)),
      );
    },
  );

  app.put<{ Params: Params }>(
    `${base}/:name`,
    { schema: environmentVariableSchemas.put },
    async (request, reply) => {
      const { variable } = await service.put(ns(request, 'write'), request.params.name, jsonBody(request));
      return sendJson(reply, 200, representation(variable));
    },
  );

  app.delete<{ Params: Params }>(
    `${base}/:name`,
    { schema: environmentVariableSchemas.delete },
    async (request, reply) => {
      await service.delete(ns(request, 'write'), request.params.name);
      return reply.status(204).send();
    },
  );
}
