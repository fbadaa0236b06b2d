/**
 * The credentials a server accepts: access keys (AK → SK) and static tokens, each with projects,
 * per-workspace roles and an optional expiry. They come from the data directory's store (managed
 * with `opendlf credentials …`) and from the config file. With none at all the server runs without
 * authentication (and binds to loopback only). Secret keys are sealed at rest (HMAC verification
 * needs them in clear, so they cannot be hashed); tokens are stored as SHA-256 hashes.
 *
 * The mode only ever moves from `none` to `enforced`, never back: removing the last credential of a
 * running server leaves it enforcing (every call gets 401), and the store remembers that it once
 * enforced, so a later start without credentials must ask for `auth: none` explicitly.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ANY, isRole, type Grant, type Principal, type Role } from '../domain/access.js';
import type { CredentialRecord, CredentialStore } from '../store/store.js';
import type { SecretCipher } from './secret-cipher.js';

/** A credential as the config file declares it (secret in clear: the file is the operator's). */
export interface ConfiguredCredential {
  accessKey?: string;
  secretKey?: string;
  token?: string;
  projects: string[];
  grants: { workspace: string; role: string }[];
  expiresAt?: string;
}

export interface CredentialSummary {
  kind: CredentialRecord['kind'];
  id: string;
  projects: string[];
  grants: Grant[];
  expiresAt: string | null;
  source: 'store' | 'config';
}

export type AuthMode = 'none' | 'enforced';

/**
 * Remembers, in the store shared by every node, that authentication was once enforced on it. Owned
 * here, implemented by the composition root over the store's settings.
 */
export interface AuthLatch {
  /** Idempotent: the first record wins. */
  recordEnforced(): Promise<void>;
}

/** What the operator asked for: `auto` follows the credentials, `none` starts unauthenticated on purpose. */
export type RequestedAuth = 'auto' | 'none';

/**
 * The start-up decision, pure so every branch is tested: the mode to run in, or why the server must
 * not start. Unauthenticated serving needs (a) no credentials, (b) a loopback bind or
 * `allowUnauthenticatedRemote`, and (c) on a store that once enforced authentication, `auth: none`.
 */
