/**
 * Starting a local run's process, off the server's event loop.
 *
 * `child_process.spawn` forks the calling process: the kernel copies its page tables, so the cost
 * grows with the caller's memory, and libuv does it synchronously. From the ~200 MB server that was
 * 6–9 ms of blocked event loop per run (a quarter of the server's CPU profile at 60 Shell runs/s),
 * and the /proc scan after every exit (is anything of the run left?) another 2–3 ms. So the server
 * starts one small process once (spawner-process.ts, shared by the local engines) that spawns the
 * runs, forwards their output, and does the scan; the server only exchanges a few frames per run.
 *
 * The server still owns everything else: the command, environment, uid/gid and working directory
 * are decided here, and stops signal the run's group directly (process-tree.ts). If the spawner
 * cannot be started, runs are spawned in the server as before (`spawnInServer`). If it dies, its
 * runs report `lost`, and the engine ends their trees.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cgroupPopulated, enterCgroup } from './cgroup2.js';
import { environmentWithoutServerSettings } from './server-environment.js';
import {
  encodeFrame,
  FrameReader,
  FrameType,
  type SpawnExit,
  type SpawnRequest,
  type SpawnStarted,
} from './spawner-protocol.js';
import { processStartTicks, runMembers } from './process-tree.js';

export type { SpawnRequest } from './spawner-protocol.js';

export interface RunExit extends SpawnExit {
  /** Set when the spawner died before the leader's exit was seen: the run's state is unknown. */
  readonly lost?: string;
}

export interface SpawnedRun {
  /** The leader's pid = the run's session and process group id. */
  readonly pid: number;
  readonly startTicks: number | null;
  /** The leader exited (or the spawner was lost). */
  readonly exited: Promise<RunExit>;
  /** Both pipes closed: every output chunk has been delivered. */
  readonly outputClosed: Promise<void>;
  /** Stops reading the run's pipes (an escaped process keeps them open). */
  release(): void;
}

export type SpawnResult = SpawnedRun | { readonly error: string };

export interface RunSpawner {
  spawn(request: SpawnRequest, onOutput: (chunk: Buffer) => void): Promise<SpawnResult>;
}

/**
 * A run spawned by the server itself into a cgroup waits at this gate until the server has moved
 * it there (one line on its stdin), then execs the command with stdin from /dev/null as usual; if
 * the server dies first (end of input), it exits without running anything.
 * Fixed text: the command is passed as arguments, never as part of it.
 */
const CGROUP_GATE = 'read -r _ && exec "$@" </dev/null';

