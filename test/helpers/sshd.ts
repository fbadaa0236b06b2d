/**
 * A private OpenSSH server for tests: 127.0.0.1 on a free port, its own host key, config and
 * authorized_keys in a temp dir, root login by a freshly generated client key only. Runs in the
 * foreground (`-D -e`) as a child of the test process; `stop()` ends it and removes the dir.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SSHD_PATH = '/usr/sbin/sshd';

export interface TestSshd {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** The authorized client key (OpenSSH PEM text). */
  readonly privateKey: string;
  /** A key the server does not accept. */
  readonly unauthorizedKey: string;
  /** `SHA256:…` of the current host key, as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint(): string;
  /** Restarts the server on the same port with a newly generated host key. */
  rotateHostKey(): Promise<void>;
  /** SIGKILLs every per-connection sshd process; the listener stays up. Returns how many. */
  dropConnections(): number;
  stop(): Promise<void>;
}

/** Why SSH tests cannot run here, or undefined when they can. */
export function sshdUnavailableReason(): string | undefined {
  if (!existsSync(SSHD_PATH)) return `${SSHD_PATH} is not installed (apt-get install openssh-server)`;
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function generateKey(file: string): void {
  rmSync(file, { force: true });
  rmSync(`${file}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'opendlf-test', '-f', file], {
    stdio: 'ignore',
  });
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** sshd processes below `listener` (per-connection monitors and session processes). */
function sessionProcesses(listener: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === listener || commandOf(pid) !== 'sshd') continue;
    for (let p = parentOf(pid), hops = 0; p !== undefined && p > 1 && hops < 10; p = parentOf(p), hops++) {
      if (p === listener) {
        found.push(pid);
        break;
      }
    }
  }
  return found;
}

export interface SshdOptions {
  /** Extra sshd_config lines (e.g. `SetEnv HOME=…` for the benchmarks); `{dir}` is the server's temp dir. */
  readonly extraConfig?: readonly string[];
}

export async function startSshd(options: SshdOptions = {}): Promise<TestSshd> {
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), 'opendlf-sshd-'));
  const hostKeyFile = join(dir, 'host_ed25519');
  const clientKeyFile = join(dir, 'client_ed25519');
  const strangerKeyFile = join(dir, 'stranger_ed25519');
  generateKey(hostKeyFile);
  generateKey(clientKeyFile);
  generateKey(strangerKeyFile);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKeyFile}.pub`), { mode: 0o600 });
  const configFile = join(dir, 'sshd_config');
  let port = 0;
  let child: ChildProcess | undefined;
  let log = '';

  const writeConfig = () =>
    writeFileSync(
      configFile,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKeyFile}`,
        'PidFile none',
        'UsePAM no',
        'PermitRootLogin yes',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        // The temp dir lives under /tmp (world-writable), which StrictModes would refuse.
        'StrictModes no',
        'MaxStartups 100',
        'MaxSessions 20',
        'LogLevel INFO',
        ...(options.extraConfig ?? []).map((line) => line.replaceAll('{dir}', dir)),
        '',
      ].join('\n'),
    );

  /** Spawns sshd and resolves once it listens; rejects with its log when it exits first. */
  const launch = () =>
    new Promise<void>((resolve, reject) => {
      writeConfig();
      const proc = spawn(SSHD_PATH, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      let ready = false;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`sshd did not start within 10 s:\n${log}`));
      }, 10_000);
      proc.stderr?.setEncoding('utf8');
      proc.stderr?.on('data', (text: string) => {
        log = (log + text).slice(-20_000);
        if (!ready && log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, signal) => {
        if (ready) return;
        clearTimeout(timer);
        reject(new Error(`sshd exited (${code ?? signal}) before listening:\n${log}`));
      });
    });

  const stopListener = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    await exited;
  };

  // A free port can be taken between probing and binding: retry a few times.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  return {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    username: 'root',
    privateKey: readFileSync(clientKeyFile, 'utf8'),
    unauthorizedKey: readFileSync(strangerKeyFile, 'utf8'),
    hostKeyFingerprint() {
      const line = execFileSync('ssh-keygen', ['-l', '-f', `${hostKeyFile}.pub`], { encoding: 'utf8' });
      return line.split(' ')[1] ?? '';
    },
    async rotateHostKey() {
      await stopListener();
      generateKey(hostKeyFile);
      await launch();
    },
    dropConnections() {
      const listener = child?.pid;
      if (listener === undefined) return 0;
      const sessions = sessionProcesses(listener);
      for (const pid of sessions) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      return sessions.length;
    },
    async stop() {
      const listener = child?.pid;
      const sessions = listener === undefined ? [] : sessionProcesses(listener);
      await stopListener();
      for (const pid of sessions) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
