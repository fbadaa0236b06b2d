/**
 * The workspace's connections: the two built-in ones and every stored one with its settings. The
 * server masks secrets in what it sends; the page also never shows a value whose key names a secret,
 * so nothing secret reaches the screen even from a server that did not mask it.
 */
import { useEffect, useState } from 'react';
import type { Connection, DlfApiClient } from '../../../src/client/api-client.js';
import { ErrorBanner } from './ErrorBanner.js';
import { readableError, type ReadableError } from './errors.js';

const SECRET_KEY = /pass|secret|token|private|credential|key$/i;

function shownValue(key: string, value: string | boolean): string {
  if (SECRET_KEY.test(key)) return '••••••';
  return String(value);
}

export const BUILT_IN_CONNECTIONS: Connection[] = [
  {
    name: 'duckdb',
    type: 'built-in',
    config: {},
    description: 'Embedded DuckDB, one database per workspace (SQL types)',
  },
  {
    name: 'local',
    type: 'built-in',
    config: {},
    description: 'Shell and Python as processes of the server (if enabled)',
  },
];

export function ConnectionsPage({
  client,
  onAuthLost,
}: {
  client: DlfApiClient;
  onAuthLost: (error: unknown) => boolean;
}) {
  const [connections, setConnections] = useState<Connection[] | null>(null);
  const [error, setError] = useState<ReadableError | null>(null);
  const [tests, setTests] = useState<Record<string, string>>({});

  useEffect(() => {
    let cancelled = false;
    client
      .listConnections({ limit: 100, includeExtensionTypes: true })
      .then((page) => !cancelled && setConnections(page.connections))
      .catch((e: unknown) => {
        if (!cancelled && !onAuthLost(e)) setError(readableError(e));
      });
    return () => {
      cancelled = true;
    };
  }, [client, onAuthLost]);

  async function test(name: string) {
    setTests((t) => ({ ...t, [name]: 'Testing…' }));
    try {
      await client.testConnection(name);
      setTests((t) => ({ ...t, [name]: 'Connected.' }));
    } catch (e) {
      if (!onAuthLost(e)) setTests((t) => ({ ...t, [name]: readableError(e).message }));
    }
  }

  const all = [...BUILT_IN_CONNECTIONS, ...(connections ?? [])];
  return (
    <main className="page connections">
      <h1>Connections</h1>
      {error ? <ErrorBanner error={error} /> : null}
      <table aria-label="Connections">
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Settings</th>
            <th>Description</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {all.map((connection) => (
            <tr key={connection.name}>
              <td className="mono">{connection.name}</td>
              <td>{connection.type}</td>
              <td>
                {Object.entries(connection.config).map(([key, value]) => (
                  <div key={key} className="setting">
                    <span className="muted">{key}</span> {shownValue(key, value)}
                  </div>
                ))}
              </td>
              <td>{connection.description}</td>
              <td>
                {connection.type !== 'built-in' ? (
                  <>
                    <button onClick={() => void test(connection.name)}>Test</button>
                    {tests[connection.name] ? (
                      <div className="test-result">{tests[connection.name]}</div>
                    ) : null}
                  </>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {connections === null && !error ? <p className="muted">Loading…</p> : null}
      <p className="muted">
        Connections are created and changed through the API (<code>POST /v1/&lt;project&gt;/connections</code>
        ) or the <code>opendlf</code> command line.
      </p>
    </main>
  );
}
