/**
 * The shell commands the SSH engine runs on the remote host, in one place.
 *
 * Rules: the script content is never part of a command (it travels on stdin); every other value
 * that ends up in a command is either a validated integer or single-quoted with `shellQuote`.
 * The remote login shell must be POSIX (sh, dash, bash, ksh, zsh) and the host Linux (/proc) with
 * coreutils (`mktemp`, `cat`, `rm`) and, preferably, procps (`ps`, `pkill`, `pgrep`: zombie-aware
 * liveness checks and reaching session members that left the group); util-linux `setsid` only
 * when a wrapper stands between sshd and the login shell.
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

/**
 * A remote temp dir is only ever removed when it looks like one this engine created: a run's own
 * `opendlf.XXXXXXXXXX`, or a `run.XXXXXXXXXX` prepared inside the kept shell's
 * `opendlf.XXXXXXXXXX` (see keptShellSetupCommand).
 */
export function isRemoteRunDir(path: string): boolean {
  return /^\/[^\n]*\/opendlf\.[A-Za-z0-9]{10}(\/run\.[A-Za-z0-9]{10})?$/.test(path);
}

/** The kept shell's first line: `OPENDLF_KEPT_DIR=<its private directory>`. */
export const KEPT_DIR_MARKER = 'OPENDLF_KEPT_DIR=';

/**
 * Sent once to a newly opened kept shell: the stop ladder's functions (for afterExitCommand), and
 * a private (0700) directory for the run directories it prepares, removed with everything in it
 * when the shell ends (its channel or connection closed: the runs of a lost connection are ended
 * anyway).
 * - The directory is announced (KEPT_DIR_MARKER), so the engine can remove it when a signal ended
 *   the shell (removeKeptDirCommand): SIGKILL runs no trap, nor does any signal in dash. Trapping
 *   the signals is no way out: a shell waiting for its next line would run the trap only once that
 *   line came.
 * - SIGPIPE is ignored: a line the shell writes once its channel is gone (this announcement, a stop
 *   ladder's answer) fails, where it would have killed the shell, trap unrun (without it, the SSH
 *   test of a dropped connection left an empty directory in 3 runs of 4). Once the channel is gone
 *   the shell reads EOF and exits through its trap.
 * - The removal first waits for the last background `mktemp` (`$M`, prepareRunDirCommand): one
 *   still running could create its run directory while `rm -rf` empties `$P`, so `rm` fails
 *   (directory not empty) and both stay behind (seen with dash: 2 shells in 300 that ended just
 *   after a prepare).
 */
export function keptShellSetupCommand(): string {
  return [
    ...ladderFunctions(),
    "trap '' PIPE",
    `P=$(mktemp -d "\${TMPDIR:-/tmp}/opendlf.XXXXXXXXXX") && trap '[ -z "$M" ] || wait "$M"; rm -rf -- "$P"' EXIT &&`,
    `  echo "${KEPT_DIR_MARKER}$P"`,
    '',
  ].join('\n');
}

/** A kept shell's own directory (`opendlf.XXXXXXXXXX`), not a run directory prepared in it. */
function isKeptShellDir(path: string): boolean {
  return isRemoteRunDir(path) && !isPreparedRunDir(path);
}

/** A kept shell's directory as announced by its KEPT_DIR_MARKER line, if it is one. */
export function keptDirOf(line: string): string | undefined {
  if (!line.startsWith(KEPT_DIR_MARKER)) return undefined;
  const dir = line.slice(KEPT_DIR_MARKER.length);
  return isKeptShellDir(dir) ? dir : undefined;
}

/** Removes the directory of a kept shell that ended without its EXIT trap (see keptShellSetupCommand). */
export function removeKeptDirCommand(dir: string): string {
  if (!isKeptShellDir(dir)) throw new Error(`not a kept shell's directory: ${dir}`);
  return `rm -rf -- ${shellQuote(dir)}`;
}

/**
 * For the kept shell: prepares the next run's directory in the background (a `mktemp` before the
 * run needs it, not while it waits). The answer is mktemp's own line, the directory; without `$P`
 * mktemp is not even started. `$M` keeps the job's pid for the shell's EXIT trap. Prepares are
 * sent one at a time after a run took a directory, so an earlier one has long ended.
 */
export function prepareRunDirCommand(): string {
  return `[ -n "$P" ] && mktemp -d "$P/run.XXXXXXXXXX" </dev/null 2>/dev/null & M=$!\n`;
}

/** A line of the kept shell that is a directory prepareRunDirCommand made. */
export function isPreparedRunDir(line: string): boolean {
  return isRemoteRunDir(line) && /\/run\.[A-Za-z0-9]{10}$/.test(line);
}

function validToken(token: string): string {
  if (!/^[0-9]+$/.test(token)) throw new Error(`invalid token ${token}`);
  return token;
}

