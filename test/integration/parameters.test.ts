/**
 * Execute parameters across the trust boundary (issue 10, finding 6): a caller who may execute but
 * not write a script (operator) passes data, never code — values that would add a statement, a
 * command, a comment or a quote are refused naming the parameter, and nothing runs; a developer
 * keeps DataArts' verbatim substitution; plain values (dates, numbers, names) work for everyone;
 * the audit line of an execute names the parameters and hashes their values, never shows them.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { defaultLocalWorkDirectory, startServer, type RunningServer } from '../../src/main.js';
import { assertError } from '../helpers/assertions.js';
import { PRINCIPALS, PROJECT_A, TokenClient, tokenId } from '../helpers/multi-user.js';
import { ensureRunnerUser, RUNNER_USER } from '../helpers/processes.js';
import { tempDir, type ApiResponse } from '../helpers/server.js';

const WORKSPACE = 'params';

describe('execute parameters from callers without write permission', () => {
  const dataDir = tempDir();
  const logLines: string[] = [];
  let server: RunningServer;
  let developer: TokenClient;
  let operator: TokenClient;

  before(async () => {
    const cannotSwitchUsers = ensureRunnerUser();
    if (cannotSwitchUsers) throw new Error(cannotSwitchUsers);
    const config = loadConfig({
      overrides: {
        port: 0,
        dataDir,
        logLevel: 'info',
        stopGraceMs: 500,
        // Multi-user mode offers `local` only with an unprivileged user to run scripts as.
        localEngine: { enabled: true, runAs: RUNNER_USER },
        credentials: Object.values(PRINCIPALS).map((p) => ({
          token: p.token,
          projects: [...p.projects],
          grants: [{ workspace: p.workspace, role: p.role }],
        })),
      },
    });
    server = await startServer(
      config,
      pino({ level: 'info' }, { write: (line: string) => logLines.push(line) }),
    );
    developer = new TokenClient(server.url, PROJECT_A, PRINCIPALS.developerA.token, WORKSPACE);
    operator = new TokenClient(server.url, PROJECT_A, PRINCIPALS.operatorA.token, WORKSPACE);

    await developer.createScript({
      name: 'greet',
      type: 'Shell',
      connectionName: 'local',
      content: 'echo "hello ${who}"\necho done',
    });
    await developer.createScript({
      name: 'setup',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content:
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'Ada Lovelace', DATE '2026-11-28'), (2, 'Alan', DATE '2026-01-01')) v(id, name, day)",
    });
    await developer.createScript({
      name: 'byId',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'SELECT count(*) AS n FROM t WHERE id = ${id}',
    });
    await developer.createScript({
      name: 'byName',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: "SELECT id FROM t WHERE name = '${name}' AND day >= DATE '${day}' -- ${note}",
    });
    const setup = await developer.waitFor('setup', await developer.execute('setup'));
    assert.equal(setup.json.status, 'FINISHED', setup.text);
  });
  after(async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(defaultLocalWorkDirectory(dataDir), { recursive: true, force: true });
  });

  const executeAs = (client: TokenClient, script: string, params: Record<string, string>) =>
    client.request('POST', client.path(`/${script}/execute`), { body: { params } });

  async function runAs(client: TokenClient, script: string, params: Record<string, string>) {
    const response = await executeAs(client, script, params);
    assert.equal(response.status, 200, response.text);
    return client.waitFor(script, response.json.instanceId as string);
  }

  function assertRefusedNaming(response: ApiResponse, name: string): void {
    assertError(response, 400, 'DLF.3051');
    assert.ok(response.json.error_msg.includes(`parameter '${name}'`), response.json.error_msg);
    assert.ok(response.json.error_msg.includes('_ . , : / + @ = -'), 'the error shows the allowlist');
  }

  async function instanceCount(script: string): Promise<number> {
    const response = await developer.request('GET', developer.path(`/${script}/instances?limit=1000`));
    return response.json.total as number;
  }

  it('refuses Shell injection from an operator (separator, $(…), backticks, newline, option, glob) and runs nothing', async () => {
    const before = await instanceCount('greet');
    for (const who of [
      'x; id',
      'x && id',
      'x | id',
      '$(id)',
      '`id`',
      'x\nid',
      '${HOME}',
      'x y',
      '-rf',
      '*',
      "x' 'y",
      'x"',
      'a\\b',
      'x # y',
      '../../etc/passwd',
    ]) {
      assertRefusedNaming(await executeAs(operator, 'greet', { who }), 'who');
    }
    assert.equal(await instanceCount('greet'), before, 'no refused execute created an instance');
  });

  it('refuses SQL injection from an operator and the table is still there', async () => {
    for (const id of ['1; drop table t', '1 -- x', "' or 1=1", '1 or 1=1', 'id', '1/*', '1 union select 1']) {
      assertRefusedNaming(await executeAs(operator, 'byId', { id }), 'id');
    }
    for (const name of ["' or 1=1 --", "x'; drop table t; --", 'a\\', 'x--']) {
      assertRefusedNaming(await executeAs(operator, 'byName', { name, day: '2026-01-01' }), 'name');
    }
    const count = await runAs(operator, 'byId', { id: '1' });
    assert.equal(count.json.status, 'FINISHED', count.text);
    assert.deepEqual(count.json.results[0].rows, [[1]], 'table t is still there with its row');
  });

  it('an operator passes plain values: dates, numbers, names with spaces inside quotes, a word to Shell', async () => {
    const named = await runAs(operator, 'byName', { name: 'Ada Lovelace', day: '2026-11-28', note: 'ok' });
    assert.equal(named.json.status, 'FINISHED', named.text);
    assert.deepEqual(named.json.results[0].rows, [[1]]);
    const byNumber = await runAs(operator, 'byId', { id: '2' });
    assert.deepEqual(byNumber.json.results[0].rows, [[1]]);
    for (const who of ['2026-11-28', '42', '3.14', 'Ada_Lovelace', 'ops@example.com', 'a/b:c,d+e=f']) {
      const greeted = await runAs(operator, 'greet', { who });
      assert.equal(greeted.json.status, 'FINISHED', greeted.text);
      assert.deepEqual(greeted.json.results[0].rows, [[`hello ${who}`], ['done']]);
    }
  });

  it('a developer keeps verbatim substitution (it could write the same text into the script)', async () => {
    const all = await runAs(developer, 'byId', { id: '1 or 1=1' });
    assert.equal(all.json.status, 'FINISHED', all.text);
    assert.deepEqual(all.json.results[0].rows, [[2]]);
    const shell = await runAs(developer, 'greet', { who: 'x"; echo "injected by a writer' });
    assert.deepEqual(shell.json.results[0].rows, [['hello x'], ['injected by a writer'], ['done']]);
  });

  it('audits an execute with the parameter names and a SHA-256 of the values, never the values', async () => {
    const values = { who: 'audit-marker-7f3a', other: '9' };
    await runAs(operator, 'greet', values);
    assertRefusedNaming(await executeAs(operator, 'greet', { who: 'x; echo audit-marker-9c1b' }), 'who');

    const executes = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((l) => l.audit === true && l.route === '/v1/:projectId/scripts/:scriptName/execute');
    const canonical = (params: Record<string, string>) =>
      JSON.stringify(Object.entries(params).sort(([a], [b]) => (a < b ? -1 : 1)));
    const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
    const accepted = executes.find((l) => l.paramsSha256 === sha256(canonical(values)));
    assert.ok(accepted, 'the accepted execute is audited with the hash of its values');
    assert.deepEqual(accepted.paramNames, ['other', 'who']);
    assert.equal(accepted.actor, tokenId(PRINCIPALS.operatorA.token));
    assert.equal(accepted.statusCode, 200);
    const refused = executes.find(
      (l) => l.paramsSha256 === sha256(canonical({ who: 'x; echo audit-marker-9c1b' })),
    );
    assert.ok(refused, 'the refused attempt is audited too');
    assert.equal(refused.statusCode, 400);
    assert.deepEqual(refused.paramNames, ['who']);
    const everything = logLines.join('\n');
    assert.ok(!everything.includes('audit-marker-7f3a'), 'no log line holds a parameter value');
    assert.ok(!everything.includes('audit-marker-9c1b'), 'no log line holds a refused value');
  });
});
