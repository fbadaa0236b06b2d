/**
 * What a data connection IS (docs/compatibility.md §5): a named target of a type with a per-type `config`.
 * The v1 API knows seven types; CLICKHOUSE is an opendlf extension type kept out of v1 responses
 * unless a client asks for extension types (the GO client fails on any type it does not know).
 */
import { DlfError, invalidParameter } from './dlf-error.js';
import { assertMapKey, toWireString } from './wire-values.js';

export const V1_CONNECTION_TYPES = ['DWS', 'DLI', 'SparkSQL', 'HIVE', 'RDS', 'CloudTable', 'HOST'] as const;
export const EXTENSION_CONNECTION_TYPES = ['CLICKHOUSE'] as const;
export const CONNECTION_TYPES = [...V1_CONNECTION_TYPES, ...EXTENSION_CONNECTION_TYPES] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];

export function isConnectionType(value: unknown): value is ConnectionType {
  return typeof value === 'string' && (CONNECTION_TYPES as readonly string[]).includes(value);
}

export function isV1ConnectionType(type: ConnectionType): boolean {
  return (V1_CONNECTION_TYPES as readonly string[]).includes(type);
}

export const CONNECTION_NAME_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;

/** Config keys whose values are secrets: encrypted at rest, masked in every response. */
export const SECRET_CONFIG_KEYS = ['password', 'privateKey', 'passphrase'] as const;
/** The mask DataArts shows for passwords; an edit that sends it back keeps the stored secret. */
export const SECRET_MASK = '*********';

/** Config values: strings, except `sslEnable` (boolean) as the GO client types it. */
export type ConnectionConfig = Record<string, string | boolean>;

export interface ConnectionInput {
  name: string;
  type: ConnectionType;
  config: ConnectionConfig;
  description: string;
}

export interface Connection extends ConnectionInput {
  readonly id: string;
  readonly createdAt: Date;
  updatedAt: Date;
  /** Bumped on every edit, so engines built for an older version can be retired. */
  version: number;
}

function parseBoolean(key: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'TRUE' || value === 'True') return true;
  if (value === 'false' || value === 'FALSE' || value === 'False' || value === '' || value === undefined)
    return false;
  throw invalidParameter(`config.${key} must be a boolean`);
}

/**
 * Validates and normalises a create/edit body. Every config value is stored as a string except
 * `sslEnable`; the port is checked to be a TCP port when present. DWS needs a cluster name or an
 * address (DLF.6418); a self-hosted server needs an address to actually reach it.
 */
export function parseConnectionInput(body: unknown): ConnectionInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidParameter('the request body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  if (typeof b.name !== 'string' || !CONNECTION_NAME_PATTERN.test(b.name)) {
    throw invalidParameter('name must be 1-100 letters, digits, underscores or hyphens');
  }
  if (!isConnectionType(b.type)) {
    throw invalidParameter(`type must be one of ${CONNECTION_TYPES.join(', ')}`);
  }
  const description = b.description ?? '';
  if (typeof description !== 'string' || description.length > 255) {
    throw invalidParameter('description must be a string of at most 255 characters');
  }
  const rawConfig = b.config ?? {};
  if (typeof rawConfig !== 'object' || rawConfig === null || Array.isArray(rawConfig)) {
    throw invalidParameter('config must be an object');
  }
  const config: ConnectionConfig = {};
  for (const [key, value] of Object.entries(rawConfig as Record<string, unknown>)) {
    if (key.length > 64) throw invalidParameter(`config key '${key.slice(0, 64)}…' is too long`);
    assertMapKey(key, 'config');
    config[key] = key === 'sslEnable' ? parseBoolean(key, value) : toWireString(value);
  }
  const port = config.port;
  if (typeof port === 'string' && port !== '') {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw invalidParameter('config.port must be a TCP port number');
    }
  }
  if (b.type === 'DWS' && !config.clusterName && !(config.ip && config.port)) {
    throw new DlfError('DLF.6418');
  }
  if (b.type === 'RDS' && config.driverName) {
    const driver = String(config.driverName);
    if (driver !== 'com.mysql.jdbc.Driver' && driver !== 'org.postgresql.Driver') {
      throw invalidParameter('config.driverName must be com.mysql.jdbc.Driver or org.postgresql.Driver');
    }
  }
  return { name: b.name, type: b.type, config, description };
}

/**
 * Config keys that decide where a connection's secrets are sent (or which key they unlock): the
 * address, port, account, database, driver, SSH key file. `sslEnable` counts when it is turned off.
 */
export const TARGET_CONFIG_KEYS = [
  'ip',
  'port',
  'userName',
  'database',
  'driverName',
  'clusterName',
  'keyLocation',
] as const;

const configText = (value: string | boolean | undefined): string =>
  value === undefined ? '' : String(value);

/** Whether `incoming` keeps the stored value of `key` (absent or the mask). */
function keepsStoredSecret(incoming: ConnectionConfig, key: string): boolean {
  const value = incoming[key];
  return value === undefined || value === SECRET_MASK;
}

/**
 * Secrets follow their target: an edit (or an import over an existing connection) that changes
 * where the stored secret would be sent must carry the secret again. Otherwise anyone allowed to
 * edit could point the connection at a server of theirs and receive the stored password.
 * @throws DlfError OPENDLF.0610 naming the changed keys and the secrets to give again.
 */
export function assertSecretsFollowTarget(incoming: ConnectionConfig, stored: ConnectionConfig): void {
  const changed: string[] = TARGET_CONFIG_KEYS.filter(
    (key) => configText(incoming[key]) !== configText(stored[key]),
  );
  if (stored.sslEnable === true && incoming.sslEnable !== true) changed.push('sslEnable');
  if (changed.length === 0) return;
  const kept = SECRET_CONFIG_KEYS.filter(
    (key) => configText(stored[key]) !== '' && keepsStoredSecret(incoming, key),
  );
  if (kept.length === 0) return;
  throw new DlfError(
    'OPENDLF.0610',
    `The connection's target changed (${changed.map((k) => `config.${k}`).join(', ')}): ` +
      `the secret must be given again (${kept.map((k) => `config.${k}`).join(', ')}); ` +
      'a stored secret is only ever sent to the target it was entered for.',
  );
}

/**
 * Edit semantics for secrets: an absent value or the mask keeps the stored secret (GO's acceptance
 * test edits with the object it just read, which carries the mask). Call assertSecretsFollowTarget
 * first: keeping a secret is only allowed when the target is unchanged.
 */
export function mergeSecrets(incoming: ConnectionConfig, stored: ConnectionConfig): ConnectionConfig {
  const merged = { ...incoming };
  for (const key of SECRET_CONFIG_KEYS) {
    const value = merged[key];
    if ((value === undefined || value === SECRET_MASK) && stored[key] !== undefined)
      merged[key] = stored[key];
  }
  return merged;
}

/** The config as any response shows it: secrets masked, `port` a string, `sslEnable` a boolean. */
export function publicConfig(connection: Connection): ConnectionConfig {
  const out: ConnectionConfig = {};
  for (const [key, value] of Object.entries(connection.config)) {
    out[key] = (SECRET_CONFIG_KEYS as readonly string[]).includes(key) && value !== '' ? SECRET_MASK : value;
  }
  if (connection.type === 'DWS' && out.sslEnable === undefined) out.sslEnable = false;
  return out;
}