/** First stdout line of a run: `OPENDLF_DIR=<the run's remote directory>`. */
export const DIR_MARKER = 'OPENDLF_DIR=';

/** A line of the kept shell answering a question: `OPENDLF_DONE <token> <answer>`. */
export const DONE_MARKER = 'OPENDLF_DONE';

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

/** What the ladder found; `say` turns it into the shell command that reports it. */
type LadderVerdict = typeof GROUP_GONE | typeof GROUP_NOT_OURS | 'OPENDLF_GROUP_ALIVE';
const echoVerdict = (verdict: LadderVerdict) =>
  verdict === 'OPENDLF_GROUP_ALIVE' ? 'true' : `echo ${verdict}`;

/** The ladder itself: `reused` is a shell condition that is true when `$g` is no longer ours. */
function ladderSteps(
  reused: string,
  graceMs: number,
  say: (verdict: LadderVerdict) => string = echoVerdict,
): string[] {
  const termPolls = Math.max(1, Math.ceil(graceMs / 50));
  return [
    // No liveness check before the signal: a kill sent to an empty group fails harmlessly, and the
    // check (a `ps` over every process) would delay the signal by tens of milliseconds.
    `if ${reused}; then ${say(GROUP_NOT_OURS)}`,
    `else sig TERM; if gone_within ${termPolls}; then ${say(GROUP_GONE)}; else sig KILL; if gone_within 100; then ${say(GROUP_GONE)}; else ${say('OPENDLF_GROUP_ALIVE')}; fi; fi`,
    'fi',
  ];
}

/** True (as a shell condition) when pid `$g` now belongs to a process started at another time. */
function reusedCondition(startTicks: number | null): string {
  return startTicks !== null
    ? `[ -r /proc/$g/stat ] && [ "$(cut -d' ' -f22 /proc/$g/stat 2>/dev/null)" != ${shellQuote(String(startTicks))} ]`
    : 'false';
}

/**
 * Scripts up to this size (without NUL bytes) are copied by the shell itself: its `read` takes a
 * system call per byte from a pipe, which below this size costs less than starting `cat`.
 */
export const SHELL_COPY_MAX_BYTES = 1024;

/**
 * One exec channel per run, and on the host as few processes as possible (each is a fork and an
 * exec, the bulk of a trivial run's cost): `mktemp` unless the kept shell prepared the directory
 * (`preparedDir`, inside its private one), `cat` for a script over SHELL_COPY_MAX_BYTES, then the
 * login shell *becomes* the interpreter. Copies stdin (`content`, which is never part of the
 * command: only its size decides how it is copied) into `<dir>/<fileName>` in a private (0700)
 * directory and execs the script there. The shell's copy adds a final newline when the script
 * lacks one.
 *
 * sshd makes the login shell of every exec channel the leader of a new session and process group
 * (setsid), so once it execs the interpreter the script is that leader — what `setsid` would give,
 * without its fork and exec — and `$$` is the group id, printed before the exec. A shell that is
 * not a session leader (a wrapper between sshd and the shell) execs through `setsid`, which then
 * needs no fork either; one that leads a group but not a session cannot be given one and fails.
 * The channel's exit status is the script's own (a signal arrives as exit-signal; the engine maps
 * it to 128+N, as a shell would). What the script leaves behind, the directory and session members
 * that left its group are ended by `afterExitCommand`, sent over the kept shell once the exit is
 * known.
 *
 * stdout: DIR_MARKER (printed before anything can fail after mktemp, so the directory can still be
 * removed), then the script's output with its stderr merged at the source (two SSH streams would
 * not preserve their relative order). stderr: PGID_MARKER (the group id and the leader's start time
 * in clock ticks), then only messages of the shell.
 */
