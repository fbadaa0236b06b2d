/**
 * A multi-user server for the trust-boundary tests: credentials configured (so authentication is
 * enforced), several principals with different roles in two projects, and an API client per
 * principal that authenticates with its token (`X-Auth-Token`). Signed AK/SK requests are covered
 * by test/integration/auth.test.ts; the boundaries under test here do not depend on how a principal
 * proved who it is.
 */
import type { ConfigOverrides } from '../../src/config.js';
import {
  ApiClient,
  startTestServer,
  type ApiResponse,
  type RequestOptions,
  type TestServer,
} from './server.js';

export const PROJECT_A = 'projA0000000000000000000000000001';
export const PROJECT_B = 'projB0000000000000000000000000002';

/** Role holders. Tokens are 16+ characters; each name says what it is granted. */
export const PRINCIPALS = {
  adminA: { token: 'token-admin-A-000000000000000001', projects: [PROJECT_A], workspace: '*', role: 'admin' },
  developerA: {
    token: 'token-developer-A-00000000000002',
    projects: [PROJECT_A],
    workspace: '*',
    role: 'developer',
  },
  operatorA: {
    token: 'token-operator-A-000000000000003',
    projects: [PROJECT_A],
    workspace: '*',
    role: 'operator',
  },
  viewerA: {
    token: 'token-viewer-A-00000000000000004',
    projects: [PROJECT_A],
    workspace: '*',
    role: 'viewer',
  },
  adminB: { token: 'token-admin-B-000000000000000005', projects: [PROJECT_B], workspace: '*', role: 'admin' },
  developerB: {
    token: 'token-developer-B-00000000000006',
    projects: [PROJECT_B],
    workspace: '*',
    role: 'developer',
  },
} as const;

export type PrincipalName = keyof typeof PRINCIPALS;

/** An ApiClient that sends a principal's token with every request. */
export class TokenClient extends ApiClient {
  constructor(
    baseUrl: string,
    projectId: string,
    readonly token: string,
    workspace?: string,
  ) {
    super(baseUrl, projectId, workspace);
  }

  override request(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    return super.request(method, path, {
      ...options,
      headers: { 'x-auth-token': this.token, ...options.headers },
    });
  }
}

export interface MultiUserServer extends TestServer {
  /** A client for `who` on its own project (or `projectId`), optionally in a workspace. */
  as(who: PrincipalName, options?: { projectId?: string; workspace?: string }): TokenClient;
}

/** Starts an in-process server with every principal of PRINCIPALS configured. */
export async function startMultiUserServer(overrides: ConfigOverrides = {}): Promise<MultiUserServer> {
  const credentials = Object.values(PRINCIPALS).map((p) => ({
    token: p.token,
    projects: [...p.projects],
    grants: [{ workspace: p.workspace, role: p.role }],
  }));
  const server = await startTestServer({
    // Tests make many deliberate failures from one address; the throttle has its own (auth-mode.test.ts).
    authFailuresPerAddress: 100_000,
    authFailuresPerAccessKey: 100_000,
    ...overrides,
    credentials: [...credentials, ...(overrides.credentials ?? [])],
  });
  return {
    ...server,
    as(who, options = {}) {
      const principal = PRINCIPALS[who];
      return new TokenClient(
        server.url,
        options.projectId ?? principal.projects[0],
        principal.token,
        options.workspace,
      );
    },
  };
}

/** The principal id a token is known by (what `approverName` and audit lines use). */
export { tokenId } from '../../src/services/credential-directory.js';
