/**
 * CodeMirror 6 with the language of the script type: SQL for the SQL types, shell for Shell, Python
 * for PYTHON and Spark Python. Ctrl-Enter (Cmd-Enter) runs and Ctrl-S saves from inside the editor.
 */
import { useEffect, useRef } from 'react';
import { basicSetup } from 'codemirror';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap } from '@codemirror/view';
import { StreamLanguage } from '@codemirror/language';
import { sql, PostgreSQL, MySQL, StandardSQL } from '@codemirror/lang-sql';
import { python } from '@codemirror/lang-python';
import { shell } from '@codemirror/legacy-modes/mode/shell';

export type EditorLanguage = 'sql' | 'mysql' | 'postgresql' | 'shell' | 'python';

/** The highlighting a script type gets. */
export function languageOf(type: string): EditorLanguage {
  if (type === 'Shell') return 'shell';
  if (type === 'PYTHON' || type === 'Spark Python' || type === 'SparkPython') return 'python';
  if (type === 'RDSSQL') return 'mysql';
  if (type === 'DWSSQL') return 'postgresql';
  return 'sql';
}

function extensionOf(language: EditorLanguage) {
  switch (language) {
    case 'shell':
      return StreamLanguage.define(shell);
    case 'python':
      return python();
    case 'mysql':
      return sql({ dialect: MySQL });
    case 'postgresql':
      return sql({ dialect: PostgreSQL });
    case 'sql':
      return sql({ dialect: StandardSQL });
  }
}

interface Props {
  /** The document; replacing it (another script) resets the editor. */
  value: string;
  /** Changes when another document is loaded, so equal texts of two scripts still reset. */
  documentKey: string;
  language: EditorLanguage;
  onChange: (value: string) => void;
  onRun: () => void;
  onSave: () => void;
}

export function CodeEditor({ value, documentKey, language, onChange, onRun, onSave }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const languageSlot = useRef(new Compartment());
  // The latest callbacks, read by the keymap the editor was built with.
  const callbacks = useRef({ onChange, onRun, onSave });
  callbacks.current = { onChange, onRun, onSave };

  useEffect(() => {
    if (!host.current) return;
    const editor = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: value,
        extensions: [
          Prec.highest(
            keymap.of([
              { key: 'Mod-Enter', run: () => (callbacks.current.onRun(), true) },
              { key: 'Mod-s', run: () => (callbacks.current.onSave(), true), preventDefault: true },
            ]),
          ),
          basicSetup,
          languageSlot.current.of(extensionOf(language)),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) callbacks.current.onChange(update.state.doc.toString());
          }),
          EditorView.contentAttributes.of({ 'aria-label': 'Script content' }),
        ],
      }),
    });
    view.current = editor;
    return () => {
      editor.destroy();
      view.current = null;
    };
    // The editor is built once; documents and languages are swapped below.
  }, []);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    const current = editor.state.doc.toString();
    if (current !== value) editor.dispatch({ changes: { from: 0, to: current.length, insert: value } });
    // Only when another document is loaded: while typing, `value` follows the editor.
  }, [documentKey]);

  useEffect(() => {
    view.current?.dispatch({ effects: languageSlot.current.reconfigure(extensionOf(language)) });
  }, [language]);

  return <div className="code-editor" ref={host} />;
}