export function runScriptCommand(
  fileName: string,
  interpreter: readonly string[],
  env: Readonly<Record<string, string>>,
  content: string,
  preparedDir: string | undefined,
): string {
  const exports = Object.entries(env)
    .map(([name, value]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`invalid environment variable name ${name}`);
      return `${name}=${shellQuote(value)}`;
    })
    .join(' ');
  // Fields 5, 6 and 22 of /proc/<pid>/stat: process group, session, start time. The fields before
  // them hold no space here (the command name is the login shell's), and anything unexpected
  // leaves the values empty.
  const statFields = Array.from({ length: 21 }, (_, i) => (i === 4 ? 'p' : i === 5 ? 's' : '_')).join(' ');
  return [
    ...(preparedDir !== undefined && isRemoteRunDir(preparedDir)
      ? [`d=${shellQuote(preparedDir)}; [ -d "$d" ] ||`]
      : []),
    `d=$(mktemp -d "\${TMPDIR:-/tmp}/opendlf.XXXXXXXXXX") || exit 1`,
    `echo "${DIR_MARKER}$d"`,
    // The directory is 0700 whatever the umask, so the file needs no mode of its own.
    Buffer.byteLength(content) <= SHELL_COPY_MAX_BYTES && !content.includes('\0')
      ? `{ while IFS= read -r l || [ -n "$l" ]; do printf '%s\\n' "$l"; done >"$d"/${shellQuote(fileName)}; } || { rm -rf -- "$d"; exit 1; }`
      : `cat >"$d"/${shellQuote(fileName)} || { rm -rf -- "$d"; exit 1; }`,
    'cd "$d" || exit 1',
    ...(exports ? [`export ${exports}`] : []),
    `p=; s=; t=; IFS=' ' read -r ${statFields} t _ </proc/$$/stat 2>/dev/null`,
    'case $t in *[!0-9]*) t= ;; esac',
    'if [ "$s" = "$$" ]; then set --',
    'elif [ -n "$p" ] && [ "$p" != "$$" ]; then set -- setsid',
    'else echo "opendlf: cannot start the script in a process group of its own (no /proc, or the login shell leads a group but not a session)" >&2; exit 1',
    'fi',
    `echo "${PGID_MARKER}$$ $t" >&2`,
    `exec "$@" ${interpreter.map(shellQuote).join(' ')} ${shellQuote(fileName)} </dev/null 2>&1`,
  ].join('\n');
}

/**
 * For the shell kept open on the run's connection (set up by keptShellSetupCommand), once the
 * run's leader `pgid` has exited: when nothing of its group is left (the usual case: `kill -0`, a
 * builtin, so no process is started) it answers `DONE_MARKER <token> GROUP_GONE` at once;
 * otherwise the stop ladder runs in the background and answers with its verdict. The answer only
 * waits for the group (the outcome must not be reported while the group lives). Then, in the
 * background: removes `dir` and ends session members that left the group (`set -m` jobs: only a
 * scan of every process finds them; `pgrep` when the host has it, else a shell loop over /proc).
 *
 * `groupGone`: a stop ladder already confirmed that nothing of the group is left, so it is not
 * checked again (a `kill -0` would still see members that are zombies for a moment, and the
 * ladder it starts costs a few processes).
 *
 * The leader has exited, so the number `pgid` stays the group's only while a member lives; when
 * the group is empty it may be handed out again (it takes a wrap-around of the pid space): the
 * start-time guard then keeps the ladder and the session sweep off the new owner.
 */
export function afterExitCommand(
  token: string,
  pgid: number,
  startTicks: number | null,
  graceMs: number,
  dir: string | undefined,
  groupGone: boolean,
): string {
  const g = positiveInteger(pgid, 'process group id');
  const reused = reusedCondition(startTicks);
  const say = (verdict: LadderVerdict) => `echo "${DONE_MARKER} ${validToken(token)} ${verdict}"`;
  const removeDir = dir !== undefined && isRemoteRunDir(dir) ? [`rm -rf -- ${shellQuote(dir)}`] : [];
  // After the group: the session's members outside it, then the directory (last, so the
  // subshell can become `rm` instead of starting it).
  const cleanUp = [
    '{',
    `  if ${reused}; then :`,
    '  elif command -v pgrep >/dev/null 2>&1; then pgrep -s "$g" >/dev/null && sweep=1',
    '  else',
    '    for f in /proc/[0-9]*/stat; do',
    '      { read -r l <"$f"; } 2>/dev/null || continue',
    '      l=${l##*) }; set -- $l',
    '      if [ "$1" != Z ] && [ "$4" = "$g" ]; then sweep=1; break; fi',
    '    done',
    '  fi',
    '  if [ -n "$sweep" ]; then',
    ...ladderSteps('false', graceMs),
    '  fi',
    ...removeDir.map((command) => `  exec ${command}`),
    '} >/dev/null 2>&1',
  ];
  return [
    `g=${g}; sweep=`,
    `if ${reused}; then ${say(GROUP_NOT_OURS)}; (${removeDir.join('; ') || ':'}) </dev/null >/dev/null 2>&1 &`,
    ...(groupGone
      ? []
      : [
          'elif kill -s 0 -- "-$g" 2>/dev/null; then (',
          ...ladderSteps('false', graceMs, say),
          ...cleanUp,
          ') </dev/null 2>/dev/null &',
        ]),
    `else ${say(GROUP_GONE)}; (`,
    ...cleanUp,
    ') </dev/null >/dev/null 2>&1 &',
    'fi',
    '',
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
    lines.push(...ladderSteps(reusedCondition(startTicks), graceMs));
  }
  if (dir !== undefined && isRemoteRunDir(dir)) lines.push(`rm -rf -- ${shellQuote(dir)}`);
  lines.push('exit 0');
  return lines.join('\n');
}
