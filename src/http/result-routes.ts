/**
 * Extension endpoints for whole statement results (README "Large results"): statement n of a
 * settled instance, paged or exported. `n` numbers the instance's `results` from 0.
 *
 *   GET …/instances/{id}/results/{n}?offset=&limit=   {schema, rows, rowCount, offset, limit, truncated}
 *   GET …/instances/{id}/results/{n}.csv              the whole result as CSV (header row first)
 *   GET …/instances/{id}/results/{n}.jsonl            the whole result as JSON Lines (one array per row)
 *
 * Exports are streamed: the body is produced as the client reads it, never held whole.
 */
import type { FastifyInstance } from 'fastify';
import type { Action } from '../domain/access.js';
import { invalidParameter } from '../domain/dlf-error.js';
import { DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS, type ResultService } from '../services/result-service.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import { authorizedNamespace } from './auth/authenticate.js';
import { offsetAndLimit, sendJsonText, type Query } from './request-helpers.js';
import { resultSchemas } from './schemas/instance-extension-schemas.js';

type Params = { projectId: string; scriptName: string; instanceId: string; statement: string };

const STATEMENT = /^(\d{1,6})(?:\.(csv|jsonl))?$/;

export function registerResultRoutes(
  app: FastifyInstance,
  deps: { results: ResultService; workspaces: WorkspaceResolver },
): void {
  const ns = (request: Parameters<typeof authorizedNamespace>[1], action: Action) =>
    authorizedNamespace(deps.workspaces, request, action);

  app.get<{ Params: Params; Querystring: Query }>(
    '/v1/:projectId/scripts/:scriptName/instances/:instanceId/results/:statement',
    { schema: resultSchemas.statement },
    async (request, reply) => {
      const { scriptName, instanceId, statement } = request.params;
      const match = STATEMENT.exec(statement);
      if (!match)
        throw invalidParameter(
          'the statement must be its index in results (0, 1, …), optionally with .csv or .jsonl',
        );
      const index = Number(match[1]);
      const format = match[2];
      const namespace = ns(request, 'read');
      if (format === undefined) {
        const { offset, limit } = offsetAndLimit(request.query, MAX_PAGE_ROWS, DEFAULT_PAGE_ROWS);
        const page = await deps.results.page(namespace, scriptName, instanceId, index, offset, limit);
        // The rows are already JSON text: the body is assembled, not serialised again.
        const body =
          `{"schema":${JSON.stringify(page.schema)},"rows":[${page.rows.join(',')}],` +
          `"rowCount":${page.rowCount},"offset":${page.offset},"limit":${page.limit},"truncated":${page.truncated}}`;
        return sendJsonText(reply, 200, body);
      }
      const exported =
        format === 'csv'
          ? await deps.results.csv(namespace, scriptName, instanceId, index)
          : await deps.results.jsonLines(namespace, scriptName, instanceId, index);
      return reply
        .status(200)
        .header(
          'content-type',
          format === 'csv' ? 'text/csv; charset=utf-8' : 'application/jsonl; charset=utf-8',
        )
        .header('content-disposition', `attachment; filename="${instanceId}-${index}.${format}"`)
        .send(exported.body);
    },
  );
}
