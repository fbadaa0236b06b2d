/**
 * The local-process sandbox (issue 10, finding 2, and the data directory's file modes).
 *
 * Attacks reproduced: a Shell script on the built-in `local` connection reading the server's
 * environment through /proc/$PPID/environ, the sealing key and the store by absolute path or from
 * its run directory (`../../secret.key`), descriptors inherited from the server, writing into the
 * data directory; and any local user reading the data directory's world-readable files. Each now
 * fails: with credentials `local` is off unless `localEngine.runAs` names an unprivileged user, the
 * scripts then run as that user in their own working directory, and the data directory is 0700/0600.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { defaultLocalWorkDirectory, startServer } from '../../src/main.js';
import { startMultiUserServer, TokenClient, type MultiUserServer } from '../helpers/multi-user.js';
import {
  ensureRunnerUser,
  processesOfInstance,
  RUNNER_USER,
  waitForInstanceProcesses,
} from '../helpers/processes.js';
import {
  ApiClient,
  PROJECT,
  spawnServer,
  startTestServer,
  tempDir,
  type TestServer,
} from '../helpers/server.js';

const cannotSwitchUsers = ensureRunnerUser();

/** Runs `content` as a Shell script on `local` and returns its status and output lines. */
async function runShell(api: ApiClient, name: string, content: string) {
  await api.createScript({ name, type: 'Shell', connectionName: 'local', content });
  const instanceId = await api.execute(name);
  const done = await api.waitFor(name, instanceId);
  const rows = (done.json.results?.[0]?.rows ?? []) as string[][];
  return { instanceId, status: done.json.status as string, lines: rows.map((row) => row[0] ?? '') };
}

/** Permission bits of every path under `dir` (itself included) that `select` picks. */
function modesUnder(dir: string, select: (path: string) => boolean): Map<string, number> {
  const modes = new Map<string, number>();
  const visit = (path: string) => {
    const stat = statSync(path);
    if (select(path)) modes.set(path, stat.mode & 0o777);
    if (stat.isDirectory()) for (const entry of readdirSync(path)) visit(join(path, entry));
  };
  visit(dir);
  return modes;
}

function uidOf(user: string): number {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  return Number(line?.split(':')[2]);
}

/** The real uid of a live process (second field is the effective one; they are equal here). */
function processUid(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  } catch {
    return undefined;
  }
}

describe('multi-user mode without localEngine.runAs', () => {
  let server: MultiUserServer;
  before(async () => {
    server = await startMultiUserServer();
  });
  after(() => server.close());

  it('does not offer `local`: a Shell script on it is refused, and nothing runs as the server', async () => {
    const api = server.as('developerA');
    const created = await api.request('POST', api.path(), {
      body: { name: 'whoami', type: 'Shell', connectionName: 'local', content: 'id -u > /tmp/ran-as-server' },
    });
    if (created.status === 204) {
      const executed = await api.request('POST', api.path('/whoami/execute'), { body: {} });
      assert.ok(
        executed.status >= 400 && executed.status < 500,
        `execute answered ${executed.status} ${executed.text}`,
      );
      assert.match(executed.text, /local/);
    } else {
      assert.ok(
        created.status >= 400 && created.status < 500,
        `create answered ${created.status} ${created.text}`,
      );
      assert.match(created.text, /local/);
    }
  });
});

