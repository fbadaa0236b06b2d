/**
 * The HTTP API: the eight DataArts script endpoints at the server root (the Python SDK drops any
 * path prefix), plus a few extension endpoints under their own paths. Routing only: every rule
 * lives in services, every error becomes a response in error-handler.ts.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';
import type { Action } from '../domain/access.js';
import type { ConnectionService } from '../services/connection-service.js';
import type { EnvironmentVariableService } from '../services/environment-variable-service.js';
import type { ExecutionService } from '../services/execution-service.js';
import type { InstanceLogService } from '../services/instance-log-service.js';
import type { InstanceHistoryService } from '../services/instance-history-service.js';
import type { ResultService } from '../services/result-service.js';
import type { ScriptService } from '../services/script-service.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import { registerConnectionRoutes } from './connection-routes.js';
import { executeAndAnswer } from './execute-extensions.js';
import { registerConsoleRoutes } from './console-routes.js';
import { registerEnvironmentVariableRoutes } from './environment-variable-routes.js';
import { registerInstanceLogRoutes } from './instance-log-routes.js';
import { registerInstanceHistoryRoutes } from './instance-history-routes.js';
import { registerResultRoutes } from './result-routes.js';
import type { Observability } from './http-observer.js';
import { lazyRequestLogger, levelEnabled } from './request-logger.js';
import { registerApiDocs, registerOpenApi } from './openapi.js';
import { operationSchemas } from './schemas/operation-schemas.js';
import { scriptSchemas } from './schemas/script-schemas.js';
import {
  handleClientError,
  handleError,
  handleFrameworkError,
  installServerErrorHandlers,
  requireHostHeader,
  sendError,
} from './error-handler.js';
import { jsonBody, routeOf, sendJson, sendJsonText, singleQuery, type Query } from './request-helpers.js';
import {
  actorOf,
  authorizedNamespace,
  principalOf,
  registerAuthentication,
  type AuthOptions,
} from './auth/authenticate.js';
import { auditedParams, registerAuditLog } from './auth/audit-log.js';
import { instanceResultRepresentation } from './representations.js';
import { scriptJson, scriptPageJson } from './script-json.js';

export interface HttpDependencies {
  readonly scripts: ScriptService;
  readonly executions: ExecutionService;
  readonly history: InstanceHistoryService;
  readonly connections: ConnectionService;
  readonly environmentVariables: EnvironmentVariableService;
  /** Extension: live logs of Shell/Python instances (instance-log-routes.ts). */
  readonly logs: InstanceLogService;
  /** Extension: whole statement results, paged and exported (result-routes.ts). */
  readonly results: ResultService;
  readonly workspaces: WorkspaceResolver;
  readonly auth: AuthOptions;
  readonly observability: Observability;
  readonly logger: Logger;
  /** Raw request body limit; larger bodies get 413 before they are buffered in full. Default 12 MB. */
  readonly bodyLimitBytes: number;
  /** Serve /openapi.json and the reference page at /docs. Default true. */
  readonly apiDocs?: boolean;
  /** The built web console served at /console (absent: no console routes). */
  readonly consoleDirectory?: string;
}

type Params = { projectId: string; scriptName: string; instanceId: string };

