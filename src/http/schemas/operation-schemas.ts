/**
 * Route schemas of the operational endpoints (app.ts, http/openapi.ts): health, readiness, metrics
 * and the OpenAPI document itself. All are opendlf extensions outside /v1.
 */
import { Type } from '@sinclair/typebox';
import { extension } from './common.js';

const Readiness = Type.Object({
  ready: Type.Boolean(),
  checks: Type.Optional(
    Type.Array(
      Type.Object({ name: Type.String(), ok: Type.Boolean(), detail: Type.Optional(Type.String()) }),
      {
        description:
          'Only for a caller with valid credentials in multi-user mode (always in single-user mode).',
      },
    ),
  ),
});

export const operationSchemas = {
  healthz: {
    ...extension('operations', 'Liveness', 'healthz', '200 while the process is up.'),
    response: { 200: Type.Object({ status: Type.Literal('ok') }) },
  },
  readyz: {
    ...extension(
      'operations',
      'Readiness',
      'readyz',
      'The store answers and every built-in engine probe passes (cached 5 s), and the data directory has minFreeDiskBytes free.',
    ),
    response: {
      200: Readiness,
      503: { ...Readiness, description: 'Not ready: the failing check says why.' },
    },
  },
  metrics: {
    ...extension(
      'operations',
      'Prometheus metrics',
      'metrics',
      'Prometheus text format. With metricsRequireAuth and credentials configured: valid credentials required.',
    ),
    response: {
      200: {
        description: 'Prometheus text exposition format.',
        content: { 'text/plain': { schema: Type.String() } },
      },
    },
  },
  openapi: {
    ...extension(
      'operations',
      'This document',
      'openapi',
      'The OpenAPI 3.1 description of this server (also at /docs/json). No credentials needed.',
    ),
    response: {
      200: Type.Object({}, { additionalProperties: true, description: 'An OpenAPI 3.1 document.' }),
    },
  },
};
