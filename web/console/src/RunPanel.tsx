/**
 * One run of the script: live status (long polls of GET …/instances/{id}?waitSeconds), the live log
 * of a Shell/Python run (GET …/log by byte offset, when the server offers it; otherwise the output
 * arrives with the result), one tab per statement result, the failure message, the run history, and
 * the Stop button — enabled exactly while the instance is LAUNCHING or RUNNING.
 */
import { useEffect, useState } from 'react';
import type { DlfApiClient, InstanceResult } from '../../../src/client/api-client.js';
import { isMissingEndpoint, readableError } from './errors.js';
import { HistoryTable } from './HistoryTable.js';
import { ResultGrid } from './ResultGrid.js';
import { canStop, elapsed, isSettled, statusLabel, statusTone } from './status.js';

/** Long-poll window per status read: a settle shows at once, a running instance is re-read this often. */
const STATUS_WAIT_SECONDS = 1;
/** Pause between log reads that brought nothing new. */
const LOG_IDLE_MS = 500;
/** Log text kept in the page; the head is dropped past it (the server keeps the whole log). */
const LOG_KEEP_CHARS = 2_000_000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

interface Props {
  client: DlfApiClient;
  scriptName: string;
  /** Output-producing types have a log tab. */
  producesLog: boolean;
  instanceId: string | null;
  historyKey: number;
  onOpen: (instanceId: string) => void;
  /** The instance settled (refreshes the history). */
  onSettled: () => void;
  onAuthLost: (error: unknown) => boolean;
}

type Tab = { kind: 'log' } | { kind: 'result'; index: number } | { kind: 'message' } | { kind: 'history' };

