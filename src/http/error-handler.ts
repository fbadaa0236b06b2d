/**
 * The one place that turns errors into responses. A DlfError becomes its registry status and the
 * DLF envelope; framework errors (body too large, bad request line) map to documented codes;
 * anything else is logged with the request id and answered as a generic 500 without internals.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DlfError, ERROR_REGISTRY, type DlfErrorCode } from '../domain/dlf-error.js';

export const JSON_CONTENT_TYPE = 'application/json;charset=UTF-8';

/** PY reads the top-level pair; Terraform reads `errors[0]` for some calls: send both (DIGEST §2.4 #17). */
export function errorBody(code: DlfErrorCode, message: string) {
  return { error_code: code, error_msg: message, errors: [{ error_code: code, error_msg: message }] };
}

export function sendError(reply: FastifyReply, code: DlfErrorCode, message?: string): FastifyReply {
  const entry = ERROR_REGISTRY[code];
  return reply
    .status(entry.status)
    .header('content-type', JSON_CONTENT_TYPE)
    .send(errorBody(code, message ?? entry.message));
}

export function handleError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  if (error instanceof DlfError) return sendError(reply, error.code, error.message);
  const fastifyError = error as FastifyError;
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return sendError(reply, 'APIGW.0201');
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return sendError(reply, 'DLF.3051', `The request parameter is invalid: ${fastifyError.message}`);
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendError(reply, 'OPENDLF.0500');
}
