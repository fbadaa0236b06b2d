/**
 * Pieces every route schema shares: the error envelope, the `workspace` header, the path
 * parameters, the security requirement and the two kinds of operation (a documented DataArts
 * endpoint, named after its official page, or an opendlf extension). The route schemas are what
 * @fastify/swagger turns into /openapi.json; http/openapi.ts says which parts the server enforces.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { ERROR_REGISTRY } from '../../domain/dlf-error.js';

/** Names of the shared schemas (components.schemas in the document). */
export const ERROR_SCHEMA_ID = 'Error';

/** `{"error_code","error_msg","errors":[…]}`: PY reads the pair, Terraform reads `errors[0]`. */
export const ErrorBody = Type.Object(
  {
    error_code: Type.String({
      description: 'DLF.xxxx (documented), APIGW.xxxx (gateway) or OPENDLF.xxxx (this server).',
    }),
    error_msg: Type.String(),
    errors: Type.Array(Type.Object({ error_code: Type.String(), error_msg: Type.String() }), {
      description: 'The same code and message again (Terraform reads this array for some calls).',
    }),
  },
  { $id: ERROR_SCHEMA_ID, description: 'The DataArts error envelope; every failure has this shape.' },
);

const errorRef = (description: string) => Type.Ref(ERROR_SCHEMA_ID, { description });

const codesWith = (status: number) =>
  Object.entries(ERROR_REGISTRY)
    .filter(([, entry]) => entry.status === status)
    .map(([code]) => code)
    .join(', ');

/**
 * The error answers any /v1 route can give. Functional errors are 400, as in DataArts (even "not
 * found"); the codes of each status come from the one registry, so this list cannot drift from it.
 */
export function errorResponses() {
  return {
    400: errorRef(`A functional error (${codesWith(400)}).`),
    401: errorRef('APIGW.0301: the credentials are missing, invalid or expired (multi-user mode).'),
    403: errorRef('DLF.6888: the principal lacks the project or the role.'),
    404: errorRef('APIGW.0101: no such API.'),
    413: errorRef('APIGW.0201: the request body exceeds bodyLimitBytes.'),
    429: errorRef('APIGW.0308: too many failed authentications; see Retry-After.'),
    500: errorRef('OPENDLF.0500: an unexpected error (logged with the request id).'),
    503: errorRef('OPENDLF.0503 (shutting down) or OPENDLF.0504 (store unavailable).'),
    507: errorRef('OPENDLF.0507: the storage is full.'),
  };
}

/** A success without a body (204). */
export const NoContent = Type.Null({ description: 'No content.' });

/** Every DataArts call may name its workspace; absent means the default workspace. */
export const WorkspaceHeader = Type.Object({
  workspace: Type.Optional(
    Type.String({
      description:
        'Workspace id (`[A-Za-z0-9_-]{1,64}`; with `workspaces` configured, one of them). Absent: the default workspace.',
    }),
  ),
});

export const ProjectId = Type.String({
  description: 'Project id: any id, it namespaces the data (with credentials, one the principal holds).',
});
export const ScriptName = Type.String({ description: 'Script name, percent-encoded.' });

/**
 * AK/SK signatures (both official client styles) or a static token. With no credentials configured
 * (single-user mode) every request is accepted without either: hence the empty alternative.
 */
export const SECURITY_SCHEMES = {
  akskSignature: {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description:
      'AK/SK signature as the official SDKs compute it: `SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` ' +
      '(Python and Huawei Go SDKs) or `SDK-HMAC-SHA256 Credential=…/sdk_request, …` (Open Telekom Cloud Go client), ' +
      'with `X-Sdk-Date` signed and within signatureMaxSkewSeconds of the server clock.',
  },
  authToken: {
    type: 'apiKey',
    in: 'header',
    name: 'X-Auth-Token',
    description: 'A static token added with `opendlf credentials add --token`.',
  },
} as const;

const V1_SECURITY: Record<string, string[]>[] = [{ akskSignature: [] }, { authToken: [] }, {}];

/** The extension keyword that marks what DataArts does not document. */
export const EXTENSION_FLAG = 'x-opendlf-extension';

/**
 * A DataArts endpoint: summary and `x-dataarts-api` are the official page's title (DataArts
 * Factory API reference), so a reader can look the behaviour up there.
 */
export function documented(
  tag: 'scripts' | 'connections',
  page: string,
  operationId: string,
  description: string,
) {
  return {
    tags: [tag],
    summary: page,
    operationId,
    description,
    'x-dataarts-api': page,
    security: V1_SECURITY,
  };
}

/** An opendlf endpoint that DataArts does not have. */
export function extension(
  tag: 'extensions' | 'operations',
  summary: string,
  operationId: string,
  description: string,
) {
  return {
    tags: [tag],
    summary,
    operationId,
    description,
    [EXTENSION_FLAG]: true,
    ...(tag === 'extensions' ? { security: V1_SECURITY } : {}),
  };
}

/** A JSON value of any shape (rows, configuration values as sent). */
export const AnyValue = Type.Unknown();

/** An object with `additionalProperties` of the given schema. */
export const MapOf = <T extends TSchema>(value: T, description: string) =>
  Type.Record(Type.String(), value, { description });

export const TAGS = [
  {
    name: 'scripts',
    description:
      'DataArts Factory "Script Development APIs": the eight script endpoints, at the server root.',
  },
  {
    name: 'connections',
    description:
      'DataArts Factory "Connection Management APIs (To Be Taken Offline)", and the system task they report to.',
  },
  { name: 'extensions', description: 'opendlf extensions: endpoints DataArts does not have.' },
  { name: 'operations', description: 'Health, readiness, metrics and this document (opendlf extensions).' },
];
