/**
 * A private ClickHouse server for tests: 127.0.0.1 on free HTTP and TCP ports, its own config,
 * users, data and logs in a temp dir, user `default` without password (plus `opendlf_pw` with one,
 * for wrong-password tests). Runs in the foreground as a child of the test process (as root: the
 * Debian 18.16 binary allows it); `stop()` ends it and removes the dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLICKHOUSE_SERVER_PATH = '/usr/sbin/clickhouse-server';

export interface TestClickHouse {
  readonly host: string;
  /** The HTTP port. */
  readonly port: number;
  readonly tcpPort: number;
  /** A user whose password is `right-password`. */
  readonly passwordUser: string;
  /** Runs SQL as `default` over HTTP (outside any engine) and returns the body as text. */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

/** Why ClickHouse tests cannot run here, or undefined when they can. */
export function clickHouseUnavailableReason(): string | undefined {
  if (!existsSync(CLICKHOUSE_SERVER_PATH)) {
    return `${CLICKHOUSE_SERVER_PATH} is not installed (apt-get install clickhouse-server)`;
  }
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

const xml = (value: string) => value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function writeConfig(dir: string, httpPort: number, tcpPort: number): string {
  const configFile = join(dir, 'config.xml');
  writeFileSync(
    configFile,
    `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>information</level>
    <log>${xml(join(dir, 'log', 'server.log'))}</log>
    <errorlog>${xml(join(dir, 'log', 'server.err.log'))}</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <path>${xml(join(dir, 'data'))}/</path>
  <tmp_path>${xml(join(dir, 'tmp'))}/</tmp_path>
  <user_files_path>${xml(join(dir, 'user_files'))}/</user_files_path>
  <format_schema_path>${xml(join(dir, 'format_schemas'))}/</format_schema_path>
  <users_config>${xml(join(dir, 'users.xml'))}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
`,
  );
  writeFileSync(
    join(dir, 'users.xml'),
    `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <opendlf_pw>
      <password>right-password</password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </opendlf_pw>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`,
  );
  return configFile;
}

/** One request on its own connection (no keep-alive socket outlives the test). */
function httpRequest(
  port: number,
  method: 'GET' | 'POST',
  path: string,
  body = '',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        timeout: 30_000,
        headers: { Connection: 'close' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

async function httpQuery(port: number, sql: string): Promise<string> {
  const { status, text } = await httpRequest(port, 'POST', '/', sql);
  if (status !== 200) throw new Error(`ClickHouse ${status}: ${text}`);
  return text;
}

async function pinged(port: number): Promise<boolean> {
  try {
    const { status, text } = await httpRequest(port, 'GET', '/ping');
    return status === 200 && text.trim() === 'Ok.';
  } catch {
    return false;
  }
}

function logOf(dir: string): string {
  const file = join(dir, 'log', 'server.err.log');
  return existsSync(file) ? readFileSync(file, 'utf8').slice(-4_000) : '';
}

/** Spawns the server and resolves once `/ping` answers; rejects with its log if it exits first. */
async function launch(dir: string, httpPort: number, tcpPort: number): Promise<ChildProcess> {
  const configFile = writeConfig(dir, httpPort, tcpPort);
  let output = '';
  const child = spawn(CLICKHOUSE_SERVER_PATH, [`--config-file=${configFile}`], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (text: string) => (output = (output + text).slice(-4_000));
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `clickhouse-server exited (${child.exitCode ?? child.signalCode}):\n${output}\n${logOf(dir)}`,
      );
    }
    if (await pinged(httpPort)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopChild(child);
  throw new Error(`clickhouse-server did not answer /ping within 30 s:\n${output}\n${logOf(dir)}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function startClickHouse(): Promise<TestClickHouse> {
  const dir = mkdtempSync(join(tmpdir(), 'opendlf-clickhouse-'));
  for (const sub of ['data', 'tmp', 'log', 'user_files', 'format_schemas']) mkdirSync(join(dir, sub));
  let child: ChildProcess | undefined;
  let httpPort = 0;
  let tcpPort = 0;
  // A free port can be taken between probing and binding: retry a few times.
  for (let attempt = 1; ; attempt++) {
    httpPort = await freePort();
    tcpPort = await freePort();
    try {
      child = await launch(dir, httpPort, tcpPort);
      break;
    } catch (error) {
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const server = child;
  return {
    host: '127.0.0.1',
    port: httpPort,
    tcpPort,
    passwordUser: 'opendlf_pw',
    query: (sql) => httpQuery(httpPort, sql),
    async stop() {
      await stopChild(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
