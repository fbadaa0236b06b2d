/**
 * Who the console talks to the server as. Kept in sessionStorage (this tab, until it is closed), so a
 * token or secret key never outlives the browser session; the project and workspace are also kept in
 * localStorage to pre-fill the next sign-in (never the credentials).
 */
import { DlfApiClient, type ClientAuth } from '../../../src/client/api-client.js';
import { createWebCryptoSigner } from '../../../src/client/web-crypto-signer.js';

export type SessionAuth =
  | { kind: 'none' }
  | { kind: 'token'; token: string }
  | { kind: 'aksk'; accessKey: string; secretKey: string };

export interface Session {
  projectId: string;
  workspace: string;
  auth: SessionAuth;
}

const SESSION_KEY = 'opendlf.console.session';
const LAST_KEY = 'opendlf.console.last';

function isSession(value: unknown): value is Session {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const auth = v.auth as Record<string, unknown> | undefined;
  return (
    typeof v.projectId === 'string' &&
    typeof v.workspace === 'string' &&
    typeof auth === 'object' &&
    auth !== null &&
    (auth.kind === 'none' ||
      (auth.kind === 'token' && typeof auth.token === 'string') ||
      (auth.kind === 'aksk' && typeof auth.accessKey === 'string' && typeof auth.secretKey === 'string'))
  );
}

export function loadSession(): Session | undefined {
  try {
    const parsed: unknown = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
    return isSession(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  localStorage.setItem(
    LAST_KEY,
    JSON.stringify({ projectId: session.projectId, workspace: session.workspace }),
  );
}

export function clearSession(): void {
  sessionStorage.removeItem(SESSION_KEY);
}

/** The project and workspace of the last sign-in, to pre-fill the form. */
export function lastNamespace(): { projectId: string; workspace: string } {
  try {
    const parsed = JSON.parse(localStorage.getItem(LAST_KEY) ?? 'null') as Record<string, unknown> | null;
    return {
      projectId: typeof parsed?.projectId === 'string' ? parsed.projectId : '',
      workspace: typeof parsed?.workspace === 'string' ? parsed.workspace : '',
    };
  } catch {
    return { projectId: '', workspace: '' };
  }
}

function clientAuth(auth: SessionAuth, projectId: string): ClientAuth {
  switch (auth.kind) {
    case 'none':
      return { kind: 'none' };
    case 'token':
      return { kind: 'token', token: auth.token };
    case 'aksk':
      return {
        kind: 'signer',
        sign: createWebCryptoSigner({ accessKey: auth.accessKey, secretKey: auth.secretKey, projectId }),
      };
  }
}

/** The API client of a session: same origin as the page, so no CORS is involved. */
export function clientOf(session: Session): DlfApiClient {
  return new DlfApiClient({
    endpoint: window.location.origin,
    projectId: session.projectId,
    workspace: session.workspace === '' ? undefined : session.workspace,
    auth: clientAuth(session.auth, session.projectId),
  });
}
