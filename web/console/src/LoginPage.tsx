/**
 * Sign-in: the project (and optional workspace) to work in, and how to prove who you are — nothing
 * (a server without credentials), a token, or an access key and secret key (each request is then
 * signed in the page, SDK-HMAC-SHA256, and the secret key never leaves it). The form checks the
 * choice with one list call before the session is kept.
 */
import { useState, type FormEvent } from 'react';
import { webCryptoAvailable } from '../../../src/client/web-crypto-signer.js';
import { ErrorBanner } from './ErrorBanner.js';
import { readableError, type ReadableError } from './errors.js';
import { clientOf, lastNamespace, type Session, type SessionAuth } from './session.js';

export function LoginPage({ onLogin, notice }: { onLogin: (session: Session) => void; notice?: string }) {
  const last = lastNamespace();
  const [projectId, setProjectId] = useState(last.projectId);
  const [workspace, setWorkspace] = useState(last.workspace);
  const [method, setMethod] = useState<SessionAuth['kind']>('none');
  const [token, setToken] = useState('');
  const [accessKey, setAccessKey] = useState('');
  const [secretKey, setSecretKey] = useState('');
  const [error, setError] = useState<ReadableError | null>(null);
  const [busy, setBusy] = useState(false);
  const canSign = webCryptoAvailable();

  async function submit(event: FormEvent) {
    event.preventDefault();
    const auth: SessionAuth =
      method === 'token'
        ? { kind: 'token', token: token.trim() }
        : method === 'aksk'
          ? { kind: 'aksk', accessKey: accessKey.trim(), secretKey }
          : { kind: 'none' };
    const session: Session = { projectId: projectId.trim(), workspace: workspace.trim(), auth };
    setBusy(true);
    setError(null);
    try {
      await clientOf(session).listScripts({ limit: 1 });
      onLogin(session);
    } catch (e) {
      const readable = readableError(e);
      setError(
        method === 'none' && readable.detail?.startsWith('APIGW.0301')
          ? {
              ...readable,
              message: 'This server requires credentials.',
              hint: 'Sign in with a token or an access key.',
            }
          : readable,
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form onSubmit={(event) => void submit(event)} aria-label="Sign in">
        <h1>opendlf console</h1>
        {notice ? <p className="notice">{notice}</p> : null}
        <label className="field">
          <span>Project id</span>
          <input
            aria-label="Project id"
            value={projectId}
            onChange={(e) => setProjectId(e.target.value)}
            required
            autoFocus
          />
        </label>
        <label className="field">
          <span>Workspace (empty: the default one)</span>
          <input aria-label="Workspace" value={workspace} onChange={(e) => setWorkspace(e.target.value)} />
        </label>
        <fieldset>
          <legend>Credentials</legend>
          <label>
            <input
              type="radio"
              name="method"
              checked={method === 'none'}
              onChange={() => setMethod('none')}
            />{' '}
            None (a server without credentials)
          </label>
          <label>
            <input
              type="radio"
              name="method"
              checked={method === 'token'}
              onChange={() => setMethod('token')}
            />{' '}
            Token
          </label>
          <label
            title={
              canSign ? undefined : 'Signing needs Web Crypto: open the console over HTTPS or on localhost'
            }
          >
            <input
              type="radio"
              name="method"
              checked={method === 'aksk'}
              disabled={!canSign}
              onChange={() => setMethod('aksk')}
            />{' '}
            Access key and secret key{canSign ? '' : ' (needs HTTPS or localhost)'}
          </label>
        </fieldset>
        {method === 'token' ? (
          <label className="field">
            <span>Token</span>
            <input
              aria-label="Token"
              type="password"
              value={token}
              onChange={(e) => setToken(e.target.value)}
              required
            />
          </label>
        ) : null}
        {method === 'aksk' ? (
          <>
            <label className="field">
              <span>Access key</span>
              <input
                aria-label="Access key"
                value={accessKey}
                onChange={(e) => setAccessKey(e.target.value)}
                required
              />
            </label>
            <label className="field">
              <span>Secret key</span>
              <input
                aria-label="Secret key"
                type="password"
                value={secretKey}
                onChange={(e) => setSecretKey(e.target.value)}
                required
              />
            </label>
          </>
        ) : null}
        {error ? <ErrorBanner error={error} /> : null}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="muted small">
          Credentials are kept in this browser tab only, until it is closed or you sign out.
        </p>
      </form>
    </main>
  );
}
