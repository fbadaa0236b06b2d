import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunHandle } from '../../src/domain/instance.js';
import type { ScriptType } from '../../src/domain/script.js';
import type { EngineLimits, EngineOutcome } from '../../src/engines/engine.js';
import { runMembers } from '../../src/engines/local-process/process-tree.js';
import { isPreparedRunDir, SHELL_COPY_MAX_BYTES } from '../../src/engines/ssh/remote-commands.js';
import { SshEngine, type SshTarget } from '../../src/engines/ssh/ssh-engine.js';
import { runEngineContract } from './engine-contract.js';
import { until } from '../helpers/assertions.js';
import { waitForRunMembers } from '../helpers/processes.js';
import { sshdUnavailableReason, startSshd, type TestSshd } from '../helpers/sshd.js';

// The SSH server is this machine (loopback), so the remote process group is visible in /proc here.
const pgidOf = (handle: RunHandle | undefined) => Number(handle?.pgid);
const groupGone = (handle: RunHandle | undefined) => runMembers(pgidOf(handle)).length === 0;

const LONG_RUNNING_SHELL =
  'sleep 300 &\n( sleep 300 & sleep 300; ) &\nnohup sleep 300 >/dev/null 2>&1 &\nsleep 300 | cat &\nwhile true; do sleep 1; done\n';

const skipReason = sshdUnavailableReason();

