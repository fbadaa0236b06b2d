/**
 * Where an SSH engine runs its work and how it logs in. The target is configuration: credentials
 * and the host key policy never leave the ssh/ adapter.
 */
import type { HostKeyPolicy } from './known-hosts.js';

export interface SshTarget {
  /** The host as configured: named in messages and the key of its recorded host key. */
  readonly host: string;
  /**
   * The address actually dialled when it differs from `host`: the IP address the server's
   * connection target rules checked, so a DNS answer cannot change between check and connect.
   */
  readonly connectAddress?: string;
  readonly port: number;
  readonly username: string;
  /** Password authentication; tried before the private key when both are set. */
  readonly password?: string;
  /** A private key as PEM/OpenSSH text (not a path). */
  readonly privateKey?: string;
  /** Decrypts an encrypted `privateKey`. */
  readonly passphrase?: string;
  /**
   * Bound on TCP connect + SSH handshake + authentication. Default 10 s
   * (DEFAULT_CONNECT_TIMEOUT_MS). A connect failure never takes longer than this (plus a small
   * margin), so an unreachable host fails the run instead of hanging it.
   */
  readonly connectTimeoutMs?: number;
  /** How the server's host key is verified; there is no "accept anything" mode. */
  readonly hostKey: HostKeyPolicy;
}

/**
 * Long enough for a slow login over a WAN (key exchange plus a login shell), short enough that a
 * black-holed host does not keep a run in LAUNCHING for the OS TCP timeout (~2 minutes).
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** `user@host:port`, for messages. */
export function describeTarget(target: Pick<SshTarget, 'host' | 'port' | 'username'>): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.username}@${host}:${target.port}`;
}
