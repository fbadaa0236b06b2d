/**
 * Finding and signalling every process that belongs to a run, on Linux, from /proc: the containment
 * of local runs where no cgroup v2 is available to the server (run-containment.ts; with one, the
 * run's cgroup lists its processes and this file only serves older handles and the spawner's
 * bookkeeping).
 *
 * A run's leader is spawned detached, so it starts a new session and process group whose id is the
 * leader's pid. Killing `-pgid` reaches the group, but children that call `setpgid` (bash job
 * control) leave the group while staying in the session, and children that call `setsid` leave
 * both. So a run's members are: every live process whose session id or process group id is the
 * run's id, or whose environment carries the run's marker (`OPENDLF_RUN=<node>/<run>`, inherited
 * unless a process replaces its whole environment), plus every descendant of those (by parent pid)
 * — collected fresh before each signal. Zombies are not members: they are already dead.
 *
 * A stop freezes before it scans (SIGSTOP, see `freezeRun`): a stopped parent cannot exit, so a
 * child that left the session stays linked to the run through it until the scan has found it.
 */
import { readdirSync, readFileSync } from 'node:fs';

interface ProcStat {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  state: string;
  startTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); field N is fields[N - 3].
  return {
    pid,
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    sid: Number(fields[3]),
    startTicks: Number(fields[19]),
  };
}

/** Every process, or with `above` only those whose pid is greater (their stat files only are read). */
function allProcesses(above = 0): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid <= above) continue;
    const stat = readStat(pid);
    if (stat) out.push(stat);
  }
  return out;
}

/** The last pid the kernel handed out in this pid namespace, if readable. */
function lastPid(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
  } catch {
    return undefined;
  }
}

/** Start time of a process in clock ticks since boot (to tell a reused pid from the original). */
export function processStartTicks(pid: number): number | undefined {
  return readStat(pid)?.startTicks;
}

/** The environment variable every local run (and whatever it starts) carries: `<node>/<run>`. */
export const RUN_MARKER_VARIABLE = 'OPENDLF_RUN';

/**
 * True when the process's initial environment holds `marker` (`OPENDLF_RUN=<node>/<run>`), or any
 * entry starting with it when it ends with '/' (every run of a node).
 */
function carriesMarker(pid: number, marker: string): boolean {
  let environ: Buffer;
  try {
    environ = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  const prefix = marker.endsWith('/');
  for (const entry of environ.toString('utf8').split('\0')) {
    if (entry === marker || (prefix && entry.startsWith(marker))) return true;
  }
  return false;
}

/** `roots` and every live descendant of theirs by parent pid, to a fixed point. */
function withDescendants(procs: readonly ProcStat[], roots: Set<number>): number[] {
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!roots.has(p.pid) && roots.has(p.ppid)) {
        roots.add(p.pid);
        grew = true;
      }
    }
  }
  roots.delete(process.pid);
  return [...roots];
}

/**
 * Live (non-zombie) pids of the run whose session/group id is `runId`, including escaped descendants
 * and, with `marker`, every process carrying it (and its descendants).
 *
 * `youngRun`: the leader was started moments ago (well under a second). Every member was forked after
 * it, and pids are handed out in increasing order until they wrap at pid_max, so only pids above
 * `runId` need reading — a handful instead of every process on the machine. If the pids wrapped
 * meanwhile (the last pid handed out is below `runId`), everything is read. Wrapping all the way
 * round back above `runId` within a young run would take pid_max (≥ 32768) forks in that time.
 */
export function runMembers(runId: number, youngRun = false, marker?: string): number[] {
  const newest = youngRun ? lastPid() : undefined;
  const above = newest !== undefined && newest >= runId ? runId - 1 : 0;
  const procs = allProcesses(above).filter((p) => p.state !== 'Z' && p.state !== 'X');
  const members = new Set<number>();
  for (const p of procs) {
    if (p.sid === runId || p.pgid === runId || p.pid === runId) members.add(p.pid);
    else if (marker !== undefined && p.pid !== process.pid && carriesMarker(p.pid, marker))
      members.add(p.pid);
  }
  // Descendants by parent pid (a setsid'd grandchild is found through its parent).
  return withDescendants(procs, members);
}

/** Every live process carrying `marker` (see `carriesMarker`), and its descendants. */
export function markedProcesses(marker: string): number[] {
  const procs = allProcesses().filter((p) => p.state !== 'Z' && p.state !== 'X');
  const roots = new Set<number>();
  for (const p of procs) if (p.pid !== process.pid && carriesMarker(p.pid, marker)) roots.add(p.pid);
  return withDescendants(procs, roots);
}