export function RunPanel(props: Props) {
  const { client, scriptName, producesLog, instanceId, historyKey, onOpen, onSettled, onAuthLost } = props;
  const [instance, setInstance] = useState<InstanceResult | null>(null);
  const [statusError, setStatusError] = useState<string | null>(null);
  const [log, setLog] = useState<{ text: string; live: boolean | null }>({ text: '', live: null });
  const [stopping, setStopping] = useState(false);
  const [stopError, setStopError] = useState<string | null>(null);
  const [tab, setTab] = useState<Tab>({ kind: 'history' });
  const [now, setNow] = useState(Date.now());

  // Status: long polls until the instance settles.
  useEffect(() => {
    setInstance(null);
    setStatusError(null);
    setStopError(null);
    setStopping(false);
    if (!instanceId) {
      setTab({ kind: 'history' });
      return;
    }
    setTab(producesLog ? { kind: 'log' } : { kind: 'result', index: 0 });
    const abort = new AbortController();
    void (async () => {
      let waitSeconds = 0;
      while (!abort.signal.aborted) {
        try {
          const current = await client.getInstance(scriptName, instanceId, {
            waitSeconds,
            signal: abort.signal,
          });
          if (abort.signal.aborted) return;
          setInstance(current);
          setStatusError(null);
          if (isSettled(current)) {
            onSettled();
            if (current.status === 'FAILED' && !producesLog && current.results.length === 0) {
              setTab({ kind: 'message' });
            }
            return;
          }
          waitSeconds = STATUS_WAIT_SECONDS;
        } catch (error) {
          if (abort.signal.aborted || onAuthLost(error)) return;
          setStatusError(readableError(error).message);
          await sleep(2_000, abort.signal);
        }
      }
    })();
    return () => abort.abort();
  }, [client, scriptName, instanceId, producesLog, onSettled, onAuthLost]);

  // Live log of Shell/Python runs, by byte offset until the server says it is complete.
  useEffect(() => {
    setLog({ text: '', live: null });
    if (!instanceId || !producesLog) return;
    const abort = new AbortController();
    void (async () => {
      let offset = 0;
      while (!abort.signal.aborted) {
        try {
          const chunk = await client.getLog(scriptName, instanceId, { offset }, abort.signal);
          if (abort.signal.aborted) return;
          offset = chunk.nextOffset;
          if (chunk.text !== '') {
            setLog((previous) => ({ text: (previous.text + chunk.text).slice(-LOG_KEEP_CHARS), live: true }));
          } else {
            setLog((previous) => ({ ...previous, live: true }));
          }
          if (chunk.complete) return;
          if (chunk.text === '') await sleep(LOG_IDLE_MS, abort.signal);
        } catch (error) {
          if (abort.signal.aborted) return;
          // No log endpoint on this server: the output comes with the result instead.
          if (isMissingEndpoint(error)) return setLog({ text: '', live: false });
          await sleep(2_000, abort.signal);
        }
      }
    })();
    return () => abort.abort();
  }, [client, scriptName, instanceId, producesLog]);

  // The elapsed time ticks while the run is active.
  const active = canStop(instance);
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, [active]);

  async function stop() {
    if (!instanceId) return;
    setStopping(true);
    setStopError(null);
    try {
      // Answers once the instance is terminal; the status poll then shows it.
      await client.stopInstance(scriptName, instanceId);
    } catch (error) {
      if (!onAuthLost(error)) setStopError(readableError(error).message);
    } finally {
      setStopping(false);
    }
  }

  const results = instance?.results ?? [];
  const shownResult = tab.kind === 'result' ? results[tab.index] : undefined;
  const logText =
    log.live === true
      ? log.text
      : instance && isSettled(instance)
        ? (results[0]?.rawResult ?? results[0]?.rows.map(String).join('\n') ?? '')
        : '';
  const tabs: { tab: Tab; label: string }[] = [
    ...(instanceId && producesLog ? [{ tab: { kind: 'log' } satisfies Tab, label: 'Log' }] : []),
    ...(!producesLog
      ? results.map((_result, index) => ({
          tab: { kind: 'result', index } satisfies Tab,
          label: `Result ${index + 1}`,
        }))
      : []),
    ...(instance?.status === 'FAILED' ? [{ tab: { kind: 'message' } satisfies Tab, label: 'Message' }] : []),
    { tab: { kind: 'history' }, label: 'History' },
  ];
  const same = (a: Tab, b: Tab) =>
    a.kind === b.kind && (a.kind !== 'result' || (b.kind === 'result' && a.index === b.index));

  return (
    <section className="run-panel" aria-label="Run">
      <div className="run-status">
        {instanceId ? (
          <>
            <span className={`badge ${instance ? statusTone(instance) : 'busy'}`} data-testid="run-status">
              {instance ? statusLabel(instance) : 'LAUNCHING'}
            </span>
            {instance?.startTime ? (
              <span className="elapsed">{elapsed(instance.startTime, instance.endTime, now)}</span>
            ) : null}
            <span className="mono muted" title="Instance id">
              {instanceId}
            </span>
          </>
        ) : (
          <span className="muted">Not run yet in this session. Ctrl-Enter runs the script.</span>
        )}
        <span className="spacer" />
        <button
          className="danger"
          onClick={() => void stop()}
          disabled={!canStop(instance) || stopping}
          title="Stop this run: the whole process tree or the running query ends"
        >
          {stopping ? 'Stopping…' : 'Stop'}
        </button>
      </div>
      {statusError ? <p className="error-line">Status unavailable: {statusError}</p> : null}
      {stopError ? <p className="error-line">Stop failed: {stopError}</p> : null}
      <div className="tabs" role="tablist">
        {tabs.map(({ tab: t, label }) => (
          <button
            key={label}
            role="tab"
            aria-selected={same(t, tab)}
            className={same(t, tab) ? 'active' : undefined}
            onClick={() => setTab(t)}
          >
            {label}
          </button>
        ))}
      </div>
      <div className="tab-body">
        {tab.kind === 'log' ? (
          <pre className="log" aria-label="Log">
            {logText ||
              (instance && isSettled(instance)
                ? '(no output)'
                : log.live === false
                  ? 'The output appears when the run ends.'
                  : '')}
          </pre>
        ) : null}
        {tab.kind === 'result' && instanceId ? (
          shownResult ? (
            <ResultGrid
              key={`${instanceId}/${tab.index}`}
              client={client}
              scriptName={scriptName}
              instanceId={instanceId}
              index={tab.index}
              result={shownResult}
            />
          ) : (
            <p className="result-note">{instance && isSettled(instance) ? 'No result.' : 'Running…'}</p>
          )
        ) : null}
        {tab.kind === 'message' && instance ? (
          <div className="failure">
            <p>{instance.message || 'The run failed.'}</p>
            <dl>
              {instance.failureReason ? (
                <>
                  <dt>Reason</dt>
                  <dd>{instance.failureReason}</dd>
                </>
              ) : null}
              {instance.sqlState ? (
                <>
                  <dt>SQLSTATE</dt>
                  <dd>{instance.sqlState}</dd>
                </>
              ) : null}
              {instance.exitCode !== null && instance.exitCode !== undefined ? (
                <>
                  <dt>Exit code</dt>
                  <dd>{instance.exitCode}</dd>
                </>
              ) : null}
              {instance.stoppedBy ? (
                <>
                  <dt>Stopped by</dt>
                  <dd>{instance.stoppedBy}</dd>
                </>
              ) : null}
            </dl>
          </div>
        ) : null}
        {tab.kind === 'history' ? (
          <HistoryTable
            client={client}
            scriptName={scriptName}
            refreshKey={historyKey}
            selectedId={instanceId}
            onOpen={onOpen}
          />
        ) : null}
      </div>
    </section>
  );
}
