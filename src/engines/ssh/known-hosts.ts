/**
 * Host key verification for SSH targets: trust on first use, recorded in a JSON file that belongs
 * to opendlf (not ~/.ssh/known_hosts, which other tools rewrite).
 *
 * File format (created on first record, mode 0600):
 *   { "hosts": { "[127.0.0.1]:2222": [ { "keyType": "ssh-ed25519",
 *                                        "fingerprint": "SHA256:…", "recordedAt": "…" } ] } }
 * Fingerprints use OpenSSH's notation (`ssh-keygen -lf key.pub` prints the same string), so an
 * operator can pre-seed the file and use `onUnknown: 'reject'`.
 *
 * A server whose offered key matches none of the keys recorded for its `[host]:port` is refused:
 * a changed key is either a reinstalled server or a man-in-the-middle, and only an operator can
 * tell which. Writes are atomic (temp file + rename) and serialised within this process; two
 * server processes recording different hosts at the same instant can lose one record, which only
 * means that host is trusted on first use again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export interface HostKeyPolicy {
  /** opendlf's own fingerprint file (see the header comment for its format). */
  readonly knownHostsFile: string;
  /**
   * A host with no recorded key: `record` trusts the key offered on first use and records it;
   * `reject` refuses the connection (the file must be pre-seeded).
   */
  readonly onUnknown: 'record' | 'reject';
}

interface RecordedKey {
  keyType: string;
  fingerprint: string;
  recordedAt: string;
}

interface KnownHostsDocument {
  hosts: Record<string, RecordedKey[]>;
}

export type HostKeyVerdict =
  | { readonly ok: true; readonly fingerprint: string; readonly recorded: boolean }
  | { readonly ok: false; readonly message: string };

/** OpenSSH-style fingerprint of a raw (wire format) public key: `SHA256:` + unpadded base64. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The algorithm name at the start of a wire-format public key, e.g. `ssh-ed25519`. */
function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  return key.length >= 4 + length ? key.subarray(4, 4 + length).toString('ascii') : 'unknown';
}

/** The entry name, OpenSSH-style but always with the port. */
export function hostEntryName(host: string, port: number): string {
  return `[${host}]:${port}`;
}

async function readDocument(file: string): Promise<KnownHostsDocument> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { hosts: {} };
    throw error;
  }
  const parsed = JSON.parse(text) as unknown;
  const hosts = (parsed as { hosts?: unknown } | null)?.hosts;
  if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts)) {
    throw new Error('it has no "hosts" object');
  }
  return { hosts: hosts as Record<string, RecordedKey[]> };
}

async function writeDocument(file: string, document: KnownHostsDocument): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

const fileQueues = new Map<string, Promise<unknown>>();

/** Runs `task` after every earlier task on the same file (read-modify-write without lost updates). */
function serialised<T>(file: string, task: () => Promise<T>): Promise<T> {
  const previous = fileQueues.get(file) ?? Promise.resolve();
  const next = previous.then(task, task);
  const settled = next.catch(() => undefined);
  fileQueues.set(file, settled);
  void settled.then(() => {
    if (fileQueues.get(file) === settled) fileQueues.delete(file);
  });
  return next;
}

/** Checks (and on first use, per policy, records) the key a server offered. Never throws. */
export function verifyHostKey(
  policy: HostKeyPolicy,
  host: string,
  port: number,
  key: Buffer,
): Promise<HostKeyVerdict> {
  const entry = hostEntryName(host, port);
  const fingerprint = hostKeyFingerprint(key);
  const keyType = keyTypeOf(key);
  const file = policy.knownHostsFile;
  // Messages reach API callers: they name the file as the data directory documents it, never the
  // server's absolute path, and file-system errors only by their code.
  const shownFile = `the data directory's ${basename(file)}`;
  const reason = (error: unknown) => (error as NodeJS.ErrnoException).code ?? 'unreadable';
  return serialised(file, async (): Promise<HostKeyVerdict> => {
    let document: KnownHostsDocument;
    try {
      document = await readDocument(file);
    } catch (error) {
      return {
        ok: false,
        message: `the known hosts file (${shownFile}) could not be read (${reason(error)}); refusing to connect without verifying the host key`,
      };
    }
    const recorded = Array.isArray(document.hosts[entry]) ? (document.hosts[entry] ?? []) : [];
    if (recorded.some((k) => k.fingerprint === fingerprint))
      return { ok: true, fingerprint, recorded: false };
    if (recorded.length > 0) {
      const known = recorded.map((k) => `${k.keyType} ${k.fingerprint}`).join(', ');
      return {
        ok: false,
        message:
          `host key changed for ${entry}: the server offered ${keyType} ${fingerprint} but ${shownFile} records ${known}` +
          ' — possible man-in-the-middle attack. If the server was legitimately re-keyed, remove its entry from that file.',
      };
    }
    if (policy.onUnknown === 'reject') {
      return {
        ok: false,
        message: `unknown host key for ${entry} (${keyType} ${fingerprint}); add it to ${shownFile} or allow recording on first use`,
      };
    }
    document.hosts[entry] = [{ keyType, fingerprint, recordedAt: new Date().toISOString() }];
    try {
      await writeDocument(file, document);
    } catch (error) {
      return {
        ok: false,
        message: `the host key of ${entry} could not be recorded in ${shownFile} (${reason(error)})`,
      };
    }
    return { ok: true, fingerprint, recorded: true };
  });
}

/**
 * Whether `fingerprint` is still recorded for `[host]:port` (an operator may have replaced or
 * removed it since a connection was verified). Read without the write queue: writes are atomic
 * renames. False when the file cannot be read.
 */
export async function isHostKeyStillRecorded(
  policy: HostKeyPolicy,
  host: string,
  port: number,
  fingerprint: string,
): Promise<boolean> {
  try {
    const document = await readDocument(policy.knownHostsFile);
    const recorded = document.hosts[hostEntryName(host, port)];
    return Array.isArray(recorded) && recorded.some((k) => k.fingerprint === fingerprint);
  } catch {
    return false;
  }
}