/** A loopback port nothing listens on (it was just free). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  const port = await new Promise<number>((resolve) =>
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    }),
  );
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function targetFor(sshd: TestSshd, knownHostsFile: string, overrides: Partial<SshTarget> = {}): SshTarget {
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.privateKey,
    hostKey: { knownHostsFile, onUnknown: 'record' },
    ...overrides,
  };
}

if (skipReason) {
  describe('engine contract: ssh shell', { skip: skipReason }, () => {});
} else {
  let sshd: TestSshd;
  let stateDir: string;
  runEngineContract({
    name: 'ssh shell',
    async createEngine() {
      sshd = await startSshd();
      stateDir = mkdtempSync(join(tmpdir(), 'opendlf-ssh-contract-'));
      return new SshEngine('ssh-test', targetFor(sshd, join(stateDir, 'known-hosts.json')));
    },
    scriptType: 'Shell',
    succeeding: {
      content: 'echo hello\necho world >&2\n',
      check(results) {
        assert.equal(results.length, 1);
        assert.deepEqual(results[0]?.rows, [['hello'], ['world']]);
        assert.deepEqual(results[0]?.schema, [{ output: 'string' }]);
      },
    },
    failing: { content: 'echo about to fail\nexit 3\n', messageIncludes: 'exit code 3' },
    longRunning: LONG_RUNNING_SHELL,
    ignoresPoliteCancel: "trap '' TERM\n( trap '' TERM; sleep 300 ) &\nwhile true; do sleep 1; done\n",
    skip: { stopBetweenStatements: 'a Shell script is one process, not a list of statements' },
    unreachable: {
      createEngine: async () =>
        new SshEngine(
          'ssh-test',
          targetFor(sshd, join(stateDir, 'known-hosts.json'), { port: await closedPort() }),
        ),
      messageMatches: [/connection refused/],
    },
    limits: { endlessOutput: 'while true; do echo 0123456789abcdef; done\n' },
    recovery: {
      createEngine: () => new SshEngine('ssh-test', targetFor(sshd, join(stateDir, 'known-hosts.json'))),
      afterRecover: (handle) => {
        assert.equal(existsSync(String(handle.dir)), false, "the run's remote directory is removed");
      },
    },
    waitUntilWorking: (handle) => waitForRunMembers(pgidOf(handle), 2),
    workGone: (handle) => Promise.resolve(groupGone(handle)),
    async teardown() {
      await sshd.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  });
}

describe('ssh engine', { skip: skipReason ?? false }, () => {
  let sshd: TestSshd;
  let dir: string;
  let seq = 0;
  const engines: SshEngine[] = [];
  const limits: EngineLimits = {
    maxResultRows: 1000,
    maxOutputBytes: 30 * 1024 * 1024,
    maxResultOutputBytes: 1024 * 1024,
  };

  before(async () => {
    sshd = await startSshd();
    dir = mkdtempSync(join(tmpdir(), 'opendlf-ssh-test-'));
  });
  after(async () => {
    for (const engine of engines) await engine.close();
    await sshd.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An engine with its own known-hosts file unless one is given. */
  function engineFor(overrides: Partial<SshTarget> = {}, options: { python?: string } = {}): SshEngine {
    seq += 1;
    const engine = new SshEngine(
      'ssh-test',
      targetFor(sshd, join(dir, `known-hosts-${seq}.json`), overrides),
      options,
    );
    engines.push(engine);
    return engine;
  }

  function start(
    engine: SshEngine,
    content: string,
    scriptType: ScriptType = 'Shell',
    runLimits: EngineLimits = limits,
    controller = new AbortController(),
  ) {
    seq += 1;
    let reported!: (h: RunHandle) => void;
    const handle = new Promise<RunHandle>((resolve) => (reported = resolve));
    const outcome: Promise<EngineOutcome> = engine.run(
      {
        instanceId: `ssh-${seq}`,
        namespace: { projectId: 'contract', workspaceId: 'ws1' },
        scriptType,
        content,
        database: '',
        runDir: join(dir, `run-${seq}`),
        limits: runLimits,
      },
      {
        signal: controller.signal,
        stopGraceMs: 500,
        reportHandle: (h) => {
          reported(h);
          return Promise.resolve();
        },
      },
    );
    return { outcome, handle, controller, runDir: join(dir, `run-${seq}`) };
  }

  const messageOf = (outcome: EngineOutcome) =>
    outcome.kind === 'failed' ? outcome.message : `(${outcome.kind})`;

  it('runs a script whose text is full of shell syntax, verbatim, and cleans up after it', async () => {
    const content = `echo "it's \\$HOME: $HOME"\necho '$(touch /tmp/never)' "\`id -u\`"\necho "id=$OPENDLF_INSTANCE_ID"\n`;
    const run = start(engineFor(), content);
    const outcome = await run.outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    const handle = await run.handle;
    assert.deepEqual(outcome.results[0]?.rows, [
      ["it's $HOME: /root"],
      ['$(touch /tmp/never) 0'],
      [`id=ssh-${seq}`],
    ]);
    assert.equal(readFileSync(join(run.runDir, 'output.log'), 'utf8'), outcome.results[0]?.rawResult);
    assert.equal(typeof handle.dir, 'string');
    // Removed right after the outcome is reported, not before.
    await until('the remote temp dir to be removed', () =>
      Promise.resolve(existsSync(String(handle.dir)) ? undefined : true),
    );
  });

  it('copies small and large scripts byte for byte (a missing final newline is added)', async () => {
    const engine = engineFor();
    const small = `cat "$0"\n  # lead and trail  \n# back\\slash \\n 'q' "dq" $HOME \`x\`\n#\ttab\n# no final newline`;
    const large = `cat "$0"\n${'# filler line past the size the shell copies itself\n'.repeat(40)}`;
    assert.ok(
      Buffer.byteLength(large) > SHELL_COPY_MAX_BYTES && Buffer.byteLength(small) < SHELL_COPY_MAX_BYTES,
    );
    const cases: [content: string, copied: string][] = [
      [small, `${small}\n`],
      [large, large],
    ];
    for (const [content, expected] of cases) {
      const outcome = await start(engine, content).outcome;
      assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
      assert.equal(outcome.results[0]?.rawResult, expected);
    }
  });

  it('ends what the script left running in the background when it exits', async () => {
    // The last one does not hold the channel open: only the check after the exit can find it.
    const run = start(
      engineFor(),
      'sleep 300 &\n( sleep 300 & ) &\nnohup sleep 300 >/dev/null 2>&1 &\necho started\n',
    );
    const outcome = await run.outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    assert.equal(groupGone(await run.handle), true);
  });

  it('ends what the script left behind when the kept shell of its connection is gone', async () => {
    const engine = engineFor();
    // The first runs open the connection and its kept shell (a `sh` child of the same sshd), until
    // one runs in a directory the shell prepared: the shell's own directory holds it.
    let keptShellDir: string | undefined;
    for (let i = 0; i < 20 && keptShellDir === undefined; i++) {
      const first = start(engine, 'exit 0\n');
      assert.equal((await first.outcome).kind, 'succeeded');
      const runDir = String((await first.handle).dir);
      if (isPreparedRunDir(runDir)) keptShellDir = dirname(runDir);
    }
    assert.ok(keptShellDir, 'a run got a prepared directory');
    const run = start(
      engine,
      'for p in $(pgrep -P $PPID -x sh); do kill -s KILL "$p"; done\nnohup sleep 300 >/dev/null 2>&1 &\necho started\n',
    );
    const outcome = await run.outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    assert.equal(groupGone(await run.handle), true);
    // The next run gets a kept shell again.
    const next = start(engine, 'nohup sleep 300 >/dev/null 2>&1 &\n');
    assert.equal((await next.outcome).kind, 'succeeded');
    assert.equal(groupGone(await next.handle), true);
    // SIGKILL ran no trap in the killed shell: the engine removed its directory.
    const killedShellDir = keptShellDir;
    await until("the killed kept shell's directory to be removed", () =>
      Promise.resolve(existsSync(killedShellDir) ? undefined : true),
    );
  });

  it('runs in directories the kept shell prepared, and removes them with the connection', async () => {
    const engine = new SshEngine('ssh-test', targetFor(sshd, join(dir, 'known-hosts-prepared.json')));
    let prepared: string | undefined;
    for (let i = 0; i < 20 && prepared === undefined; i++) {
      const run = start(engine, 'pwd\n');
      const outcome = await run.outcome;
      assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
      const runDir = String((await run.handle).dir);
      assert.deepEqual(outcome.results[0]?.rows, [[runDir]]);
      if (isPreparedRunDir(runDir)) prepared = runDir;
    }
    assert.ok(prepared, 'a run got a prepared directory');
    const keptShellDir = dirname(prepared);
    assert.equal(existsSync(keptShellDir), true);
    await engine.close();
    await until('the kept shell to remove its directory', () =>
      Promise.resolve(existsSync(keptShellDir) ? undefined : true),
    );
  });

  it('runs the script as the leader of its own session and process group', async () => {
    const run = start(engineFor(), "cut -d' ' -f1,5,6 /proc/$$/stat\n");
    const outcome = await run.outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    const pgid = String(pgidOf(await run.handle));
    assert.deepEqual(outcome.results[0]?.rows, [[`${pgid} ${pgid} ${pgid}`]]);
  });

  it('reports a script ended by a signal as exit code 128+N', async () => {
    const outcome = await start(engineFor(), 'echo before\nkill -s KILL $$\n').outcome;
    assert.equal(outcome.kind, 'failed');
    assert.match(messageOf(outcome), /exit code 137/);
    assert.equal(outcome.kind === 'failed' ? outcome.exitCode : undefined, 137);
  });

  it('ends, just after the script exits, a job that left its process group (set -m)', async () => {
    // The job's group is its own, so nothing of the script's group is left: only its session
    // links it to the run, and the sweep after the exit finds it there.
    const run = start(engineFor(), 'bash -c "set -m; sleep 300 & exit"\necho started\n');
    const outcome = await run.outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    const handle = await run.handle;
    const deadline = Date.now() + 10_000;
    while (!groupGone(handle) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(groupGone(handle), true);
  });

  it('runs PYTHON, maps a traceback to failed, and stops a Python process tree', async () => {
    const engine = engineFor({}, { python: 'python3' });
    const ok = await start(engine, 'import sys\nprint("hello")\nprint(6 * 7, file=sys.stderr)\n', 'PYTHON')
      .outcome;
    assert.equal(ok.kind, 'succeeded', JSON.stringify(ok));
    assert.deepEqual(ok.results[0]?.rows, [['hello'], ['42']]);

    const bad = await start(engine, 'raise ValueError("broken input")\n', 'PYTHON').outcome;
    assert.equal(bad.kind, 'failed');
    assert.match(messageOf(bad), /exit code 1[\s\S]*ValueError: broken input/);

    const run = start(
      engine,
      'import subprocess, time\nsubprocess.Popen(["sleep", "300"])\nsubprocess.Popen("sleep 300 | cat", shell=True)\ntime.sleep(300)\n',
      'PYTHON',
    );
    const handle = await run.handle;
    await waitForRunMembers(pgidOf(handle), 3);
    run.controller.abort('stop');
    assert.equal((await run.outcome).kind, 'aborted');
    assert.equal(groupGone(handle), true);
  });

  it('records the host key fingerprint on first use', async () => {
    const knownHostsFile = join(dir, 'tofu.json');
    const outcome = await start(engineFor({ hostKey: { knownHostsFile, onUnknown: 'record' } }), 'true\n')
      .outcome;
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    const recorded = JSON.parse(readFileSync(knownHostsFile, 'utf8')) as {
      hosts: Record<string, { fingerprint: string }[]>;
    };
    assert.equal(recorded.hosts[`[${sshd.host}]:${sshd.port}`]?.[0]?.fingerprint, sshd.hostKeyFingerprint());
  });

  it('refuses an unknown host when the policy is reject', async () => {
    const knownHostsFile = join(dir, 'empty.json');
    const outcome = await start(engineFor({ hostKey: { knownHostsFile, onUnknown: 'reject' } }), 'true\n')
      .outcome;
    assert.equal(outcome.kind, 'failed');
    assert.match(messageOf(outcome), /unknown host key/);
    assert.equal(existsSync(knownHostsFile), false);
  });

  it('fails with an authentication message for a key the server does not accept', async () => {
    const outcome = await start(engineFor({ privateKey: sshd.unauthorizedKey }), 'true\n').outcome;
    assert.equal(outcome.kind, 'failed');
    assert.match(messageOf(outcome), /authentication failed for user "root"/);
  });

  it('fails (bounded by the connect timeout) when the server never answers the handshake', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    const port = await new Promise<number>((resolve) =>
      silent.listen(0, '127.0.0.1', () => {
        const address = silent.address();
        resolve(typeof address === 'object' && address ? address.port : 0);
      }),
    );
    try {
      const outcome = await start(engineFor({ port, connectTimeoutMs: 500 }), 'true\n').outcome;
      assert.equal(outcome.kind, 'failed');
      assert.match(messageOf(outcome), /timed out/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('fails and ends the remote work when the SSH connection drops mid-run', async () => {
    const run = start(engineFor(), LONG_RUNNING_SHELL);
    const handle = await run.handle;
    await waitForRunMembers(pgidOf(handle), 2);
    assert.ok(sshd.dropConnections() > 0, 'there was a session to drop');
    const outcome = await run.outcome;
    assert.equal(outcome.kind, 'failed');
    assert.match(
      messageOf(outcome),
      /SSH connection to root@127\.0\.0\.1:\d+ was lost while the script was running/,
    );
    assert.match(messageOf(outcome), /was ended over a new connection/);
    assert.equal(groupGone(handle), true);
  });

  /** The client end (`address port`) of the SSH connection a run came in on. */
  const connectionOf = (outcome: EngineOutcome) => {
    assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
    const cell = outcome.results[0]?.rows[0]?.[0];
    const line = typeof cell === 'string' ? cell : '';
    return line.split(' ').slice(0, 2).join(' ');
  };
  const SHOW_CONNECTION = 'echo "$SSH_CONNECTION"\n';

  it('runs consecutive scripts over one kept-open connection', async () => {
    const engine = engineFor();
    const first = connectionOf(await start(engine, SHOW_CONNECTION).outcome);
    const second = connectionOf(await start(engine, SHOW_CONNECTION).outcome);
    assert.match(first, /^127\.0\.0\.1 \d+$/);
    assert.equal(second, first);
  });

  it('opens a new connection when the kept one was dropped, and closes an idle one', async () => {
    const engine = engineFor();
    const first = connectionOf(await start(engine, SHOW_CONNECTION).outcome);
    assert.ok(sshd.dropConnections() > 0, 'the connection was kept open after the run');
    const second = connectionOf(await start(engine, SHOW_CONNECTION).outcome);
    assert.notEqual(second, first);

    // Only the idle engine's connection may be open from here on.
    sshd.dropConnections();
    const idle = new SshEngine('ssh-test', targetFor(sshd, join(dir, 'idle-hosts.json')), {
      pool: { idleTimeoutMs: 50 },
    });
    engines.push(idle);
    connectionOf(await start(idle, 'true\n').outcome);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(sshd.dropConnections(), 0, 'no connection is left open once idle');
  });

  it('spreads concurrent runs over several connections (a bounded number of channels each)', async () => {
    const engine = engineFor();
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => start(engine, `sleep 0.3\n${SHOW_CONNECTION}`).outcome),
    );
    const perConnection = new Map<string, number>();
    for (const outcome of outcomes) {
      const connection = connectionOf(outcome);
      perConnection.set(connection, (perConnection.get(connection) ?? 0) + 1);
    }
    assert.ok(perConnection.size >= 3, `10 runs on ${perConnection.size} connection(s)`);
    assert.ok(Math.max(...perConnection.values()) <= 4, JSON.stringify([...perConnection]));
  });

  it('does not reuse a connection whose host key is no longer the recorded one', async () => {
    const knownHostsFile = join(dir, 'replaced.json');
    const engine = engineFor({ hostKey: { knownHostsFile, onUnknown: 'record' } });
    connectionOf(await start(engine, 'true\n').outcome);
    // An operator replaces the recorded key (e.g. the old one leaked).
    const recorded = JSON.parse(readFileSync(knownHostsFile, 'utf8')) as {
      hosts: Record<string, { fingerprint: string }[]>;
    };
    for (const keys of Object.values(recorded.hosts)) {
      for (const key of keys) key.fingerprint = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    }
    writeFileSync(knownHostsFile, JSON.stringify(recorded));
    const outcome = await start(engine, 'true\n').outcome;
    assert.equal(outcome.kind, 'failed');
    assert.match(messageOf(outcome), /host key changed/);
  });

  // Last: it re-keys the shared server.
  it('refuses a changed host key as a possible man-in-the-middle', async () => {
    const knownHostsFile = join(dir, 'rekey.json');
    const engine = engineFor({ hostKey: { knownHostsFile, onUnknown: 'record' } });
    const first = await start(engine, 'true\n').outcome;
    assert.equal(first.kind, 'succeeded', JSON.stringify(first));
    // The engine keeps its connection between runs, and that connection stays with the sshd
    // process it verified (an open session survives an sshd restart): the key is checked again
    // on the next new connection, here after a reinstall that dropped the sessions.
    sshd.dropConnections();
    await sshd.rotateHostKey();
    const second = await start(engine, 'true\n').outcome;
    assert.equal(second.kind, 'failed');
    assert.match(messageOf(second), /host key changed/);
    assert.match(messageOf(second), /man-in-the-middle/);
  });
});
