/**
 * SSH connections kept open between runs: each run leases a slot on a connection to its target and
 * opens its own exec channels on it, so a run costs a channel (about one round trip) instead of a
 * TCP connect, a key exchange and an authentication (~100 ms on loopback, more over a WAN).
 *
 * Rules:
 * - Connections are grouped by everything that decides who logs in where: the configured host, the
 *   dialled address, port, user, password, private key, passphrase and host key policy. Secrets
 *   only enter a SHA-256 digest used as the map key; they are never logged or kept in the key.
 *   An edited connection gets a new engine (ConnectionResolver), hence a new pool.
 * - A connection carries at most `runsPerConnection` leases. Each run may have two channels open
 *   at once (its script and a stop), and OpenSSH refuses more than `MaxSessions` (default 10)
 *   channels per connection: 4 runs × 2 channels leaves room for the kept shell
 *   (`Lease.terminateGroup`, `Lease.askKeptShell`) and a late clean-up channel.
 * - A connection that closed or errored is never handed out again; the next lease opens a new one.
 *   Nor is one whose host key is no longer recorded in the known hosts file (checked on every
 *   reuse). A server re-keyed meanwhile cannot be detected on a live connection (the sshd process
 *   serving it keeps the key it proved at connect time): the check on the new key applies to every
 *   new connection.
 *   One whose channel could not be opened is retired (`Lease.retire`): still usable by the runs
 *   already on it, never given to a new run.
 * - A connection without leases is closed after `idleTimeoutMs`.
 * - The connection target rules (target-guard.ts) are enforced by the caller: a TargetCheckedEngine
 *   admits the target before every run and recovery, i.e. before any lease that may dial, and the
 *   engine it builds dials only the admitted address (`connectAddress`).
 */
import { createHash } from 'node:crypto';
import type { Client, ClientChannel } from 'ssh2';
import { isHostKeyStillRecorded } from './known-hosts.js';
import {
  DONE_MARKER,
  isPreparedRunDir,
  keptDirOf,
  keptShellSetupCommand,
  prepareRunDirCommand,
  removeKeptDirCommand,
} from './remote-commands.js';
import {
  openConnection,
  openExecChannel,
  runCommand,
  SshConnectError,
  type SshConnection,
} from './ssh-connection.js';
import type { SshTarget } from './ssh-target.js';

/** Runs sharing one connection (see the header: two channels each under MaxSessions 10). */
export const RUNS_PER_CONNECTION = 4;
/** An idle connection is kept this long for the next run. */
export const IDLE_TIMEOUT_MS = 30_000;

export interface SshPoolOptions {
  readonly runsPerConnection?: number;
  readonly idleTimeoutMs?: number;
}

/** One run's use of a pooled connection; `release()` exactly once when the run is done with it. */
export interface Lease {
  readonly client: Client;
  /** True while the connection has neither closed nor errored. */
  isOpen(): boolean;
  /** Why the connection is gone (the first error ssh2 reported), once it is. */
  lostReason(): string | undefined;
  /** Resolves when the connection closes. */
  readonly closed: Promise<void>;
  /** Keeps the connection from new runs (a channel could not be opened on it, a command timed out). */
  retire(): void;
  /**
   * Sends SIGTERM to remote process group `pgid` at once, through a shell kept open on the
   * connection (no channel to open, no process to start: a line to write). Best effort, never
   * throws: the caller's stop ladder follows and confirms. Only for the group of a script still
   * running, so the number cannot belong to another process (the ladder checks the start time).
   */
  terminateGroup(pgid: number): void;
  /**
   * Runs `build(token)` on the same kept shell and resolves with the rest of the first line it
   * prints as `DONE_MARKER <token> …`, or undefined when the shell could not be opened, closed
   * first or did not answer within `timeoutMs`. The command must never block the shell (anything
   * slow goes to the background): the quick signals share it.
   */
  askKeptShell(build: (token: string) => string, timeoutMs: number): Promise<string | undefined>;
  /**
   * A run directory the kept shell prepared (see runScriptCommand), never handed out twice, or
   * undefined when none is ready (the run then creates its own). Prepares the next one.
   */
  takeRunDir(): string | undefined;
  release(): void;
}

