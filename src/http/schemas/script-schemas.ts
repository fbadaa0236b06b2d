/**
 * Route schemas of the script endpoints (app.ts): the eight DataArts ones and the script
 * extensions. Enums and limits come from the domain modules that enforce them, so the document
 * cannot drift from the rules; the rules themselves stay in domain/script.ts and friends (see
 * http/openapi.ts for what the route schemas enforce).
 */
import { Type } from '@sinclair/typebox';
import { FAILURE_REASONS } from '../../domain/failure-reason.js';
import { INSTANCE_STATES } from '../../domain/instance-state.js';
import { PARAM_NAME_PATTERN } from '../../domain/script-params.js';
import {
  MAX_DESCRIPTION_LENGTH,
  MAX_DIRECTORY_DEPTH,
  SCRIPT_NAME_PATTERN,
  SCRIPT_TYPES,
} from '../../domain/script.js';
import {
  AnyValue,
  MapOf,
  NoContent,
  ProjectId,
  ScriptName,
  WorkspaceHeader,
  documented,
  errorResponses,
  extension,
} from './common.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

const Approvers = Type.Array(Type.Object({ approverName: Type.String({ minLength: 1 }) }), {
  description: 'Review workspaces only: who may approve (required there on create, modify and delete).',
});

const ScriptFields = {
  name: Type.String({
    pattern: SCRIPT_NAME_PATTERN.source,
    description: 'Unique in the workspace; not `.` or `..`.',
  }),
  type: Type.Union(
    SCRIPT_TYPES.map((t) => Type.Literal(t)),
    { description: 'Case-sensitive. `SparkPython` is accepted as `Spark Python` and echoed as sent.' },
  ),
  content: Type.String({ description: 'At most 4 MB (UTF-8 bytes). Missing is "".' }),
  directory: Type.String({
    description: `\`a/b\`, \`/a/b\`, \`/a/b/\` are stored as \`/a/b\`; empty is \`/\`. At most ${MAX_DIRECTORY_DEPTH} levels of 1-64 \`[A-Za-z0-9_-]\`.`,
  }),
  connectionName: Type.String({ maxLength: 100, description: 'Checked at execute, not at create.' }),
  database: Type.String({ maxLength: 128 }),
  queueName: Type.String({ maxLength: 128 }),
  configuration: MapOf(AnyValue, 'Values are stored as strings (`String(v)`, objects as JSON).'),
  description: Type.String({ maxLength: MAX_DESCRIPTION_LENGTH }),
};

const ScriptInput = Type.Object(
  {
    name: ScriptFields.name,
    type: ScriptFields.type,
    content: Type.Optional(ScriptFields.content),
    directory: Type.Optional(ScriptFields.directory),
    connectionName: Type.Optional(ScriptFields.connectionName),
    database: Type.Optional(ScriptFields.database),
    queueName: Type.Optional(ScriptFields.queueName),
    configuration: Type.Optional(ScriptFields.configuration),
    description: Type.Optional(ScriptFields.description),
    targetStatus: Type.Optional(
      Type.Union([Type.Literal('SAVED'), Type.Literal('SUBMITTED'), Type.Literal('PRODUCTION')], {
        description: 'Review workspaces only; accepted and ignored elsewhere; never echoed.',
      }),
    ),
    approvers: Type.Optional(Approvers),
  },
  { $id: 'ScriptInput', description: 'Create and modify body. Missing or unknown `type` is DLF.6247.' },
);

const Script = Type.Object(
  {
    name: Type.String(),
    type: ScriptFields.type,
    content: Type.String(),
    directory: Type.String(),
    connectionName: Type.String(),
    database: Type.String(),
    queueName: Type.String(),
    configuration: MapOf(Type.String(), 'String values only (GO reads map[string]string).'),
    description: Type.String(),
    id: Type.String(),
    owner: Type.String(),
    version: Type.Integer({ description: 'Incremented on every modify.' }),
    createUser: Type.String(),
    autoAcquireLock: Type.Boolean(),
    approvalStatus: Type.Optional(
      Type.Union(
        ['SAVED', 'PENDING', 'APPROVED', 'REJECTED'].map((s) => Type.Literal(s)),
        {
          description: 'Extension, review workspaces only.',
        },
      ),
    ),
    approvedBy: Type.Optional(
      Nullable(Type.String({ description: 'Extension: who approved or rejected it.' })),
    ),
    submittedBy: Type.Optional(Nullable(Type.String({ description: 'Extension: who submitted it.' }))),
  },
  { $id: 'Script', additionalProperties: false },
);

