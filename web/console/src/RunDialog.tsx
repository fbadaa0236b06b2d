/**
 * Run with parameters: one field per `${name}` found in the script, pre-filled with the values last
 * used for it. Enter or Ctrl-Enter runs, Esc closes. A field left empty is not sent, so the
 * placeholder stays as written (or an environment variable of that name fills it).
 */
import { useState, type FormEvent } from 'react';
import { Dialog } from './Dialog.js';
import { lastParameterValues } from './params.js';

interface Props {
  scriptName: string;
  names: string[];
  onRun: (values: Record<string, string>) => void;
  onClose: () => void;
}

export function RunDialog({ scriptName, names, onRun, onClose }: Props) {
  const [values, setValues] = useState<Record<string, string>>(() => {
    const last = lastParameterValues(scriptName);
    return Object.fromEntries(names.map((name) => [name, last[name] ?? '']));
  });

  function submit(event?: FormEvent) {
    event?.preventDefault();
    onRun(Object.fromEntries(Object.entries(values).filter(([, value]) => value !== '')));
  }

  return (
    <Dialog title={`Run ${scriptName}`} onClose={onClose}>
      <form
        onSubmit={submit}
        onKeyDown={(event) => {
          if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) submit(event);
        }}
      >
        <p className="muted">Parameters found in the script. Empty ones are not sent.</p>
        {names.map((name, index) => (
          <label key={name} className="field">
            <span className="mono">{'${' + name + '}'}</span>
            <input
              name={name}
              aria-label={name}
              autoFocus={index === 0}
              value={values[name] ?? ''}
              onChange={(event) => setValues({ ...values, [name]: event.target.value })}
            />
          </label>
        ))}
        <div className="dialog-buttons">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary">
            Run
          </button>
        </div>
      </form>
    </Dialog>
  );
}
