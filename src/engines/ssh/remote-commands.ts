/**
 * The shell commands the SSH engine runs on the remote host, in one place.
 *
 * Rules: the script content is never part of a command (it travels on stdin); every other value
 * that ends up in a command is either a validated integer or single-quoted with `shellQuote`.
 * The remote login shell must be POSIX (sh, dash, bash, ksh, zsh) and the host Linux with
 * util-linux `setsid` (for `-w`) and, preferably, procps (`ps`, `pkill`: zombie-aware liveness
 * checks and reaching session members that left the group).
 */

/** Second stdout line of a run: `OPENDLF_PGID=<pgid> <leader start time in clock ticks>`. */
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
 * `<dir>/<fileName>` (0600), starts the script in a new session and, once its leader exits, ends
 * what the leader left in its group, removes the directory and exits with the leader's status.
 * One channel instead of three (upload, launch, clean-up) saves two round trips per run.
 *
 * stdout starts with DIR_MARKER (so a failed start can still remove the directory) and the
 * leader's PGID_MARKER line (process group id = the leader's pid, and its start time in clock
 * ticks), then carries the script's output. The script's stderr is merged into its stdout at the
 * source, so the two interleave exactly as written (two SSH streams would not preserve their
 * relative order); the channel's stderr carries only messages of the shells and of `setsid`.
 *
 * The body runs in `sh` whatever the login shell is. `setsid setsid -w`: the first `setsid` (not
 * a group leader, so it does not fork) makes itself a session leader, which makes the second one
 * fork the leader into a new session and wait for it — so the exit status is the leader's, and a
 * leader killed by a signal is reported by `setsid -w` ("did not exit normally", status = the
 * signal) instead of a shell's ambiguous 128+n. The leader also writes `<pid> <ticks>` to
 * `<dir>/.pgid`, which is how the clean-up learns the group. The clean-up first checks cheaply
 * (no process is started) whether anything of the group or session is left, and runs the stop
 * ladder only then.
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
  const leader = [
    `t=; if { read -r s </proc/$$/stat; } 2>/dev/null; then s=\${s##*) }; set -- $s; t=\${20}; fi`,
    `echo "$$ $t" >.pgid`,
    `echo "${PGID_MARKER}$$ $t"`,
    `exec ${interpreter.map(shellQuote).join(' ')} ${shellQuote(fileName)} </dev/null 2>&1`,
  ].join('\n');
  const body = [
    // mktemp -d creates the directory 0700; only the copy needs umask 077 (the script itself
    // runs with the login's umask, as it would in an interactive session).
    `d=$(mktemp -d "\${TMPDIR:-/tmp}/opendlf.XXXXXXXXXX") || exit 1`,
    `echo "${DIR_MARKER}$d"`,
    `(umask 077 && exec cat >"$d"/${shellQuote(fileName)}) || { rm -rf -- "$d"; exit 1; }`,
    'cd "$d" || exit 1',
    ...(exports ? [`export ${exports}`] : []),
    `setsid setsid -w sh -c ${shellQuote(leader)}`,
    'rc=$?',
    'g=; t=; { read -r g t <.pgid; } 2>/dev/null',
    "case $g in ''|*[!0-9]*) g=0 ;; esac",
    'case $t in *[!0-9]*) t= ;; esac',
    'if [ "$g" -gt 1 ]; then',
    ...ladderFunctions(),
    // Anything of the group (a builtin kill -0), or a session member that left the group (/proc).
    '  left() {',
    '    kill -s 0 -- "-$g" 2>/dev/null && return 0',
    '    [ -r /proc/self/stat ] || { alive; return; }',
    '    for f in /proc/[0-9]*/stat; do',
    '      { read -r l <"$f"; } 2>/dev/null || continue',
    '      l=${l##*) }; set -- $l',
    '      [ "$1" != Z ] && { [ "$3" = "$g" ] || [ "$4" = "$g" ]; } && return 0',
    '    done',
    '    return 1',
    '  }',
    `  if left; then`,
    ...ladderSteps(
      `[ -n "$t" ] && [ -r /proc/$g/stat ] && [ "$(cut -d' ' -f22 /proc/$g/stat 2>/dev/null)" != "$t" ]`,
      graceMs,
    ),
    '  fi',
    'fi >/dev/null 2>&1',
    'cd / && rm -rf -- "$d"',
    'exit "$rc"',
  ].join('\n');
  return `exec sh -c ${shellQuote(body)}`;
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
