/**
 * Who may do what. A principal (an access key or a token) is granted projects and, per workspace,
 * a role; each API operation needs one action. No I/O here.
 *
 *   role       read  write  execute  stop  approve
 *   admin       ✓     ✓      ✓       ✓      ✓
 *   developer   ✓     ✓      ✓       ✓
 *   deployer    ✓            ✓       ✓      ✓
 *   operator    ✓            ✓       ✓
 *   viewer      ✓
 *
 * write    create/modify/delete scripts and connections (what runs, and where)
 * execute  run a script with parameters; without write, parameter values are data only
 *          (script-params.ts refuses values that could add code)
 * approve  approve or reject a script submitted for review (DataArts: workspace admins and
 *          deployers), never one the principal submitted itself (script-service.ts)
 *
 * `deployer` follows DataArts' role of that name: it releases what developers wrote, so it may
 * approve and run but not change scripts — developers write, deployers approve, neither alone
 * puts code into production in a review workspace.
 */
export const ROLES = ['admin', 'developer', 'deployer', 'operator', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const ACTIONS = ['read', 'write', 'execute', 'stop', 'approve'] as const;
export type Action = (typeof ACTIONS)[number];

const ROLE_ACTIONS: Readonly<Record<Role, readonly Action[]>> = {
  admin: ACTIONS,
  developer: ['read', 'write', 'execute', 'stop'],
  deployer: ['read', 'execute', 'stop', 'approve'],
  operator: ['read', 'execute', 'stop'],
  viewer: ['read'],
};

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** `*` as a project or workspace id means "any". */
export const ANY = '*';

export interface Grant {
  /** A workspace id, or `*` for every workspace of the granted projects. */
  readonly workspace: string;
  readonly role: Role;
}

export interface Principal {
  /** The access key id, the token's id, or `anonymous` when no credentials are configured. */
  readonly id: string;
  readonly kind: 'aksk' | 'token' | 'anonymous';
  /** Project ids this principal may use (`*` for all). */
  readonly projects: readonly string[];
  readonly grants: readonly Grant[];
}

/** Used when the server has no credentials at all (then it binds to loopback only). */
export const ANONYMOUS: Principal = {
  id: 'anonymous',
  kind: 'anonymous',
  projects: [ANY],
  grants: [{ workspace: ANY, role: 'admin' }],
};

export type AccessDecision = { allowed: true } | { allowed: false; reason: 'project' | 'role' };

/** The role for a workspace: an exact grant wins over a `*` grant. */
export function roleIn(principal: Principal, workspaceId: string): Role | undefined {
  return (
    principal.grants.find((g) => g.workspace === workspaceId)?.role ??
    principal.grants.find((g) => g.workspace === ANY)?.role
  );
}

export function authorize(
  principal: Principal,
  projectId: string,
  workspaceId: string,
  action: Action,
): AccessDecision {
  if (!principal.projects.includes(ANY) && !principal.projects.includes(projectId)) {
    return { allowed: false, reason: 'project' };
  }
  const role = roleIn(principal, workspaceId);
  if (!role || !ROLE_ACTIONS[role].includes(action)) return { allowed: false, reason: 'role' };
  return { allowed: true };
}