/** The pre-spawner path, also the fallback: spawn in this process. */
export const spawnInServer: RunSpawner = {
  spawn(request, onOutput) {
    const { cgroup } = request;
    // The server cannot fork into a cgroup (it would have to enter it itself): the child waits.
    const [file, args] =
      cgroup === undefined
        ? [request.file, [...request.args]]
        : ['/bin/sh', ['-c', CGROUP_GATE, 'opendlf-run', request.file, ...request.args]];
    const child = spawn(file, args, {
      cwd: request.cwd,
      detached: true,
      stdio: [cgroup === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: request.env,
      ...(request.uid !== undefined ? { uid: request.uid } : {}),
      ...(request.gid !== undefined ? { gid: request.gid } : {}),
    });
    const pid = child.pid;
    if (pid === undefined) {
      return new Promise((resolve) => child.once('error', (error) => resolve({ error: error.message })));
    }
    // Both are pipes (stdio above); the type cannot tell with the conditional stdin.
    const stdout = child.stdout!;
    const stderr = child.stderr!;
    if (cgroup !== undefined) {
      try {
        enterCgroup(cgroup, pid);
      } catch (error) {
        child.kill('SIGKILL');
        return Promise.resolve({ error: `could not enter the run's cgroup: ${(error as Error).message}` });
      }
      child.stdin?.on('error', () => undefined);
      child.stdin?.end('go\n');
    }
    stdout.on('data', onOutput);
    stderr.on('data', onOutput);
    const closed = (stream: NodeJS.ReadableStream) =>
      new Promise<void>((resolve) => stream.once('close', resolve));
    return Promise.resolve({
      pid,
      startTicks: processStartTicks(pid) ?? null,
      exited: new Promise<RunExit>((resolve) =>
        child.once('exit', (code, signal) =>
          resolve({
            code,
            signal,
            membersLeft:
              cgroup !== undefined
                ? cgroupPopulated(cgroup)
                : runMembers(pid, false, request.marker).length > 0,
          }),
        ),
      ),
      outputClosed: Promise.all([closed(stdout), closed(stderr)]).then(() => undefined),
      release() {
        stdout.destroy();
        stderr.destroy();
      },
    });
  },
};

interface PendingRun {
  readonly request: SpawnRequest;
  readonly onOutput: (chunk: Buffer) => void;
  started?: (result: SpawnResult) => void;
  exited?: (exit: RunExit) => void;
  outputClosed?: () => void;
  exitSeen: boolean;
  closedSeen: boolean;
}

/**
 * Node options the spawner needs to load its module the way this one was loaded (tsx's loader
 * when running from the TypeScript sources); profilers, inspectors and heap sizes are not passed.
 */
function loaderArguments(module: string): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (/^--(import|require|loader|experimental-loader)=/.test(arg)) out.push(arg);
    else if (/^(--import|--require|-r|--loader|--experimental-loader)$/.test(arg) && i + 1 < argv.length) {
      out.push(arg, argv[++i]!);
    }
  }
  // From the sources with tsx registered in-process (bin/opendlf.js without a build): say so.
  if (out.length === 0 && module.endsWith('.ts')) out.push('--import', import.meta.resolve('tsx/esm'));
  return out;
}

/** The spawner process, shared by every local engine of this server; started on first use. */
export class ProcessSpawner implements RunSpawner {
  private static instance: ProcessSpawner | undefined;
  private static users = 0;

  /** The shared spawner; `release()` it when the engine closes (the last one stops the process). */
  static acquire(): ProcessSpawner {
    ProcessSpawner.users += 1;
    ProcessSpawner.instance ??= new ProcessSpawner();
    return ProcessSpawner.instance;
  }

  static release(): void {
    ProcessSpawner.users = Math.max(0, ProcessSpawner.users - 1);
    if (ProcessSpawner.users === 0 && ProcessSpawner.instance) {
      ProcessSpawner.instance.stop();
      ProcessSpawner.instance = undefined;
    }
  }

  private child: ChildProcess | undefined;
  /** Set once the spawner could not be started at all: later runs use `spawnInServer`. */
  private broken = false;
  private readonly runs = new Map<number, PendingRun>();
  /** The current spawner said it runs; before that, its death means it could not start at all. */
  private ready = false;
  private nextKey = 1;