/**
 * True when the run's process group still has a live member: one syscall, no scan. False says
 * nothing about members that left the group (setpgid, setsid): only `runMembers` finds those.
 */
export function groupHasMembers(runId: number): boolean {
  try {
    process.kill(-runId, 0);
    return true;
  } catch (error) {
    // EPERM: the group exists, it is only not ours to signal.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function isLive(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

function signalEach(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How a tree is found: a run's session/group id (with its marker), or a marker alone (recovery). */
export interface TreeSelector {
  /** The leader's pid = session and group id; undefined when only the marker is known. */
  readonly runId?: number;
  readonly marker?: string;
}

function treeMembers(tree: TreeSelector): number[] {
  if (tree.runId !== undefined && tree.runId > 1) return runMembers(tree.runId, false, tree.marker);
  return tree.marker !== undefined ? markedProcesses(tree.marker) : [];
}

/**
 * SIGSTOPs the run's group, then every member a scan finds, scanning again until a scan finds no
 * member that was not stopped yet. A stopped process can neither fork nor exit, so a child that
 * left the session (`setsid`) is still linked to a stopped parent when the next scan looks: the
 * kill-then-scan order lost exactly those (the parent died, the child went to init first).
 * Returns every member stopped.
 */
export function freezeRun(tree: TreeSelector): number[] {
  const stopped = new Set<number>();
  if (tree.runId !== undefined && tree.runId > 1) {
    try {
      process.kill(-tree.runId, 'SIGSTOP');
    } catch {
      // ESRCH: the group is empty; members that left it are found below.
    }
  }
  // Bounded: a fork bomb outruns any scan, but each round stops everything found so far.
  for (let round = 0; round < 100; round++) {
    const fresh = treeMembers(tree).filter((pid) => !stopped.has(pid));
    if (fresh.length === 0) break;
    signalEach(fresh, 'SIGSTOP');
    for (const pid of fresh) stopped.add(pid);
  }
  return [...stopped];
}

/**
 * Waits until every member of the run has exited or the deadline passes. Between full scans it
 * only re-reads the known members' own /proc entries (cheap); when they are all gone, one full scan
 * confirms nothing new appeared (a member may have forked before dying), and newcomers get `signal`.
 * `deadline` is on the monotonic clock (performance.now): a step of the wall clock neither cuts the
 * grace short nor stretches it.
 */
async function waitUntilGone(
  tree: TreeSelector,
  members: number[],
  signal: NodeJS.Signals,
  deadline: number,
  pollMs: number,
): Promise<boolean> {
  let known = members;
  for (;;) {
    if (known.every((pid) => !isLive(pid))) {
      known = treeMembers(tree);
      if (known.length === 0) return true;
      signalEach(known, signal);
      if (signal !== 'SIGKILL') signalEach(known, 'SIGCONT');
    }
    if (performance.now() >= deadline) return false;
    await sleep(pollMs);
  }
}

/**
 * The stop ladder for a run found by /proc scans: freeze the whole tree, SIGTERM (and SIGCONT, so
 * the stopped members can handle it) every member, wait up to `graceMs` for all to exit, then
 * freeze what is left, SIGKILL it and wait (bounded) until none is left. Resolves true when no
 * member remains.
 */
export async function terminateRun(
  runId: number,
  graceMs: number,
  pollMs = 2,
  marker?: string,
): Promise<boolean> {
  const tree: TreeSelector = marker === undefined ? { runId } : { runId, marker };
  const members = freezeRun(tree);
  signalEach(members, 'SIGTERM');
  signalEach(members, 'SIGCONT');
  if (await waitUntilGone(tree, members, 'SIGTERM', performance.now() + graceMs, pollMs)) return true;
  return killTree(tree, pollMs);
}

/** Freeze, SIGKILL every member, and wait (bounded, 5 s) until none is left. */
export function killTree(tree: TreeSelector, pollMs = 2): Promise<boolean> {
  // SIGKILL cannot be caught; a process in uninterruptible sleep (D state) may still take a while.
  const survivors = freezeRun(tree);
  signalEach(survivors, 'SIGKILL');
  return waitUntilGone(tree, survivors, 'SIGKILL', performance.now() + 5_000, pollMs);
}
