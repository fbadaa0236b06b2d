/**
 * Authentication and authorization for every /v1 route. A request proves who it is with an AK/SK
 * signature (either official client style) or an `X-Auth-Token`; the principal found is attached to
 * the request, and each route asks `authorizedNamespace(request, action)` for the namespace it may
 * work in. 401 (APIGW.0301) when the credentials are missing or wrong, 403 (DLF.6888) when a valid
 * principal lacks the project or the role. With no credentials configured every request is the
 * anonymous admin (the server then binds to loopback only); once credentials existed, never again
 * for the life of the process (CredentialDirectory.mode).
 *
 * Every failure answers the same message whatever went wrong — unknown access key, wrong signature,
 * bad token — so the answers reveal nothing about which access keys exist; the reason is logged.
 * Failures are counted per client address and per access key (AuthFailureThrottle): past the limit
 * the caller gets 429 with Retry-After before its credentials are checked.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorize, ANONYMOUS, type Action, type Principal } from '../../domain/access.js';
import { DlfError } from '../../domain/dlf-error.js';
import type { Namespace } from '../../domain/script.js';
import {
  ACCESS_KEY_PATTERN,
  tokenId,
  type CredentialDirectory,
} from '../../services/credential-directory.js';
import type { WorkspaceResolver } from '../../services/workspace-resolver.js';
import { namespaceOf, routeOf } from '../request-helpers.js';
import { parseAuthorization, verifySignature } from './aksk-signature.js';
import { AuthFailureThrottle } from './auth-failure-throttle.js';

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
  /** Failed authentications per minute from one client address before 429. Default 30. */
  readonly failuresPerAddress?: number;
  /** Failed authentications per minute naming one access key or token before 429. Default 10. */
  readonly failuresPerAccessKey?: number;
  /** In multi-user mode, `/metrics` needs valid credentials (any principal). Default false. */
  readonly metricsRequireAuth?: boolean;
}

/** The one answer to every authentication failure (no oracle for which access keys exist). */
export const AUTHENTICATION_FAILED =
  'Authentication failed: the credentials are missing, invalid or expired.';

/**
 * Routes whose body is a raw upload rather than JSON: only there may a signature leave the payload
 * unsigned (`X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`, as the Go SDK does for non-JSON bodies).
 */
const RAW_BODY_ROUTES: ReadonlySet<string> = new Set(['/v1/:projectId/connections/import']);

/** A failure whose reason is logged but never answered. */
class AuthenticationFailure extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  if (Array.isArray(value)) throw new DlfError('APIGW.0301', `The ${name} header may be given only once.`);
  return value;
}

/**
 * The access key (or token id) a request names, before anything is verified. Only well-formed access
 * keys count (bounded length): an attacker-chosen 16 KB "key" must not become a throttle entry.
 */
function claimedKeyOf(request: FastifyRequest): string | undefined {
  const token = request.headers['x-auth-token'];
  if (typeof token === 'string') return tokenId(token);
  const authorization = request.headers['authorization'];
  if (typeof authorization !== 'string') return undefined;
  const accessKey = parseAuthorization(authorization)?.accessKey;
  return accessKey !== undefined && ACCESS_KEY_PATTERN.test(accessKey) ? accessKey : undefined;
}

/** The principal of a multi-user request; throws AuthenticationFailure. */
async function verifyCredentials(request: FastifyRequest, options: AuthOptions): Promise<Principal> {
  const token = header(request, 'x-auth-token');
  if (token !== undefined) {
    const validate = options.validateToken ?? ((t: string) => options.credentials.principalForToken(t));
    const principal = await validate(token);
    if (!principal) throw new AuthenticationFailure('invalid or expired token');
    return principal;
  }
  // Temporary (STS) credentials need a session store this server does not have: refuse, never ignore.
  if (header(request, 'x-security-token') !== undefined) {
    throw new AuthenticationFailure('temporary credentials (X-Security-Token) are not supported');
  }
  const authorization = header(request, 'authorization');
  if (authorization === undefined) throw new AuthenticationFailure('no credentials');
  const parsed = parseAuthorization(authorization);
  if (!parsed) throw new AuthenticationFailure('malformed Authorization header');
  const found = await options.credentials.secretKey(parsed.accessKey);
  // An unknown key is verified against nothing but answered exactly like a wrong signature.
  if (!found) throw new AuthenticationFailure('unknown or expired access key');
  const contentType = request.headers['content-type'];
  const result = verifySignature(
    {
      method: request.method,
      rawUrl: request.raw.url ?? request.url,
      headers: request.headers,
      body: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
    },
    (accessKey) => (accessKey === parsed.accessKey ? found.secretKey : undefined),
    {
      now: new Date(),
      maxSkewMs: options.maxSkewMs,
      allowUnsignedPayload: RAW_BODY_ROUTES.has(routeOf(request) ?? '') && typeof contentType === 'string',
    },
  );
  if (!result.ok) throw new AuthenticationFailure(`signature: ${result.reason}`);
  return found.principal;
}