interface PooledConnection {
  /** Resolves once connected, rejects with SshConnectError. */
  readonly ready: Promise<SshConnection>;
  client?: Client;
  leases: number;
  open: boolean;
  retired: boolean;
  lostReason?: string;
  readonly closed: Promise<void>;
  markClosed(): void;
  idleTimer?: NodeJS.Timeout;
  /** The shell kept open for quick signals and after-exit checks (`terminateGroup`, `askKeptShell`). */
  keptShell?: Promise<KeptShell | undefined>;
  /** The same shell once open. */
  keptShellReady?: KeptShell;
}

/** A `sh` on its own exec channel, fed commands line by line; answers are matched by token. */
interface KeptShell {
  readonly channel: ClientChannel;
  readonly waiting: Map<string, (answer: string | undefined) => void>;
  /** Run directories prepared for the next runs (prepareRunDirCommand). */
  readonly runDirs: string[];
  /** Set while a directory is being prepared; gives up after PREPARE_TIMEOUT_MS (mktemp failed). */
  preparing?: NodeJS.Timeout;
  /** Its private directory, once announced (KEPT_DIR_MARKER). */
  dir?: string;
  /** Its exit status, once it exited (undefined: no status yet, or ended by a signal). */
  exitCode?: number;
}

/** How long removing a killed kept shell's directory may take before the channel is closed. */
const KEPT_DIR_REMOVAL_TIMEOUT_MS = 10_000;

/** How long a kept shell may take to prepare a run directory before the run makes its own. */
const PREPARE_TIMEOUT_MS = 10_000;

/** Tokens of kept-shell questions, unique in this process. */
let lastToken = 0;

/** The pool key of a target: a digest, so no secret is kept in a readable map key. */
export function targetKey(target: SshTarget): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        target.host,
        target.connectAddress ?? null,
        target.port,
        target.username,
        target.password ?? null,
        target.privateKey ?? null,
        target.passphrase ?? null,
        target.hostKey.knownHostsFile,
        target.hostKey.onUnknown,
        target.connectTimeoutMs ?? null,
      ]),
    )
    .digest('hex');
}

export class SshConnectionPool {
  private readonly byTarget = new Map<string, PooledConnection[]>();
  private readonly runsPerConnection: number;
  private readonly idleTimeoutMs: number;
  private closed = false;

  constructor(options: SshPoolOptions = {}) {
    this.runsPerConnection = options.runsPerConnection ?? RUNS_PER_CONNECTION;
    this.idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  }

  /**
   * A lease on an open connection to `target`: a connected one with a free slot, one being opened
   * with a free slot, or a new one. `fresh`: never share an existing connection (a retry after a
   * refused channel). Rejects only with SshConnectError (`aborted` when `signal` aborted first).
   */
  async acquire(target: SshTarget, signal?: AbortSignal, fresh = false): Promise<Lease> {
    const key = targetKey(target);
    for (;;) {
      if (this.closed) throw new SshConnectError('The SSH connection pool is closed.');
      const list = this.byTarget.get(key) ?? [];
      this.byTarget.set(key, list);
      const shared = fresh
        ? undefined
        : list.find((c) => c.open && !c.retired && c.leases < this.runsPerConnection);
      const entry = shared ?? this.open(key, target);
      if (!shared) list.push(entry);
      const lease = this.lease(entry);
      let connection: SshConnection;
      try {
        connection = await abortable(entry.ready, signal);
      } catch (error) {
        lease.release();
        throw error;
      }
      // A connection verified earlier is reused only while its host key is still the recorded one
      // (an operator may have replaced a key they no longer trust); a new one was just checked.
      if (
        shared &&
        !(await isHostKeyStillRecorded(
          target.hostKey,
          target.host,
          target.port,
          connection.hostKeyFingerprint,
        ))
      ) {
        entry.retired = true;
        lease.release();
        continue;
      }
      // Every run asks the kept shell once its script exits: open it while the script starts.
      void this.keptShell(entry);
      return { ...lease, client: connection.client };
    }
  }