export function buildApp(deps: HttpDependencies) {
  // Typed as fastify's base logger so route modules take a plain FastifyInstance.
  const logger: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: deps.bodyLimitBytes,
    genReqId: () => randomUUID(),
    // One log line per request (onResponse below) instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // request.log made only when a request logs something (request-logger.ts).
    childLoggerFactory: lazyRequestLogger,
    // Undecodable %-escapes, over-long path segments and HTTP parser errors get the DLF envelope too.
    frameworkErrors: handleFrameworkError,
    // A client that sends its request (headers and body) slower than this is cut off.
    requestTimeout: 120_000,
    clientErrorHandler: handleClientError,
    http: { requireHostHeader: false },
    // Requests still arriving while the server closes (on kept-alive or pipelined connections) get
    // the DLF envelope from the hook below instead of fastify's own 503 body.
    return503OnClosing: false,
    routerOptions: {
      // Script names are up to 128 characters, percent-encoded by PY: the default of 100 is too short.
      maxParamLength: 1024,
      ignoreTrailingSlash: true,
      ignoreDuplicateSlashes: true,
    },
  });

  // Before any route: the route schemas feed /openapi.json (see openapi.ts for what they enforce).
  registerOpenApi(app);

  // Every content type (or none) is accepted and kept raw; handlers parse JSON themselves, so an empty
  // body with `application/json;charset=utf-8` is fine and malformed JSON becomes DLF.3051.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.decorateRequest('routeTemplate', null);

  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // One synchronous hook for the request phase (each hook is a step of fastify's hook runner).
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    // Requests still arriving while the server closes get the DLF envelope; a sent reply ends the
    // hook chain (no done()).
    if (closing) return void sendError(reply.header('connection', 'close'), 'OPENDLF.0503');
    requireHostHeader(request, reply, done);
  });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'APIGW.0101'));
  installServerErrorHandlers(app.server);

  // Authentication is the one preHandler hook; it also raises the route schema's query check.
  registerAuthentication(app, deps.auth);
  const audit = registerAuditLog(app);

  const json = sendJson;
  /** Every /v1 route names the action it needs; the principal must hold it in the namespace. */
  const ns = (request: Parameters<typeof authorizedNamespace>[1], action: Action) =>
    authorizedNamespace(deps.workspaces, request, action);

  const base = '/v1/:projectId/scripts';

  app.post<{ Params: Params }>(base, { schema: scriptSchemas.create }, async (request, reply) => {
    await deps.scripts.create(ns(request, 'write'), jsonBody(request), principalOf(request));
    return reply.status(204).send();
  });

  app.get<{ Params: Params; Querystring: Query }>(
    base,
    { schema: scriptSchemas.list },
    async (request, reply) => {
      const page = await deps.scripts.list(ns(request, 'read'), {
        offset: singleQuery(request.query, 'offset'),
        limit: singleQuery(request.query, 'limit'),
        scriptName: singleQuery(request.query, 'scriptName'),
      });
      return sendJsonText(reply, 200, scriptPageJson(page.total, page.scripts));
    },
  );

  app.get<{ Params: Params }>(
    `${base}/:scriptName`,
    { schema: scriptSchemas.get },
    async (request, reply) => {
      const script = await deps.scripts.get(ns(request, 'read'), request.params.scriptName);
      return sendJsonText(reply, 200, scriptJson(script));
    },
  );

  app.put<{ Params: Params }>(
    `${base}/:scriptName`,
    { schema: scriptSchemas.modify },
    async (request, reply) => {
      await deps.scripts.update(
        ns(request, 'write'),
        request.params.scriptName,
        jsonBody(request),
        principalOf(request),
      );
      return reply.status(204).send();
    },
  );

  app.delete<{ Params: Params }>(
    `${base}/:scriptName`,
    { schema: scriptSchemas.delete },
    async (request, reply) => {
      await deps.scripts.delete(
        ns(request, 'write'),
        request.params.scriptName,
        jsonBody(request),
        principalOf(request),
      );
      return reply.status(204).send();
    },
  );

  app.post<{ Params: Params }>(
    `${base}/:scriptName/execute`,
    { schema: scriptSchemas.execute },
    async (request, reply) => {
      const namespace = ns(request, 'execute');
      const body = jsonBody(request);
      // Before execute, so a refused execute (an injection attempt) is audited with its parameters too.
      request.auditedParams = auditedParams(body);
      // Extensions: ?waitSeconds, Idempotency-Key, timeoutSeconds (execute-extensions.ts).
      return executeAndAnswer(deps.executions, request, reply, namespace, body, principalOf(request));
    },
  );

  // Extension: `?waitSeconds=N` (0-60) answers as soon as the instance settles (long poll).
  app.get<{ Params: Params; Querystring: Query }>(
    `${base}/:scriptName/instances/:instanceId`,
    { schema: scriptSchemas.instance },
    async (request, reply) => {
      const { scriptName, instanceId } = request.params;
      // 0-60 with at most 3 decimals: checked by the route schema (scriptSchemas.instance).
      const rawWait = singleQuery(request.query, 'waitSeconds') ?? '0';
      const namespace = ns(request, 'read');
      const instance = await deps.executions.getInstance(
        namespace,
        scriptName,
        instanceId,
        Number(rawWait) * 1000,
      );
      return json(reply, 200, instanceResultRepresentation(instance));
    },
  );

  app.post<{ Params: Params }>(
    `${base}/:scriptName/instances/:instanceId/stop`,
    { schema: scriptSchemas.stop },
    async (request, reply) => {
      const { scriptName, instanceId } = request.params;
      await deps.executions.stop(ns(request, 'stop'), scriptName, instanceId, actorOf(request));
      return reply.status(204).send();
    },
  );

  // Extension: review decisions by a listed approver (admin or deployer, never the submitter), in
  // workspaces with review enabled.
  for (const [path, decision] of [
    ['approve', 'APPROVED'],
    ['reject', 'REJECTED'],
  ] as const) {
    app.post<{ Params: Params }>(
      `${base}/:scriptName/${path}`,
      { schema: scriptSchemas[path] },
      async (request, reply) => {
        await deps.scripts.review(
          ns(request, 'approve'),
          request.params.scriptName,
          decision,
          principalOf(request),
        );
        return reply.status(204).send();
      },
    );
  }

  // Extension: run history, a script's (`…/scripts/{name}/instances`) and the workspace's.
  registerInstanceHistoryRoutes(app, { history: deps.history, workspaces: deps.workspaces });

  registerConnectionRoutes(app, { connections: deps.connections, workspaces: deps.workspaces });
  registerInstanceLogRoutes(app, { logs: deps.logs, workspaces: deps.workspaces });
  registerResultRoutes(app, { results: deps.results, workspaces: deps.workspaces });
  registerEnvironmentVariableRoutes(app, {
    environmentVariables: deps.environmentVariables,
    workspaces: deps.workspaces,
  });

  if (deps.consoleDirectory !== undefined) registerConsoleRoutes(app, deps.consoleDirectory);

  app.get('/healthz', { schema: operationSchemas.healthz }, (_request, reply) =>
    json(reply, 200, { status: 'ok' }),
  );
  app.get('/readyz', { schema: operationSchemas.readyz }, async (request, reply) => {
    const readiness = await deps.observability.readiness();
    // The per-check details can name hosts and paths: in multi-user mode only for a known principal
    // (the authentication hook sets one for every caller in single-user mode).
    const body = request.principal ? readiness : { ready: readiness.ready };
    return json(reply, readiness.ready ? 200 : 503, body);
  });
  app.get('/metrics', { schema: operationSchemas.metrics }, async (_request, reply) => {
    const { contentType, body } = await deps.observability.metrics();
    return reply.status(200).header('content-type', contentType).send(body);
  });
  if (deps.apiDocs !== false) registerApiDocs(app);
  // The one onResponse hook (each hook is a step of fastify's hook runner): the audit line, the
  // metrics, the access line.
  app.addHook('onResponse', (request, reply, done) => {
    const route = routeOf(request);
    audit(request, reply, route);
    const elapsedMs = reply.elapsedTime;
    deps.observability.observer.requestCompleted(
      request.method,
      route ?? 'unmatched',
      reply.statusCode,
      elapsedMs / 1000,
    );
    // The one access log line (fastify's request logging is off: it wrote two lines per request),
    // through the server's logger with the request id first: the line request.log would write,
    // without making request.log (request-logger.ts). Its object is built only when the line is
    // written.
    if (levelEnabled(app.log, 'info')) {
      app.log.info(
        {
          reqId: request.id,
          method: request.method,
          url: request.url,
          route: route ?? null,
          statusCode: reply.statusCode,
          responseTime: elapsedMs,
          remoteAddress: request.ip,
        },
        'request completed',
      );
    }
    done();
  });

  return app;
}