const StatementResult = Type.Object(
  {
    schema: Type.Array(MapOf(Type.String(), '`{"column":"TYPE"}`'), {
      description: 'One single-key object per column; Shell/Python: `[{"output":"string"}]`.',
    }),
    rows: Type.Array(Type.Array(AnyValue)),
    rowCount: Type.Integer(),
    duration: Type.Number({ description: 'Seconds.' }),
    message: Type.String(),
    truncated: Type.Optional(Type.Boolean({ description: 'Extension: rows were capped.' })),
    rawResult: Type.Optional(
      Type.String({ description: 'Extension (Shell/Python): the output text, capped.' }),
    ),
  },
  { $id: 'StatementResult', additionalProperties: false },
);

const iso = (description: string) => Nullable(Type.String({ format: 'date-time', description }));

/** Every field after `message` is an extension no client is required to read. */
const InstanceFields = {
  instanceId: Type.String(),
  detailedStatus: Type.Union(
    INSTANCE_STATES.map((s) => Type.Literal(s)),
    { description: 'Extension: the state behind `status`.' },
  ),
  failureReason: Nullable(Type.Union(FAILURE_REASONS.map((r) => Type.Literal(r)))),
  sqlState: Nullable(Type.String()),
  connectionName: Type.String(),
  engine: Type.String(),
  createTime: iso('Accepted.'),
  startTime: iso('Started running.'),
  endTime: iso('Settled.'),
  stopRequestTime: iso('A stop was requested.'),
  stoppedBy: Nullable(Type.String()),
  startedBy: Nullable(Type.String({ description: 'Who executed it (principal id).' })),
  exitCode: Nullable(Type.Integer()),
  nodeId: Type.String({
    description: 'The node that accepted it (while queued), then the node that runs or ran it.',
  }),
};

const ApiStatus = Type.Union(
  ['LAUNCHING', 'RUNNING', 'FINISHED', 'FAILED'].map((s) => Type.Literal(s)),
  { description: 'Always one of the four documented values.' },
);

const InstanceResult = Type.Object(
  {
    status: ApiStatus,
    results: Type.Array(Type.Ref('StatementResult')),
    message: Type.Optional(Type.String({ description: 'Only when FAILED.' })),
    ...InstanceFields,
  },
  // Closed: a field added to the answer without its documentation fails the response test.
  { $id: 'InstanceResult', additionalProperties: false },
);

/** A run in the history listings: the result's fields without the results. */
const InstanceSummary = Type.Object(
  {
    status: ApiStatus,
    scriptName: Type.String(),
    duration: Nullable(Type.Number({ description: 'Seconds from start to end; null until it has both.' })),
    message: Type.String(),
    ...InstanceFields,
  },
  { $id: 'InstanceSummary', additionalProperties: false },
);

/** Shared schemas, registered once with `app.addSchema` (components.schemas). */
export const SCRIPT_SHARED_SCHEMAS = [ScriptInput, Script, StatementResult, InstanceResult, InstanceSummary];

const ProjectParams = Type.Object({ projectId: ProjectId });
const ScriptParams = Type.Object({ projectId: ProjectId, scriptName: ScriptName });
const InstanceParams = Type.Object({
  projectId: ProjectId,
  scriptName: ScriptName,
  instanceId: Type.String({ description: 'The id execute answered.' }),
});

const headers = WorkspaceHeader;

/**
 * `?waitSeconds=`: the one query parameter whose check the route schema itself performs (its
 * pattern is exactly "0 to 60 with at most 3 decimals"; the message is the one the handler used to
 * give). See http/openapi.ts.
 */
export const WAIT_SECONDS_PATTERN = '^(?:[0-5]?\\d(?:\\.\\d{1,3})?|60(?:\\.0{1,3})?)$';

