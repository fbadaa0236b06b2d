/**
 * Part of the composition root: which concrete engine serves which stored connection type
 * (docs/compatibility.md §5). DWS and RDS with the PostgreSQL driver → PostgreSQL; RDS with the
 * MySQL driver (or none) → MySQL/MariaDB; HOST → SSH (Shell, PYTHON); CLICKHOUSE → ClickHouse over
 * HTTP(S) (ClickHouseSQL). Types with no engine here (DLI, SparkSQL, HIVE, CloudTable) get none, which the
 * resolver reports as "not supported by this server".
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Connection } from './domain/connection.js';
import { invalidParameter } from './domain/dlf-error.js';
import { ClickHouseEngine } from './engines/clickhouse/clickhouse-engine.js';
import type { Engine } from './engines/engine.js';
import { MysqlEngine } from './engines/mysql/mysql-engine.js';
import { PostgresEngine } from './engines/postgres/postgres-engine.js';
import { SshEngine } from './engines/ssh/ssh-engine.js';
import { TargetCheckedEngine, type NetworkTarget, type TargetGuard } from './engines/target-guard.js';
import type { ConnectionEngineFactory } from './services/connection-resolver.js';

export interface ConnectionEngineSettings {
  /** opendlf's record of SSH host keys (trust on first use). */
  readonly knownHostsFile: string;
  /** `record`: trust a host's key on first use; `reject`: only pre-recorded hosts. */
  readonly onUnknownHostKey: 'record' | 'reject';
  /**
   * HOST `keyLocation` paths resolve inside `<sshKeyDir>/<projectId>/` only: a project can never
   * use another project's keys or arbitrary server files.
   */
  readonly sshKeyDir: string;
  readonly connectTimeoutMs: number;
  /** Checks every address a connection reaches against the connection target rules. */
  readonly targetGuard: TargetGuard;
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

const PROJECT_DIR_NAME = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Reads `<sshKeyDir>/<projectId>/<location>`. Refused: anything outside that directory, and any
 * symbolic link on the way (a link could lead to another project's key or a server file). Messages
 * name the path relative to the data directory (`ssh-keys/<project>/…`), never an absolute path.
 */
function readKeyFile(sshKeyDir: string, projectId: string, location: string): string {
  const shownDir = `ssh-keys/${projectId}/`;
  const outside = invalidParameter(
    `keyLocation must name a file inside this project's SSH key directory (${shownDir})`,
  );
  if (!PROJECT_DIR_NAME.test(projectId)) throw outside;
  const root = resolve(sshKeyDir, projectId);
  // Absolute locations are accepted only when they are inside the project's directory.
  const candidate = isAbsolute(location) ? resolve(location) : resolve(root, location);
  // Lexical check before touching the file system: a path outside the directory is refused the same
  // way whether or not it exists, so the error cannot be used to probe for server files.
  if (!isInside(root, candidate)) throw outside;
  const shown = `${shownDir}${relative(root, candidate).split(sep).join('/')}`;
  const unreadable = invalidParameter(`keyLocation names no readable regular file: ${shown}`);
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(candidate);
  } catch {
    throw unreadable;
  }
  // Any symbolic link below the project directory changes the real path: refused, not followed.
  if (real !== join(realRoot, relative(root, candidate))) {
    throw invalidParameter(`keyLocation may not be or pass through a symbolic link: ${shown}`);
  }
  try {
    if (!statSync(real).isFile()) throw unreadable;
    return readFileSync(real, 'utf8');
  } catch {
    throw unreadable;
  }
}

/** Where a connection's engines will connect (undefined for types with no engine here). */
function networkTargetOf(connection: Connection): NetworkTarget | undefined {
  const c = connection.config;
  switch (connection.type) {
    case 'DWS':
    case 'RDS': {
      const postgres = connection.type === 'DWS' || text(c, 'driverName') === 'org.postgresql.Driver';
      return { host: text(c, 'ip'), port: port(c, postgres ? 5432 : 3306) };
    }
    case 'HOST':
      return { host: text(c, 'ip'), port: port(c, 22) };
    case 'CLICKHOUSE':
      return { host: text(c, 'ip'), port: port(c, 8123) };
    case 'DLI':
    case 'SparkSQL':
    case 'HIVE':
    case 'CloudTable':
      return undefined;
    default:
      return connection.type satisfies never;
  }
}

export function connectionEngineFactory(settings: ConnectionEngineSettings): ConnectionEngineFactory {
  const guard = settings.targetGuard;
  /** One engine behind the target rules; `pin`: dial the checked address (false only for TLS). */
  const checked = (connection: Connection, pin: boolean, build: (connectHost: string) => Engine) =>
    new TargetCheckedEngine(guard, networkTargetOf(connection)!, pin, build);
  return {
    async assertTargetAllowed(connection: Connection): Promise<void> {
      const target = networkTargetOf(connection);
      if (target) await guard.admit(target);
    },
    create(connection: Connection, projectId: string): Engine[] {
      const c = connection.config;
      switch (connection.type) {
        case 'DWS':
        case 'RDS': {
          const driver = text(c, 'driverName');
          const postgres = connection.type === 'DWS' || driver === 'org.postgresql.Driver';
          if (postgres) {
            const ssl = c.sslEnable === true;
            return [
              checked(
                connection,
                !ssl,
                (host) =>
                  new PostgresEngine('postgres', {
                    host,
                    port: port(c, 5432),
                    user: text(c, 'userName'),
                    password: text(c, 'password'),
                    database: text(c, 'database') || 'postgres',
                    ssl,
                    connectTimeoutMs: settings.connectTimeoutMs,
                  }),
              ),
            ];
          }
          return [
            checked(
              connection,
              true,
              (host) =>
                new MysqlEngine('mysql', {
                  host,
                  port: port(c, 3306),
                  user: text(c, 'userName'),
                  password: text(c, 'password'),
                  database: text(c, 'database'),
                  connectTimeoutMs: settings.connectTimeoutMs,
                }),
            ),
          ];
        }
        case 'HOST': {
          const keyLocation = text(c, 'keyLocation');
          const privateKey =
            text(c, 'privateKey') ||
            (keyLocation ? readKeyFile(settings.sshKeyDir, projectId, keyLocation) : '');
          const password = text(c, 'password');
          const passphrase = text(c, 'passphrase');
          const host = text(c, 'ip');
          return [
            // The host key is recorded under the configured name; only the dialled address is pinned.
            checked(
              connection,
              true,
              (connectHost) =>
                new SshEngine('ssh', {
                  host,
                  ...(connectHost !== host ? { connectAddress: connectHost } : {}),
                  port: port(c, 22),
                  username: text(c, 'userName'),
                  ...(password ? { password } : {}),
                  ...(privateKey ? { privateKey } : {}),
                  ...(passphrase ? { passphrase } : {}),
                  connectTimeoutMs: settings.connectTimeoutMs,
                  hostKey: { knownHostsFile: settings.knownHostsFile, onUnknown: settings.onUnknownHostKey },
                }),
            ),
          ];
        }
        case 'CLICKHOUSE': {
          const secure = c.sslEnable === true;
          return [
            checked(
              connection,
              !secure,
              (host) =>
                new ClickHouseEngine('clickhouse', {
                  host,
                  port: port(c, 8123),
                  user: text(c, 'userName') || 'default',
                  password: text(c, 'password'),
                  database: text(c, 'database') || 'default',
                  secure,
                  connectTimeoutMs: settings.connectTimeoutMs,
                }),
            ),
          ];
        }
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
