/**
 * The workspace's scripts as a tree of directories (the script's `directory`, `/a/b`), with a search
 * that matches names and directories (case-insensitive) and opens every folder holding a match.
 */
import { useMemo, useState } from 'react';
import type { Script } from '../../../src/client/api-client.js';

interface Folder {
  name: string;
  path: string;
  folders: Map<string, Folder>;
  scripts: Script[];
}

function buildTree(scripts: Script[]): Folder {
  const root: Folder = { name: '/', path: '/', folders: new Map(), scripts: [] };
  for (const script of scripts) {
    let folder = root;
    for (const part of (script.directory ?? '/').split('/').filter((p) => p !== '')) {
      let child = folder.folders.get(part);
      if (!child) {
        child = {
          name: part,
          path: `${folder.path === '/' ? '' : folder.path}/${part}`,
          folders: new Map(),
          scripts: [],
        };
        folder.folders.set(part, child);
      }
      folder = child;
    }
    folder.scripts.push(script);
  }
  return root;
}

interface Props {
  scripts: Script[];
  selected: string | null;
  onSelect: (name: string) => void;
}

const TYPE_MARK: Record<string, string> = { Shell: 'sh', PYTHON: 'py', 'Spark Python': 'py' };

export function ScriptTree({ scripts, selected, onSelect }: Props) {
  const [search, setSearch] = useState('');
  const needle = search.trim().toLowerCase();
  const matching = useMemo(
    () =>
      needle === ''
        ? scripts
        : scripts.filter(
            (s) =>
              s.name.toLowerCase().includes(needle) || (s.directory ?? '/').toLowerCase().includes(needle),
          ),
    [scripts, needle],
  );
  const tree = useMemo(() => buildTree(matching), [matching]);

  function renderFolder(folder: Folder, depth: number) {
    const folders = [...folder.folders.values()].sort((a, b) => a.name.localeCompare(b.name));
    const items = [...folder.scripts].sort((a, b) => a.name.localeCompare(b.name));
    return (
      <ul className="tree-level">
        {folders.map((child) => (
          <li key={child.path}>
            {/* Folders start open while searching, and at the top level. */}
            <details open={needle !== '' || depth === 0}>
              <summary>{child.name}</summary>
              {renderFolder(child, depth + 1)}
            </details>
          </li>
        ))}
        {items.map((script) => (
          <li key={script.name}>
            <button
              className={`tree-script${script.name === selected ? ' selected' : ''}`}
              onClick={() => onSelect(script.name)}
              title={`${script.type} on ${script.connectionName ?? ''}`}
            >
              <span className="type-mark">{TYPE_MARK[script.type] ?? 'sql'}</span>
              {script.name}
            </button>
          </li>
        ))}
      </ul>
    );
  }

  return (
    <nav className="script-tree" aria-label="Scripts">
      <input
        type="search"
        aria-label="Search scripts"
        placeholder="Search scripts"
        value={search}
        onChange={(event) => setSearch(event.target.value)}
      />
      {matching.length === 0 ? (
        <p className="muted">{scripts.length === 0 ? 'No scripts yet.' : 'No script matches.'}</p>
      ) : (
        renderFolder(tree, 0)
      )}
    </nav>
  );
}