export const scriptSchemas = {
  create: {
    ...documented(
      'scripts',
      'Creating a Script',
      'createScript',
      'Creates a script. 204 with an empty body.',
    ),
    params: ProjectParams,
    headers,
    body: Type.Ref('ScriptInput'),
    response: { 204: NoContent, ...errorResponses() },
  },
  list: {
    ...documented(
      'scripts',
      'Querying a Script List',
      'listScripts',
      'Scripts of the workspace in creation order. `scriptName` is a substring match.',
    ),
    params: ProjectParams,
    headers,
    querystring: Type.Object({
      offset: Type.Optional(Type.String({ pattern: '^\\d*$', description: 'Record offset, default 0.' })),
      limit: Type.Optional(Type.String({ pattern: '^\\d*$', description: '1-1000, default 10.' })),
      scriptName: Type.Optional(Type.String({ description: 'Substring of the name.' })),
    }),
    response: {
      200: Type.Object({ total: Type.Integer(), scripts: Type.Array(Type.Ref('Script')) }),
      ...errorResponses(),
    },
  },
  get: {
    ...documented(
      'scripts',
      'Querying a Script',
      'showScript',
      'One script (`targetStatus` and `approvers` are not echoed).',
    ),
    params: ScriptParams,
    headers,
    response: { 200: Type.Ref('Script'), ...errorResponses() },
  },
  modify: {
    ...documented(
      'scripts',
      'Modifying a Script',
      'updateScript',
      'Replaces the script; `name` and `type` cannot change. In a review workspace it is submitted again.',
    ),
    params: ScriptParams,
    headers,
    body: Type.Ref('ScriptInput'),
    response: { 204: NoContent, ...errorResponses() },
  },
  delete: {
    ...documented(
      'scripts',
      'Deleting a Script',
      'deleteScript',
      'Stops every active instance of the script, then deletes it and its instances. The body is optional.',
    ),
    params: ScriptParams,
    headers,
    body: Type.Object({ approvers: Type.Optional(Approvers) }, { 'x-opendlf-body-optional': true }),
    response: { 204: NoContent, ...errorResponses() },
  },
  execute: {
    ...documented(
      'scripts',
      'Executing a Script',
      'executeScript',
      '`${name}` in the content is replaced by `params[name]` after `#{…}` in the values is evaluated. ' +
        'Callers without `write` must pass data (DLF.3051 otherwise). The body is optional.',
    ),
    params: ScriptParams,
    headers: Type.Object({
      ...WorkspaceHeader.properties,
      'idempotency-key': Type.Optional(
        Type.String({
          pattern: '^[\\x20-\\x7e]{1,255}$',
          description:
            'Extension: a repeat within 24 h with the same body answers the first instance (header ' +
            '`Idempotent-Replayed: true`); another body under the same key is OPENDLF.0640.',
          'x-opendlf-extension': true,
        }),
      ),
    }),
    querystring: Type.Object({
      waitSeconds: Type.Optional(
        Type.String({
          pattern: WAIT_SECONDS_PATTERN,
          description:
            'Extension: wait up to N seconds (0-60, at most 3 decimals) and answer with the result too when the run settles in time.',
          'x-opendlf-extension': true,
        }),
      ),
    }),
    body: Type.Object(
      {
        params: Type.Optional(
          Type.Record(Type.String({ pattern: PARAM_NAME_PATTERN.source }), Type.String(), {
            description: 'Parameter values (at most 1,000).',
          }),
        ),
        timeoutSeconds: Type.Optional(
          Type.Union([Type.Number(), Type.String()], {
            description:
              "Extension: this run's timeout, > 0 and at most instanceTimeoutSeconds (at most 3 decimals). " +
              "Default: the script's `opendlf.timeoutSeconds` configuration entry, else the server's.",
            'x-opendlf-extension': true,
          }),
        ),
      },
      { 'x-opendlf-body-optional': true },
    ),
    response: {
      200: Type.Union(
        [
          Type.Object({ instanceId: Type.String() }, { additionalProperties: false }),
          // Extension: with `waitSeconds`, when the run settled in time (`instanceId` comes first).
          Type.Ref('InstanceResult'),
        ],
        {
          description:
            'The instance id (GO expects 204 and cannot read it); with `waitSeconds` and a run that settled in time, the whole result.',
        },
      ),
      ...errorResponses(),
    },
  },
  instance: {
    ...documented(
      'scripts',
      'Querying the Execution Result of a Script Instance',
      'listScriptResults',
      'Status and per-statement results. Extension: `?waitSeconds=N` answers as soon as the instance settles.',
    ),
    params: InstanceParams,
    headers,
    querystring: Type.Object({
      waitSeconds: Type.Optional(
        Type.String({
          pattern: WAIT_SECONDS_PATTERN,
          description: 'Extension: long poll, 0-60 seconds with at most 3 decimals. Default 0.',
          'x-opendlf-extension': true,
          'x-dlf-invalid-message': 'waitSeconds must be a number from 0 to 60',
        }),
      ),
    }),
    response: { 200: Type.Ref('InstanceResult'), ...errorResponses() },
  },
  stop: {
    ...documented(
      'scripts',
      'Stopping Executing a Script Instance',
      'cancelScript',
      'Ends the work in every phase and answers once the instance is terminal (bounded by stopWaitMs). Idempotent.',
    ),
    params: InstanceParams,
    headers,
    response: { 204: NoContent, ...errorResponses() },
  },
  approve: {
    ...extension(
      'extensions',
      'Approve a script',
      'approveScript',
      'Review workspaces: a listed approver (not the submitter) approves.',
    ),
    params: ScriptParams,
    headers,
    response: { 204: NoContent, ...errorResponses() },
  },
  reject: {
    ...extension(
      'extensions',
      'Reject a script',
      'rejectScript',
      'Review workspaces: a listed approver (not the submitter) rejects.',
    ),
    params: ScriptParams,
    headers,
    response: { 204: NoContent, ...errorResponses() },
  },
};
