/**
 * Part of the composition root: which concrete engine serves which stored connection type
 * (DIGEST §3.4). DWS and RDS with the PostgreSQL driver → PostgreSQL; RDS with the MySQL driver (or
 * none) → MySQL/MariaDB; HOST → SSH (Shell, PYTHON); CLICKHOUSE → ClickHouse over HTTP(S)
 * (ClickHouseSQL). Types with no engine here (DLI, SparkSQL, HIVE, CloudTable) get none, which the
 * resolver reports as "not supported by this server".
 */
import { readFileSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { Connection } from './domain/connection.js';
import { ClickHouseEngine } from './engines/clickhouse/clickhouse-engine.js';
import type { Engine } from './engines/engine.js';
import { MysqlEngine } from './engines/mysql/mysql-engine.js';
import { PostgresEngine } from './engines/postgres/postgres-engine.js';
import { SshEngine } from './engines/ssh/ssh-engine.js';
import type { ConnectionEngineFactory } from './services/connection-resolver.js';

export interface ConnectionEngineSettings {
  /** opendlf's record of SSH host keys (trust on first use). */
  readonly knownHostsFile: string;
  /** `record`: trust a host's key on first use; `reject`: only pre-recorded hosts. */
  readonly onUnknownHostKey: 'record' | 'reject';
  /** HOST `keyLocation` paths must be inside this directory (never arbitrary server files). */
  readonly sshKeyDir: string;
  readonly connectTimeoutMs: number;
}

function text(config: Connection['config'], key: string): string {
  const value = config[key];
  return typeof value === 'string' ? value : value === undefined ? '' : String(value);
}

function port(config: Connection['config'], fallback: number): number {
  const value = Number(text(config, 'port'));
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

/** Whether `path` is strictly below `root` (both absolute). */
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !isAbsolute(rel) && !rel.split(sep).includes('..');
}

function readKeyFile(dir: string, location: string): string {
  const outside = new Error(`keyLocation must name a file inside the server's SSH key directory (${dir})`);
  const lexicalRoot = resolve(dir);
  const root = realpathSync(lexicalRoot);
  const candidate = isAbsolute(location) ? resolve(location) : resolve(root, location);
  // Lexical check before touching the file system: a path outside the directory is refused the same
  // way whether or not it exists, so the error cannot be used to probe for server files.
  if (!isInside(root, candidate) && !isInside(lexicalRoot, candidate)) throw outside;
  let file: string;
  try {
    file = realpathSync(candidate);
  } catch {
    throw new Error(`keyLocation names no readable file in the server's SSH key directory: ${location}`);
  }
  // A symlink inside the directory must not lead out of it.
  if (!isInside(root, file)) throw outside;
  return readFileSync(file, 'utf8');
}

export function connectionEngineFactory(settings: ConnectionEngineSettings): ConnectionEngineFactory {
  return {
    create(connection: Connection): Engine[] {
      const c = connection.config;
      switch (connection.type) {
        case 'DWS':
        case 'RDS': {
          const driver = text(c, 'driverName');
          const postgres = connection.type === 'DWS' || driver === 'org.postgresql.Driver';
          if (postgres) {
            return [
              new PostgresEngine('postgres', {
                host: text(c, 'ip'),
                port: port(c, 5432),
                user: text(c, 'userName'),
                password: text(c, 'password'),
                database: text(c, 'database') || 'postgres',
                ssl: c.sslEnable === true,
                connectTimeoutMs: settings.connectTimeoutMs,
              }),
            ];
          }
          return [
            new MysqlEngine('mysql', {
              host: text(c, 'ip'),
              port: port(c, 3306),
              user: text(c, 'userName'),
              password: text(c, 'password'),
              database: text(c, 'database'),
              connectTimeoutMs: settings.connectTimeoutMs,
            }),
          ];
        }
        case 'HOST': {
          const keyLocation = text(c, 'keyLocation');
          const privateKey =
            text(c, 'privateKey') || (keyLocation ? readKeyFile(settings.sshKeyDir, keyLocation) : '');
          const password = text(c, 'password');
          const passphrase = text(c, 'passphrase');
          return [
            new SshEngine('ssh', {
              host: text(c, 'ip'),
              port: port(c, 22),
              username: text(c, 'userName'),
              ...(password ? { password } : {}),
              ...(privateKey ? { privateKey } : {}),
              ...(passphrase ? { passphrase } : {}),
              connectTimeoutMs: settings.connectTimeoutMs,
              hostKey: { knownHostsFile: settings.knownHostsFile, onUnknown: settings.onUnknownHostKey },
            }),
          ];
        }
        case 'CLICKHOUSE':
          return [
            new ClickHouseEngine('clickhouse', {
              host: text(c, 'ip'),
              port: port(c, 8123),
              user: text(c, 'userName') || 'default',
              password: text(c, 'password'),
              database: text(c, 'database') || 'default',
              secure: c.sslEnable === true,
              connectTimeoutMs: settings.connectTimeoutMs,
            }),
          ];
        case 'DLI':
        case 'SparkSQL':
        case 'HIVE':
        case 'CloudTable':
          return [];
        default:
          return connection.type satisfies never;
      }
    },
  };
}
