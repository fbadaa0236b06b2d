/**
 * Authentication and authorization for every /v1 route. A request proves who it is with an AK/SK
 * signature (either official client style) or an `X-Auth-Token`; the principal found is attached to
 * the request, and each route asks `authorizedNamespace(request, action)` for the namespace it may
 * work in. 401 (APIGW.0301) when the credentials are missing or wrong, 403 (DLF.6888) when a valid
 * principal lacks the project or the role. With no credentials configured every request is the
 * anonymous admin (the server then binds to loopback only).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authorize, ANONYMOUS, type Action, type Principal } from '../../domain/access.js';
import { DlfError } from '../../domain/dlf-error.js';
import type { Namespace } from '../../domain/script.js';
import type { CredentialDirectory } from '../../services/credential-directory.js';
import type { WorkspaceResolver } from '../../services/workspace-resolver.js';
import { namespaceOf } from '../request-helpers.js';
import { parseAuthorization, verifySignature } from './aksk-signature.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hook on every /v1 route; null elsewhere. */
    principal: Principal | null;
  }
}

/**
 * Turns an `X-Auth-Token` into a principal, or undefined when it is not valid. The default checks
 * the configured static tokens; an IAM validator (Keystone token introspection) can take its place.
 */
export type TokenValidator = (token: string) => Promise<Principal | undefined>;

export interface AuthOptions {
  readonly credentials: CredentialDirectory;
  /** Defaults to the credential directory's static tokens. */
  readonly validateToken?: TokenValidator;
  /** Allowed difference between X-Sdk-Date and the server clock. Default 15 min. */
  readonly maxSkewMs: number;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  if (Array.isArray(value)) throw new DlfError('APIGW.0301', `The ${name} header may be given only once.`);
  return value;
}

async function authenticate(request: FastifyRequest, options: AuthOptions): Promise<Principal> {
  if ((await options.credentials.mode()) === 'none') return ANONYMOUS;
  const token = header(request, 'x-auth-token');
  if (token !== undefined) {
    const validate = options.validateToken ?? ((t: string) => options.credentials.principalForToken(t));
    const principal = await validate(token);
    if (!principal) throw new DlfError('APIGW.0301', 'The token is invalid or expired.');
    return principal;
  }
  // Temporary (STS) credentials need a session store this server does not have: refuse, never ignore.
  if (header(request, 'x-security-token') !== undefined) {
    throw new DlfError(
      'APIGW.0301',
      'Temporary credentials (X-Security-Token) are not supported by this server.',
    );
  }
  const authorization = header(request, 'authorization');
  if (authorization === undefined) {
    throw new DlfError(
      'APIGW.0301',
      'Authentication is required: sign the request with an AK/SK or send X-Auth-Token.',
    );
  }
  const parsed = parseAuthorization(authorization);
  if (!parsed)
    throw new DlfError(
      'APIGW.0301',
      'The Authorization header is malformed or uses an unsupported algorithm.',
    );
  const found = await options.credentials.secretKey(parsed.accessKey);
  if (!found) throw new DlfError('APIGW.0301', 'The access key is unknown or expired.');
  const result = verifySignature(
    {
      method: request.method,
      rawUrl: request.raw.url ?? request.url,
      headers: request.headers,
      body: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
    },
    (accessKey) => (accessKey === parsed.accessKey ? found.secretKey : undefined),
    { now: new Date(), maxSkewMs: options.maxSkewMs },
  );
  if (!result.ok) throw new DlfError('APIGW.0301', `The request signature is invalid: ${result.reason}.`);
  return found.principal;
}

export function registerAuthentication(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest('principal', null);
  app.addHook('preHandler', async (request) => {
    // The matched route template, not the raw URL: `//v1/…` and absolute-form targets route here too.
    if (!(request.routeOptions.url ?? '').startsWith('/v1/')) return;
    request.principal = await authenticate(request, options);
    // The Python SDK signs X-Project-Id, the Go client sends it unsigned: either way it must match the path.
    const projectHeader = header(request, 'x-project-id');
    const pathProject = (request.params as { projectId?: string }).projectId;
    if (projectHeader !== undefined && pathProject !== undefined && projectHeader !== pathProject) {
      throw new DlfError('DLF.6888', 'The X-Project-Id header does not match the project in the path.');
    }
  });
}

/** The namespace of the request, once the principal is allowed `action` in it. */
export function authorizedNamespace(
  workspaces: WorkspaceResolver,
  request: FastifyRequest<{ Params: { projectId?: string } }>,
  action: Action,
): Namespace {
  const principal = request.principal;
  if (!principal) throw new DlfError('APIGW.0301');
  const ns = namespaceOf(workspaces, request);
  const decision = authorize(principal, ns.projectId, ns.workspaceId, action);
  if (!decision.allowed) {
    throw new DlfError(
      'DLF.6888',
      decision.reason === 'project'
        ? `Invalid account permissions: no access to project ${ns.projectId}.`
        : `Invalid account permissions: the ${action} permission is not granted in workspace ${ns.workspaceId}.`,
    );
  }
  return ns;
}

/** The authenticated principal of a /v1 request. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new DlfError('APIGW.0301');
  return request.principal;
}

/** The id recorded as the actor of a change (owner, createUser, stoppedBy, audit lines). */
export const actorOf = (request: FastifyRequest) => principalOf(request).id;
