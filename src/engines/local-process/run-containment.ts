/**
 * Where a local run's processes are kept, so that a stop, a timeout, a drain and crash recovery end
 * every one of them — including processes that called `setsid`/`setpgid` or double-forked while
 * their parent lived. Two modes, chosen once at start-up (`localEngine.processContainment`):
 *
 * - **cgroup** (cgroup v2 writable by the server, e.g. root): each run gets the cgroup
 *   `<server's cgroup>/opendlf-<scope>/<instanceId>` (scope: the node id and a hash of the data
 *   directory), created before its process and entered by the spawner before the fork (spawner-process.ts), so the run's first instruction already runs
 *   inside it. A process cannot leave it without write access to another cgroup's `cgroup.procs`
 *   (root's files, so a `runAs` user cannot). A stop signals `cgroup.procs` and ends with
 *   `cgroup.kill`; recovery kills every cgroup left under `opendlf-<scope>`, which covers a crash
 *   in the launch window too: the cgroup exists before the process does.
 * - **scan** (no writable cgroup v2): process-tree.ts — freeze (SIGSTOP) the tree, scan /proc for
 *   its session, group, descendants and the `OPENDLF_RUN=<scope>/<run>` environment marker, then
 *   signal. Recovery finds a run's processes by that marker, set before the process exists. Gaps:
 *   a process that replaces its whole environment (`env -i`) and is re-parented to init before a
 *   scan sees it is not found.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import type { RunHandle } from '../../domain/instance.js';
import {
  childCgroups,
  createCgroup,
  killCgroup,
  findCgroupsNamed,
  ownCgroupLocation,
  removeCgroup,
  signalCgroup,
  waitUntilEmpty,
} from './cgroup2.js';
import {
  killTree,
  markedProcesses,
  processStartTicks,
  RUN_MARKER_VARIABLE,
  terminateRun,
} from './process-tree.js';

/** `auto`: cgroup v2 when the server can use it, else scan; `cgroup`: refuse to start without it. */
export type ContainmentSetting = 'auto' | 'cgroup' | 'scan';

export type ContainmentMode = 'cgroup' | 'scan';

/** Where one run's processes are: decided (and, for a cgroup, created) before the process exists. */
export interface RunPlacement {
  /** The run's cgroup directory (cgroup mode). */
  readonly cgroup?: string;
  /** The value of `OPENDLF_RUN` in the run's environment: `<scope>/<run name>`. */
  readonly marker: string;
}

const PARENT_PREFIX = 'opendlf-';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Instance ids and connection-test names are safe already; anything else becomes safe. */
function safeName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 200);
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? `run_${cleaned}` : cleaned;
}

/**
 * A run cgroup directory from a stored handle: an absolute path whose parent is an opendlf parent
 * cgroup, so a handle can only ever name a cgroup this software created.
 */
function runCgroupOf(handle: RunHandle): string | undefined {
  const path = handle.cgroup;
  if (typeof path !== 'string' || !isAbsolute(path) || normalize(path) !== path) return undefined;
  return basename(dirname(path)).startsWith(PARENT_PREFIX) ? path : undefined;
}

export class RunContainment {
  /**
   * Picks the mode for this server (`scope`: its node id and data directory; run cgroups and
   * markers are named after it, so a restart finds what the previous process left). With `cgroup` it throws when
   * cgroup v2 cannot be used, saying why.
   */
  static detect(scope: string, setting: ContainmentSetting = 'auto'): RunContainment {
    if (setting === 'scan')
      return new RunContainment(scope, undefined, undefined, 'localEngine.processContainment is "scan"');
    const own = ownCgroupLocation();
    let reason: string;
    if (own === undefined) {
      reason = 'no cgroup v2 hierarchy is mounted (or this process is outside it)';
    } else {
      const parent = join(own.directory, `${PARENT_PREFIX}${safeName(scope)}`);
      const problem = RunContainment.probe(parent);
      if (problem === undefined) return new RunContainment(scope, parent, own.mountPoint);
      reason = `cgroup v2 at ${own.directory} cannot be used: ${problem}`;
    }
    if (setting === 'cgroup') throw new Error(`localEngine.processContainment is "cgroup" but ${reason}`);
    return new RunContainment(scope, undefined, undefined, reason);
  }

