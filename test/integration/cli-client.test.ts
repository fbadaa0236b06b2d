/**
 * The `opendlf` client commands end to end: the real command line (a child process) against a real
 * server started here. Push → run --wait → table/csv/json → result export → stop a long run →
 * Ctrl-C through a pseudo-terminal (`script`, util-linux) → history → profiles and credentials →
 * connections → completion, with the exit codes scripts rely on.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DlfApiClient } from '../../src/client/api-client.js';
import { until } from '../helpers/assertions.js';
import { localPostgresConnection } from '../helpers/connections.js';
import { compileCli, type CompiledCli } from '../helpers/compiled-cli.js';
import { credentialsAddArgs } from '../helpers/credentials-cli.js';
import { PROJECT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(REPO, 'src/cli/main.ts');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of every CLI run: none of this process's OPENDLF_* settings, a private HOME. */
function baseEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('OPENDLF_')) env[key] = value;
  return { ...env, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), NO_COLOR: '1' };
}

/** The client commands, compiled once for this file (see test/helpers/compiled-cli.ts). */
let compiled: CompiledCli;
before(() => {
  compiled = compileCli();
});
after(() => compiled.remove());

/** Runs `opendlf <args>`: compiled, or through tsx for the commands that load the server's modules. */
function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  via: 'compiled' | 'tsx' = 'compiled',
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      via === 'tsx' ? ['--import', 'tsx', MAIN, ...args] : [compiled.main, ...args],
      { cwd: REPO, env, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Polls until `probe` holds (the shared `until`, with a boolean probe). */
const waitFor = (probe: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000) =>
  until(what, async () => ((await probe()) ? true : undefined), timeoutMs);

const SQL = "select 41 + ${n} as answer, 'a,\"b' as s";

let server: TestServer;
let api: DlfApiClient;
let home: string;
let work: string;
let env: NodeJS.ProcessEnv;
const cli = (...args: string[]) => runCli(args, env);

/**
 * A server and a private HOME for one suite. The suites are several so each stays well inside the
 * per-test timeout: every CLI run is a fresh Node process loading TypeScript through tsx.
 */
function withServer(): void {
  before(async () => {
    home = tempDir('opendlf-cli-home-');
    work = tempDir('opendlf-cli-work-');
    server = await startTestServer();
    api = new DlfApiClient({ endpoint: server.url, projectId: PROJECT });
    env = { ...baseEnv(home), OPENDLF_ENDPOINT: server.url, OPENDLF_PROJECT_ID: PROJECT };
    writeFileSync(join(work, 'daily_report.sql'), SQL);
    writeFileSync(join(work, 'bad.sql'), 'select * from no_such_table');
    writeFileSync(join(work, 'long.sh'), 'echo tick-1; sleep 600');
  });

  after(async () => {
    await server.close();
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
}

describe('opendlf client: scripts, runs, results, exit codes', () => {
  withServer();

  it('push creates a script from a file, a second push updates it; ls filters by directory', async () => {
    writeFileSync(join(work, 'first.sql'), 'select 1');
    const created = await cli(
      'script',
      'push',
      join(work, 'first.sql'),
      '--name',
      'daily_report',
      '--type',
      'DWSSQL',
      '--connection',
      'duckdb',
      '--directory',
      '/reports/daily',
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stderr, /created script daily_report/);

    const updated = await cli('script', 'push', join(work, 'daily_report.sql'));
    assert.equal(updated.code, 0, updated.stderr);
    assert.match(updated.stderr, /updated script daily_report/);
    const stored = await api.getScript('daily_report');
    assert.equal(stored.content, SQL);
    assert.equal(stored.type, 'DWSSQL', 'fields not given keep their values');
    assert.equal(stored.directory, '/reports/daily');

    const inReports = await cli('ls', '--dir', '/reports', '-o', 'json');
    assert.equal(inReports.code, 0, inReports.stderr);
    assert.deepEqual(
      (JSON.parse(inReports.stdout) as { name: string }[]).map((s) => s.name),
      ['daily_report'],
    );
    const elsewhere = await cli('ls', '--dir', '/other', '-o', 'json');
    assert.deepEqual(JSON.parse(elsewhere.stdout), []);
    const table = await cli('ls');
    assert.match(table.stdout, /daily_report.*DWSSQL.*\/reports\/daily/);

    const content = await cli('script', 'get', 'daily_report');
    assert.equal(content.stdout, `${SQL}\n`);

    const noType = await cli('script', 'push', join(work, 'bad.sql'));
    assert.equal(noType.code, 2, 'a new .sql script needs --type');
    assert.match(noType.stderr, /^opendlf: script bad does not exist yet: give its --type/);
  });

  it('--workspace (and OPENDLF_WORKSPACE) puts every request in that workspace', async () => {
    writeFileSync(join(work, 'in_ws.sql'), 'select 1 as one');
    const pushed = await cli(
      'script',
      'push',
      join(work, 'in_ws.sql'),
      '--type',
      'DWSSQL',
      '--connection',
      'duckdb',
      '--workspace',
      'ws1',
    );
    assert.equal(pushed.code, 0, pushed.stderr);
    const [inWs, viaEnv, inDefault] = await Promise.all([
      cli('ls', '--workspace', 'ws1', '-o', 'json'),
      runCli(['run', 'in_ws', '--wait', '-o', 'csv'], { ...env, OPENDLF_WORKSPACE: 'ws1' }),
      cli('ls', '--name', 'in_ws', '-o', 'json'),
    ]);
    assert.deepEqual(
      (JSON.parse(inWs.stdout) as { name: string }[]).map((s) => s.name),
      ['in_ws'],
    );
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.equal(viaEnv.stdout, 'one\r\n1\r\n');
    assert.deepEqual(JSON.parse(inDefault.stdout), [], 'not in the default workspace');
  });

  it('run --wait prints the result as a table, JSON and CSV; result exports CSV', async () => {
    const table = await cli('run', 'daily_report', '-p', 'n=1', '--wait');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /statement 1: 1 row/);
    assert.match(table.stdout, /│ answer │ s\s+│/);
    assert.match(table.stdout, /│ 42\s+│ a,"b │/);
    assert.match(table.stderr, /FINISHED/);

    const json = await cli('run', 'daily_report', '-p', 'n=2', '--wait', '-o', 'json');
    assert.equal(json.code, 0, json.stderr);
    const instance = JSON.parse(json.stdout);
    assert.equal(instance.status, 'FINISHED');
    assert.deepEqual(instance.results[0].rows, [[43, 'a,"b']]);

    const csv = await cli('run', 'daily_report', '-p', 'n=3', '--wait', '-o', 'csv');
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(csv.stdout, 'answer,s\r\n44,"a,""b"\r\n');

    const [exported, lines, asJson] = await Promise.all([
      cli('result', 'daily_report', instance.instanceId, '--format', 'csv'),
      cli('result', 'daily_report', instance.instanceId, '--format', 'jsonl'),
      cli('result', 'daily_report', instance.instanceId, '-o', 'json'),
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^answer,s\r?\n43,"a,""b"\r?\n$/);
    assert.equal(lines.code, 0, lines.stderr);
    assert.deepEqual(
      lines.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
      [[43, 'a,"b']],
    );
    assert.equal(JSON.parse(asJson.stdout).instanceId, instance.instanceId);

    const noWait = await cli('run', 'daily_report', '-p', 'n=0');
    assert.equal(noWait.code, 0, noWait.stderr);
    assert.match(noWait.stdout, /^[\w-]+\n$/, 'without --wait only the instance id is printed');
    await api.getInstance('daily_report', noWait.stdout.trim(), { waitSeconds: 30 });
  });

  it('exit codes: 3 for a FAILED instance, 1 for an API error, 2 for usage errors, each with one line', async () => {
    await api.createScript({
      name: 'bad',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'select * from no_such_table',
    });
    // Independent runs, side by side (each is a Node process start).
    const [failed, missing, usage, badParam, noProject, unreachable] = await Promise.all([
      cli('run', 'bad', '--wait'),
      cli('run', 'nope', '--wait'),
      cli('run'),
      cli('run', 'daily_report', '-p', 'novalue'),
      runCli(['ls'], { ...baseEnv(home), OPENDLF_ENDPOINT: server.url }),
      cli('ls', '--endpoint', 'http://127.0.0.1:1'),
    ]);
    assert.equal(failed.code, 3);
    // The progress note names the instance; the error is one last line.
    assert.match(
      failed.stderr,
      /^instance \S+ started\nopendlf: instance \S+ FAILED: .*no_such_table[^\n]*\n$/,
    );

    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^opendlf: DLF\.6201: .*\(request \S+\)\n$/);

    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing required argument 'script'/);

    assert.equal(badParam.code, 2);
    assert.match(badParam.stderr, /^opendlf: --param expects name=value, got 'novalue'\n$/);

    assert.equal(noProject.code, 2);
    assert.match(noProject.stderr, /no project id/);

    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^opendlf: cannot reach the server: .*\n$/);
  });

  it('stop ends a long run (idempotently) and history shows it', async () => {
    await cli('script', 'push', join(work, 'long.sh'), '--connection', 'local');
    const started = await cli('run', 'long');
    assert.equal(started.code, 0, started.stderr);
    const id = started.stdout.trim();
    await waitFor(async () => (await api.getInstance('long', id)).status === 'RUNNING', 'the run is running');

    const stopped = await cli('stop', 'long', id);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(stopped.stdout, `${id} FAILED (STOPPED): The script instance is stopped.\n`);
    const again = await cli('stop', 'long', id);
    assert.equal(again.code, 0, 'a second stop changes nothing');
    assert.equal(again.stdout, stopped.stdout);

    const [history, workspace, csv, status] = await Promise.all([
      cli('history', 'long', '-o', 'json'),
      cli('history', '--detailed-status', 'STOPPED', '-o', 'json'),
      cli('history', 'long', '-o', 'csv'),
      cli('status', 'long', id),
    ]);
    assert.equal(history.code, 0, history.stderr);
    const entry = JSON.parse(history.stdout).instances.find(
      (i: { instanceId: string }) => i.instanceId === id,
    );
    assert.equal(entry.detailedStatus, 'STOPPED');
    assert.equal(workspace.code, 0, workspace.stderr);
    const inWorkspace = JSON.parse(workspace.stdout).instances;
    assert.deepEqual(
      inWorkspace.map((i: { instanceId: string; scriptName: string }) => [i.instanceId, i.scriptName]),
      [[id, 'long']],
      'the workspace history, filtered',
    );
    assert.equal(status.code, 3, 'status of a FAILED instance exits 3');
    assert.match(
      status.stderr,
      /^opendlf: instance \S+ FAILED \(STOPPED\): The script instance is stopped\.\n$/,
    );
    assert.match(csv.stdout, /^instanceId,script,status,detailedStatus,/);
    assert.match(csv.stdout, new RegExp(`${id},long,FAILED,STOPPED,`));
  });
});

describe('opendlf client: Ctrl-C while waiting', () => {
  withServer();
  before(() =>
    api.createScript({
      name: 'long',
      type: 'Shell',
      connectionName: 'local',
      content: 'echo tick-1; sleep 600',
    }),
  );

  it('Ctrl-C in a terminal asks whether to stop the instance, and stops it', async (t) => {
    if (spawnSync('script', ['--version']).status !== 0)
      return t.skip('util-linux `script` is not installed');
    const command = [process.execPath, compiled.main, 'run', 'long', '--wait']
      .map((word) => `'${word.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    // A sized terminal (a pipe-fed `script` has 0 columns, where the CLI shows no spinner); `exec`
    // so that the Ctrl-C reaches the CLI and not a shell waiting for it.
    // Without `CI`: a CI runner sets it, and the CLI then keeps a terminal free of animation.
    const { CI: _ci, ...terminalEnv } = env;
    const terminal = spawn('script', ['-qfec', `stty cols 120 rows 40; exec ${command}`, '/dev/null'], {
      cwd: REPO,
      env: { ...terminalEnv, NO_COLOR: '', TERM: 'xterm' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    terminal.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => terminal.once('exit', (code) => resolve(code)));
    try {
      // The live output of the shell run shows while the spinner runs.
      await waitFor(() => screen.includes('tick-1'), 'live output in the terminal', 60_000);
      await waitFor(() => /RUNNING \d+\.\ds/.test(screen), 'the spinner with the elapsed time', 30_000);
      terminal.stdin.write('\x03');
      await waitFor(() => screen.includes('Stop instance'), 'the stop question', 30_000);
      terminal.stdin.write('\r'); // The default answer: yes.
      assert.equal(await exited, 130);
    } finally {
      terminal.kill('SIGKILL');
    }
    const history = await api.listScriptInstances('long', { limit: 1 });
    const latest = history.instances[0];
    assert.equal(latest?.detailedStatus, 'STOPPED', screen);
    assert.match(screen, /interrupted; instance \S+ FAILED \(STOPPED\)/);
  });

  it('without a terminal, SIGINT stops the instance without asking', async () => {
    const child = spawn(process.execPath, [compiled.main, 'run', 'long', '--wait'], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => /instance \S+ started/.test(stderr), 'the run started', 60_000);
    const id = /instance (\S+) started/.exec(stderr)?.[1] ?? '';
    await waitFor(async () => (await api.getInstance('long', id)).status === 'RUNNING', 'the run is running');
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.equal((await api.getInstance('long', id)).detailedStatus, 'STOPPED');
    assert.doesNotMatch(stderr, /Stop instance/);

    const [log, followed] = await Promise.all([cli('log', 'long', id), cli('log', 'long', id, '-f')]);
    assert.equal(log.code, 0, log.stderr);
    assert.match(log.stdout, /^tick-1\n/);
    assert.equal(followed.stdout, log.stdout, 'a settled instance: follow ends at the end of the log');
  });
  it('--wait --timeout gives up waiting with exit 4 and leaves the run going', async () => {
    const waited = await cli('run', 'long', '--wait', '--timeout', '1', '--no-live');
    assert.equal(waited.code, 4, waited.stderr);
    const id = /instance (\S+) still running after 1 s \(opendlf stop long \S+\)\n$/.exec(waited.stderr)?.[1];
    assert.ok(id, waited.stderr);
    const instance = await api.getInstance('long', id);
    assert.ok(['LAUNCHING', 'RUNNING'].includes(instance.status), instance.status);
    await api.stopInstance('long', id);
  });
});

describe('opendlf client: profiles, credentials, connections, completion', () => {
  withServer();
  before(() =>
    api.createScript({ name: 'daily_report', type: 'DWSSQL', connectionName: 'duckdb', content: SQL }),
  );

  it('profiles: the default, --profile, the environment over the file; the file is private', async () => {
    const profileHome = tempDir('opendlf-cli-profiles-');
    const penv = baseEnv(profileHome); // No OPENDLF_ENDPOINT / OPENDLF_PROJECT_ID.
    const pcli = (...args: string[]) => runCli(args, penv);
    try {
      assert.equal(
        (await pcli('profile', 'set', 'dev', '--endpoint', server.url, '--project', PROJECT)).code,
        0,
      );
      assert.equal(
        (
          await pcli(
            'profile',
            'set',
            'dead',
            '--endpoint',
            'http://127.0.0.1:1',
            '--project',
            PROJECT,
            '--token',
            'tok-0123456789abcdef',
          )
        ).code,
        0,
      );
      const file = join(profileHome, '.config', 'opendlf', 'profiles.json');
      assert.equal(statSync(file).mode & 0o777, 0o600);

      // Reads only: side by side.
      const [viaDefault, named, viaEnv, envWins, flagWins, unknown, listed] = await Promise.all([
        pcli('ls', '-o', 'json'),
        pcli('ls', '--profile', 'dead'),
        runCli(['ls'], { ...penv, OPENDLF_PROFILE: 'dead' }),
        runCli(['ls', '--profile', 'dead'], { ...penv, OPENDLF_ENDPOINT: server.url }),
        runCli(['ls', '--endpoint', 'http://127.0.0.1:1'], penv),
        pcli('ls', '--profile', 'nope'),
        pcli('profile', 'ls', '-o', 'json'),
      ]);
      assert.equal(viaDefault.code, 0, viaDefault.stderr);
      assert.ok((JSON.parse(viaDefault.stdout) as { name: string }[]).some((s) => s.name === 'daily_report'));
      assert.equal(named.code, 1, 'the dead profile is used when named');
      assert.equal(viaEnv.code, 1, 'or named by OPENDLF_PROFILE');
      assert.equal(envWins.code, 0, 'the environment overrides the profile');
      assert.equal(flagWins.code, 1, 'a flag overrides the profile');
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /no profile 'nope' .*profiles: dev, dead/);
      assert.doesNotMatch(listed.stdout, /tok-0123456789abcdef/, 'secrets are never printed');
      assert.equal((await pcli('profile', 'use', 'dead')).code, 0);
      assert.equal((await pcli('ls')).code, 1);
    } finally {
      rmSync(profileHome, { recursive: true, force: true });
    }
  });

  it('signs with AK/SK from a profile and sends a token from the environment against a server with auth', async () => {
    const dataDir = tempDir();
    const key = { ak: 'AKCLICLIENT00001', sk: 'cli-client-secret-S3cr3t-001' };
    const token = 'tok-cli-client-S3cr3t-0000000001';
    for (const credential of [key, { token }]) {
      const added = await runCli(
        credentialsAddArgs(dataDir, credential, '--project', PROJECT, '--role', 'admin'),
        env,
        'tsx',
      );
      assert.equal(added.code, 0, added.stderr);
    }
    const secured = await startTestServer({ dataDir });
    const profileHome = tempDir('opendlf-cli-auth-');
    const penv = baseEnv(profileHome);
    try {
      const set = await runCli(
        [
          'profile',
          'set',
          'signed',
          '--endpoint',
          secured.url,
          '--project',
          PROJECT,
          '--access-key',
          key.ak,
          '--secret-key',
          key.sk,
        ],
        penv,
      );
      assert.equal(set.code, 0, set.stderr);
      writeFileSync(join(work, 'authed.sql'), 'select 7 as seven');
      const pushed = await runCli(
        ['script', 'push', join(work, 'authed.sql'), '--type', 'DWSSQL', '--connection', 'duckdb'],
        penv,
      );
      assert.equal(pushed.code, 0, pushed.stderr);
      const run = await runCli(['run', 'authed', '--wait', '-o', 'csv'], penv);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, 'seven\r\n7\r\n');

      const withToken = await runCli(['ls', '-o', 'json'], {
        ...penv,
        OPENDLF_PROFILE: 'signed',
        OPENDLF_TOKEN: token,
        OPENDLF_ENDPOINT: secured.url,
      });
      assert.equal(withToken.code, 0, withToken.stderr);

      const wrong = await runCli(['ls'], { ...penv, OPENDLF_AK: key.ak, OPENDLF_SK: 'not-the-secret' });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /^opendlf: APIGW\.0301: /);
      const anonymousHome = tempDir('opendlf-cli-anon-');
      try {
        const anonymous = await runCli(
          ['ls', '--endpoint', secured.url, '--project', PROJECT],
          baseEnv(anonymousHome),
        );
        assert.equal(anonymous.code, 1);
      } finally {
        rmSync(anonymousHome, { recursive: true, force: true });
      }
    } finally {
      await secured.close();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(profileHome, { recursive: true, force: true });
    }
  });

  it('connection ls, get (secrets masked) and test (a reachable and an unreachable target)', async () => {
    await api.call('POST', `/v1/${PROJECT}/connections`, {
      body: localPostgresConnection('pg_local', { password: 'pg-S3cr3t-pass' }),
    });
    await api.call('POST', `/v1/${PROJECT}/connections`, {
      body: localPostgresConnection('pg_dead', { port: '1' }),
    });
    const listed = await cli('connection', 'ls');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /pg_local.*RDS.*127\.0\.0\.1:5432/);
    const shown = await cli('connection', 'get', 'pg_local', '-o', 'json');
    assert.equal(JSON.parse(shown.stdout).config.password, '*********');
    assert.doesNotMatch(shown.stdout, /pg-S3cr3t-pass/);

    const ok = await cli('connection', 'test', 'pg_local');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'pg_local: ok\n');
    const dead = await cli('connection', 'test', 'pg_dead');
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /^opendlf: OPENDLF\.0602: /);
    // The test kept the stored secret (the masked value means "keep").
    const again = await cli('connection', 'test', 'pg_local');
    assert.equal(again.code, 0, again.stderr);
  });

  it('help everywhere, and a bash completion script generated from the commands', async () => {
    const helps = [['--help'], ['script', 'push', '--help'], ['connection', '--help'], ['history', '--help']];
    const [completion, zsh, ...helped] = await Promise.all([
      cli('completion', 'bash'),
      cli('completion', 'zsh'),
      ...helps.map((args) => cli(...args)),
    ]);
    helped.forEach((help, i) => {
      assert.equal(help.code, 0, helps[i]?.join(' '));
      assert.match(help.stdout, /^Usage: opendlf/);
    });
    assert.equal(completion.code, 0, completion.stderr);
    assert.match(zsh.stdout, /bashcompinit/);
    mkdirSync(join(work, 'completion'), { recursive: true });
    const file = join(work, 'completion', 'opendlf.bash');
    writeFileSync(file, completion.stdout);
    const complete = (...words: string[]) =>
      spawnSync(
        'bash',
        [
          '-c',
          `source '${file}'; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _opendlf; echo "\${COMPREPLY[*]}"`,
        ],
        {
          encoding: 'utf8',
        },
      ).stdout.trim();
    assert.equal(complete('opendlf', 'scr'), 'script');
    assert.equal(complete('opendlf', 'script', 'pu'), 'push');
    assert.equal(complete('opendlf', 'connection', ''), 'ls get test --help');
    assert.match(complete('opendlf', 'run', 'x', '--w'), /--wait/);
  });
});