  private lease(entry: PooledConnection): Omit<Lease, 'client'> {
    entry.leases += 1;
    if (entry.idleTimer) {
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
    }
    let released = false;
    return {
      isOpen: () => entry.open,
      lostReason: () => entry.lostReason,
      closed: entry.closed,
      retire: () => {
        entry.retired = true;
      },
      terminateGroup: (pgid) => this.terminateGroup(entry, pgid),
      askKeptShell: (build, timeoutMs) => this.askKeptShell(entry, build, timeoutMs),
      takeRunDir: () => this.takeRunDir(entry),
      release: () => {
        if (released) return;
        released = true;
        entry.leases -= 1;
        if (entry.leases === 0) this.idle(entry);
      },
    };
  }

  private terminateGroup(entry: PooledConnection, pgid: number): void {
    if (!Number.isSafeInteger(pgid) || pgid <= 1) return;
    void this.keptShell(entry)?.then((shell) => {
      if (shell?.channel.writable) shell.channel.write(`kill -s TERM -- -${pgid} 2>/dev/null\n`);
    });
  }

  private askKeptShell(
    entry: PooledConnection,
    build: (token: string) => string,
    timeoutMs: number,
  ): Promise<string | undefined> {
    const opening = this.keptShell(entry);
    if (!opening) return Promise.resolve(undefined);
    return opening.then((shell) => (shell ? ask(shell, build, timeoutMs) : undefined));
  }

  /**
   * A kept shell that ended with no exit status was killed (SIGKILL runs no trap) and left its
   * directory, and the prepared run directory in it, behind: removed over the same connection when
   * it is still open. (One that exited, or whose connection closed, removed it itself: EOF on its
   * input ends it through its EXIT trap.) Best effort: a failure leaves the directory, as the kill
   * did.
   */
  private removeDirOfKilledShell(entry: PooledConnection, shell: KeptShell): void {
    if (shell.exitCode !== undefined || shell.dir === undefined || !entry.open || !entry.client) return;
    runCommand(entry.client, removeKeptDirCommand(shell.dir), {
      timeoutMs: KEPT_DIR_REMOVAL_TIMEOUT_MS,
    }).catch(() => undefined);
  }

  private takeRunDir(entry: PooledConnection): string | undefined {
    const shell = entry.keptShellReady;
    if (!shell) return undefined;
    const dir = shell.runDirs.shift();
    prepareRunDir(shell);
    return dir;
  }

  /**
   * The connection's kept shell, opened on first use (the first run opens it while its script
   * starts). A channel of its own: with RUNS_PER_CONNECTION × 2 it stays within MaxSessions (10).
   */
  private keptShell(entry: PooledConnection): Promise<KeptShell | undefined> | undefined {
    if (!entry.open || !entry.client) return undefined;
    entry.keptShell ??= openExecChannel(entry.client, 'exec sh').then(
      (channel) => {
        const shell: KeptShell = { channel, waiting: new Map(), runDirs: [] };
        let pending = '';
        channel.on('data', (chunk: Buffer) => {
          const lines = (pending + chunk.toString('latin1')).split('\n');
          // Only answers matter: a chatty login's endless line is not kept whole.
          pending = (lines.pop() ?? '').slice(-1024);
          for (const line of lines) {
            if (isPreparedRunDir(line)) {
              clearTimeout(shell.preparing);
              shell.preparing = undefined;
              shell.runDirs.push(line);
              continue;
            }
            shell.dir ??= keptDirOf(line);
            const [marker, token, ...rest] = line.split(' ');
            if (marker === DONE_MARKER && token !== undefined) shell.waiting.get(token)?.(rest.join(' '));
          }
        });
        channel.stderr.resume();
        channel.on('exit', (code: number | null) => {
          if (typeof code === 'number') shell.exitCode = code;
        });
        channel.once('close', () => {
          entry.keptShell = undefined;
          entry.keptShellReady = undefined;
          clearTimeout(shell.preparing);
          shell.runDirs.length = 0;
          for (const answer of [...shell.waiting.values()]) answer(undefined);
          this.removeDirOfKilledShell(entry, shell);
        });
        channel.write(keptShellSetupCommand());
        entry.keptShellReady = shell;
        prepareRunDir(shell);
        return shell;
      },
      () => {
        entry.keptShell = undefined;
        return undefined;
      },
    );
    return entry.keptShell;
  }

