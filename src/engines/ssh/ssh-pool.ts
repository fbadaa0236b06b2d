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
 *   channels per connection: 4 runs × 2 channels leaves room for the signalling shell
 *   (`Lease.terminateGroup`) and a late clean-up channel.
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
import { openConnection, openExecChannel, SshConnectError, type SshConnection } from './ssh-connection.js';
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
  /** The shell that delivers quick signals (`terminateGroup`), opened on the first stop. */
  signaller?: Promise<ClientChannel | undefined>;
}

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
      release: () => {
        if (released) return;
        released = true;
        entry.leases -= 1;
        if (entry.leases === 0) this.idle(entry);
      },
    };
  }

  private terminateGroup(entry: PooledConnection, pgid: number): void {
    if (!Number.isSafeInteger(pgid) || pgid <= 1 || !entry.open || !entry.client) return;
    // A channel of its own: with RUNS_PER_CONNECTION × 2 it stays within MaxSessions (10).
    entry.signaller ??= openExecChannel(entry.client, 'exec sh').then(
      (channel) => {
        channel.resume();
        channel.stderr.resume();
        channel.once('close', () => {
          entry.signaller = undefined;
        });
        return channel;
      },
      () => {
        entry.signaller = undefined;
        return undefined;
      },
    );
    void entry.signaller.then((channel) => {
      if (channel?.writable) channel.write(`kill -s TERM -- -${pgid} 2>/dev/null\n`);
    });
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
