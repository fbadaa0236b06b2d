/**
 * Opening SSH connections and running short helper commands over them, with every ssh2 error
 * translated into a sentence a user can act on. Nothing of ssh2 leaves the ssh/ folder.
 */
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { verifyHostKey } from './known-hosts.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, describeTarget, type SshTarget } from './ssh-target.js';

/** A connection could not be established; `message` is complete and user-facing. */
export class SshConnectError extends Error {
  constructor(
    message: string,
    /** True when the attempt was given up because the caller's signal aborted. */
    readonly aborted = false,
  ) {
    super(message);
    this.name = 'SshConnectError';
  }
}

/**
 * Keepalives detect a connection that died silently (host gone, network cut) — a closed socket is
 * noticed at once without them. 5 s × 3 unanswered: a dead link fails the run within ~20 s, while a
 * briefly congested link survives.
 */
const KEEPALIVE_INTERVAL_MS = 5_000;
const KEEPALIVE_COUNT_MAX = 3;

type SshError = Error & { level?: string; code?: string };

function describeConnectError(error: SshError, target: SshTarget, timeoutMs: number): string {
  switch (error.level) {
    case 'client-authentication':
      return `authentication failed for user "${target.username}": the server rejected ${
        target.password !== undefined && target.privateKey !== undefined
          ? 'the password and the private key'
          : target.password !== undefined
            ? 'the password'
            : target.privateKey !== undefined
              ? 'the private key'
              : 'login without credentials (no password or private key is configured)'
      }`;
    case 'client-timeout':
      return `no SSH handshake within ${timeoutMs} ms (timed out)`;
    case 'client-dns':
      return `the host name "${target.host}" could not be resolved`;
    default:
      break;
  }
  switch (error.code) {
    case 'ECONNREFUSED':
      return `connection refused (is an SSH server listening on port ${target.port}?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name "${target.host}" could not be resolved`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return `the host is unreachable (${error.code})`;
    case 'ECONNRESET':
      return 'the server reset the connection';
    default:
      return error.message;
  }
}

export interface SshConnection {
  readonly client: Client;
  /** The host key the server proved it holds (OpenSSH notation), as checked against the policy. */
  readonly hostKeyFingerprint: string;
}

/**
 * Connects, verifies the host key and authenticates, within `connectTimeoutMs`. Rejects only with
 * SshConnectError. The returned client has an 'error' listener, so a later error never crashes
 * the process; callers watch 'close' to learn that the connection is gone.
 */
export function openConnection(target: SshTarget, signal?: AbortSignal): Promise<SshConnection> {
  const timeoutMs = target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const where = describeTarget(target);
  return new Promise<SshConnection>((resolve, reject) => {
    const client = new Client();
    let settled = false;
    let hostKeyProblem: string | undefined;
    let hostKeyFingerprint = '';
    // ssh2's readyTimeout covers the handshake; this also bounds a TCP connect the OS would let
    // hang for minutes, and a host key check stuck on a slow disk.
    const backstop = setTimeout(
      () =>
        fail(new SshConnectError(`Could not connect over SSH to ${where}: timed out after ${timeoutMs} ms`)),
      timeoutMs + 1_000,
    );
    const onAbort = () =>
      fail(new SshConnectError(`Connecting to ${where} was abandoned: the run was stopped`, true));
    const finish = () => {
      settled = true;
      clearTimeout(backstop);
      signal?.removeEventListener('abort', onAbort);
    };
    function fail(error: SshConnectError) {
      if (settled) return;
      finish();
      client.destroy();
      reject(error);
    }
    client.on('error', (error: SshError) => {
      if (settled) return;
      const reason = hostKeyProblem ?? describeConnectError(error, target, timeoutMs);
      fail(new SshConnectError(`Could not connect over SSH to ${where}: ${reason}`));
    });
    client.once('close', () => {
      if (settled) return;
      const reason = hostKeyProblem ?? 'the server closed the connection during the handshake';
      fail(new SshConnectError(`Could not connect over SSH to ${where}: ${reason}`));
    });
    client.once('ready', () => {
      if (settled) {
        client.end();
        return;
      }
      // Small request/response exchanges (launch, kill): Nagle's delay would add tens of ms to each.
      client.setNoDelay(true);
      finish();
      resolve({ client, hostKeyFingerprint });
    });
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    const config: ConnectConfig = {
      host: target.connectAddress ?? target.host,
      port: target.port,
      username: target.username,
      readyTimeout: timeoutMs,
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      // Returns nothing, so ssh2 waits for `verify` (an async check).
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void): void => {
        void verifyHostKey(target.hostKey, target.host, target.port, key).then((verdict) => {
          if (verdict.ok) hostKeyFingerprint = verdict.fingerprint;
          else hostKeyProblem = verdict.message;
          verify(verdict.ok);
        });
      },
    };
    if (target.password !== undefined) config.password = target.password;
    if (target.privateKey !== undefined) config.privateKey = target.privateKey;
    if (target.passphrase !== undefined) config.passphrase = target.passphrase;
    try {
      client.connect(config);
    } catch (error) {
      // ssh2 parses the private key synchronously: a malformed key or a wrong passphrase throws here.
      fail(
        new SshConnectError(
          `Could not connect over SSH to ${where}: the configured private key cannot be used (${(error as Error).message})`,
        ),
      );
    }
  });
}

/**
 * Opens an exec channel; rejects when the connection is gone or the server refuses the channel.
 *
 * `attach` runs synchronously inside ssh2's reply callback, before any later packet is parsed. It
 * must be used for the 'exit' listener: ssh2 emits 'exit' (a plain event, not buffered like the
 * stream's data) in the same parse loop as the exec reply when the reply, the output and the exit
 * status arrive in one socket read — which happens when the event loop was busy while a short
 * command ran. A listener added after `await openExecChannel(...)` then misses the exit status,
 * and the run ended "without an exit status" (about one run in a hundred under load).
 */
export function openExecChannel(
  client: Client,
  command: string,
  attach?: (channel: ClientChannel) => void,
): Promise<ClientChannel> {
  return new Promise<ClientChannel>((resolve, reject) => {
    try {
      client.exec(command, (error, channel) => {
        if (error) {
          reject(error);
          return;
        }
        attach?.(channel);
        resolve(channel);
      });
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

export interface CommandResult {
  /** Null when the channel closed without an exit status (connection lost, killed by a signal). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a short command, feeding `stdin` (then EOF), and collects its output. Rejects when the
 * channel cannot be opened or when it does not close within `timeoutMs` (it is closed then).
 */
export async function runCommand(
  client: Client,
  command: string,
  options: { stdin?: string; timeoutMs: number },
): Promise<CommandResult> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  let code: number | null = null;
  let closed!: Promise<void>;
  const channel = await openExecChannel(client, command, (opened) => {
    opened.on('data', (chunk: Buffer) => stdout.push(chunk));
    opened.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    opened.on('exit', (exitCode: number | null) => {
      code = exitCode;
    });
    closed = new Promise<void>((resolve) => opened.once('close', () => resolve()));
  });
  return new Promise<CommandResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.close();
      reject(new Error(`the remote command did not finish within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    void closed.then(() => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
    channel.end(options.stdin ?? '');
  });
}
