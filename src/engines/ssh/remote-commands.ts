/**
 * The shell commands the SSH engine runs on the remote host, in one place.
 *
 * Rules: the script content is never part of a command (it travels on stdin); every other value
 * that ends up in a command is either a validated integer or single-quoted with `shellQuote`.
 * The remote login shell must be POSIX (sh, dash, bash, ksh, zsh) and the host Linux with
 * util-linux `setsid` (for `-w`) and, preferably, procps (`ps`, `pkill`: zombie-aware liveness
 * checks and reaching session members that left the group).
 */

/** First stderr line of a run: `OPENDLF_PGID=<pgid> <leader start time in clock ticks>`. */
export const PGID_MARKER = 'OPENDLF_PGID=';
/** Printed by the stop ladder when no live member of the group is left. */
export const GROUP_GONE = 'OPENDLF_GROUP_GONE';
/** Printed by the stop ladder when the pgid now belongs to another process (nothing of ours left). */
export const GROUP_NOT_OURS = 'OPENDLF_GROUP_NOT_OURS';

/** Single-quotes a value for a POSIX shell. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a NUL character cannot be passed to a remote command');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A remote temp dir is only ever removed when it looks like one this engine created. */
export function isRemoteRunDir(path: string): boolean {
  return /^\/[^\n]*\/opendlf\.[A-Za-z0-9]{10}$/.test(path);
}

/** First stdout line of a run: `OPENDLF_DIR=<the run's remote directory>`. */
export const DIR_MARKER = 'OPENDLF_DIR=';

/**
 * Shell functions of the stop ladder, for a group `$g` (see stopGroupCommand). Zombies do not
 * count as alive (a container's init may never reap them).
 */
function ladderFunctions(): string[] {
  return [
    'if command -v ps >/dev/null 2>&1; then',
    `  alive() { ps -e -o pgid=,sid=,stat= 2>/dev/null | awk -v g="$g" '($1==g||$2==g) && $3 !~ /^Z/ {f=1} END {exit !f}'; }`,
    'else',
    '  alive() { kill -s 0 -- "-$g" 2>/dev/null; }',
    'fi',
    'sig() { kill -s "$1" -- "-$g" 2>/dev/null; pkill "-$1" -s "$g" 2>/dev/null; return 0; }',
    'nap() { sleep 0.05 2>/dev/null || sleep 1; }',
    'gone_within() { n=0; while alive; do [ "$n" -ge "$1" ] && return 1; nap; n=$((n+1)); done; return 0; }',
  ];
}

/** The ladder itself: `reused` is a shell condition that is true when `$g` is no longer ours. */
function ladderSteps(reused: string, graceMs: number): string[] {
  const termPolls = Math.max(1, Math.ceil(graceMs / 50));
  return [
    // No liveness check before the signal: a kill sent to an empty group fails harmlessly, and the
    // check (a `ps` over every process) would delay the signal by tens of milliseconds.
    `if ${reused}; then echo ${GROUP_NOT_OURS}`,
    `else sig TERM; if gone_within ${termPolls}; then echo ${GROUP_GONE}; else sig KILL; gone_within 100 && echo ${GROUP_GONE}; fi`,
    'fi',
  ];
}

/**
 * One exec channel per run: creates a private (0700) directory, copies stdin into
 * `<dir>/<fileName>` (0600), starts the script in a new session and, once it exits, ends what it
 * left in its group, removes the directory and exits with the script's status. One channel
 * instead of three (upload, launch, clean-up) saves two round trips per run, and every process
 * started here costs the remote host a fork and an exec, so there are as few as possible: mktemp,
 * cat, setsid (which becomes the interpreter) and rm.
 *
 * stdout: DIR_MARKER (printed before the script starts, so a failed start can still remove the
 * directory), then the script's output with its stderr merged at the source (two SSH streams
 * would not preserve their relative order). stderr: PGID_MARKER (the group id and the leader's
 * start time in clock ticks), then only messages of the shell. The group line goes to the other
 * stream because it is printed after the fork, concurrently with the script's first output.
 *
 * The login shell (a session and group leader under sshd) starts `setsid` in the background: that
 * child is no group leader, so `setsid` makes it a new session without forking, and `$!` is the
 * group id. Its status comes from `wait`, so a script killed by signal N reads as exit code 128+N,
 * as in any shell. After the exit, a `kill -0` to the group (a builtin, no process) tells whether
 * anything of it is left, and only then does the stop ladder run. Members of the session that
 * left the group (`set -m` jobs) can only be found by reading every /proc/<pid>/stat (tens of ms),
 * so that sweep runs in the background (niced) after the exit is reported, and ends any it finds.
 */
