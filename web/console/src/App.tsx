/**
 * The console's shell: sign-in, the header, and two pages — scripts (tree, editor, runs) and
 * connections. Pages are paths under /console (the server answers index.html for all of them), so
 * a reload or a shared link opens the same script.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { Script } from '../../../src/client/api-client.js';
import { BUILT_IN_CONNECTIONS, ConnectionsPage } from './ConnectionsPage.js';
import { ErrorBanner } from './ErrorBanner.js';
import { isAuthenticationError, readableError, type ReadableError } from './errors.js';
import { LoginPage } from './LoginPage.js';
import { ScriptTree } from './ScriptTree.js';
import { ScriptWorkspace } from './ScriptWorkspace.js';
import { clearSession, clientOf, loadSession, saveSession, type Session } from './session.js';

const BASE = '/console';

type Route = { page: 'scripts'; script: string | null; isNew: boolean } | { page: 'connections' };

function routeOf(pathname: string): Route {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  if (rest.startsWith('/connections')) return { page: 'connections' };
  if (rest.startsWith('/new')) return { page: 'scripts', script: null, isNew: true };
  const match = /^\/scripts\/([^/]+)/.exec(rest);
  return { page: 'scripts', script: match?.[1] ? decodeURIComponent(match[1]) : null, isNew: false };
}

function pathOf(route: Route): string {
  if (route.page === 'connections') return `${BASE}/connections`;
  if (route.isNew) return `${BASE}/new`;
  return route.script ? `${BASE}/scripts/${encodeURIComponent(route.script)}` : `${BASE}/`;
}

export function App() {
  const [session, setSession] = useState<Session | undefined>(loadSession);
  const [notice, setNotice] = useState<string | undefined>();
  const [route, setRoute] = useState<Route>(() => routeOf(window.location.pathname));
  const [scripts, setScripts] = useState<Script[]>([]);
  const [listError, setListError] = useState<ReadableError | null>(null);
  const [connectionNames, setConnectionNames] = useState<string[]>(BUILT_IN_CONNECTIONS.map((c) => c.name));
  const [listKey, setListKey] = useState(0);

  const client = useMemo(() => (session ? clientOf(session) : undefined), [session]);

  useEffect(() => {
    const onPop = () => setRoute(routeOf(window.location.pathname));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  // Unsaved editor changes: moving to another page asks first (saving moves without asking).
  const unsaved = useRef(false);
  const onDirtyChange = useCallback((dirty: boolean) => {
    unsaved.current = dirty;
  }, []);

  const navigate = useCallback((next: Route, force = false) => {
    if (!force && unsaved.current && !window.confirm('Leave without saving your changes?')) return;
    unsaved.current = false;
    window.history.pushState(null, '', pathOf(next));
    setRoute(next);
  }, []);

  const signOut = useCallback((why?: string) => {
    clearSession();
    setSession(undefined);
    setNotice(why);
  }, []);

  /** A 401 ends the session (expired or revoked credentials); true when it did. */
  const onAuthLost = useCallback(
    (error: unknown) => {
      if (!isAuthenticationError(error)) return false;
      signOut('Your credentials are no longer accepted: sign in again.');
      return true;
    },
    [signOut],
  );

  useEffect(() => {
    if (!client) return;
    let cancelled = false;
    client
      .listAllScripts()
      .then((all) => {
        if (cancelled) return;
        setScripts(all);
        setListError(null);
      })
      .catch((e: unknown) => {
        if (!cancelled && !onAuthLost(e)) setListError(readableError(e));
      });
    client
      .listConnections({ limit: 100, includeExtensionTypes: true })
      .then((page) => {
        if (!cancelled)
          setConnectionNames([
            ...BUILT_IN_CONNECTIONS.map((c) => c.name),
            ...page.connections.map((c) => c.name),
          ]);
      })
      .catch(() => {
        // The names only feed the editor's suggestions.
      });
    return () => {
      cancelled = true;
    };
  }, [client, listKey, onAuthLost]);

  const onSaved = useCallback(
    (name: string) => {
      setListKey((k) => k + 1);
      navigate({ page: 'scripts', script: name, isNew: false }, true);
    },
    [navigate],
  );
  const onDeleted = useCallback(() => {
    setListKey((k) => k + 1);
    navigate({ page: 'scripts', script: null, isNew: false }, true);
  }, [navigate]);

  if (!session || !client) {
    return (
      <LoginPage
        notice={notice}
        onLogin={(next) => {
          saveSession(next);
          setNotice(undefined);
          setSession(next);
        }}
      />
    );
  }

  return (
    <div className="app">
      <header>
        <a
          className="brand"
          href={`${BASE}/`}
          onClick={(event) => (
            event.preventDefault(),
            navigate({ page: 'scripts', script: null, isNew: false })
          )}
        >
          opendlf
        </a>
        <nav>
          <a
            href={`${BASE}/`}
            aria-current={route.page === 'scripts' ? 'page' : undefined}
            onClick={(event) => (
              event.preventDefault(),
              navigate({ page: 'scripts', script: null, isNew: false })
            )}
          >
            Scripts
          </a>
          <a
            href={`${BASE}/connections`}
            aria-current={route.page === 'connections' ? 'page' : undefined}
            onClick={(event) => (event.preventDefault(), navigate({ page: 'connections' }))}
          >
            Connections
          </a>
        </nav>
        <span className="spacer" />
        <span className="muted" title="Project and workspace">
          {session.projectId}
          {session.workspace ? ` / ${session.workspace}` : ''}
          {session.auth.kind === 'token'
            ? ' · token'
            : session.auth.kind === 'aksk'
              ? ` · ${session.auth.accessKey}`
              : ''}
        </span>
        <button className="quiet" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      {route.page === 'connections' ? (
        <ConnectionsPage client={client} onAuthLost={onAuthLost} />
      ) : (
        <div className="scripts-page">
          <aside>
            <button
              className="primary new-script"
              onClick={() => navigate({ page: 'scripts', script: null, isNew: true })}
            >
              New script
            </button>
            {listError ? <ErrorBanner error={listError} /> : null}
            <ScriptTree
              scripts={scripts}
              selected={route.script}
              onSelect={(name) => navigate({ page: 'scripts', script: name, isNew: false })}
            />
          </aside>
          <main>
            {route.script !== null || route.isNew ? (
              <ScriptWorkspace
                client={client}
                scriptName={route.script}
                connectionNames={connectionNames}
                onSaved={onSaved}
                onDeleted={onDeleted}
                onAuthLost={onAuthLost}
                onDirtyChange={onDirtyChange}
              />
            ) : (
              <div className="empty">
                <p>Pick a script on the left, or create one.</p>
                <p className="muted">Ctrl-Enter runs the open script; Esc closes dialogs.</p>
              </div>
            )}
          </main>
        </div>
      )}
    </div>
  );
}