/** Authenticates a request in multi-user mode, throttling and counting failures. */
async function authenticateEnforced(
  request: FastifyRequest,
  reply: FastifyReply,
  options: AuthOptions,
  throttle: AuthFailureThrottle,
): Promise<Principal> {
  const claimedKey = claimedKeyOf(request);
  const retryAfter = throttle.retryAfterSeconds(request.ip, claimedKey);
  if (retryAfter !== undefined) {
    void reply.header('retry-after', String(retryAfter));
    throw new DlfError(
      'APIGW.0308',
      'The throttling threshold has been reached: too many failed authentications, retry later.',
    );
  }
  try {
    return await verifyCredentials(request, options);
  } catch (error) {
    if (!(error instanceof AuthenticationFailure)) throw error;
    throttle.recordFailure(request.ip, claimedKey);
    request.log.info({ reason: error.reason, accessKey: claimedKey }, 'authentication failed');
    throw new DlfError('APIGW.0301', AUTHENTICATION_FAILED);
  }
}

/**
 * /readyz must answer while the store is unreachable, and promptly: a caller without credentials
 * waits this long at most for the store to say whether credentials exist (it decides whether the
 * answer carries the check details); past it the last mode the store gave is used.
 */
const READYZ_MODE_LOOKUP_MS = 1_000;

function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export function registerAuthentication(app: FastifyInstance, options: AuthOptions): void {
  /** The mode the last store lookup gave (it only ever moves from none to enforced). */
  let lastMode = options.credentials.knownMode();
  const throttle = new AuthFailureThrottle({
    perAddress: options.failuresPerAddress ?? 30,
    perAccessKey: options.failuresPerAccessKey ?? 10,
  });
  app.decorateRequest('principal', null);

  /** Everything after the mode is known; async only where credentials are verified. */
  async function authenticate(request: FastifyRequest, reply: FastifyReply) {
    const route = routeOf(request) ?? '';
    if (route === '/metrics' || route === '/readyz') {
      // /readyz answers everyone, with details only for an authenticated caller (see app.ts).
      const presentsCredentials =
        request.headers['authorization'] !== undefined || request.headers['x-auth-token'] !== undefined;
      const required = route === '/metrics' ? options.metricsRequireAuth === true : presentsCredentials;
      if (required) {
        request.principal = await authenticateEnforced(request, reply, options, throttle);
      }
      return;
    }
    request.principal = await authenticateEnforced(request, reply, options, throttle);
    checkProjectHeader(request);
  }

  // The one preHandler hook of the app (each hook is a step of fastify's hook runner). Synchronous
  // (callback style) so the common case — the mode known without a store query and no credentials
  // to verify — costs no promise; everything else continues asynchronously. Once the caller is
  // authenticated it raises the query check the route schema attached (openapi.ts): a caller
  // without credentials gets 401 before any 400.
  app.addHook('preHandler', (request, reply, done) => {
    // The matched route template, not the raw URL: `//v1/…` and absolute-form targets route here too.
    const route = routeOf(request) ?? '';
    const operational = route === '/metrics' || route === '/readyz';
    if (!operational && !route.startsWith('/v1/')) return done(request.validationError);
    const known = options.credentials.knownMode();
    if (known === 'none') {
      request.principal = ANONYMOUS;
      try {
        if (!operational) checkProjectHeader(request);
      } catch (error) {
        return done(error as Error);
      }
      return done(request.validationError);
    }
    let mode = known === undefined ? options.credentials.mode() : Promise.resolve(known);
    mode = mode.then((current) => (lastMode = current));
    const presentsCredentials =
      request.headers['authorization'] !== undefined || request.headers['x-auth-token'] !== undefined;
    if (route === '/readyz' && !presentsCredentials) {
      mode = within(mode, READYZ_MODE_LOOKUP_MS).catch(() => lastMode ?? 'enforced');
    }
    mode
      .then(async (current) => {
        if (current === 'enforced') return authenticate(request, reply);
        request.principal = ANONYMOUS;
        if (!operational) checkProjectHeader(request);
      })
      .then(() => done(request.validationError), done);
  });
}

/** The Python SDK signs X-Project-Id, the Go client sends it unsigned: either way it must match the path. */
function checkProjectHeader(request: FastifyRequest): void {
  const projectHeader = header(request, 'x-project-id');
  const pathProject = (request.params as { projectId?: string }).projectId;
  if (projectHeader !== undefined && pathProject !== undefined && projectHeader !== pathProject) {
    throw new DlfError('DLF.6888', 'The X-Project-Id header does not match the project in the path.');
  }
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
