/**
 * The v1 data-connection endpoints (docs/compatibility.md §5) and the system-task endpoint that
 * reports import progress. Extension: `?includeExtensionTypes=true` on list also shows types v1 clients cannot parse.
 */
import type { FastifyInstance } from 'fastify';
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import { toWireString } from '../domain/wire-values.js';
import type { ConnectionService, ImportRequest } from '../services/connection-service.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import { roleIn, type Action } from '../domain/access.js';
import { authorizedNamespace, principalOf } from './auth/authenticate.js';
import { booleanQuery, jsonBody, sendJson, singleQuery, type Query } from './request-helpers.js';
import { connectionSchemas } from './schemas/connection-schemas.js';

type Params = { projectId: string; connectionName: string; taskId: string };

function parseImportBody(body: unknown): Omit<ImportRequest, 'zip'> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidParameter('the request body must be a JSON object with a path');
  }
  const b = body as Record<string, unknown>;
  if (typeof b.path !== 'string' || b.path === '') throw invalidParameter('path is required');
  return { path: b.path, ...parseImportOptions(b) };
}

function parseImportOptions(b: Record<string, unknown>): Omit<ImportRequest, 'zip' | 'path'> {
  const policy = b.sameNamePolicy ?? 'SKIP';
  if (policy !== 'SKIP' && policy !== 'OVERWRITE')
    throw invalidParameter('sameNamePolicy must be SKIP or OVERWRITE');
  const rawParams = b.params ?? [];
  if (!Array.isArray(rawParams)) throw invalidParameter('params must be an array');
  const params = rawParams.map((item: unknown) => {
    if (typeof item !== 'object' || item === null) throw invalidParameter('params[] must be objects');
    const p = item as Record<string, unknown>;
    if (typeof p.name !== 'string') throw invalidParameter('params[].name is required');
    const values = p.params ?? {};
    if (typeof values !== 'object' || values === null || Array.isArray(values)) {
      throw invalidParameter('params[].params must be an object');
    }
    // PY-old serialises the per-connection type as `connectionType`, the docs as `type`: accept both.
    const type = p.type ?? p.connectionType;
    return {
      name: p.name,
      ...(typeof type === 'string' ? { type } : {}),
      params: Object.fromEntries(
        // Not String(v): `{"toString": 1}` has no callable toString and would throw a TypeError (500).
        Object.entries(values as Record<string, unknown>).map(([k, v]) => [k, toWireString(v)]),
      ),
    };
  });
  return { params, sameNamePolicy: policy };
}

export function registerConnectionRoutes(
  app: FastifyInstance,
  deps: { connections: ConnectionService; workspaces: WorkspaceResolver },
): void {
  const base = '/v1/:projectId/connections';
  const ns = (request: Parameters<typeof authorizedNamespace>[1], action: Action) =>
    authorizedNamespace(deps.workspaces, request, action);

  app.post<{ Params: Params }>(base, { schema: connectionSchemas.create }, async (request, reply) => {
    await deps.connections.create(ns(request, 'write'), jsonBody(request));
    return reply.status(204).send();
  });

  app.get<{ Params: Params; Querystring: Query }>(
    base,
    { schema: connectionSchemas.list },
    async (request, reply) => {
      const page = await deps.connections.list(ns(request, 'read'), {
        offset: singleQuery(request.query, 'offset'),
        limit: singleQuery(request.query, 'limit'),
        connectionName: singleQuery(request.query, 'connectionName'),
        includeExtensionTypes: booleanQuery(request.query, 'includeExtensionTypes'),
      });
      return sendJson(reply, 200, page);
    },
  );

  // Static segments win over parameters in the router, so a connection named `export` or `import`
  // is still reachable with GET/PUT/DELETE; only these two POSTs are taken.
  app.post<{ Params: Params }>(
    `${base}/export`,
    { schema: connectionSchemas.export },
    async (request, reply) => {
      const zip = await deps.connections.export(ns(request, 'read'));
      return reply
        .status(200)
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', 'attachment; filename="DLF_All_DataConnections.zip"')
        .send(zip);
    },
  );

  app.post<{ Params: Params; Querystring: Query }>(
    `${base}/import`,
    { schema: connectionSchemas.import },
    async (request, reply) => {
      const contentType = String(request.headers['content-type'] ?? '').toLowerCase();
      let importRequest: ImportRequest;
      if (contentType.startsWith('application/zip') || contentType.startsWith('application/octet-stream')) {
        // Extension: the zip itself as the body; options in the query string.
        const zip = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        if (zip.length === 0) throw invalidParameter('the uploaded zip is empty');
        importRequest = {
          zip,
          ...parseImportOptions({ sameNamePolicy: singleQuery(request.query, 'sameNamePolicy') }),
        };
      } else {
        importRequest = parseImportBody(jsonBody(request));
      }
      const taskId = await deps.connections.import(ns(request, 'write'), importRequest);
      return sendJson(reply, 200, { taskId });
    },
  );

  app.get<{ Params: Params }>(
    `${base}/:connectionName`,
    { schema: connectionSchemas.get },
    async (request, reply) => {
      return sendJson(
        reply,
        200,
        await deps.connections.get(ns(request, 'read'), request.params.connectionName),
      );
    },
  );

  app.put<{ Params: Params; Querystring: Query }>(
    `${base}/:connectionName`,
    { schema: connectionSchemas.edit },
    async (request, reply) => {
      const check = booleanQuery(request.query, 'ischeck');
      const namespace = ns(request, 'write');
      try {
        await deps.connections.update(namespace, request.params.connectionName, jsonBody(request), check);
      } catch (error) {
        // Why a test failed (refused, closed, timed out, wrong password) would make connection tests a
        // port and account scanner: only workspace admins see it; the server log keeps it for others.
        if (
          error instanceof DlfError &&
          error.code === 'OPENDLF.0602' &&
          roleIn(principalOf(request), namespace.workspaceId) !== 'admin'
        ) {
          request.log.warn({ detail: error.message }, 'connection test failed');
          throw new DlfError(
            'OPENDLF.0602',
            `The connection test failed: could not connect (details in the server log, request ${request.id}).`,
          );
        }
        throw error;
      }
      return reply.status(204).send();
    },
  );

  app.delete<{ Params: Params }>(
    `${base}/:connectionName`,
    { schema: connectionSchemas.delete },
    async (request, reply) => {
      await deps.connections.delete(ns(request, 'write'), request.params.connectionName);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: Params }>(
    '/v1/:projectId/system-tasks/:taskId',
    { schema: connectionSchemas.systemTask },
    async (request, reply) => {
      const task = await deps.connections.systemTask(ns(request, 'read'), request.params.taskId);
      return sendJson(reply, 200, {
        id: task.id,
        name: task.name,
        startTime: task.startTime,
        endTime: task.endTime,
        lastUpdate: task.lastUpdate,
        status: task.status,
        projectId: task.namespace.projectId,
        message: task.message,
        subtasks: task.subtasks.map((s) => ({ ...s, taskId: task.id })),
      });
    },
  );
}
