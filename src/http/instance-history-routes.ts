/**
 * Run history extension endpoints: a script's instances (`GET …/scripts/{name}/instances`) and the
 * workspace's (`GET /v1/{project_id}/instances`), newest first, filtered and paged. Reading needs
 * `read` in the namespace; the workspace listing shows only the caller's project and workspace.
 */
import type { FastifyInstance } from 'fastify';
import type { Action } from '../domain/access.js';
import type { InstanceHistoryParams } from '../domain/instance-history.js';
import type { InstanceHistoryService } from '../services/instance-history-service.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import type { InstanceHistoryPage } from '../store/store.js';
import { authorizedNamespace } from './auth/authenticate.js';
import { instanceSummaryRepresentation } from './representations.js';
import { sendJson, singleQuery, type Query } from './request-helpers.js';
import { historySchemas } from './schemas/instance-extension-schemas.js';

type Params = { projectId: string; scriptName: string };

/** Each parameter at most once (a repeated one is DLF.3051, as everywhere in the API). */
function historyParams(query: Query): InstanceHistoryParams {
  return {
    status: singleQuery(query, 'status'),
    detailedStatus: singleQuery(query, 'detailedStatus'),
    from: singleQuery(query, 'from'),
    to: singleQuery(query, 'to'),
    offset: singleQuery(query, 'offset'),
    limit: singleQuery(query, 'limit'),
    scriptName: singleQuery(query, 'scriptName'),
  };
}

function pageRepresentation(page: InstanceHistoryPage) {
  return { total: page.total, instances: page.instances.map(instanceSummaryRepresentation) };
}

export function registerInstanceHistoryRoutes(
  app: FastifyInstance,
  deps: { history: InstanceHistoryService; workspaces: WorkspaceResolver },
): void {
  const ns = (request: Parameters<typeof authorizedNamespace>[1], action: Action) =>
    authorizedNamespace(deps.workspaces, request, action);

  app.get<{ Params: Params; Querystring: Query }>(
    '/v1/:projectId/scripts/:scriptName/instances',
    { schema: historySchemas.script },
    async (request, reply) => {
      const namespace = ns(request, 'read');
      const page = await deps.history.forScript(
        namespace,
        request.params.scriptName,
        historyParams(request.query),
      );
      return sendJson(reply, 200, pageRepresentation(page));
    },
  );

  app.get<{ Params: Params; Querystring: Query }>(
    '/v1/:projectId/instances',
    { schema: historySchemas.workspace },
    async (request, reply) => {
      const page = await deps.history.forWorkspace(ns(request, 'read'), historyParams(request.query));
      return sendJson(reply, 200, pageRepresentation(page));
    },
  );
}