export function runScriptCommand(
  fileName: string,
  interpreter: readonly string[],
  env: Readonly<Record<string, string>>,
  graceMs: number,
): string {
  const exports = Object.entries(env)
    .map(([name, value]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`invalid environment variable name ${name}`);
      return `${name}=${shellQuote(value)}`;
    })
    .join(' ');
  const sweep = [
    'g=$1',
    '[ -r /proc/self/stat ] || exit 0',
    'for f in /proc/[0-9]*/stat; do',
    '  { read -r l <"$f"; } 2>/dev/null || continue',
    '  l=${l##*) }; set -- $l',
    '  if [ "$1" != Z ] && { [ "$3" = "$g" ] || [ "$4" = "$g" ]; }; then',
    ...ladderFunctions(),
    ...ladderSteps('false', graceMs),
    '    exit 0',
    '  fi',
    'done',
    'exit 0',
  ].join('\n');
  // Field 22 of /proc/<pid>/stat is the start time; the fields before it hold no space here (the
  // command name is the login shell's or setsid's), and anything unexpected leaves `t` empty.
  const fields21 = Array.from({ length: 21 }, () => '_').join(' ');
  return [
    `d=$(mktemp -d "\${TMPDIR:-/tmp}/opendlf.XXXXXXXXXX") || exit 1`,
    `echo "${DIR_MARKER}$d"`,
    `(umask 077 && exec cat >"$d"/${shellQuote(fileName)}) || { rm -rf -- "$d"; exit 1; }`,
    'cd "$d" || exit 1',
    ...(exports ? [`export ${exports}`] : []),
    `setsid ${interpreter.map(shellQuote).join(' ')} ${shellQuote(fileName)} </dev/null 2>&1 &`,
    'g=$!',
    `t=; IFS=' ' read -r ${fields21} t _ </proc/$g/stat 2>/dev/null`,
    'case $t in *[!0-9]*) t= ;; esac',
    `echo "${PGID_MARKER}$g $t" >&2`,
    'wait "$g"',
    'rc=$?',
    // While any member of the group lives, the number g cannot be given to another process.
    'if kill -s 0 -- "-$g" 2>/dev/null; then',
    ...ladderFunctions(),
    ...ladderSteps('false', graceMs),
    'fi >/dev/null 2>&1',
    // Redirected as a whole: a background job holding the channel's stdout would keep it open.
    // At the lowest priority, so the next runs' processes do not wait behind it.
    `(nice -n 19 sh -c ${shellQuote(sweep)} sh "$g" || sh -c ${shellQuote(sweep)} sh "$g") </dev/null >/dev/null 2>&1 &`,
    'cd / && rm -rf -- "$d"',
    'exit "$rc"',
  ].join('\n');
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 1) throw new Error(`invalid ${what}: ${value}`);
  return value;
}

/**
 * The stop ladder for a remote group, run on the remote host so the polling costs no round trips:
 * SIGTERM to the group (and to session members that left it), poll every 50 ms for up to
 * `graceMs`, then SIGKILL and poll up to 5 s. Zombies do not count as alive. When `startTicks` is
 * known and the pgid's leader is alive with another start time, the pid was reused: nothing is
 * signalled. Prints GROUP_GONE or GROUP_NOT_OURS, or neither when something survived SIGKILL
 * (uninterruptible sleep). Then removes `dir` if given.
 */
export function stopGroupCommand(
  pgid: number | undefined,
  startTicks: number | null,
  graceMs: number,
  dir: string | undefined,
): string {
  const lines: string[] = [];
  if (pgid !== undefined) {
    const g = positiveInteger(pgid, 'process group id');
    lines.push(`g=${g}`, ...ladderFunctions());
    const ticksGuard =
      startTicks !== null
        ? `[ -r /proc/$g/stat ] && [ "$(cut -d' ' -f22 /proc/$g/stat 2>/dev/null)" != ${shellQuote(String(startTicks))} ]`
        : 'false';
    lines.push(...ladderSteps(ticksGuard, graceMs));
  }
  if (dir !== undefined && isRemoteRunDir(dir)) lines.push(`rm -rf -- ${shellQuote(dir)}`);
  lines.push('exit 0');
  return lines.join('\n');
}