  /**
   * Can a process of this server move itself into a run cgroup? Exactly what the spawner does for
   * every run, tried once with a throwaway child and cgroup. Undefined when it can.
   */
  private static probe(parent: string): string | undefined {
    const probe = join(parent, `probe-${process.pid}`);
    try {
      createCgroup(probe);
      if (!existsSync(join(probe, 'cgroup.kill')) && !existsSync(join(probe, 'cgroup.freeze'))) {
        return 'the kernel has neither cgroup.kill nor cgroup.freeze (Linux 5.2+ needed)';
      }
      // A fixed command: the path is an argument, never part of the shell text.
      execFileSync('/bin/sh', ['-c', 'echo $$ > "$1/cgroup.procs"', 'opendlf-probe', probe], {
        stdio: 'ignore',
        timeout: 5_000,
      });
      return undefined;
    } catch (error) {
      return (error as Error).message.split('\n')[0] ?? 'unknown error';
    } finally {
      removeCgroup(probe);
    }
  }

  private constructor(
    private readonly scope: string,
    /** `<own cgroup>/opendlf-<scope>` in cgroup mode. */
    private readonly parent: string | undefined,
    /** The cgroup2 mount, searched at start-up for this scope's runs under an earlier cgroup. */
    private readonly mountPoint?: string,
    /** Why the scan mode is used. */
    private readonly fallbackReason?: string,
  ) {}

  get mode(): ContainmentMode {
    return this.parent === undefined ? 'scan' : 'cgroup';
  }

  /** For the start-up log and the operator: the mode and where, or why not cgroups. */
  get description(): string {
    return this.parent !== undefined
      ? `cgroup v2: one cgroup per run under ${this.parent}`
      : `process scan (freeze, then scan /proc; ${this.fallbackReason ?? 'no cgroup v2'})`;
  }

