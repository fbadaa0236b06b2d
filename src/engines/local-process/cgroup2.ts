/**
 * The few cgroup v2 operations local runs need, on the unified hierarchy found in
 * /proc/self/mountinfo (at /sys/fs/cgroup on a pure v2 host, often /sys/fs/cgroup/unified on a
 * hybrid one). A cgroup holds every process forked inside it, whatever the process does to its
 * session, group or parent: `setsid`, double forks and re-parenting to init do not leave it, and
 * only a writer of a `cgroup.procs` file (root, or the owner of a delegated subtree) can move a
 * process out. So one cgroup per run is a complete list of the run's processes, and `cgroup.kill`
 * ends all of them in one step, including ones forked while it happens.
 *
 * Synchronous on purpose: each call is one small read or write of a kernel file.
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Undoes the octal escapes (`\040` for a space) of mountinfo paths. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * The directory of this process's own cgroup v2 cgroup, or undefined when there is no cgroup2
 * mount or this process's cgroup lies outside it (another cgroup namespace's view).
 */
export function ownCgroupDirectory(): string | undefined {
  return ownCgroupLocation()?.directory;
}

export interface CgroupLocation {
  /** Where the cgroup2 hierarchy (as far as this process sees it) is mounted. */
  readonly mountPoint: string;
  /** This process's cgroup, below `mountPoint`. */
  readonly directory: string;
}

export function ownCgroupLocation(): CgroupLocation | undefined {
  try {
    return cgroupLocationFrom(
      readFileSync('/proc/self/mountinfo', 'utf8'),
      readFileSync('/proc/self/cgroup', 'utf8'),
    );
  } catch {
    return undefined;
  }
}

/** `ownCgroupDirectory` from the texts of /proc/self/mountinfo and /proc/self/cgroup. */
export function cgroupDirectoryFrom(mountinfo: string, membership: string): string | undefined {
  return cgroupLocationFrom(mountinfo, membership)?.directory;
}

function cgroupLocationFrom(mountinfo: string, membership: string): CgroupLocation | undefined {
  // "0::/path" is the v2 membership (v1 hierarchies have a non-zero id and controller names).
  const ownPath = membership
    .split('\n')
    .find((line) => line.startsWith('0::'))
    ?.slice(3);
  if (ownPath === undefined || !ownPath.startsWith('/')) return undefined;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const [before, after] = line.split(' - ');
    if (!before || !after || after.split(' ')[0] !== 'cgroup2') continue;
    const fields = before.split(' ');
    const root = unescapeMountPath(fields[3] ?? '/');
    const mountPoint = unescapeMountPath(fields[4] ?? '');
    if (!mountPoint) continue;
    // The mount shows the hierarchy from `root` down: our cgroup must lie inside it.
    const inside =
      root === '/'
        ? ownPath
        : ownPath === root || ownPath.startsWith(`${root}/`)
          ? ownPath.slice(root.length)
          : undefined;
    if (inside === undefined) continue;
    // No trailing slash for the root cgroup: the path names a directory, and is shown in logs.
    return { mountPoint, directory: inside === '/' || inside === '' ? mountPoint : join(mountPoint, inside) };
  }
  return undefined;
}

export function createCgroup(directory: string): void {
  mkdirSync(directory, { recursive: true });
}

/** Moves `pid` (every thread of it) into the cgroup. */
export function enterCgroup(directory: string, pid: number): void {
  writeFileSync(join(directory, 'cgroup.procs'), `${pid}\n`);
}

/** True while a live process is in the cgroup or below it (`cgroup.events`); false once it is gone. */
export function cgroupPopulated(directory: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(join(directory, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

/** Pids in the cgroup itself (run cgroups have no children). */
export function cgroupPids(directory: string): number[] {
  try {
    return readFileSync(join(directory, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map(Number);
  } catch {
    return [];
  }
}

export function signalCgroup(directory: string, signal: NodeJS.Signals, skip?: Set<number>): number[] {
  const pids = cgroupPids(directory).filter((pid) => !skip?.has(pid));
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
  return pids;
}

/**
 * SIGKILLs every process in the cgroup: `cgroup.kill` (Linux 5.14+) does it atomically, forks in
 * progress included; older kernels get `killCgroupFrozen`.
 */
export function killCgroup(directory: string): void {
  try {
    writeFileSync(join(directory, 'cgroup.kill'), '1');
  } catch {
    killCgroupFrozen(directory);
  }
}

/**
 * Without `cgroup.kill`: freeze the cgroup so nothing in it forks, SIGKILL each member (fatal
 * signals reach frozen tasks), thaw. A member forked while the freeze takes effect is caught by
 * the next call (`waitUntilEmpty` repeats it).
 */
export function killCgroupFrozen(directory: string): void {
  const setFrozen = (frozen: boolean) => {
    try {
      writeFileSync(join(directory, 'cgroup.freeze'), frozen ? '1' : '0');
    } catch {
      // No freezer (or the cgroup is gone): the repeated kill still gets there.
    }
  };
  setFrozen(true);
  signalCgroup(directory, 'SIGKILL');
  setFrozen(false);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits until the cgroup is empty (true) or the deadline passed (false), calling `kill` meanwhile. */
export async function waitUntilEmpty(
  directory: string,
  deadline: number,
  pollMs: number,
  kill?: (directory: string) => void,
): Promise<boolean> {
  for (;;) {
    if (!cgroupPopulated(directory)) return true;
    if (Date.now() >= deadline) return false;
    kill?.(directory);
    await sleep(pollMs);
  }
}

/** Removes an empty cgroup; false when it still holds processes (EBUSY). A missing one counts as removed. */
export function removeCgroup(directory: string): boolean {
  try {
    rmdirSync(directory);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Names of the child cgroups of `directory` (none when it does not exist). */
export function childCgroups(directory: string): string[] {
  try {
    return readdirSync(directory, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

/**
 * Every cgroup named `name` below `root` (depth-first, at most `maxDepth` levels): where an earlier
 * process of this server put its runs when it lived in another cgroup (started by hand, then by a
 * service manager).
 */
export function findCgroupsNamed(root: string, name: string, maxDepth = 8): string[] {
  const found: string[] = [];
  const visit = (directory: string, depth: number) => {
    for (const child of childCgroups(directory)) {
      const path = join(directory, child);
      if (child === name) found.push(path);
      else if (depth < maxDepth) visit(path, depth + 1);
    }
  };
  visit(root, 1);
  return found;
}
