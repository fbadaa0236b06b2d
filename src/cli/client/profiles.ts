/**
 * Where the command-line client sends its requests, and as whom: named profiles in
 * `~/.config/opendlf/profiles.json` (`$XDG_CONFIG_HOME/opendlf/…`; `OPENDLF_PROFILES_FILE` names
 * another file), overridden by environment variables, overridden by flags.
 *
 * The file holds secrets (secret keys, tokens), so it is written 0600 in a 0700 directory; a file
 * others can read is used anyway, like ssh does for its config, but never written that way.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DlfApiClient, type ClientAuth } from '../../client/api-client.js';
import { createNodeSigner } from '../../client/node-signer.js';
import { CliError, EXIT } from './cli-error.js';

export interface Profile {
  endpoint?: string;
  projectId?: string;
  workspace?: string;
  accessKey?: string;
  secretKey?: string;
  token?: string;
}

export interface ProfilesFile {
  /** The profile used when neither `--profile` nor `OPENDLF_PROFILE` names one. */
  default?: string;
  profiles: Record<string, Profile>;
}

/** Flags every client command takes (see `addConnectionOptions`). */
export interface ConnectionFlags {
  profile?: string;
  endpoint?: string;
  project?: string;
  workspace?: string;
}

/** What a command connects with once flags, environment and profile are merged. */
export interface ResolvedSettings {
  profileName: string | undefined;
  endpoint: string;
  projectId: string;
  workspace: string | undefined;
  auth: 'none' | 'token' | 'aksk';
}

/** Where a fresh install's server listens (README "Quick start"). */
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:8080';

/** The environment variables the client reads; OPENDLF_SECRET_KEY is the server's sealing key, not an SK. */
export const ENV = {
  profile: 'OPENDLF_PROFILE',
  profilesFile: 'OPENDLF_PROFILES_FILE',
  endpoint: 'OPENDLF_ENDPOINT',
  projectId: 'OPENDLF_PROJECT_ID',
  workspace: 'OPENDLF_WORKSPACE',
  accessKey: 'OPENDLF_AK',
  secretKey: 'OPENDLF_SK',
  token: 'OPENDLF_TOKEN',
} as const;

const PROFILE_KEYS = ['endpoint', 'projectId', 'workspace', 'accessKey', 'secretKey', 'token'] as const;
const PROFILE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function profilesPath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[ENV.profilesFile];
  if (explicit) return explicit;
  const configHome = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(configHome, 'opendlf', 'profiles.json');
}