  /**
   * The run's placement: its cgroup is created here, before the process — the durable record
   * recovery finds after a crash at any instant. Named after the run; a name in use (two tests of
   * one connection at once) gets a suffix: the handle keeps the path, and recovery lists them all.
   */
  place(runName: string): RunPlacement {
    const name = safeName(runName);
    const marker = `${this.scope}/${name}`;
    if (this.parent === undefined) return { marker };
    createCgroup(this.parent);
    for (let attempt = 0; ; attempt++) {
      const cgroup = join(this.parent, attempt === 0 ? name : `${name}.${attempt}`);
      try {
        mkdirSync(cgroup);
        return { cgroup, marker };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 100) throw error;
      }
    }
  }

  /** The run's environment entry that marks its processes (both modes: recovery scans for it). */
  environment(placement: RunPlacement): Record<string, string> {
    return { [RUN_MARKER_VARIABLE]: placement.marker };
  }

  /** What the stored run handle needs beyond the leader's pid to find the run after a crash. */
  handleFields(placement: RunPlacement): Record<string, string> {
    return placement.cgroup !== undefined ? { cgroup: placement.cgroup } : { marker: placement.marker };
  }

  /**
   * The stop ladder: SIGTERM to every process of the run, up to `graceMs` for them to exit, then
   * SIGKILL to all that is left. True when nothing of the run remains.
   */
  async terminate(placement: RunPlacement, leaderPid: number, graceMs: number, pollMs = 2): Promise<boolean> {
    const { cgroup } = placement;
    if (cgroup === undefined) {
      return terminateRun(leaderPid, graceMs, pollMs, `${RUN_MARKER_VARIABLE}=${placement.marker}`);
    }
    // Newcomers forked during the grace get their SIGTERM on the next poll; cgroup.kill ends them all.
    const signalled = new Set(signalCgroup(cgroup, 'SIGTERM'));
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      if (await waitUntilEmpty(cgroup, Math.min(deadline, Date.now() + 50), pollMs)) return true;
      for (const pid of signalCgroup(cgroup, 'SIGTERM', signalled)) signalled.add(pid);
    }
    killCgroup(cgroup);
    return waitUntilEmpty(cgroup, Date.now() + 5_000, pollMs, killCgroup);
  }

  /**
   * Removes the run's cgroup once its processes are gone. The kernel may report it busy for a
   * moment after the last exit: retried briefly in the background; one with stuck processes stays
   * for the next start's recovery.
   */
  release(placement: RunPlacement): void {
    const { cgroup } = placement;
    if (cgroup === undefined || removeCgroup(cgroup)) return;
    let attempts = 0;
    const retry = setInterval(() => {
      attempts += 1;
      if (removeCgroup(cgroup) || attempts >= 50) clearInterval(retry);
    }, 20);
    retry.unref();
  }

  /**
   * Ends what a run of a previous server process left, from its stored handle: its cgroup, or its
   * tree found by session/group (if the leader's pid was not reused since) and marker.
   */
  async recover(handle: RunHandle): Promise<void> {
    const cgroup = runCgroupOf(handle);
    if (cgroup !== undefined) {
      await this.endCgroup(cgroup);
      return;
    }
    const runId = typeof handle.runId === 'number' && handle.runId > 1 ? handle.runId : undefined;
    const ticks = runId === undefined ? undefined : processStartTicks(runId);
    // The leader's pid now belongs to another process: whatever has this session id is not ours.
    const leaderReused =
      ticks !== undefined && typeof handle.startTicks === 'number' && ticks !== handle.startTicks;
    const marker = typeof handle.marker === 'string' ? `${RUN_MARKER_VARIABLE}=${handle.marker}` : undefined;
    if (runId !== undefined && !leaderReused) {
      await terminateRun(runId, 1_000, 2, marker);
    } else if (marker !== undefined) {
      await killTree({ marker });
    }
  }

  /**
   * Start-up, before any run of this server: ends every run a previous process of this node left —
   * every cgroup under its parent (runs that crashed while launching included: their cgroup existed
   * before their process) and every process carrying this node's marker. Returns how many cgroups
   * and marked processes it found.
   */
  async endLeftovers(): Promise<number> {
    let ended = 0;
    if (this.parent !== undefined) {
      // Where this server's cgroup was last time, too: it may have been started from elsewhere.
      const elsewhere =
        this.mountPoint === undefined ? [] : findCgroupsNamed(this.mountPoint, basename(this.parent));
      for (const parent of new Set([this.parent, ...elsewhere])) {
        for (const name of childCgroups(parent)) {
          await this.endCgroup(join(parent, name));
          ended += 1;
        }
        if (parent !== this.parent) removeCgroup(parent);
      }
    }
    const marker = `${RUN_MARKER_VARIABLE}=${this.scope}/`;
    const marked = markedProcesses(marker).length;
    if (marked > 0) await killTree({ marker });
    return ended + marked;
  }

  /** Removes the parent cgroup when no run is left in it (engine close). */
  close(): void {
    if (this.parent !== undefined && childCgroups(this.parent).length === 0) removeCgroup(this.parent);
  }

  private async endCgroup(cgroup: string): Promise<void> {
    if (!existsSync(cgroup)) return;
    killCgroup(cgroup);
    await waitUntilEmpty(cgroup, Date.now() + 5_000, 5, killCgroup);
    // rmdir right after the last exit may still see the cgroup busy for a moment.
    for (let attempt = 0; attempt < 20 && !removeCgroup(cgroup); attempt++) await sleep(10);
  }
}
