/**
 * Route schemas of the environment-variable extension endpoints (environment-variable-routes.ts).
 * The rules stay in services/environment-variable-service.ts; its limits are quoted from there.
 */
import { Type } from '@sinclair/typebox';
import { PARAM_NAME_PATTERN } from '../../domain/script-params.js';
import {
  MAX_ENVIRONMENT_VALUE_LENGTH,
  MAX_ENVIRONMENT_VARIABLES,
} from '../../services/environment-variable-service.js';
import { NoContent, ProjectId, WorkspaceHeader, errorResponses, extension } from './common.js';

const Variable = Type.Object({
  name: Type.String(),
  value: Type.String(),
  createTime: Type.String({ format: 'date-time' }),
  updateTime: Type.String({ format: 'date-time' }),
});

const ListParams = Type.Object({ projectId: ProjectId });
const VariableParams = Type.Object({
  projectId: ProjectId,
  name: Type.String({ pattern: PARAM_NAME_PATTERN.source }),
});
const headers = WorkspaceHeader;

export const environmentVariableSchemas = {
  list: {
    ...extension(
      'extensions',
      'List environment variables',
      'listEnvironmentVariables',
      'Variables of the workspace by name.',
    ),
    params: ListParams,
    headers,
    response: {
      200: Type.Object({ total: Type.Integer(), variables: Type.Array(Variable) }),
      ...errorResponses(),
    },
  },
  get: {
    ...extension(
      'extensions',
      'Read an environment variable',
      'showEnvironmentVariable',
      'A missing name is OPENDLF.0621.',
    ),
    params: VariableParams,
    headers,
    response: { 200: Variable, ...errorResponses() },
  },
  put: {
    ...extension(
      'extensions',
      'Set an environment variable',
      'putEnvironmentVariable',
      `Creates or replaces (at most ${MAX_ENVIRONMENT_VARIABLES} per workspace). A \`#{…}\` that cannot parse is refused.`,
    ),
    params: VariableParams,
    headers,
    body: Type.Object({ value: Type.String({ maxLength: MAX_ENVIRONMENT_VALUE_LENGTH }) }),
    response: { 200: Variable, ...errorResponses() },
  },
  delete: {
    ...extension(
      'extensions',
      'Delete an environment variable',
      'deleteEnvironmentVariable',
      'Deletes it. 204.',
    ),
    params: VariableParams,
    headers,
    response: { 204: NoContent, ...errorResponses() },
  },
};
