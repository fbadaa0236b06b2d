/**
 * Extension endpoints for live logs of Shell/Python instances (services/instance-log-service.ts):
 *
 *  - `GET …/instances/{id}/log?offset=&limit=` — JSON `{offset, nextOffset, size, complete, text}`;
 *  - `GET …/instances/{id}/log/stream` — Server-Sent Events (better-sse): `data` events whose data
 *    is the text as a JSON string and whose `id` is the byte offset after it (so an EventSource
 *    reconnecting with `Last-Event-ID` resumes there), then one `end` event with the final status
 *    (id `<offset>-end`), then the response ends. Reconnecting with an `…-end` id answers 204,
 *    which tells an EventSource to stop.
 *
 * Both need `read`. Errors before the stream starts are ordinary DLF responses.
 */
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { createSession } from 'better-sse';
import type { Action } from '../domain/access.js';
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import type { Instance } from '../domain/instance.js';
import { toApiStatus } from '../domain/instance-state.js';
import { integerParam } from '../domain/integer-param.js';
import type { InstanceLogService } from '../services/instance-log-service.js';
import type { WorkspaceResolver } from '../services/workspace-resolver.js';
import { authorizedNamespace } from './auth/authenticate.js';
import { offsetAndLimit, sendJson, singleQuery, type Query } from './request-helpers.js';
import { logSchemas } from './schemas/instance-extension-schemas.js';

type Params = { projectId: string; scriptName: string; instanceId: string };

/** `limit` of `GET …/log`: bytes per page. */
export const DEFAULT_LOG_LIMIT = 64 * 1024;
export const MAX_LOG_LIMIT = 1024 * 1024;
/** Log streams one node serves at once; past it a stream request answers 503 OPENDLF.0661. */
export const MAX_LOG_STREAMS = 256;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEP_ALIVE_MS = 15_000;

/** What the `end` event carries: the instance's final status, without its (possibly large) results. */
function endRepresentation(instance: Instance, size: number) {
  const status = toApiStatus(instance.state);
  return {
    status,
    detailedStatus: instance.state,
    ...(status === 'FAILED' ? { message: instance.message } : {}),
    failureReason: instance.failureReason,
    exitCode: instance.exitCode,
    size,
  };
}

/** `Last-Event-ID` (or `?offset=`): a byte offset, or `<offset>-end` once the stream had ended. */
function resumePoint(raw: string): { offset: number; ended: boolean } {
  const match = /^(\d{1,15})(-end)?$/.exec(raw);
  if (!match) throw invalidParameter('Last-Event-ID must be an event id of this log stream');
  return { offset: Number(match[1]), ended: match[2] !== undefined };
}

export function registerInstanceLogRoutes(
  app: FastifyInstance,
  deps: { logs: InstanceLogService; workspaces: WorkspaceResolver },
): void {
  const path = '/v1/:projectId/scripts/:scriptName/instances/:instanceId/log';
  const ns = (request: Parameters<typeof authorizedNamespace>[1], action: Action) =>
    authorizedNamespace(deps.workspaces, request, action);

  const pageOptions = { schema: logSchemas.page };
  app.get<{ Params: Params; Querystring: Query }>(path, pageOptions, async (request, reply) => {
    const { offset, limit } = offsetAndLimit(request.query, MAX_LOG_LIMIT, DEFAULT_LOG_LIMIT);
    const { scriptName, instanceId } = request.params;
    const page = await deps.logs.read(ns(request, 'read'), scriptName, instanceId, offset, limit);
    return sendJson(reply, 200, page);
  });

  // Open streams end when the server closes, so the close does not wait for instances to settle;
  // their connections are closed too (not kept alive), so the close need not wait for the clients.
  const streams = new Set<AbortController>();
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    for (const stream of streams) stream.abort();
    done();
  });

  // No HEAD route: a stream has no headers-only form worth following the instance for.
  app.get<{ Params: Params; Querystring: Query }>(
    `${path}/stream`,
    { exposeHeadRoute: false, schema: logSchemas.stream },
    async (request, reply) => {
      const namespace = ns(request, 'read');
      const header = request.headers['last-event-id'];
      if (Array.isArray(header)) throw invalidParameter('Last-Event-ID may be given only once');
      const rawOffset = singleQuery(request.query, 'offset');
      // An EventSource reconnecting names where it got to: that wins over the offset of its URL.
      const resume =
        header !== undefined && header !== ''
          ? resumePoint(header)
          : { offset: integerParam('offset', rawOffset, 0, Number.MAX_SAFE_INTEGER, 0), ended: false };
      const { scriptName, instanceId } = request.params;
      await deps.logs.instanceOf(namespace, scriptName, instanceId);
      if (resume.ended) return reply.status(204).send();
      if (streams.size >= MAX_LOG_STREAMS) throw new DlfError('OPENDLF.0661');

      const controller = new AbortController();
      streams.add(controller);
      reply.hijack();
      const response = reply.raw;
      try {
        const session = await createSession(request.raw, response, {
          keepAlive: KEEP_ALIVE_MS,
          // Resuming is by this route's own rule above (resumePoint), not the library's.
          trustClientEventId: false,
          headers: { 'x-request-id': request.id },
        });
        session.once('disconnected', () => controller.abort());
        if (!session.isConnected) controller.abort();
        for await (const event of deps.logs.follow(instanceId, resume.offset, controller.signal)) {
          if (controller.signal.aborted) break;
          if (event.kind === 'data') {
            session.push(event.text, 'data', String(event.nextOffset));
          } else {
            session.push(endRepresentation(event.instance, event.size), 'end', `${event.offset}-end`);
          }
          // A slow reader holds the stream back instead of piling the log up in memory.
          if (response.writableNeedDrain) {
            await Promise.race([once(response, 'drain'), once(controller.signal, 'abort')]);
          }
        }
      } catch (error) {
        // The client went away mid-push, or the store failed: the client resumes from its last id.
        if (!controller.signal.aborted)
          request.log.warn({ err: error, instanceId }, 'log stream ended early');
      } finally {
        streams.delete(controller);
        controller.abort();
        // The socket is detached from the response once it ended: taken now, closed after the end.
        const socket = response.socket;
        response.end(() => {
          if (closing) socket?.destroy();
        });
      }
    },
  );
}