describe('the start-up log without localEngine.runAs', () => {
  it('says why `local` is off in multi-user mode', async () => {
    const dataDir = tempDir();
    const lines: string[] = [];
    const config = loadConfig({
      overrides: {
        port: 0,
        dataDir,
        credentials: [
          {
            token: 'sandbox-log-admin-token-00001',
            projects: [PROJECT],
            grants: [{ workspace: '*', role: 'admin' }],
          },
        ],
      },
    });
    const server = await startServer(
      config,
      pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
    );
    try {
      assert.ok(
        lines.some(
          (line) => line.includes('`local` connection is off') && line.includes('localEngine.runAs'),
        ),
        lines.join('\n'),
      );
    } finally {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('localEngine.runAs that would not isolate anything', { skip: cannotSwitchUsers }, () => {
  it('refuses to start with root or a missing user as runAs', async () => {
    await assert.rejects(startMultiUserServer({ localEngine: { runAs: 'root' } }), /is root/);
    await assert.rejects(
      startMultiUserServer({ localEngine: { runAs: 'opendlf-no-such-user' } }),
      /does not exist/,
    );
  });

  it('refuses a work directory inside the data directory, which the user cannot enter', async () => {
    const dataDir = tempDir();
    try {
      await assert.rejects(
        startMultiUserServer({
          dataDir,
          localEngine: { runAs: RUNNER_USER, workDirectory: join(dataDir, 'work') },
        }),
        /inside the data directory/,
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('multi-user mode with localEngine.runAs', { skip: cannotSwitchUsers }, () => {
  const marker = `sandbox-marker-${randomBytes(8).toString('hex')}`;
  const secretKey = randomBytes(32).toString('base64');
  const savedKey = process.env.OPENDLF_SECRET_KEY;
  let server: MultiUserServer;
  let runnerUid: number;

  before(async () => {
    runnerUid = uidOf(RUNNER_USER);
    // Secrets in the server's environment: the sealing key and a marker no script may see.
    process.env.OPENDLF_SECRET_KEY = secretKey;
    process.env.SANDBOX_TEST_MARKER = marker;
    server = await startMultiUserServer({ localEngine: { enabled: true, runAs: RUNNER_USER } });
    // The key file too: the environment variable takes precedence, the file must still stay private.
    writeFileSync(join(server.dataDir, 'secret.key'), `${marker}\n`, { mode: 0o600 });
  });
  after(async () => {
    await server.close();
    rmSync(defaultLocalWorkDirectory(server.dataDir), { recursive: true, force: true });
    if (savedKey === undefined) delete process.env.OPENDLF_SECRET_KEY;
    else process.env.OPENDLF_SECRET_KEY = savedKey;
    delete process.env.SANDBOX_TEST_MARKER;
  });

  it('runs scripts as the unprivileged user with no supplementary groups and a minimal environment', async () => {
    const run = await runShell(server.as('developerA'), 'ids', 'id -u\nid -G\necho "home=$HOME"\nenv');
    assert.equal(run.status, 'FINISHED', run.lines.join('\n'));
    assert.equal(run.lines[0], String(runnerUid));
    assert.notEqual(runnerUid, 0);
    // `id -G` lists the primary group only: the server's (root's) supplementary groups were dropped.
    assert.equal(run.lines[1]?.split(' ').length, 1, `groups: ${run.lines[1]}`);
    assert.notEqual(run.lines[1], '0');
    const output = run.lines.join('\n');
    assert.ok(!output.includes(marker), 'the server environment reached the script');
    assert.ok(!output.includes(secretKey), 'the sealing key reached the script');
    assert.match(output, /^OPENDLF_INSTANCE_ID=/m);
  });

  it('cannot read the server environment, keys or store, nor write into the data directory', async () => {
    const dataDir = server.dataDir;
    const script = [
      'cat /proc/$PPID/environ && echo ENVIRON-READ || echo environ-refused',
      `cat ${dataDir}/secret.key && echo KEY-READ || echo key-refused`,
      `cat ${dataDir}/opendlf.sqlite > /dev/null && echo STORE-READ || echo store-refused`,
      'cat ../../secret.key && echo RELATIVE-KEY-READ || echo relative-key-refused',
      `ls ${dataDir}/runs && echo RUNS-LISTED || echo runs-refused`,
      `touch ${dataDir}/planted && echo DATADIR-WRITTEN || echo datadir-refused`,
      'echo "fds=$(ls /proc/self/fd | tr "\\n" " ")"',
      'echo "cwd=$(pwd)"',
    ].join('\n');
    const run = await runShell(server.as('developerA'), 'reads', script);
    const output = run.lines.join('\n');
    assert.ok(!output.includes(marker), `a secret reached the script:\n${output}`);
    assert.ok(!output.includes(secretKey), 'the sealing key reached the script');
    for (const refused of [
      'environ-refused',
      'key-refused',
      'store-refused',
      'relative-key-refused',
      'runs-refused',
      'datadir-refused',
    ]) {
      assert.ok(run.lines.includes(refused), `expected ${refused} in:\n${output}`);
    }
    assert.equal(existsSync(join(dataDir, 'planted')), false);
    // 0, 1, 2 and the descriptor `ls` opened to read the directory: nothing inherited from the server.
    const fds =
      run.lines
        .find((l) => l.startsWith('fds='))
        ?.slice(4)
        .trim()
        .split(' ') ?? [];
    assert.deepEqual(fds.slice(0, 3), ['0', '1', '2']);
    assert.ok(fds.length <= 4, `inherited descriptors: ${fds.join(' ')}`);

    // The working directory is outside the data directory, and removed after the run; the log stays.
    const cwd = run.lines.find((l) => l.startsWith('cwd='))?.slice(4) ?? '';
    assert.ok(cwd.endsWith(run.instanceId), cwd);
    assert.ok(!cwd.startsWith(dataDir), cwd);
    assert.equal(existsSync(cwd), false, 'the working directory outlived the run');
    assert.ok(existsSync(join(dataDir, 'runs', run.instanceId, 'output.log')));
  });

  it('a stop ends the whole tree of the unprivileged user', async () => {
    const api = server.as('developerA');
    await api.createScript({
      name: 'tree',
      type: 'Shell',
      connectionName: 'local',
      // Background children, a nested subshell, nohup (as in stop.test.ts).
      content:
        'sleep 300 &\n( sleep 300 & sleep 300; ) &\nnohup sleep 300 >/dev/null 2>&1 &\nwhile true; do sleep 1; done\n',
    });
    const instanceId = await api.execute('tree');
    const pids = await waitForInstanceProcesses(instanceId, 3);
    for (const pid of pids)
      assert.equal(processUid(pid), runnerUid, `pid ${pid} does not run as ${RUNNER_USER}`);
    const stopped = await api.stop('tree', instanceId);
    assert.ok(stopped.status >= 200 && stopped.status < 300, `stop answered ${stopped.status}`);
    await api.waitFor('tree', instanceId);
    const deadline = Date.now() + 10_000;
    while (processesOfInstance(instanceId).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(processesOfInstance(instanceId), []);
  });

  it('keeps the data directory 0700 and its files 0600 (store, DuckDB, run directories)', async () => {
    const api = server.as('developerA');
    await api.createScript({
      name: 'db',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'CREATE TABLE t AS SELECT 1 AS x',
    });
    const id = await api.execute('db');
    await api.waitFor('db', id);
    await runShell(api, 'echo', 'echo hi');
    assertPrivate(server.dataDir);
  });
});

describe('crash recovery with localEngine.runAs', { skip: cannotSwitchUsers }, () => {
  it("a restarted server kills a killed server's orphaned tree of the unprivileged user and removes its work directory", async () => {
    const dataDir = tempDir();
    const configDir = tempDir();
    const configFile = join(configDir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ localEngine: { runAs: RUNNER_USER } }));
    const first = await spawnServer(dataDir, ['--config', configFile]);
    const api = new ApiClient(first.url, PROJECT);
    await api.createScript({
      name: 'tree',
      type: 'Shell',
      connectionName: 'local',
      content: 'sleep 300 &\n( sleep 300 & sleep 300; ) &\nwhile true; do sleep 1; done\n',
    });
    const id = await api.execute('tree');
    const pids = await waitForInstanceProcesses(id, 3);
    for (const pid of pids) assert.equal(processUid(pid), uidOf(RUNNER_USER));
    // The run's working directory, as its processes see it.
    const workDir = readlinkSync(`/proc/${pids[0]}/cwd`);
    assert.ok(workDir.endsWith(id), workDir);
    first.process.kill('SIGKILL');
    await first.exited;
    assert.ok(processesOfInstance(id).length > 0, 'precondition: orphans exist');

    const second = await spawnServer(dataDir, ['--config', configFile]);
    try {
      assert.deepEqual(processesOfInstance(id), [], 'leftover processes survived the restart');
      const result = await new ApiClient(second.url, PROJECT).result('tree', id);
      assert.equal(result.json.detailedStatus, 'ABORTED');
      assert.equal(existsSync(workDir), false, 'the orphaned working directory survived the restart');
    } finally {
      second.process.kill('SIGTERM');
      await second.exited;
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(defaultLocalWorkDirectory(dataDir), { recursive: true, force: true });
      rmSync(configDir, { recursive: true, force: true });
    }
  });
});

function assertPrivate(dataDir: string): void {
  const modes = modesUnder(dataDir, () => true);
  const names = [...modes.keys()].map((p) => p.slice(dataDir.length));
  assert.ok(
    names.some((n) => /^\/opendlf\.sqlite/.test(n)),
    names.join(' '),
  );
  assert.ok(
    names.some((n) => n.startsWith('/duckdb/') && n.endsWith('.duckdb')),
    names.join(' '),
  );
  assert.ok(
    names.some((n) => n.startsWith('/runs/')),
    names.join(' '),
  );
  for (const [path, mode] of modes) {
    const isDirectory = statSync(path).isDirectory();
    // Nothing for group or others; directories exactly 0700.
    assert.equal(mode & 0o077, 0, `${path} has mode ${mode.toString(8)}`);
    if (isDirectory) assert.equal(mode, 0o700, `${path} has mode ${mode.toString(8)}`);
  }
}

describe('single-user mode (no credentials)', () => {
  let server: TestServer;
  const dataDir = tempDir();

  before(async () => {
    // A data directory from an older version: world-readable directory and files.
    mkdirSync(join(dataDir, 'runs', 'old-run'), { recursive: true });
    writeFileSync(join(dataDir, 'runs', 'old-run', 'output.log'), 'old\n', { mode: 0o644 });
    chmodSync(dataDir, 0o755);
    chmodSync(join(dataDir, 'runs'), 0o755);
    chmodSync(join(dataDir, 'runs', 'old-run'), 0o755);
    chmodSync(join(dataDir, 'runs', 'old-run', 'output.log'), 0o644);
    server = await startTestServer({ dataDir });
  });
  after(async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs local scripts as the server user without any configuration, as before', async () => {
    const run = await runShell(server.client(), 'me', 'id -u\npwd');
    assert.equal(run.status, 'FINISHED');
    assert.equal(run.lines[0], String(process.getuid?.()));
    // No runAs: the run directory in the data directory is the working directory, as before.
    assert.equal(run.lines[1], join(dataDir, 'runs', run.instanceId));
  });

  it('makes an existing data directory private at start and keeps new files private', async () => {
    await server
      .client()
      .createScript({ name: 'db', type: 'DWSSQL', connectionName: 'duckdb', content: 'SELECT 1' });
    const id = await server.client().execute('db');
    await server.client().waitFor('db', id);
    assertPrivate(dataDir);
  });

  it('stops running scripts as the server user once credentials are added while it runs', async () => {
    const token = 'sandbox-late-admin-token-000001';
    const added = await promisify(execFile)(
      process.execPath,
      ['bin/opendlf.js', 'credentials', 'add', '--data-dir', dataDir, '--token', token, '--project', PROJECT],
      { timeout: 60_000 },
    );
    assert.equal(added.stderr.includes('rror'), false, added.stderr);
    const admin = new TokenClient(server.url, PROJECT, token);
    const run = await runShell(admin, 'late', 'id -u');
    assert.equal(run.status, 'FAILED');
    assert.deepEqual(run.lines, []);
    const detail = await admin.result('late', run.instanceId);
    assert.match(detail.text, /localEngine\.runAs/);
  });
});
