import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { runMembers, terminateRun } from '../../src/engines/local-process/process-tree.js';
import { waitForRunMembers } from '../helpers/processes.js';
import { cgroupPids } from '../../src/engines/local-process/cgroup2.js';
import { RunContainment } from '../../src/engines/local-process/run-containment.js';
import { ProcessSpawner, spawnInServer, type SpawnedRun } from '../../src/engines/local-process/spawner.js';
import { encodeFrame, FrameReader, FrameType } from '../../src/engines/local-process/spawner-protocol.js';

const parentOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
};
const fdTargets = (pid: number) =>
  readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });

describe('spawner frames', () => {
  it('reassembles frames however the stream splits them', () => {
    const frames = [
      encodeFrame(FrameType.Output, 7, Buffer.from('hello\n')),
      encodeFrame(FrameType.OutputClosed, 7),
      encodeFrame(FrameType.Exit, 4_000_000_000, JSON.stringify({ code: 3 })),
    ];
    const stream = Buffer.concat(frames);
    const seen: string[] = [];
    const reader = new FrameReader((type, key, payload) => seen.push(`${type}/${key}/${payload.toString()}`));
    for (let i = 0; i < stream.length; i++) reader.push(stream.subarray(i, i + 1));
    assert.deepEqual(seen, ['4/7/hello\n', '6/7/', '5/4000000000/{"code":3}']);
  });
});

describe('ProcessSpawner', () => {
  const spawner = ProcessSpawner.acquire();
  after(() => ProcessSpawner.release());
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

  async function start(script: string, output: Buffer[] = []): Promise<SpawnedRun> {
    const run = await spawner.spawn({ file: 'bash', args: ['-c', script], cwd: '/', env }, (chunk) =>
      output.push(chunk),
    );
    if ('error' in run) throw new Error(run.error);
    return run;
  }

  it('runs a script in its own session, outside the server, with its output and exit code', async () => {
    const output: Buffer[] = [];
    const run = await start('echo out; echo err >&2; ps -o sid= -p $$; sleep 0.2; exit 3', output);
    // The fork happened in the spawner, not in this process.
    assert.notEqual(parentOf(run.pid), process.pid);
    const exit = await run.exited;
    await run.outputClosed;
    assert.equal(exit.code, 3);
    assert.equal(exit.membersLeft, false);
    // stdout and stderr are two pipes: their chunks may arrive in either order (the full suite
    // once saw ps's line before "err"), so the lines are compared as a set.
    const lines = Buffer.concat(output).toString().trim().split('\n');
    const isPid = (line: string) => /^\s*\d+$/.test(line);
    assert.deepEqual(lines.filter((l) => !isPid(l)).sort(), ['err', 'out']);
    assert.deepEqual(lines.filter(isPid).map(Number), [run.pid]);
  });

  it('reports a member that outlived the leader', async () => {
    const run = await start('sleep 300 >/dev/null 2>&1 & exit 0');
    const exit = await run.exited;
    assert.equal(exit.membersLeft, true);
    assert.equal(await terminateRun(run.pid, 500), true);
    assert.deepEqual(runMembers(run.pid), []);
  });

  it('finds the same members among pids younger than the leader as in a full scan', async () => {
    // A process that left the session (setsid) while its parent lives is a member through its parent.
    const run = await start('setsid sleep 300 & sleep 300 & wait');
    try {
      await waitForRunMembers(run.pid, 3);
      const young = runMembers(run.pid, true).sort();
      assert.equal(young.length, 3);
      assert.deepEqual(young, runMembers(run.pid).sort());
    } finally {
      await terminateRun(run.pid, 500);
    }
  });

  it('reports a command that cannot be started', async () => {
    const run = await spawner.spawn(
      { file: '/nonexistent/interpreter', args: [], cwd: '/', env },
      () => undefined,
    );
    assert.ok('error' in run && /ENOENT/.test(run.error), JSON.stringify(run));
  });

  it('passes none of its own channel to the scripts it starts', async () => {
    const run = await start('sleep 300');
    try {
      const spawnerPid = parentOf(run.pid);
      const channel = fdTargets(spawnerPid)
        .slice(0, 2)
        .filter((target) => target.startsWith('pipe:') || target.startsWith('socket:'));
      assert.equal(channel.length, 2, 'the spawner talks to the server over its stdin and stdout');
      const leaked = fdTargets(run.pid).filter((target) => channel.includes(target));
      assert.deepEqual(leaked, []);
    } finally {
      await terminateRun(run.pid, 500);
    }
  });

  it('reports a run as lost when the spawner dies; the run can still be ended, and a new spawner takes over', async () => {
    const run = await start('sleep 300');
    const firstSpawner = parentOf(run.pid);
    process.kill(firstSpawner, 'SIGKILL');
    const exit = await run.exited;
    assert.match(exit.lost ?? '', /spawner exited/);
    assert.equal(exit.membersLeft, true);
    assert.equal(await terminateRun(run.pid, 500), true);
    // The next run starts a new spawner.
    const next = await start('sleep 0.2; exit 0');
    assert.notEqual(parentOf(next.pid), firstSpawner);
    assert.notEqual(parentOf(next.pid), process.pid);
    assert.equal((await next.exited).code, 0);
  });
});

describe('spawning into a run cgroup', () => {
  const containment = RunContainment.detect(`spawner-test-${process.pid}`);
  const skip = containment.mode === 'cgroup' ? undefined : `no usable cgroup v2: ${containment.description}`;
  const spawner = ProcessSpawner.acquire();
  after(() => {
    containment.close();
    ProcessSpawner.release();
  });
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  // Prints its own cgroup, leaves a setsid'd child behind and exits at once.
  const SCRIPT = 'sed -n "s/^0:://p" /proc/self/cgroup; setsid sleep 300 >/dev/null 2>&1 & exit 0';

  for (const [label, via] of [
    ['the spawner process', spawner],
    ['the server itself (fallback)', spawnInServer],
  ] as const) {
    it(
      `through ${label}: the run starts inside it and a setsid child counts as left over`,
      { skip },
      async () => {
        const placement = containment.place(`run-${label.length}`);
        const output: Buffer[] = [];
        const run = await via.spawn(
          { file: 'bash', args: ['-c', SCRIPT], cwd: '/', env, cgroup: placement.cgroup! },
          (chunk) => output.push(chunk),
        );
        if ('error' in run) throw new Error(run.error);
        const exit = await run.exited;
        await run.outputClosed;
        const cgroupPath = Buffer.concat(output).toString().trim();
        assert.ok(placement.cgroup!.endsWith(cgroupPath), `${cgroupPath} is not ${placement.cgroup}`);
        assert.equal(exit.membersLeft, true, 'the setsid child is in the cgroup');
        assert.equal(await containment.terminate(placement, run.pid, 500), true);
        assert.deepEqual(cgroupPids(placement.cgroup!), []);
        containment.release(placement);
      },
    );
  }
});