  /** Ends every connection (runs still on them see them close). */
  close(): Promise<void> {
    this.closed = true;
    for (const list of this.byTarget.values()) {
      for (const entry of list) this.discard(entry);
    }
    this.byTarget.clear();
    return Promise.resolve();
  }

  private open(key: string, target: SshTarget): PooledConnection {
    let markClosed!: () => void;
    const closed = new Promise<void>((resolve) => (markClosed = resolve));
    const entry: PooledConnection = {
      // The connect is shared by every run waiting on it, so no run's signal cancels it; it is
      // bounded by the target's connect timeout.
      ready: openConnection(target),
      leases: 0,
      open: true,
      retired: false,
      closed,
      markClosed: () => {
        entry.open = false;
        markClosed();
        this.forget(key, entry);
      },
    };
    entry.ready.then(
      ({ client }) => {
        entry.client = client;
        if (this.closed) {
          client.end();
          entry.markClosed();
          return;
        }
        client.on('error', (error: Error) => {
          entry.lostReason ??= error.message;
          entry.open = false;
        });
        client.once('close', () => entry.markClosed());
      },
      () => entry.markClosed(),
    );
    return entry;
  }

  private idle(entry: PooledConnection): void {
    if (!entry.open || entry.retired || this.closed) {
      this.discard(entry);
      return;
    }
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = undefined;
      if (entry.leases === 0) this.discard(entry);
    }, this.idleTimeoutMs);
    // An idle connection must not keep the process alive.
    entry.idleTimer.unref();
  }

  /** Closes the connection once nobody uses it; a connection still connecting is ended when ready. */
  private discard(entry: PooledConnection): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    entry.retired = true;
    if (entry.leases > 0 && !this.closed) return;
    if (entry.client) entry.client.end();
    else void entry.ready.then(({ client }) => client.end()).catch(() => undefined);
  }

  private forget(key: string, entry: PooledConnection): void {
    const list = this.byTarget.get(key);
    if (!list) return;
    const index = list.indexOf(entry);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.byTarget.delete(key);
  }
}

/** Writes `build(token)` to the kept shell; resolves with its answer (see Lease.askKeptShell). */
function ask(
  shell: KeptShell,
  build: (token: string) => string,
  timeoutMs: number,
): Promise<string | undefined> {
  return new Promise<string | undefined>((resolve) => {
    if (!shell.channel.writable) {
      resolve(undefined);
      return;
    }
    lastToken += 1;
    const token = String(lastToken);
    const timer = setTimeout(() => answer(undefined), timeoutMs);
    const answer = (text: string | undefined) => {
      clearTimeout(timer);
      shell.waiting.delete(token);
      resolve(text);
    };
    shell.waiting.set(token, answer);
    shell.channel.write(build(token));
  });
}

/** Keeps one run directory prepared on the kept shell (one at a time). */
function prepareRunDir(shell: KeptShell): void {
  if (shell.preparing || shell.runDirs.length > 0 || !shell.channel.writable) return;
  shell.preparing = setTimeout(() => (shell.preparing = undefined), PREPARE_TIMEOUT_MS);
  shell.channel.write(prepareRunDirCommand());
}

/** `promise`, or a rejection with an aborted SshConnectError as soon as `signal` aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  const stopped = () => new SshConnectError('Connecting was abandoned: the run was stopped', true);
  if (signal.aborted) return Promise.reject(stopped());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(stopped());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
