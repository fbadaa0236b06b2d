/**
 * The cached wire JSON of scripts and list pages is byte for byte JSON.stringify of their
 * representations, and a page is reused only for the same total and the same script objects.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Script } from '../../src/domain/script.js';
import { scriptRepresentation } from '../../src/http/representations.js';
import { scriptJson, scriptPageJson } from '../../src/http/script-json.js';

let made = 0;
function script(name: string, content = `SELECT '${name}' -- 日本語 😀 "q" \\`): Script {
  made += 1;
  return {
    name,
    type: 'DWSSQL',
    content,
    directory: '/d',
    connectionName: 'duckdb',
    database: '',
    queueName: '',
    configuration: { k: 'v' },
    description: 'ü',
    approvalState: made % 2 === 0 ? 'NONE' : 'APPROVED',
    approvedBy: made % 2 === 0 ? null : 'admin',
    id: `id-${made}`,
    namespace: { projectId: 'p', workspaceId: 'w' },
    owner: 'o',
    createUser: 'o',
    version: 1,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
}

const expected = (total: number, scripts: readonly Script[]) =>
  JSON.stringify({ total, scripts: scripts.map(scriptRepresentation) });

describe('script JSON', () => {
  it('is JSON.stringify of the representation, for one script and for pages', () => {
    const a = script('a');
    assert.equal(scriptJson(a).toString('utf8'), JSON.stringify(scriptRepresentation(a)));
    assert.equal(scriptJson(a), scriptJson(a));
    const scripts = [a, script('b'), script('c')];
    for (const [total, page] of [
      [3, scripts],
      [3, scripts],
      [3, scripts.slice(1)],
      [0, []],
      [7, [a]],
    ] as const) {
      assert.equal(scriptPageJson(total, page).toString('utf8'), expected(total, page));
    }
  });

  it('reuses a page only for the same total and the same script objects', () => {
    const scripts = [script('x'), script('y'), script('z')];
    const first = scriptPageJson(3, scripts);
    assert.equal(scriptPageJson(3, [...scripts]), first);
    assert.equal(scriptPageJson(4, scripts).toString('utf8'), expected(4, scripts));
    const changed = [scripts[0]!, { ...scripts[1]!, version: 2, content: 'SELECT 2' }, scripts[2]!];
    assert.equal(scriptPageJson(4, changed).toString('utf8'), expected(4, changed));
    assert.equal(scriptPageJson(4, scripts.slice(0, 2)).toString('utf8'), expected(4, scripts.slice(0, 2)));
    assert.equal(scriptPageJson(4, scripts).toString('utf8'), expected(4, scripts));
  });

  it('stays right while pages are evicted', () => {
    const scripts = Array.from({ length: 3_000 }, (_, i) =>
      script(`s${i}`, 'x'.repeat(i % 7 === 0 ? 20_000 : 50)),
    );
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i + 10 <= scripts.length; i += 3) {
        const page = scripts.slice(i, i + 10);
        assert.equal(scriptPageJson(scripts.length, page).toString('utf8'), expected(scripts.length, page));
      }
    }
  });
});
