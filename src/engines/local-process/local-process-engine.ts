/**
 * Runs Shell and PYTHON scripts as child processes on the server machine.
 *
 * Each run is spawned detached: its own session and process group, id = the leader's pid, and in
 * its own cgroup where the host allows (run-containment.ts: how every process of a run is found,
 * even one that left the session). The instance owns all of them: when the leader exits, anything
 * it left running in the background is ended too, and a stop ends the whole tree.
 * Output (stdout and stderr interleaved as they arrive) goes to `<runDir>/output.log`
 * (process-output.ts). The process itself is forked by the shared spawner process (spawner.ts), not
 * by the server: a fork of the server blocked its event loop for milliseconds per run.
 *
 * With `runAs` (multi-user mode) the child runs as that unprivileged OS user — libuv's setuid path
 * also calls setgroups(0), so no supplementary group of the server's stays — with a minimal
 * environment, in its own working directory `<workDirectory>/<instanceId>` (0700, owned by it)
 * outside the server's 0700 data directory. The server keeps writing output.log from the pipes, so
 * the script needs nothing of the data directory; the working directory is removed after the run.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RunHandle } from '../../domain/instance.js';
import type { ScriptType } from '../../domain/script.js';
import type { Engine, EngineOutcome, EngineProbe, EngineRunContext, EngineRunRequest } from '../engine.js';
import { ProcessOutput } from '../process-output.js';
import type { OsUser } from './os-user.js';
import { RunContainment, type RunPlacement } from './run-containment.js';
import { environmentWithoutServerSettings } from './server-environment.js';
import { ProcessSpawner, type RunSpawner } from './spawner.js';

export interface LocalProcessEngineOptions {
  /** Engine name persisted with instances, e.g. `local-shell`. */
  readonly name: string;
  readonly scriptTypes: readonly ScriptType[];
  /** Interpreter command, e.g. `bash` or `python3`; resolved through PATH. */
  readonly interpreter: string;
  readonly interpreterArgs: readonly string[];
  readonly scriptFileName: string;
  /** Extra environment for the child; the server's own OPENDLF_* variables are never passed on. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * The OS user every run switches to (the server must run as root). The child then gets only
   * PATH, HOME, USER, LOGNAME, LANG and the run's own variables, not the server's environment.
   */
  readonly runAs?: OsUser;
  /**
   * Parent of the per-run working directories; unset = the run directory itself (single-user,
   * the server's own user). Must not lie inside the data directory when `runAs` is set.
   */
  readonly workDirectory?: string;
  /**
   * Asked before every run; a reason fails the run without starting anything. Lets the composition
   * root withdraw runs as the server's own user once credentials appear while the server runs.
   */
  readonly refusal?: () => Promise<string | undefined>;
  /**
   * How runs' processes are kept and found (cgroup or /proc scan), shared by the engines of one
   * server and named after its node id so its restart finds them. Unset: detected on first use,
   * named after this process (tests, tools).
   */
  readonly containment?: RunContainment;
}

function childEnvironment(
  extra: Readonly<Record<string, string>>,
  runAs: OsUser | undefined,
): Record<string, string> {
  let env: Record<string, string> = {};
  if (runAs) {
    // Nothing of the server's environment beyond what programs need to start: it may hold secrets.
    env.PATH = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
    env.HOME = runAs.home;
    env.USER = runAs.name;
    env.LOGNAME = runAs.name;
    env.LANG = process.env.LANG ?? 'C.UTF-8';
  } else {
    env = environmentWithoutServerSettings();
  }
  return { ...env, ...extra };
}

/**
 * Closes every descriptor above stderr, then execs the interpreter (same pid, so the run's process
 * group and $PPID stay as without it). Node opens its own descriptors close-on-exec, but whatever
 * the server inherited from its parent (a service manager, a shell) would otherwise pass on to
 * every script; libuv has no option to close them. Bash because POSIX sh cannot name fds above 9.
 */
const CLOSE_INHERITED_DESCRIPTORS =
  'for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; exec "$@"';

/** Names of per-run working directories: instance ids (UUIDs) and connection-test runs. */
const RUN_DIRECTORY_NAME =
  /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|connection-test-.+)$/i;

export class LocalProcessEngine implements Engine {
  readonly name: string;
  readonly capabilities = { recoversFromAnyNode: false } as const;

  private workDirectoryReady: Promise<void> | undefined;
  /** Set on the first run: the shared spawner process (spawner.ts), released on close. */
  private sharedSpawner: ProcessSpawner | undefined;
  /** Detected on first use when the options name none; then this engine also closes it. */
  private ownContainment: RunContainment | undefined;

  constructor(private readonly options: LocalProcessEngineOptions) {
    this.name = options.name;
  }

