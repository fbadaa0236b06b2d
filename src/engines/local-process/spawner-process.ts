/**
 * The process spawner: a small, long-lived Node process the server starts once, which spawns the
 * local engines' scripts on request (see spawner.ts for why). It runs as the server's user, so
 * `uid`/`gid` switching (runAs) works as in the server; it does nothing else the server decides:
 * the server computes the command, environment and working directory, and signals the runs
 * itself (the stop ladder stays in process-tree.ts, called by the server).
 *
 * For each run it reports the leader's pid, its output, its exit — together with whether any member
 * of the run outlived the leader (the /proc scan, here, off the server's event loop) — and the
 * closing of its pipes. It exits when the server closes its stdin (the server exited, even by
 * SIGKILL); the runs stay, and the server's crash recovery ends them from their stored handles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';
import {
  encodeFrame,
  FrameReader,
  FrameType,
  type SpawnExit,
  type SpawnRequest,
  type SpawnStarted,
} from './spawner-protocol.js';
import { cgroupPopulated, enterCgroup, ownCgroupDirectory } from './cgroup2.js';
import { groupHasMembers, processStartTicks, runMembers } from './process-tree.js';

// Our own writable on descriptor 1, not process.stdout (which writes synchronously to a pipe): a
// busy server must not block the spawner's loop.
const toServer = new Socket({ fd: 1, readable: false, writable: true });
const runs = new Map<number, ChildProcess>();
/** Runs that exit sooner are scanned for leftovers among younger pids only (see runMembers). */
const YOUNG_RUN_MS = 250;
let paused = false;
/** The server that started this spawner (its parent). */
const serverPid = process.ppid;
/** The spawner's own cgroup, to return to after each fork inside a run's cgroup. */
let homeCgroup: string | undefined | null = null;

/**
 * Forks inside the run's cgroup: this process enters it, spawns (libuv forks and execs before
 * `spawn` returns, and a child starts in its parent's cgroup), and goes back home. So the run's
 * process is never outside its cgroup, not even between fork and exec.
 */
function spawnInCgroup(cgroup: string, fork: () => ChildProcess): ChildProcess {
  if (homeCgroup === null) homeCgroup = ownCgroupDirectory();
  const home = homeCgroup;
  if (home === undefined) throw new Error('the spawner cannot find its own cgroup v2 cgroup');
  try {
    enterCgroup(cgroup, process.pid);
  } catch (error) {
    throw new Error(`could not enter the run's cgroup ${cgroup}: ${(error as Error).message}`);
  }
  try {
    return fork();
  } finally {
    try {
      enterCgroup(home, process.pid);
    } catch (error) {
      // Staying would put the spawner under that run's cgroup.kill: exit instead; the server
      // reports its runs lost and ends their trees, and starts a new spawner for the next run.
      process.stderr.write(
        `opendlf spawner: could not leave cgroup ${cgroup}: ${(error as Error).message}\n`,
      );
      process.exit(70);
    }
  }
}

function send(type: FrameType, key: number, payload?: Buffer | string): void {
  if (!toServer.write(encodeFrame(type, key, payload)) && !paused) {
    // Backpressure: hold every run's pipes until the server has read what is queued.
    paused = true;
    for (const child of runs.values()) {
      child.stdout?.pause();
      child.stderr?.pause();
    }
    toServer.once('drain', () => {
      paused = false;
      for (const child of runs.values()) {
        child.stdout?.resume();
        child.stderr?.resume();
      }
    });
  }
}

function start(key: number, request: SpawnRequest): void {
  // The server died after sending this (its requests can still be in the pipe): it may already
  // have been restarted and have swept its runs, so nothing more is started; the process leaves
  // once its input ends. The parent pid changes the moment the server exits.
  if (process.ppid !== serverPid) return;
  let child: ChildProcess;
  try {
    const fork = () =>
      spawn(request.file, [...request.args], {
        cwd: request.cwd,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: request.env,
        ...(request.uid !== undefined ? { uid: request.uid } : {}),
        ...(request.gid !== undefined ? { gid: request.gid } : {}),
      });
    child = request.cgroup !== undefined ? spawnInCgroup(request.cgroup, fork) : fork();
  } catch (error) {
    const started: SpawnStarted = { error: (error as Error).message };
    send(FrameType.Started, key, JSON.stringify(started));
    return;
  }
  const pid = child.pid;
  if (pid === undefined) {
    // The exec failed (ENOENT, EACCES, a uid that cannot be set): reported by 'error', next tick.
    child.once('error', (error) => {
      const started: SpawnStarted = { error: error.message };
      send(FrameType.Started, key, JSON.stringify(started));
    });
    return;
  }
  const spawnedAt = performance.now();
  runs.set(key, child);
  const started: SpawnStarted = { pid, startTicks: processStartTicks(pid) ?? null };
  send(FrameType.Started, key, JSON.stringify(started));

  const onOutput = (chunk: Buffer) => send(FrameType.Output, key, chunk);
  child.stdout!.on('data', onOutput);
  child.stderr!.on('data', onOutput);
  if (paused) {
    child.stdout!.pause();
    child.stderr!.pause();
  }
  let open = 2;
  const onClose = () => {
    open -= 1;
    if (open > 0) return;
    send(FrameType.OutputClosed, key);
    runs.delete(key);
  };
  child.stdout!.once('close', onClose);
  child.stderr!.once('close', onClose);
  child.once('exit', (code, signal) => {
    // A cgroup knows whether anything of the run is left: one read. Otherwise, the group still
    // populated (a stop in progress, background jobs) needs no scan: one syscall. Zombies count for
    // kill(-pgid, 0) but not as members; the server's ladder sorts that out. A short run (most
    // trivial ones) needs only the processes younger than its leader read.
    const young = performance.now() - spawnedAt < YOUNG_RUN_MS;
    const membersLeft =
      request.cgroup !== undefined
        ? cgroupPopulated(request.cgroup)
        : groupHasMembers(pid) || runMembers(pid, young, request.marker).length > 0;
    const exit: SpawnExit = { code, signal, membersLeft };
    send(FrameType.Exit, key, JSON.stringify(exit));
  });
}

function release(key: number): void {
  const child = runs.get(key);
  if (!child) return;
  child.stdout?.destroy();
  child.stderr?.destroy();
}

const reader = new FrameReader((type, key, payload) => {
  if (type === FrameType.Spawn) start(key, JSON.parse(payload.toString('utf8')) as SpawnRequest);
  else if (type === FrameType.Release) release(key);
});
process.stdin.on('data', (chunk: Buffer) => reader.push(chunk));
send(FrameType.Ready, 0);
// The server is gone (or closed the engines): leave the runs to its recovery, and leave.
process.stdin.once('end', () => process.exit(0));
process.stdin.once('error', () => process.exit(0));
toServer.on('error', () => process.exit(0));