  private ensureStarted(): ChildProcess | undefined {
    if (this.broken) return undefined;
    if (this.child) return this.child;
    const here = fileURLToPath(import.meta.url);
    const module = here.replace(/spawner\.(ts|js)$/, 'spawner-process.$1');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...loaderArguments(module), module], {
        // Its own session: a terminal's Ctrl-C reaches the server, which then stops the runs itself.
        detached: true,
        stdio: ['pipe', 'pipe', 'inherit'],
        // It is every local run's parent ($PPID): its environment must not hold the server's secrets.
        env: environmentWithoutServerSettings(),
      });
    } catch {
      this.broken = true;
      return undefined;
    }
    const reader = new FrameReader((type, key, payload) => this.onFrame(type, key, payload));
    child.stdout!.on('data', (chunk: Buffer) => reader.push(chunk));
    child.stdin!.on('error', () => undefined);
    child.once('error', () => this.onSpawnerGone('the process spawner could not be started'));
    child.once('exit', (code, signal) =>
      this.onSpawnerGone(`the process spawner exited (${signal ?? `code ${String(code)}`})`),
    );
    this.child = child;
    this.updateRef();
    return child;
  }

  spawn(request: SpawnRequest, onOutput: (chunk: Buffer) => void): Promise<SpawnResult> {
    const child = this.ensureStarted();
    if (!child?.stdin?.writable) return spawnInServer.spawn(request, onOutput);
    const key = this.nextKey;
    this.nextKey = (this.nextKey % 0xffff_fff0) + 1;
    const run: PendingRun = { request, onOutput, exitSeen: false, closedSeen: false };
    this.runs.set(key, run);
    this.updateRef();
    const started = new Promise<SpawnResult>((resolve) => (run.started = resolve));
    child.stdin.write(encodeFrame(FrameType.Spawn, key, JSON.stringify(request)));
    return started;
  }

  private onFrame(type: FrameType, key: number, payload: Buffer): void {
    if (type === FrameType.Ready) {
      this.ready = true;
      return;
    }
    const run = this.runs.get(key);
    if (!run) return;
    switch (type) {
      case FrameType.Output:
        run.onOutput(payload);
        return;
      case FrameType.Started: {
        const started = JSON.parse(payload.toString('utf8')) as SpawnStarted;
        if ('error' in started) {
          this.forget(key);
          run.started?.({ error: started.error });
          return;
        }
        const exited = new Promise<RunExit>((resolve) => (run.exited = resolve));
        const outputClosed = new Promise<void>((resolve) => (run.outputClosed = resolve));
        run.started?.({
          pid: started.pid,
          startTicks: started.startTicks,
          exited,
          outputClosed,
          release: () => {
            this.child?.stdin?.write(encodeFrame(FrameType.Release, key));
            this.finish(key, run);
          },
        });
        return;
      }
      case FrameType.Exit:
        run.exitSeen = true;
        run.exited?.(JSON.parse(payload.toString('utf8')) as SpawnExit);
        this.finishIfDone(key, run);
        return;
      case FrameType.OutputClosed:
        run.closedSeen = true;
        run.outputClosed?.();
        this.finishIfDone(key, run);
        return;
      default:
        return;
    }
  }

  private finishIfDone(key: number, run: PendingRun): void {
    if (run.exitSeen && run.closedSeen) this.forget(key);
  }

  /** Settles whatever the run still waits for (a release or a lost spawner), then forgets it. */
  private finish(key: number, run: PendingRun, lost?: string): void {
    if (!run.exitSeen) {
      run.exitSeen = true;
      run.exited?.({ code: null, signal: null, membersLeft: true, lost: lost ?? 'released' });
    }
    if (!run.closedSeen) {
      run.closedSeen = true;
      run.outputClosed?.();
    }
    this.forget(key);
  }

  private forget(key: number): void {
    this.runs.delete(key);
    this.updateRef();
  }

  private onSpawnerGone(reason: string): void {
    if (!this.child) return;
    this.child = undefined;
    // One that never ran will not run on a retry (an installation problem): spawn in-process from
    // now on. One that ran and died (killed, out of memory) is replaced on the next run.
    const wasReady = this.ready;
    this.ready = false;
    if (!wasReady) this.broken = true;
    for (const [key, run] of [...this.runs]) {
      if (run.started && !run.exited) {
        this.forget(key);
        // Never started (a broken installation): these runs are spawned here instead of failing.
        if (!wasReady) void spawnInServer.spawn(run.request, run.onOutput).then(run.started);
        else run.started({ error: reason });
      } else {
        this.finish(key, run, reason);
      }
    }
  }

  /** The spawner keeps the server alive only while it has runs in flight. */
  private updateRef(): void {
    const child = this.child;
    if (!child) return;
    const pipes = [child.stdin, child.stdout] as unknown as { ref?(): void; unref?(): void }[];
    if (this.runs.size > 0) {
      child.ref();
      for (const pipe of pipes) pipe.ref?.();
    } else {
      child.unref();
      for (const pipe of pipes) pipe.unref?.();
    }
  }

  private stop(): void {
    const child = this.child;
    this.child = undefined;
    child?.stdin?.end();
    for (const [key, run] of [...this.runs]) this.finish(key, run, 'the engine was closed');
  }
}
