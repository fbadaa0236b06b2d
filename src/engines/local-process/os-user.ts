/**
 * The unprivileged OS user local runs switch to (`localEngine.runAs`), looked up once at start-up.
 *
 * Why a separate user: a script running as the server's own user can read everything the server
 * can (its keys, its store, `/proc/<server pid>/environ`). Under another uid the kernel's file modes
 * and ptrace checks keep it out. Switching users needs privileges, so the server must run as root;
 * the user itself must not be root, or nothing would be gained.
 */
import { execFileSync } from 'node:child_process';

export interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** POSIX portable user names (plus the '$' some systems allow at the end); never passed to a shell. */
const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

/**
 * Looks `name` up through NSS (`getent passwd`, so LDAP/sssd users work too) and checks it can be
 * used: it exists, it is not root, and this process can switch to it (runs as root). Throws an
 * Error whose message says what to change; the server refuses to start.
 */
export function resolveRunAsUser(name: string): OsUser {
  if (!USER_NAME.test(name)) throw new Error(`localEngine.runAs "${name}" is not a valid user name`);
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', name], { encoding: 'utf8', timeout: 5_000 }).trim();
  } catch {
    throw new Error(
      `localEngine.runAs user "${name}" does not exist: create it (useradd --system --shell /usr/sbin/nologin ${name})`,
    );
  }
  // name:password:uid:gid:gecos:home:shell
  const fields = entry.split('\n')[0]?.split(':') ?? [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`localEngine.runAs user "${name}": unexpected passwd entry`);
  }
  if (uid === 0 || gid === 0) {
    throw new Error(
      `localEngine.runAs user "${name}" is root (uid/gid 0): scripts would run with every privilege; name an unprivileged user`,
    );
  }
  const serverUid = process.getuid?.();
  if (serverUid !== 0) {
    throw new Error(
      `localEngine.runAs needs the server to run as root to switch to "${name}" (it runs as uid ${serverUid ?? 'unknown'}): ` +
        'start it as root, or remove runAs (single-user mode only) and use an SSH connection to a separate host',
    );
  }
  return { name, uid, gid, home: fields[5] || '/' };
}
