/**
 * The DuckDB sandbox (issue 10, finding 1): a script on the built-in `duckdb` connection reaches
 * only its own workspace's database file and, when configured, its workspace's files folder and
 * the shared `duckdb.allowedDirectories`. Each attack runs as developerA on a multi-user server
 * and must end FAILED (or leave its target untouched) without anything of the server's in the
 * result. Real DuckDB, real files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_A, PROJECT_B, startMultiUserServer, type MultiUserServer } from '../helpers/multi-user.js';
import { startTestServer, tempDir, type ApiClient, type ApiResponse } from '../helpers/server.js';

let scriptCounter = 0;

/** Creates a DWSSQL script on the duckdb connection, runs it, and returns the settled instance. */
async function runSql(client: ApiClient, content: string): Promise<ApiResponse> {
  scriptCounter += 1;
  const name = `sandbox_${scriptCounter}`;
  await client.createScript({ name, type: 'DWSSQL', connectionName: 'duckdb', content });
  return client.waitFor(name, await client.execute(name));
}

function assertFailedWithoutLeak(response: ApiResponse, leaked: string[] = []): void {
  assert.equal(response.json.status, 'FAILED', response.text.slice(0, 500));
  for (const secret of leaked) assert.ok(!response.text.includes(secret), `leaked ${secret}`);
}

