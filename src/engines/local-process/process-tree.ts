/**
 * Finding and signalling every process that belongs to a run, on Linux, from /proc.
 *
 * A run's leader is spawned detached, so it starts a new session and process group whose id is the
 * leader's pid. Killing `-pgid` reaches the group, but children that call `setpgid` (bash job
 * control) leave the group while staying in the session, and children that call `setsid` leave
 * both. So a run's members are: every live process whose session id or process group id is the
 * run's id, plus every descendant of those (by parent pid) — collected fresh before each signal.
 * Zombies are not members: they are already dead and only wait to be reaped.
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

/**
 * Live (non-zombie) pids of the run whose session/group id is `runId`, including escaped descendants.
 *
 * `youngRun`: the leader was started moments ago (well under a second). Every member was forked after
 * it, and pids are handed out in increasing order until they wrap at pid_max, so only pids above
 * `runId` need reading — a handful instead of every process on the machine. If the pids wrapped
 * meanwhile (the last pid handed out is below `runId`), everything is read. Wrapping all the way
 * round back above `runId` within a young run would take pid_max (≥ 32768) forks in that time.
 */
export function runMembers(runId: number, youngRun = false): number[] {
  const newest = youngRun ? lastPid() : undefined;
  const above = newest !== undefined && newest >= runId ? runId - 1 : 0;
  const procs = allProcesses(above).filter((p) => p.state !== 'Z' && p.state !== 'X');
  const members = new Set<number>();
  for (const p of procs) if (p.sid === runId || p.pgid === runId || p.pid === runId) members.add(p.pid);
  // Descendants by parent pid, to a fixed point (a setsid'd grandchild is found through its parent).
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!members.has(p.pid) && members.has(p.ppid)) {
        members.add(p.pid);
        grew = true;
      }
    }
  }
  members.delete(process.pid);
  return [...members];
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

/**
 * Sends `signal` to the run's group first (one syscall, no scan in the critical path), then to every
 * member found by a scan (those that left the group). Returns the members found.
 */
export function signalRun(runId: number, signal: NodeJS.Signals): number[] {
  try {
    process.kill(-runId, signal);
  } catch {
    // ESRCH: the group is empty; members that left it are signalled below.
  }
  const members = runMembers(runId);
  signalEach(members, signal);
  return members;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Waits until every member of the run has exited or the deadline passes. Between full scans it
 * only re-reads the known members' own /proc entries (cheap); when they are all gone, one full scan
 * confirms nothing new appeared (a member may have forked before dying), and newcomers get `signal`.
 */
async function waitUntilGone(
  runId: number,
  members: number[],
  signal: NodeJS.Signals,
  deadline: number,
  pollMs: number,
): Promise<boolean> {
  let known = members;
  for (;;) {
    if (known.every((pid) => !isLive(pid))) {
      known = runMembers(runId);
      if (known.length === 0) return true;
      signalEach(known, signal);
    }
    if (Date.now() >= deadline) return false;
    await sleep(pollMs);
  }
}

/**
 * The stop ladder for a local run: SIGTERM, wait up to `graceMs` for every member to exit, then
 * SIGKILL and wait (bounded) until none is left. Resolves true when no member remains.
 */
export async function terminateRun(runId: number, graceMs: number, pollMs = 2): Promise<boolean> {
  // The group at once; the scan for members that left it one poll later, so that it does not take
  // a CPU from the group's processes while they handle the signal (measured: the tree died ~2x
  // slower than a bare kill(-pgid) with the scan right after the signal, on 2 busy cores).
  try {
    process.kill(-runId, 'SIGTERM');
  } catch {
    // ESRCH: the group is empty; members that left it are signalled below.
  }
  await sleep(pollMs);
  const members = signalRun(runId, 'SIGTERM');
  if (await waitUntilGone(runId, members, 'SIGTERM', Date.now() + graceMs, pollMs)) return true;
  // SIGKILL cannot be caught; a process in uninterruptible sleep (D state) may still take a while.
  const survivors = signalRun(runId, 'SIGKILL');
  return waitUntilGone(runId, survivors, 'SIGKILL', Date.now() + 5_000, pollMs);
}
