/**
 * The editor of one script (or of a new one): its fields, the content in CodeMirror, Save, Run (with
 * the parameters dialog when the content names `${…}` parameters), Delete, and the run panel below.
 * Run saves unsaved changes first: the server runs the stored script.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { SCRIPT_TYPES, type DlfApiClient, type ScriptInput } from '../../../src/client/api-client.js';
import { CodeEditor, languageOf } from './CodeEditor.js';
import { readableError, type ReadableError } from './errors.js';
import { ErrorBanner } from './ErrorBanner.js';
import { parameterNames, rememberParameterValues } from './params.js';
import { RunDialog } from './RunDialog.js';
import { RunPanel } from './RunPanel.js';

interface Props {
  client: DlfApiClient;
  /** null: a new script. */
  scriptName: string | null;
  connectionNames: string[];
  onSaved: (name: string) => void;
  onDeleted: () => void;
  onAuthLost: (error: unknown) => boolean;
  /** Whether the editor holds changes not yet saved (the page asks before leaving them). */
  onDirtyChange: (dirty: boolean) => void;
}

type Draft = Required<
  Pick<ScriptInput, 'name' | 'type' | 'content' | 'directory' | 'connectionName' | 'description'>
>;

const NEW_SCRIPT: Draft = {
  name: '',
  type: 'DWSSQL',
  content: '',
  directory: '/',
  connectionName: 'duckdb',
  description: '',
};

const PROCESS_TYPES = new Set(['Shell', 'PYTHON']);

function sameDraft(a: Draft, b: Draft): boolean {
  return (Object.keys(a) as (keyof Draft)[]).every((key) => a[key] === b[key]);
}

