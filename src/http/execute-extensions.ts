/**
 * The execute call with its extensions (README "Execute extensions"): `?waitSeconds=N` answers
 * with the result too when the run settles within N seconds, the `Idempotency-Key` header answers
 * a repeat with the first instance (`Idempotent-Replayed: true`), and the body's `timeoutSeconds`
 * is checked by the service. Without them the answer is exactly `{"instanceId":"…"}`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../domain/access.js';
import { invalidParameter } from '../domain/dlf-error.js';
import { parseIdempotencyKey } from '../domain/execute-options.js';
import type { Namespace } from '../domain/script.js';
import type { ExecutionService } from '../services/execution-service.js';
import { instanceResultRepresentation } from './representations.js';
import { sendJson, singleQuery, type Query } from './request-helpers.js';

/** The longest an execute may wait for its run, as the result long poll. */
const MAX_WAIT_SECONDS = 60;

/** `?waitSeconds=` in milliseconds: 0-60 with at most 3 decimals; undefined when absent. */
export function waitSecondsOf(query: unknown): number | undefined {
  const raw = singleQuery((query ?? {}) as Query, 'waitSeconds');
  if (raw === undefined) return undefined;
  if (!/^\d{1,2}(\.\d{1,3})?$/.test(raw) || Number(raw) > MAX_WAIT_SECONDS) {
    throw invalidParameter(`waitSeconds must be a number from 0 to ${MAX_WAIT_SECONDS}`);
  }
  return Number(raw) * 1000;
}

/** Runs the execute and sends its answer; both extension inputs are checked before anything runs. */
export async function executeAndAnswer(
  executions: ExecutionService,
  request: FastifyRequest<{ Params: { scriptName: string } }>,
  reply: FastifyReply,
  namespace: Namespace,
  body: unknown,
  principal: Principal,
): Promise<FastifyReply> {
  const waitMs = waitSecondsOf(request.query);
  const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
  const { instanceId, replayed } = await executions.execute(
    namespace,
    request.params.scriptName,
    body,
    principal,
    idempotencyKey === undefined ? {} : { idempotencyKey },
  );
  request.createdInstanceId = instanceId;
  if (replayed) void reply.header('idempotent-replayed', 'true');
  if (waitMs === undefined) return sendJson(reply, 200, { instanceId });
  const settled = await executions.waitForResult(instanceId, waitMs);
  if (!settled) return sendJson(reply, 200, { instanceId });
  // Settled in time: the result GET's body (which names the instance too), `instanceId` first.
  return sendJson(reply, 200, Object.assign({ instanceId }, instanceResultRepresentation(settled)));
}