export function readProfiles(path: string): ProfilesFile {
  if (!existsSync(path)) return { profiles: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CliError(EXIT.usage, `${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CliError(EXIT.usage, `${path} must hold a JSON object {"default", "profiles"}`);
  }
  const { default: defaultName, profiles } = parsed as { default?: unknown; profiles?: unknown };
  if (defaultName !== undefined && typeof defaultName !== 'string') {
    throw new CliError(EXIT.usage, `${path}: "default" must be a profile name`);
  }
  const result: ProfilesFile = { default: defaultName, profiles: {} };
  if (profiles === undefined) return result;
  if (typeof profiles !== 'object' || profiles === null || Array.isArray(profiles)) {
    throw new CliError(EXIT.usage, `${path}: "profiles" must be an object of named profiles`);
  }
  for (const [name, raw] of Object.entries(profiles as Record<string, unknown>)) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new CliError(EXIT.usage, `${path}: profile "${name}" must be an object`);
    }
    const profile: Profile = {};
    for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
      if (!(PROFILE_KEYS as readonly string[]).includes(key)) {
        throw new CliError(
          EXIT.usage,
          `${path}: profile "${name}" has an unknown key "${key}" (known: ${PROFILE_KEYS.join(', ')})`,
        );
      }
      if (typeof value !== 'string') {
        throw new CliError(EXIT.usage, `${path}: profile "${name}".${key} must be a string`);
      }
      profile[key as (typeof PROFILE_KEYS)[number]] = value;
    }
    result.profiles[name] = profile;
  }
  return result;
}

/** Writes atomically (temp file + rename), 0600 in a 0700 directory. */
export function writeProfiles(path: string, file: ProfilesFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}

export function validateProfileName(name: string): string {
  if (!PROFILE_NAME.test(name)) {
    throw new CliError(EXIT.usage, `profile names are 1-64 letters, digits, '_', '.', '-' (got '${name}')`);
  }
  return name;
}

/**
 * Merges flags > environment > profile > defaults. The profile is `--profile`, else
 * `OPENDLF_PROFILE`, else the file's `default`; naming a profile that does not exist is an error,
 * an absent default is not (environment and flags may be enough).
 */
export function resolveSettings(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): { settings: ResolvedSettings; client: DlfApiClient } {
  const path = profilesPath(env);
  const file = readProfiles(path);
  const named = flags.profile ?? (env[ENV.profile] || undefined);
  const profileName = named ?? file.default;
  let profile: Profile = {};
  if (profileName !== undefined) {
    const found = file.profiles[profileName];
    if (found === undefined) {
      const known = Object.keys(file.profiles);
      throw new CliError(
        EXIT.usage,
        `no profile '${profileName}' in ${path}` +
          (known.length > 0
            ? ` (profiles: ${known.join(', ')})`
            : ' (create one with `opendlf profile set`)'),
      );
    }
    profile = found;
  }
  const pick = (flag: string | undefined, envName: string, fromProfile: string | undefined) =>
    flag ?? (env[envName] || undefined) ?? fromProfile;

  const endpoint = pick(flags.endpoint, ENV.endpoint, profile.endpoint) ?? DEFAULT_ENDPOINT;
  const projectId = pick(flags.project, ENV.projectId, profile.projectId);
  const workspace = pick(flags.workspace, ENV.workspace, profile.workspace);
  if (projectId === undefined || projectId === '') {
    throw new CliError(
      EXIT.usage,
      `no project id: pass --project, set ${ENV.projectId}, or add a profile (opendlf profile set <name> --project <id>)`,
    );
  }
  try {
    const url = new URL(endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new CliError(EXIT.usage, `endpoint must be an http(s) URL, got '${endpoint}'`);
  }

  // Credentials come as a unit: an AK from the environment never pairs with an SK from a profile.
  const envAk = env[ENV.accessKey] || undefined;
  const envSk = env[ENV.secretKey] || undefined;
  const envToken = env[ENV.token] || undefined;
  let auth: ClientAuth = { kind: 'none' };
  let authKind: ResolvedSettings['auth'] = 'none';
  if (envAk !== undefined || envSk !== undefined) {
    if (envAk === undefined || envSk === undefined) {
      throw new CliError(EXIT.usage, `${ENV.accessKey} and ${ENV.secretKey} must be set together`);
    }
    auth = { kind: 'signer', sign: createNodeSigner({ accessKey: envAk, secretKey: envSk, projectId }) };
    authKind = 'aksk';
  } else if (envToken !== undefined) {
    auth = { kind: 'token', token: envToken };
    authKind = 'token';
  } else if (profile.accessKey !== undefined || profile.secretKey !== undefined) {
    if (profile.accessKey === undefined || profile.secretKey === undefined) {
      throw new CliError(EXIT.usage, `profile '${profileName ?? ''}' needs both accessKey and secretKey`);
    }
    auth = {
      kind: 'signer',
      sign: createNodeSigner({ accessKey: profile.accessKey, secretKey: profile.secretKey, projectId }),
    };
    authKind = 'aksk';
  } else if (profile.token !== undefined) {
    auth = { kind: 'token', token: profile.token };
    authKind = 'token';
  }

  const settings: ResolvedSettings = { profileName, endpoint, projectId, workspace, auth: authKind };
  return { settings, client: new DlfApiClient({ endpoint, projectId, workspace, auth }) };
}