export function ScriptWorkspace({
  client,
  scriptName,
  connectionNames,
  onSaved,
  onDeleted,
  onAuthLost,
  onDirtyChange,
}: Props) {
  const [draft, setDraft] = useState<Draft>(NEW_SCRIPT);
  const [saved, setSaved] = useState<Draft | null>(null);
  const [documentKey, setDocumentKey] = useState('new');
  const [error, setError] = useState<ReadableError | null>(null);
  const [busy, setBusy] = useState(false);
  const [askParams, setAskParams] = useState<string[] | null>(null);
  const [instanceId, setInstanceId] = useState<string | null>(null);
  const [historyKey, setHistoryKey] = useState(0);
  // The name this editor just created or renamed to: the page then moves to it, and nothing needs
  // reloading (a run started by that same Run click must stay on screen).
  const justSaved = useRef<string | null>(null);

  useEffect(() => {
    if (scriptName !== null && scriptName === justSaved.current) return;
    justSaved.current = null;
    setError(null);
    setInstanceId(null);
    if (scriptName === null) {
      setDraft(NEW_SCRIPT);
      setSaved(null);
      setDocumentKey(`new-${Date.now()}`);
      return;
    }
    let cancelled = false;
    client
      .getScript(scriptName)
      .then((script) => {
        if (cancelled) return;
        const loaded: Draft = {
          name: script.name,
          type: script.type,
          content: script.content,
          directory: script.directory ?? '/',
          connectionName: script.connectionName ?? '',
          description: script.description ?? '',
        };
        setDraft(loaded);
        setSaved(loaded);
        setDocumentKey(`${script.name}-${Date.now()}`);
      })
      .catch((e: unknown) => {
        if (!cancelled && !onAuthLost(e)) setError(readableError(e));
      });
    return () => {
      cancelled = true;
    };
  }, [client, scriptName, onAuthLost]);

  const dirty = saved === null || !sameDraft(draft, saved);
  // A new script counts once something was typed; leaving the page with changes asks first.
  const unsaved = saved === null ? !sameDraft(draft, NEW_SCRIPT) : dirty;
  useEffect(() => {
    onDirtyChange(unsaved);
    if (!unsaved) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [unsaved, onDirtyChange]);

  const save = useCallback(async (): Promise<boolean> => {
    setError(null);
    setBusy(true);
    try {
      if (saved === null) await client.createScript(draft);
      else await client.updateScript(saved.name, draft);
      setSaved(draft);
      if (saved === null || saved.name !== draft.name) {
        justSaved.current = draft.name;
        onSaved(draft.name);
      }
      return true;
    } catch (e) {
      if (!onAuthLost(e)) setError(readableError(e));
      return false;
    } finally {
      setBusy(false);
    }
  }, [client, draft, saved, onSaved, onAuthLost]);

  const execute = useCallback(
    async (values: Record<string, string>) => {
      setAskParams(null);
      setError(null);
      rememberParameterValues(draft.name, values);
      try {
        const { instanceId: id } = await client.executeScript(draft.name, values);
        setInstanceId(id);
        setHistoryKey((key) => key + 1);
      } catch (e) {
        if (!onAuthLost(e)) setError(readableError(e));
      }
    },
    [client, draft.name, onAuthLost],
  );

  const run = useCallback(async () => {
    if (busy || askParams) return;
    if (dirty && !(await save())) return;
    const names = parameterNames(draft.content);
    if (names.length > 0) setAskParams(names);
    else await execute({});
  }, [busy, askParams, dirty, save, draft.content, execute]);

  // Ctrl-Enter anywhere on the page (the editor has its own binding; the dialog handles its own).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== 'Enter' || !(event.ctrlKey || event.metaKey) || askParams) return;
      if ((event.target as HTMLElement | null)?.closest?.('.cm-editor, dialog')) return;
      event.preventDefault();
      void run();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [run, askParams]);

  async function remove() {
    if (saved === null || !window.confirm(`Delete script ${saved.name}? Its running instances are stopped.`))
      return;
    try {
      await client.deleteScript(saved.name);
      onDeleted();
    } catch (e) {
      if (!onAuthLost(e)) setError(readableError(e));
    }
  }

  function setType(type: string) {
    // Moving between SQL and Shell/Python also moves between the two built-in connections.
    let connectionName = draft.connectionName;
    if (PROCESS_TYPES.has(type) && connectionName === 'duckdb') connectionName = 'local';
    if (!PROCESS_TYPES.has(type) && connectionName === 'local') connectionName = 'duckdb';
    setDraft({ ...draft, type, connectionName });
  }

  const onSettled = useCallback(() => setHistoryKey((key) => key + 1), []);
  const closeDialog = useCallback(() => setAskParams(null), []);
  const runnable = draft.name !== '';

  return (
    <div className="workspace">
      <form className="script-fields" onSubmit={(event) => (event.preventDefault(), void save())}>
        <label className="field">
          <span>Name</span>
          <input
            aria-label="Script name"
            value={draft.name}
            onChange={(event) => setDraft({ ...draft, name: event.target.value })}
            placeholder="daily_report"
            required
          />
        </label>
        <label className="field">
          <span>Type</span>
          <select
            aria-label="Script type"
            value={draft.type}
            onChange={(event) => setType(event.target.value)}
          >
            {SCRIPT_TYPES.map((type) => (
              <option key={type}>{type}</option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Connection</span>
          <input
            aria-label="Connection"
            list="connection-names"
            value={draft.connectionName}
            onChange={(event) => setDraft({ ...draft, connectionName: event.target.value })}
          />
          <datalist id="connection-names">
            {connectionNames.map((name) => (
              <option key={name} value={name} />
            ))}
          </datalist>
        </label>
        <label className="field">
          <span>Directory</span>
          <input
            aria-label="Directory"
            value={draft.directory}
            onChange={(event) => setDraft({ ...draft, directory: event.target.value })}
          />
        </label>
        <div className="buttons">
          <button type="submit" disabled={busy || !dirty || !runnable} title="Save (Ctrl-S)">
            {saved === null ? 'Create' : dirty ? 'Save' : 'Saved'}
          </button>
          <button
            type="button"
            className="primary"
            disabled={busy || !runnable}
            onClick={() => void run()}
            title="Run (Ctrl-Enter)"
          >
            Run
          </button>
          {saved !== null ? (
            <button type="button" className="quiet" onClick={() => void remove()}>
              Delete
            </button>
          ) : null}
        </div>
      </form>
      {error ? <ErrorBanner error={error} onDismiss={() => setError(null)} /> : null}
      <CodeEditor
        value={draft.content}
        documentKey={documentKey}
        language={languageOf(draft.type)}
        onChange={(content) => setDraft((current) => ({ ...current, content }))}
        onRun={() => void run()}
        onSave={() => void save()}
      />
      {saved !== null ? (
        <RunPanel
          client={client}
          scriptName={saved.name}
          producesLog={PROCESS_TYPES.has(saved.type)}
          instanceId={instanceId}
          historyKey={historyKey}
          onOpen={setInstanceId}
          onSettled={onSettled}
          onAuthLost={onAuthLost}
        />
      ) : null}
      {askParams ? (
        <RunDialog
          scriptName={draft.name}
          names={askParams}
          onRun={(values) => void execute(values)}
          onClose={closeDialog}
        />
      ) : null}
    </div>
  );
}
