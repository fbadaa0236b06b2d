/**
 * The shell commands the SSH engine runs on the remote host, in one place.
 *
 * Rules: the script content is never part of a command (it travels on stdin); every other value
 * that ends up in a command is either a validated integer or single-quoted with `shellQuote`.
 * The remote login shell must be POSIX (sh, dash, bash, ksh, zsh) and the host Linux with
 * util-linux `setsid` (for `-w`) and, preferably, procps (`ps`, `pkill`: zombie-aware liveness
 * checks and reaching session members that left the group).
 */

/** First stdout line of a run: `OPENDLF_PGID=<pgid> <leader start time in clock ticks>`. */
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

/**
 * Creates a private (0700) directory and copies stdin into `<dir>/<fileName>` (0600). Prints the
 * directory first, so it can be removed even if the copy fails.
 */
export function uploadCommand(fileName: string): string {
  return (
    'umask 077 && d=$(mktemp -d "${TMPDIR:-/tmp}/opendlf.XXXXXXXXXX") && printf \'%s\\n\' "$d" && ' +
    `cat > "$d"/${shellQuote(fileName)}`
  );
}

/**
 * Starts the script in a new session (its own process group, id = the leader's pid). `setsid -w`
 * forks when the caller already leads a group (the login shell does) and waits, so the channel's
 * exit status is the script's. The leader prints its pgid and start time before anything else.
 * The script's stderr is merged into its stdout at the source, so the two interleave exactly as
 * written (two SSH streams would not preserve their relative order); the channel's own stderr then
 * carries only messages of the login shell and of `setsid` itself.
 */
export function launchCommand(
  dir: string,
  fileName: string,
  interpreter: readonly string[],
  env: Readonly<Record<string, string>>,
): string {
  const exports = Object.entries(env)
    .map(([name, value]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`invalid environment variable name ${name}`);
      return `${name}=${shellQuote(value)}`;
    })
    .join(' ');
  const leader =
    `echo "${PGID_MARKER}$$ $(cut -d' ' -f22 /proc/$$/stat 2>/dev/null)"; ` +
    `exec ${interpreter.map(shellQuote).join(' ')} ${shellQuote(`${dir}/${fileName}`)} </dev/null 2>&1`;
  return `cd ${shellQuote(dir)} && ${exports ? `export ${exports} && ` : ''}exec setsid -w sh -c ${shellQuote(leader)}`;
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 1) throw new Error(`invalid ${what}: ${value}`);
  return value;
}

/**
 * The stop ladder for a remote group, run on the remote host so the polling costs no round trips:
 * SIGTERM to the group (and to session members that left it), poll every 50 ms for up to
 * `graceMs`, then SIGKILL and poll up to 5 s. Zombies do not count as alive (a container's init
 * may never reap them). When `startTicks` is known and the pgid's leader is alive with another
 * start time, the pid was reused: nothing is signalled. Prints GROUP_GONE or GROUP_NOT_OURS, or
 * neither when something survived SIGKILL (uninterruptible sleep). Then removes `dir` if given.
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
    const termPolls = Math.max(1, Math.ceil(graceMs / 50));
    lines.push(
      `g=${g}`,
      'if command -v ps >/dev/null 2>&1; then',
      `  alive() { ps -e -o pgid=,sid=,stat= 2>/dev/null | awk -v g="$g" '($1==g||$2==g) && $3 !~ /^Z/ {f=1} END {exit !f}'; }`,
      'else',
      '  alive() { kill -s 0 -- "-$g" 2>/dev/null; }',
      'fi',
      'sig() { kill -s "$1" -- "-$g" 2>/dev/null; pkill "-$1" -s "$g" 2>/dev/null; return 0; }',
      'nap() { sleep 0.05 2>/dev/null || sleep 1; }',
      'gone_within() { n=0; while alive; do [ "$n" -ge "$1" ] && return 1; nap; n=$((n+1)); done; return 0; }',
    );
    const ticksGuard =
      startTicks !== null
        ? `[ -r /proc/$g/stat ] && [ "$(cut -d' ' -f22 /proc/$g/stat 2>/dev/null)" != ${shellQuote(String(startTicks))} ]`
        : 'false';
    lines.push(
      // No liveness check before the signal: a kill sent to an empty group fails harmlessly, and the
      // check (a `ps` over every process) would delay the signal by tens of milliseconds.
      `if ${ticksGuard}; then echo ${GROUP_NOT_OURS}`,
      `else sig TERM; if gone_within ${termPolls}; then echo ${GROUP_GONE}; else sig KILL; gone_within 100 && echo ${GROUP_GONE}; fi`,
      'fi',
    );
  }
  if (dir !== undefined && isRemoteRunDir(dir)) lines.push(`rm -rf -- ${shellQuote(dir)}`);
  lines.push('exit 0');
  return lines.join('\n');
}
