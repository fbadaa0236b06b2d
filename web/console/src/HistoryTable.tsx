/** The script's run history (GET …/scripts/{name}/instances, newest first); a row opens that run. */
import { useEffect, useState } from 'react';
import type { DlfApiClient, InstanceSummary } from '../../../src/client/api-client.js';
import { isMissingEndpoint, readableError } from './errors.js';
import { elapsed, localTime, statusLabel, statusTone } from './status.js';

interface Props {
  client: DlfApiClient;
  scriptName: string;
  /** Changes whenever a run of the script starts or settles. */
  refreshKey: number;
  selectedId: string | null;
  onOpen: (instanceId: string) => void;
}

/** Runs shown; older ones are reachable through the API. */
const HISTORY_LIMIT = 50;

export function HistoryTable({ client, scriptName, refreshKey, selectedId, onOpen }: Props) {
  const [runs, setRuns] = useState<InstanceSummary[] | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    client
      .listScriptInstances(scriptName, { limit: HISTORY_LIMIT })
      .then((page) => {
        if (cancelled) return;
        setRuns(page.instances);
        setTotal(page.total);
        setError(null);
      })
      .catch((e: unknown) => {
        if (cancelled) return;
        setError(isMissingEndpoint(e) ? 'This server keeps no run history.' : readableError(e).message);
      });
    return () => {
      cancelled = true;
    };
  }, [client, scriptName, refreshKey]);

  if (error) return <p className="result-note">{error}</p>;
  if (!runs) return <p className="result-note">Loading…</p>;
  if (runs.length === 0) return <p className="result-note">No runs yet.</p>;
  return (
    <div className="history">
      <table aria-label="Run history">
        <thead>
          <tr>
            <th>Started</th>
            <th>Status</th>
            <th>Duration</th>
            <th>Started by</th>
            <th>Stopped by</th>
            <th>Instance</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr
              key={run.instanceId}
              className={run.instanceId === selectedId ? 'selected' : undefined}
              onClick={() => run.instanceId && onOpen(run.instanceId)}
              tabIndex={0}
              onKeyDown={(event) => {
                if (event.key === 'Enter' && run.instanceId) onOpen(run.instanceId);
              }}
            >
              <td>{localTime(run.createTime)}</td>
              <td>
                <span className={`badge ${statusTone(run)}`}>{statusLabel(run)}</span>
              </td>
              <td>{run.startTime ? elapsed(run.startTime, run.endTime) : ''}</td>
              <td>{run.startedBy ?? ''}</td>
              <td>{run.stoppedBy ?? ''}</td>
              <td className="mono">{run.instanceId}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {total > runs.length ? (
        <p className="result-note">
          Showing the latest {runs.length} of {total} runs.
        </p>
      ) : null}
    </div>
  );
}
