/**
 * Route schemas of the v1 data-connection endpoints and the system task they report import
 * progress to (connection-routes.ts). The rules stay in domain/connection.ts.
 */
import { Type } from '@sinclair/typebox';
import {
  CONNECTION_NAME_PATTERN,
  CONNECTION_TYPES,
  EXTENSION_CONNECTION_TYPES,
} from '../../domain/connection.js';
import { MapOf, NoContent, ProjectId, WorkspaceHeader, documented, errorResponses } from './common.js';

const Config = MapOf(
  Type.Union([Type.String(), Type.Boolean(), Type.Number()]),
  "Per-type keys (DataArts' tables). Output: every value a string except `sslEnable` (boolean); secrets masked as `*********`.",
);

const ConnectionType = Type.Union(
  CONNECTION_TYPES.map((t) => Type.Literal(t)),
  {
    description: `Extension types (${EXTENSION_CONNECTION_TYPES.join(', ')}) are listed only with includeExtensionTypes=true.`,
  },
);

const Connection = Type.Object({
  name: Type.String({ pattern: CONNECTION_NAME_PATTERN.source }),
  type: ConnectionType,
  config: Type.Optional(Config),
  description: Type.Optional(Type.String({ maxLength: 255 })),
});

const ProjectParams = Type.Object({ projectId: ProjectId });
const ConnectionParams = Type.Object({
  projectId: ProjectId,
  connectionName: Type.String({ description: 'Connection name.' }),
});
const headers = WorkspaceHeader;

const ImportParams = Type.Array(
  Type.Object({
    name: Type.String(),
    type: Type.Optional(Type.String({ description: 'Also accepted as `connectionType` (PY-old).' })),
    params: Type.Optional(MapOf(Type.Unknown(), "Config values overriding the archive's.")),
  }),
);
const SameNamePolicy = Type.Union([Type.Literal('SKIP'), Type.Literal('OVERWRITE')], { default: 'SKIP' });

const SystemSubtask = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: Type.String(),
  message: Type.String(),
  lastUpdate: Type.Integer({ description: 'Epoch milliseconds.' }),
  taskId: Type.String(),
});

export const connectionSchemas = {
  create: {
    ...documented(
      'connections',
      'Creating a Connection (to Be Taken Offline)',
      'createConnection',
      'Creates a connection. 204.',
    ),
    params: ProjectParams,
    headers,
    body: Connection,
    response: { 204: NoContent, ...errorResponses() },
  },
  list: {
    ...documented(
      'connections',
      'Querying a Connection List (to Be Taken Offline)',
      'listConnections',
      'Connections of the workspace. Extension: `includeExtensionTypes=true` also lists types v1 clients cannot parse.',
    ),
    params: ProjectParams,
    headers,
    querystring: Type.Object({
      offset: Type.Optional(Type.String({ pattern: '^\\d*$', description: 'Default 0.' })),
      limit: Type.Optional(Type.String({ pattern: '^\\d*$', description: '1-1000, default 10.' })),
      connectionName: Type.Optional(Type.String({ description: 'Substring of the name.' })),
      includeExtensionTypes: Type.Optional(
        Type.String({ description: 'Extension: `true` or `false` (any case).', 'x-opendlf-extension': true }),
      ),
    }),
    response: {
      200: Type.Object({ total: Type.Integer(), connections: Type.Array(Connection) }),
      ...errorResponses(),
    },
  },
  export: {
    ...documented(
      'connections',
      'Exporting Connections (to Be Taken Offline)',
      'exportConnections',
      'All connections of the workspace as `DLF_All_DataConnections.zip`, secrets left out.',
    ),
    params: ProjectParams,
    headers,
    response: {
      200: {
        description: 'The zip archive.',
        content: {
          'application/octet-stream': { schema: Type.String({ contentMediaType: 'application/zip' }) },
        },
      },
      ...errorResponses(),
    },
  },
  import: {
    ...documented(
      'connections',
      'Importing Connections (to Be Taken Offline)',
      'importConnections',
      'Imports an archive from a path in the import directory (OBS paths are refused), or — extension — ' +
        'the zip itself as an `application/zip` or `application/octet-stream` body with `sameNamePolicy` in the query. ' +
        'Progress: the system task.',
    ),
    params: ProjectParams,
    headers,
    querystring: Type.Object({
      sameNamePolicy: Type.Optional({ ...SameNamePolicy, description: 'Extension: for a zip body only.' }),
    }),
    body: {
      content: {
        'application/json': {
          schema: Type.Object({
            path: Type.String({ minLength: 1 }),
            params: Type.Optional(ImportParams),
            sameNamePolicy: Type.Optional(SameNamePolicy),
          }),
        },
        'application/zip': {
          schema: Type.String({ contentMediaType: 'application/zip', 'x-opendlf-extension': true }),
        },
        'application/octet-stream': {
          schema: Type.String({ contentMediaType: 'application/zip', 'x-opendlf-extension': true }),
        },
      },
    },
    response: { 200: Type.Object({ taskId: Type.String() }), ...errorResponses() },
  },
  get: {
    ...documented(
      'connections',
      'Querying Connection Details (to Be Taken Offline)',
      'showConnection',
      'One connection, secrets masked.',
    ),
    params: ConnectionParams,
    headers,
    response: { 200: Connection, ...errorResponses() },
  },
  edit: {
    ...documented(
      'connections',
      'Editing a Connection (to Be Taken Offline)',
      'updateConnection',
      'Replaces the connection (the type cannot change; an absent or masked password keeps the stored one). ' +
        '`ischeck=true` tests it first.',
    ),
    params: ConnectionParams,
    headers,
    querystring: Type.Object({
      ischeck: Type.Optional(Type.String({ description: '`true` or `false` (any case); default false.' })),
    }),
    body: Connection,
    response: { 204: NoContent, ...errorResponses() },
  },
  delete: {
    ...documented(
      'connections',
      'Deleting a Connection (to Be Taken Offline)',
      'deleteConnection',
      'Deletes the connection. 204.',
    ),
    params: ConnectionParams,
    headers,
    response: { 204: NoContent, ...errorResponses() },
  },
  systemTask: {
    ...documented(
      'connections',
      'Querying System Task Details',
      'showSystemTask',
      'Progress of a connection import.',
    ),
    params: Type.Object({ projectId: ProjectId, taskId: Type.String() }),
    headers,
    response: {
      200: Type.Object({
        id: Type.String(),
        name: Type.String(),
        startTime: Type.Integer({ description: 'Epoch milliseconds.' }),
        endTime: Type.Union([Type.Integer(), Type.Null()]),
        lastUpdate: Type.Integer(),
        status: Type.Union(['RUNNING', 'SUCCESSFUL', 'FAILED'].map((s) => Type.Literal(s))),
        projectId: Type.String(),
        message: Type.String(),
        subtasks: Type.Array(SystemSubtask),
      }),
      ...errorResponses(),
    },
  },
};