export function startupAuthDecision(input: {
  credentialsExist: boolean;
  wasEnforced: boolean;
  requested: RequestedAuth;
  loopbackOnly: boolean;
  allowUnauthenticatedRemote: boolean;
  host: string;
}): { ok: true; mode: AuthMode } | { ok: false; reason: string } {
  if (input.credentialsExist) {
    if (input.requested === 'none') {
      return {
        ok: false,
        reason:
          'auth is "none" but credentials are configured: remove them (opendlf credentials remove …, the ' +
          'config file) or start with auth "auto"',
      };
    }
    return { ok: true, mode: 'enforced' };
  }
  if (input.wasEnforced && input.requested !== 'none') {
    return {
      ok: false,
      reason:
        'this store once enforced authentication and has no credentials left: add one (opendlf ' +
        'credentials add …) or start without authentication on purpose with --auth none',
    };
  }
  if (!input.loopbackOnly && !input.allowUnauthenticatedRemote) {
    return {
      ok: false,
      reason:
        `refusing to bind ${input.host}: opendlf has no credentials configured, so it binds to loopback ` +
        'only. Add credentials (opendlf credentials add …) or pass --allow-unauthenticated-remote.',
    };
  }
  return { ok: true, mode: 'none' };
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** Tokens are found by a prefix of their hash, so the store never holds (or indexes) the token. */
export const tokenId = (token: string) => `tok-${sha256(token).slice(0, 16)}`;

export const ACCESS_KEY_PATTERN = /^[A-Za-z0-9_-]{8,128}$/;

function grantsOf(raw: { workspace: string; role: string }[]): Grant[] {
  return raw.map((g) => {
    if (!isRole(g.role))
      throw new Error(`unknown role '${g.role}' (admin, developer, deployer, operator, viewer)`);
    return { workspace: g.workspace, role: g.role satisfies Role };
  });
}

export class CredentialDirectory {
  private readonly configured: CredentialRecord[];
  private readonly configuredSecrets = new Map<string, string>();
  /** Set the first time credentials are seen; never cleared (see the header). */
  private enforced = false;
  private latchRecorded = false;
  /** The store's change stamp at which no credential existed (see knownMode). */
  private noneAtStamp: number | undefined;

  constructor(
    private readonly store: CredentialStore,
    private readonly cipher: SecretCipher,
    configured: readonly ConfiguredCredential[] = [],
    /** Absent for the CLI, which manages credentials but serves nothing. */
    private readonly latch?: AuthLatch,
  ) {
    this.configured = configured.map((c) => {
      const expiresAt = c.expiresAt ? new Date(c.expiresAt) : null;
      if (expiresAt && Number.isNaN(expiresAt.getTime()))
        throw new Error(`invalid expiresAt '${c.expiresAt}'`);
      const base = { projects: c.projects, grants: grantsOf(c.grants), expiresAt, createdAt: new Date(0) };
      if (c.accessKey && c.secretKey) {
        this.configuredSecrets.set(c.accessKey, c.secretKey);
        return { ...base, kind: 'aksk', id: c.accessKey, secret: '' };
      }
      if (c.token) return { ...base, kind: 'token', id: tokenId(c.token), secret: sha256(c.token) };
      throw new Error('a configured credential needs accessKey + secretKey, or token');
    });
  }

  /** Whether any credential (configured or stored) exists right now. */
  async credentialsExist(): Promise<boolean> {
    return this.configured.length > 0 || (await this.store.count()) > 0;
  }

  /**
   * `enforced` from the first moment credentials exist, for the life of this object: a credential
   * added while the server runs turns authentication on from the next request, removing the last
   * one never turns it off. The switch is recorded in the store (once) before it is reported.
   */
  async mode(): Promise<AuthMode> {
    if (!this.enforced) {
      // Read before counting: a credential added during the count moves the stamp, so the next
      // request counts again instead of trusting this answer.
      const stamp = this.store.changeStamp();
      if (await this.credentialsExist()) this.enforced = true;
      else this.noneAtStamp = stamp;
    }
    if (!this.enforced) return 'none';
    if (!this.latchRecorded) {
      // Enforcing already (in memory); a store failure here fails the request, never opens it.
      await this.latch?.recordEnforced();
      this.latchRecorded = true;
    }
    return 'enforced';
  }

  /**
   * The mode without a store query, when it is known: `enforced` for good once recorded, `none`
   * while the store's change stamp has not moved since credentials were last counted (a profile
   * showed a count(*) per request). Undefined: ask `mode()`. A store that cannot tell cheaply
   * (no stamp) is counted on every request of an unauthenticated server, so it never fails open.
   */
  knownMode(): AuthMode | undefined {
    if (this.enforced) return this.latchRecorded ? 'enforced' : undefined;
    const stamp = this.store.changeStamp();
    return stamp !== undefined && stamp === this.noneAtStamp ? 'none' : undefined;
  }

  private async record(
    kind: CredentialRecord['kind'],
    id: string,
    now: Date,
  ): Promise<CredentialRecord | undefined> {
    const record =
      this.configured.find((c) => c.kind === kind && c.id === id) ?? (await this.store.get(kind, id));
    if (!record || (record.expiresAt && record.expiresAt.getTime() <= now.getTime())) return undefined;
    return record;
  }

  private static principal(record: CredentialRecord): Principal {
    return { id: record.id, kind: record.kind, projects: record.projects, grants: record.grants };
  }

  /**
   * The live (unexpired) principal with this id — a token id (`tok-…`) or an access key id — so a
   * rule that names principals (a script's approvers) can be checked against who they are.
   */
  async principalById(id: string, now = new Date()): Promise<Principal | undefined> {
    const record = (await this.record('token', id, now)) ?? (await this.record('aksk', id, now));
    return record ? CredentialDirectory.principal(record) : undefined;
  }

  /** The secret key of a live access key, for signature verification. */
  async secretKey(
    accessKey: string,
    now = new Date(),
  ): Promise<{ secretKey: string; principal: Principal } | undefined> {
    const record = await this.record('aksk', accessKey, now);
    if (!record) return undefined;
    const secretKey = this.configuredSecrets.get(accessKey) ?? this.cipher.open(record.secret);
    return { secretKey, principal: CredentialDirectory.principal(record) };
  }

  async principalForToken(token: string, now = new Date()): Promise<Principal | undefined> {
    const record = await this.record('token', tokenId(token), now);
    if (!record) return undefined;
    const expected = Buffer.from(record.secret, 'hex');
    const actual = Buffer.from(sha256(token), 'hex');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
    return CredentialDirectory.principal(record);
  }

  /** Adds or rotates an access key (same AK, new SK, new grants). */
  async putAccessKey(input: {
    accessKey: string;
    secretKey: string;
    projects: string[];
    grants: Grant[];
    expiresAt: Date | null;
  }): Promise<void> {
    if (!ACCESS_KEY_PATTERN.test(input.accessKey)) {
      throw new Error('the access key must be 8-128 letters, digits, underscores or hyphens');
    }
    if (input.secretKey.length < 16) throw new Error('the secret key must be at least 16 characters');
    await this.store.put({
      kind: 'aksk',
      id: input.accessKey,
      secret: this.cipher.seal(input.secretKey),
      projects: input.projects,
      grants: input.grants,
      expiresAt: input.expiresAt,
      createdAt: new Date(),
    });
  }

  /** Adds a token; returns its id (the token itself is never stored). */
  async putToken(input: {
    token: string;
    projects: string[];
    grants: Grant[];
    expiresAt: Date | null;
  }): Promise<string> {
    if (input.token.length < 16) throw new Error('the token must be at least 16 characters');
    const id = tokenId(input.token);
    await this.store.put({
      kind: 'token',
      id,
      secret: sha256(input.token),
      projects: input.projects,
      grants: input.grants,
      expiresAt: input.expiresAt,
      createdAt: new Date(),
    });
    return id;
  }

  remove(kind: CredentialRecord['kind'], id: string): Promise<boolean> {
    return this.store.remove(kind, id);
  }

  /** Never includes secrets. */
  async list(): Promise<CredentialSummary[]> {
    const summary = (r: CredentialRecord, source: CredentialSummary['source']): CredentialSummary => ({
      kind: r.kind,
      id: r.id,
      projects: r.projects,
      grants: r.grants,
      expiresAt: r.expiresAt ? r.expiresAt.toISOString() : null,
      source,
    });
    return [
      ...this.configured.map((r) => summary(r, 'config')),
      ...(await this.store.list()).map((r) => summary(r, 'store')),
    ];
  }
}

/**
 * `--workspace ws --role developer` pairs → grants; no workspace means every workspace (`*`); no role
 * at all means admin in every workspace (as the README documents for `credentials add`).
 */
export function grantsFrom(workspaces: readonly string[], roles: readonly string[]): Grant[] {
  if (roles.length === 0) {
    if (workspaces.length > 0) throw new Error('give one --role per --workspace');
    return [{ workspace: ANY, role: 'admin' }];
  }
  if (workspaces.length > 0 && workspaces.length !== roles.length) {
    throw new Error('give one --role per --workspace (or one --role and no --workspace for all workspaces)');
  }
  return grantsOf(roles.map((role, i) => ({ workspace: workspaces[i] ?? ANY, role })));
}