  /**
   * Creates the parent of the working directories: owned by the server, 0711 so the run's user can
   * enter its own subdirectory but not list the others. It usually sits in the world-writable tmp
   * directory, so a directory someone else planted there (or a symlink) is refused, not used.
   */
  private prepareWorkDirectory(parent: string): Promise<void> {
    this.workDirectoryReady ??= (async () => {
      const existing = await lstat(parent).catch(() => undefined);
      if (!existing) {
        await mkdir(parent, { recursive: true });
        // Explicit: the server's umask (077) would otherwise take the execute bit others need.
        await chmod(parent, this.options.runAs ? 0o711 : 0o700);
      }
      // An existing directory is never chmod'ed (it could be /tmp itself): it must already fit.
      const stat = await lstat(parent);
      if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o022) !== 0) {
        throw new Error(
          `localEngine.workDirectory ${parent} must be a directory owned by the server's user that no one else can write to`,
        );
      }
      if (this.options.runAs && (stat.mode & 0o001) === 0) {
        throw new Error(`localEngine.workDirectory ${parent} must let the runAs user enter it (mode 0711)`);
      }
    })();
    this.workDirectoryReady.catch(() => {
      this.workDirectoryReady = undefined;
    });
    return this.workDirectoryReady;
  }

  /** The run's working directory, fresh and 0700 (still the server's; runIn hands it over). */
  private async createWorkDirectory(request: EngineRunRequest): Promise<string> {
    const parent = this.options.workDirectory;
    if (parent === undefined) {
      await mkdir(request.runDir, { recursive: true });
      return request.runDir;
    }
    await this.prepareWorkDirectory(parent);
    // The run directory's name is the server-generated instance id: it cannot escape `parent`.
    const workDir = join(parent, basename(request.runDir));
    await rm(workDir, { recursive: true, force: true });
    // Handed to the run's user only once the script is in it (runIn), so no process of that user can
    // plant a symlink where the server (root) is about to write.
    await mkdir(workDir, { mode: 0o700 });
    return workDir;
  }

  /**
   * Removes working directories left by runs that ended with the server (a crash): call after the
   * supervisor's recovery ended those runs and before new ones start.
   */
  async discardStaleWorkDirectories(): Promise<void> {
    const parent = this.options.workDirectory;
    if (parent === undefined) return;
    const entries = await readdir(parent).catch(() => [] as string[]);
    // Only what runs create (named after instance ids), in case the directory is shared with anything else.
    const runDirectories = entries.filter((entry) => RUN_DIRECTORY_NAME.test(entry));
    await Promise.all(
      runDirectories.map((entry) => rm(join(parent, entry), { recursive: true, force: true })),
    );
  }

  /** Only stored connections are tested; `local` is built in, so this is for the port's sake. */
  get connectionProbe(): EngineProbe {
    const scriptType = this.options.scriptTypes[0] ?? 'Shell';
    return { scriptType, content: scriptType === 'PYTHON' ? 'pass' : 'exit 0' };
  }

  supports(type: ScriptType): boolean {
    return this.options.scriptTypes.includes(type);
  }

  async run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    const { signal } = context;
    if (signal.aborted) return { kind: 'aborted', results: [] };
    const refused = await this.options.refusal?.();
    if (refused !== undefined)
      return { kind: 'failed', results: [], message: refused, reason: 'engine_error' };
    await mkdir(request.runDir, { recursive: true });
    const workDir = await this.createWorkDirectory(request);
    try {
      return await this.runIn(workDir, request, context);
    } finally {
      if (workDir !== request.runDir) await rm(workDir, { recursive: true, force: true });
    }
  }

  private async runIn(
    workDir: string,
    request: EngineRunRequest,
    context: EngineRunContext,
  ): Promise<EngineOutcome> {
    const { runAs } = this.options;
    const scriptFile = join(workDir, this.options.scriptFileName);
    // A fresh working directory holds nothing yet: refuse to write through anything found there.
    const flag = workDir === request.runDir ? 'w' : 'wx';
    await writeFile(scriptFile, request.content, { mode: 0o600, flag });
    if (runAs) {
      await chown(scriptFile, runAs.uid, runAs.gid);
      await chown(workDir, runAs.uid, runAs.gid);
    }
    let placement: RunPlacement;
    try {
      placement = this.containment().place(request.instanceId);
    } catch (error) {
      return {
        kind: 'failed',
        results: [],
        message: `Could not prepare the run's process containment: ${(error as Error).message}`,
        reason: 'engine_error',
      };
    }
    try {
      return await this.runPlaced(workDir, scriptFile, placement, request, context);
    } finally {
      this.containment().release(placement);
    }
  }

  private async runPlaced(
    workDir: string,
    scriptFile: string,
    placement: RunPlacement,
    request: EngineRunRequest,
    context: EngineRunContext,
  ): Promise<EngineOutcome> {
    const { signal } = context;
    const { runAs } = this.options;
    const containment = this.containment();
    const output = await ProcessOutput.open(request, context.onOutput);

    const command = [this.options.interpreter, ...this.options.interpreterArgs, scriptFile];
    // Only when sandboxed (runAs): single-user runs stay exactly as before and need no bash.
    const [file, ...args] = runAs
      ? ['bash', '-c', CLOSE_INHERITED_DESCRIPTORS, 'opendlf-run', ...command]
      : command;
    const spawned = await this.spawner().spawn(
      {
        file: file!,
        args,
        cwd: workDir,
        ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
        env: childEnvironment(
          {
            ...this.options.env,
            OPENDLF_INSTANCE_ID: request.instanceId,
            OPENDLF_PROJECT_ID: request.namespace.projectId,
            OPENDLF_WORKSPACE: request.namespace.workspaceId,
            ...containment.environment(placement),
          },
          runAs,
        ),
        ...(placement.cgroup !== undefined
          ? { cgroup: placement.cgroup }
          : { marker: `OPENDLF_RUN=${placement.marker}` }),
      },
      (chunk) => output.add(chunk),
    );
    if ('error' in spawned) {
      await output.close();
      return {
        kind: 'failed',
        results: [],
        message: `Could not start ${this.options.interpreter}: ${spawned.error}`,
        reason: 'engine_error',
      };
    }
    const runId = spawned.pid;
    let endReason: 'aborted' | 'output' | undefined;
    let ladder: Promise<boolean> | undefined;
    const endRun = (reason: 'aborted' | 'output') => {
      endReason ??= reason;
      ladder ??= containment.terminate(placement, runId, context.stopGraceMs);
    };
    // Output seen while the spawn was reported counts too: onEnded fires at once if it is over.
    output.onEnded(() => endRun('output'));

    const onAbort = () => endRun('aborted');
    const handle: RunHandle = {
      engine: this.name,
      runId,
      startTicks: spawned.startTicks,
      ...containment.handleFields(placement),
    };
    await context.reportHandle(handle);
    // Stopped while launching: the handle exists only now, so the stop takes effect here.
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });

    const exit = await spawned.exited;
    signal.removeEventListener('abort', onAbort);
    // The instance owns its process group: whatever the leader left in the background ends with it.
    if (exit.membersLeft) ladder ??= containment.terminate(placement, runId, context.stopGraceMs);
    if (ladder) await ladder;
    // All writers are gone now, so the pipes close; the bound guards against a stuck descriptor
    // held by a process the ladder could not end (uninterruptible sleep, or escaped a scan).
    let bound: NodeJS.Timeout | undefined;
    const outputClosed = await Promise.race([
      spawned.outputClosed.then(() => true),
      new Promise<false>((resolve) => (bound = setTimeout(() => resolve(false), 2_000))),
    ]);
    clearTimeout(bound);
    if (!outputClosed) spawned.release();
    await output.close();

    const result = output.result();
    if (endReason === 'aborted') return { kind: 'aborted', results: [result] };
    if (endReason === 'output') {
      return {
        kind: 'failed',
        results: [result],
        message: output.problemMessage(),
        reason: output.problemReason(),
        exitCode: exit.code,
      };
    }
    if (exit.lost !== undefined) {
      return {
        kind: 'failed',
        results: [result],
        message: `The script's end could not be observed (${exit.lost}); its process tree was ended.`,
        reason: 'engine_error',
      };
    }
    if (exit.code === 0) return { kind: 'succeeded', results: [result], exitCode: 0 };
    const how = exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal ?? 'unknown'}`;
    const tail = output.tail;
    return {
      kind: 'failed',
      results: [{ ...result, message: tail }],
      message: `The script failed with ${how}.${tail ? `\n${tail}` : ''}`,
      reason: 'script_error',
      exitCode: exit.code,
    };
  }

  recover(handle: RunHandle): Promise<void> {
    return this.containment().recover(handle);
  }

  private containment(): RunContainment {
    if (this.options.containment) return this.options.containment;
    this.ownContainment ??= RunContainment.detect(`process-${process.pid}-${this.name}`);
    return this.ownContainment;
  }

  /** The interpreter starts (`--version`), within 5 s. */
  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      const { runAs } = this.options;
      // As the run's user: the interpreter must be reachable and executable by it, not only by root.
      const asUser = runAs ? { uid: runAs.uid, gid: runAs.gid, cwd: '/' } : {};
      execFile(this.options.interpreter, ['--version'], { timeout: 5_000, ...asUser }, (error) =>
        error
          ? reject(new Error(`${this.options.interpreter} cannot be started: ${error.message}`))
          : resolve(),
      );
    });
  }

  /** Runs are spawned by the shared spawner process, not by the server (see spawner.ts). */
  private spawner(): RunSpawner {
    this.sharedSpawner ??= ProcessSpawner.acquire();
    return this.sharedSpawner;
  }

  close(): Promise<void> {
    if (this.sharedSpawner) ProcessSpawner.release();
    this.sharedSpawner = undefined;
    this.ownContainment?.close();
    return Promise.resolve();
  }
}