describe('DuckDB sandbox (multi-user)', () => {
  let server: MultiUserServer;
  let filesDirectory: string;
  let outside: string;

  before(async () => {
    filesDirectory = tempDir('opendlf-duckdb-files-');
    outside = tempDir('opendlf-duckdb-outside-');
    server = await startMultiUserServer({ duckdb: { filesDirectory } });
  });
  after(async () => {
    await server.close();
    rmSync(filesDirectory, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('cannot read /etc/passwd', async () => {
    const res = await runSql(server.as('developerA'), "select content from read_text('/etc/passwd')");
    assertFailedWithoutLeak(res, ['root:x:0']);
    assert.match(res.json.message, /Permission Error/);
  });

  it("cannot read the server's secret key or its store", async () => {
    const key = readFileSync(join(server.dataDir, 'secret.key'), 'utf8').trim();
    const dev = server.as('developerA');
    assertFailedWithoutLeak(
      await runSql(dev, `select content from read_text('${join(server.dataDir, 'secret.key')}')`),
      [key],
    );
    assertFailedWithoutLeak(
      await runSql(dev, `select size from read_blob('${join(server.dataDir, 'opendlf.sqlite')}')`),
    );
  });

  it('cannot list the data directory with glob', async () => {
    const res = await runSql(server.as('developerA'), `select file from glob('${server.dataDir}/**')`);
    assertFailedWithoutLeak(res, ['opendlf.sqlite', 'secret.key']);
  });

  it('cannot write a file outside its folders with COPY … TO', async () => {
    const target = join(outside, 'x.sh');
    const res = await runSql(
      server.as('developerA'),
      `copy (select 'echo pwned') to '${target}' (header false)`,
    );
    assertFailedWithoutLeak(res);
    assert.equal(existsSync(target), false);
  });

  it('cannot escape its files folder with ../', async () => {
    writeFileSync(join(outside, 'private.csv'), 'secret\nhidden-value\n');
    const escape = join(filesDirectory, PROJECT_A, 'default', '..', '..', '..', basename(outside));
    const res = await runSql(server.as('developerA'), `select * from read_csv('${escape}/private.csv')`);
    assertFailedWithoutLeak(res, ['hidden-value']);
  });

  it("cannot ATTACH another project's database; that database stays unchanged", async () => {
    const b = server.as('developerB');
    assert.equal(
      (await runSql(b, 'create table kept(v int); insert into kept values (7)')).json.status,
      'FINISHED',
    );
    const bFile = join(server.dataDir, 'duckdb', PROJECT_B, 'default.duckdb');
    assert.ok(existsSync(bFile));
    const res = await runSql(
      server.as('developerA'),
      `attach '${bFile}' as b; insert into b.kept values (666); select * from b.kept`,
    );
    assertFailedWithoutLeak(res);
    assert.match(res.json.message, /Permission Error/);
    const check = await runSql(b, 'select v from kept order by v');
    assert.equal(check.json.status, 'FINISHED');
    assert.deepEqual(check.json.results[0].rows, [[7]]);
  });

  it("cannot ATTACH another workspace's database of the same project", async () => {
    const other = server.as('developerA', { workspace: 'wsOther' });
    assert.equal((await runSql(other, 'create table t(v int)')).json.status, 'FINISHED');
    const file = join(server.dataDir, 'duckdb', PROJECT_A, 'wsOther.duckdb');
    assert.ok(existsSync(file));
    assertFailedWithoutLeak(
      await runSql(server.as('developerA'), `attach '${file}' as o; select * from o.t`),
    );
  });

  it('a SET, SET GLOBAL or RESET is refused and the next run sees the original settings', async () => {
    const dev = server.as('developerA');
    for (const statement of [
      'set enable_external_access = true',
      'set global enable_external_access = true',
      'set lock_configuration = false',
      'reset lock_configuration',
      "set allowed_directories = ['/']",
      "set temp_directory = '/tmp'",
    ]) {
      const res = await runSql(dev, statement);
      assertFailedWithoutLeak(res);
      assert.match(res.json.message, /locked/, statement);
    }
    const settings = await runSql(
      dev,
      "select current_setting('enable_external_access'), current_setting('lock_configuration'), " +
        "current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions')",
    );
    assert.equal(settings.json.status, 'FINISHED');
    assert.deepEqual(settings.json.results[0].rows, [[false, true, false, false]]);
  });

  it('cannot INSTALL or LOAD an extension that is not built in; bundled json works', async () => {
    const dev = server.as('developerA');
    assertFailedWithoutLeak(await runSql(dev, 'install httpfs'));
    assertFailedWithoutLeak(await runSql(dev, 'load httpfs'));
    const json = await runSql(dev, `select json_extract('{"a": 5}', '$.a')::int as a`);
    assert.equal(json.json.status, 'FINISHED', json.text.slice(0, 500));
    assert.deepEqual(json.json.results[0].rows, [[5]]);
  });

  it('cannot turn on instance-wide logging (a storage_path outside aborted the server process)', async () => {
    const dev = server.as('developerA');
    for (const content of [
      `call enable_logging(storage_path='${join(outside, 'logs')}')`,
      "call enable_logging(storage = 'stdout')",
      "select * from query('select * from enable_' || 'logging()')",
      "select * from query_table('t')",
    ]) {
      const res = await runSql(dev, content);
      assertFailedWithoutLeak(res);
      assert.match(res.json.message, /not allowed on the duckdb connection/, content);
    }
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    // The setting's name spelled in two pieces: the plain name is refused wherever it appears.
    const settings = await runSql(
      dev,
      "select value from duckdb_settings() where name = 'enable' || '_logging'",
    );
    assert.equal(settings.json.status, 'FINISHED', settings.text.slice(0, 500));
    assert.deepEqual(settings.json.results[0].rows, [['0']]);
  });

  it("an ATTACH ':memory:' lasts only for its run", async () => {
    const dev = server.as('developerA');
    const first = await runSql(dev, "attach ':memory:' as scratch; create table scratch.t as select 1 as v");
    assert.equal(first.json.status, 'FINISHED', first.text.slice(0, 500));
    const second = await runSql(
      dev,
      "select count(*) from duckdb_databases() where database_name = 'scratch'",
    );
    assert.equal(second.json.status, 'FINISHED');
    assert.deepEqual(second.json.results[0].rows, [[0]]);
  });

  it("the workspace's files folder works for that workspace only", async () => {
    const folder = join(filesDirectory, PROJECT_A, 'filesWs');
    const own = server.as('developerA', { workspace: 'filesWs' });
    const written = await runSql(
      own,
      `copy (select 1 as a, 'one' as b union all select 2, 'two') to '${folder}/out.csv' (header true); ` +
        `select a, b from read_csv('${folder}/out.csv') order by a`,
    );
    assert.equal(written.json.status, 'FINISHED', written.text.slice(0, 500));
    assert.deepEqual(written.json.results[1].rows, [
      [1, 'one'],
      [2, 'two'],
    ]);
    assert.equal(statSync(folder).mode & 0o777, 0o700);
    // The folder is this workspace's alone.
    const neighbour = server.as('developerA', { workspace: 'otherFilesWs' });
    assertFailedWithoutLeak(await runSql(neighbour, `select * from read_csv('${folder}/out.csv')`), ['two']);
    const otherProject = server.as('developerB');
    assertFailedWithoutLeak(await runSql(otherProject, `select * from read_csv('${folder}/out.csv')`), [
      'two',
    ]);
  });

  it('a duckdb directory that holds the data directory, or the databases in it, is refused in multi-user mode', async () => {
    const parent = tempDir('opendlf-duckdb-parent-');
    const dataDir = join(parent, 'data');
    try {
      for (const duckdb of [
        { allowedDirectories: [parent] },
        { allowedDirectories: [join(dataDir, 'duckdb', PROJECT_B)] },
        { filesDirectory: dataDir },
      ]) {
        await assert.rejects(
          startMultiUserServer({ dataDir, duckdb }),
          /would let scripts reach the data directory/,
        );
      }
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('duckdb.externalAccess is refused at start-up in multi-user mode', async () => {
    await assert.rejects(
      startMultiUserServer({ duckdb: { externalAccess: true } }),
      /duckdb\.externalAccess.*single-user/,
    );
  });
});

describe('DuckDB sandbox (single-user)', () => {
  it('duckdb.allowedDirectories opens a directory for reading, and nothing else', async () => {
    const shared = tempDir('opendlf-duckdb-shared-');
    const elsewhere = tempDir('opendlf-duckdb-elsewhere-');
    mkdirSync(join(shared, 'sub'));
    writeFileSync(join(shared, 'sub', 'data.csv'), 'id,name\n1,alpha\n2,beta\n');
    writeFileSync(join(elsewhere, 'data.csv'), 'id,name\n1,hidden-value\n');
    const server = await startTestServer({ duckdb: { allowedDirectories: [shared] } });
    try {
      const client = server.client();
      const read = await runSql(
        client,
        `select id, name from read_csv('${shared}/sub/data.csv') order by id`,
      );
      assert.equal(read.json.status, 'FINISHED', read.text.slice(0, 500));
      assert.deepEqual(read.json.results[0].rows, [
        [1, 'alpha'],
        [2, 'beta'],
      ]);
      assertFailedWithoutLeak(await runSql(client, `select * from read_csv('${elsewhere}/data.csv')`), [
        'hidden-value',
      ]);
    } finally {
      await server.close();
      rmSync(shared, { recursive: true, force: true });
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
