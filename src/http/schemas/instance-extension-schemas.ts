/**
 * Route schemas of the instance extensions that live in their own route modules: run history
 * (instance-history-routes.ts), live logs (instance-log-routes.ts) and whole statement results
 * (result-routes.ts). Limits are quoted from the modules that enforce them.
 */
import { Type } from '@sinclair/typebox';
import { API_STATUSES, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from '../../domain/instance-history.js';
import { DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS } from '../../services/result-service.js';
import {
  AnyValue,
  MapOf,
  ProjectId,
  ScriptName,
  WorkspaceHeader,
  errorResponses,
  extension,
} from './common.js';

/** Quoted here rather than imported: the route module imports this one (no import cycle). */
const DEFAULT_LOG_LIMIT = 64 * 1024;
const MAX_LOG_LIMIT = 1024 * 1024;

const headers = WorkspaceHeader;
const InstanceParams = Type.Object({
  projectId: ProjectId,
  scriptName: ScriptName,
  instanceId: Type.String(),
});

const HistoryQuery = {
  status: Type.Optional(
    Type.String({ description: `Comma-separated API statuses (${API_STATUSES.join(', ')}).` }),
  ),
  detailedStatus: Type.Optional(
    Type.String({
      description: 'Comma-separated detailed states (STOPPED,TIMED_OUT); with `status`, both must hold.',
    }),
  ),
  from: Type.Optional(Type.String({ description: 'Created at or after: epoch milliseconds or ISO-8601.' })),
  to: Type.Optional(Type.String({ description: 'Created before: epoch milliseconds or ISO-8601.' })),
  offset: Type.Optional(Type.String({ pattern: '^\\d*$', description: 'Default 0.' })),
  limit: Type.Optional(
    Type.String({
      pattern: '^\\d*$',
      description: `1-${HISTORY_MAX_LIMIT}, default ${HISTORY_DEFAULT_LIMIT}.`,
    }),
  ),
};

const HistoryPage = Type.Object({
  total: Type.Integer(),
  instances: Type.Array(Type.Ref('InstanceSummary')),
});

export const historySchemas = {
  script: {
    ...extension(
      'extensions',
      'Run history of a script',
      'listScriptInstances',
      'Instances of the script, newest first, without results; `total` counts every match.',
    ),
    params: Type.Object({ projectId: ProjectId, scriptName: ScriptName }),
    headers,
    querystring: Type.Object(HistoryQuery),
    response: { 200: HistoryPage, ...errorResponses() },
  },
  workspace: {
    ...extension(
      'extensions',
      'Run history of the workspace',
      'listInstances',
      'Instances of every script of the workspace, newest first, without results.',
    ),
    params: Type.Object({ projectId: ProjectId }),
    headers,
    querystring: Type.Object({
      ...HistoryQuery,
      scriptName: Type.Optional(Type.String({ description: 'Only this script (exact name).' })),
    }),
    response: { 200: HistoryPage, ...errorResponses() },
  },
};

export const logSchemas = {
  page: {
    ...extension(
      'extensions',
      'Read the log of an instance',
      'readInstanceLog',
      'Shell/PYTHON output as it is written, by byte range (OPENDLF.0660 for other types).',
    ),
    params: InstanceParams,
    headers,
    querystring: Type.Object({
      offset: Type.Optional(Type.String({ pattern: '^\\d*$', description: 'Byte offset, default 0.' })),
      limit: Type.Optional(
        Type.String({
          pattern: '^\\d*$',
          description: `Bytes, 1-${MAX_LOG_LIMIT}, default ${DEFAULT_LOG_LIMIT}.`,
        }),
      ),
    }),
    response: {
      200: Type.Object({
        offset: Type.Integer(),
        nextOffset: Type.Integer({ description: '`offset` plus the bytes of `text`.' }),
        size: Type.Integer({ description: 'Bytes stored so far.' }),
        complete: Type.Boolean({ description: 'The instance settled and nothing more will come.' }),
        text: Type.String(),
      }),
      ...errorResponses(),
    },
  },
  stream: {
    ...extension(
      'extensions',
      'Follow the log of an instance',
      'streamInstanceLog',
      'Server-Sent Events: `data` events (the text as a JSON string, id = the byte offset after it), then one `end` ' +
        'event with the final status (id `<offset>-end`). Reconnecting with an `…-end` Last-Event-ID answers 204.',
    ),
    params: InstanceParams,
    headers: Type.Object({
      ...WorkspaceHeader.properties,
      'last-event-id': Type.Optional(
        Type.String({ description: 'Resume after this event (wins over `offset`).' }),
      ),
    }),
    querystring: Type.Object({
      offset: Type.Optional(
        Type.String({ pattern: '^\\d*$', description: 'Byte offset to start at, default 0.' }),
      ),
    }),
    response: {
      200: {
        description: 'The event stream.',
        content: { 'text/event-stream': { schema: Type.String() } },
      },
      204: Type.Null({ description: 'The stream had already ended.' }),
      ...errorResponses(),
    },
  },
};

const ResultPage = Type.Object({
  schema: Type.Array(MapOf(Type.String(), '`{"column":"TYPE"}`')),
  rows: Type.Array(Type.Array(AnyValue)),
  rowCount: Type.Integer({ description: 'Rows of the whole statement.' }),
  offset: Type.Integer(),
  limit: Type.Integer(),
  truncated: Type.Boolean({ description: 'Rows past the caps were not kept (no spill).' }),
});

export const resultSchemas = {
  statement: {
    ...extension(
      'extensions',
      'Read a whole statement result',
      'readStatementResult',
      'Statement n of a settled instance: `n` pages it as JSON, `n.csv` and `n.jsonl` export every row (streamed).',
    ),
    params: Type.Object({
      projectId: ProjectId,
      scriptName: ScriptName,
      instanceId: Type.String(),
      statement: Type.String({
        pattern: '^\\d{1,6}(\\.(csv|jsonl))?$',
        description: 'The index in `results` (0, 1, …), optionally with `.csv` or `.jsonl`.',
      }),
    }),
    headers,
    querystring: Type.Object({
      offset: Type.Optional(
        Type.String({ pattern: '^\\d*$', description: 'JSON page only: first row, default 0.' }),
      ),
      limit: Type.Optional(
        Type.String({
          pattern: '^\\d*$',
          description: `JSON page only: rows, 1-${MAX_PAGE_ROWS}, default ${DEFAULT_PAGE_ROWS}.`,
        }),
      ),
    }),
    response: {
      200: {
        description: 'A page of rows (JSON), or the whole result as CSV or JSON Lines.',
        content: {
          'application/json': { schema: ResultPage },
          'text/csv': { schema: Type.String() },
          'application/jsonl': { schema: Type.String() },
        },
      },
      ...errorResponses(),
    },
  },
};
