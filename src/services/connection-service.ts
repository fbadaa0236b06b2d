/**
 * The v1 data-connection use cases (docs/compatibility.md §5): create, list, get, edit (optionally testing
 * connectivity), delete, export to a zip, import from a zip as a background system task.
 * Secrets are sealed before they reach the store and never leave the service in clear except
 * towards an engine.
 */
import { randomUUID } from 'node:crypto';
import { integerParam } from '../domain/integer-param.js';
import { realpath, readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { readConnectionArchive } from './connection-archive.js';
import {
  assertSecretsFollowTarget,
  CONNECTION_TYPES,
  mergeSecrets,
  parseConnectionInput,
  publicConfig,
  SECRET_CONFIG_KEYS,
  V1_CONNECTION_TYPES,
  type Connection,
  type ConnectionConfig,
  type ConnectionInput,
} from '../domain/connection.js';
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import type { Namespace } from '../domain/script.js';
import { toWireString } from '../domain/wire-values.js';
import type { Store, SystemSubtask, SystemTask } from '../store/store.js';
import type { ConnectionResolver } from './connection-resolver.js';
import type { ConnectionTester } from './connection-tester.js';
import type { SecretCipher } from './secret-cipher.js';

export interface ConnectionListParams {
  offset?: string | undefined;
  limit?: string | undefined;
  connectionName?: string | undefined;
  /** Extension: include extension types (CLICKHOUSE) that v1 clients cannot parse. */
  includeExtensionTypes?: boolean;
}

export interface ImportRequest {
  /** A server-local zip path inside the import directory, or undefined when `zip` is given. */
  path?: string;
  /** Uploaded zip bytes (extension). */
  zip?: Buffer;
  /** Per-connection config overrides (e.g. passwords, which exports omit). */
  params: { name: string; type?: string; params: Record<string, string> }[];
  sameNamePolicy: 'SKIP' | 'OVERWRITE';
}

const MAX_IMPORT_BYTES = 50 * 1024 * 1024;

/** What a connection looks like on the wire (v1): secrets masked, typed config values. */
export function connectionRepresentation(connection: Connection) {
  return {
    name: connection.name,
    type: connection.type,
    config: publicConfig(connection),
    description: connection.description,
  };
}

/** Whether `path` is strictly below `root` (both absolute and normalised). */
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !isAbsolute(rel) && !rel.split(sep).includes('..');
}

/** Export files carry no secrets: they would be readable by anyone who gets the zip. */
function withoutSecrets(config: ConnectionConfig): ConnectionConfig {
  const out = { ...config };
  for (const key of SECRET_CONFIG_KEYS) delete out[key];
  return out;
}

export class ConnectionService {
  constructor(
    private readonly store: Store,
    private readonly cipher: SecretCipher,
    private readonly resolver: ConnectionResolver,
    private readonly tester: ConnectionTester,
    /** Server-local directory that import `path`s must be inside. */
    private readonly importDir: string,
  ) {}

  private async existing(ns: Namespace, name: string): Promise<Connection> {
    const connection = await this.store.connections.get(ns, name);
    if (!connection) throw new DlfError('DLF.6322', `The data connection '${name}' does not exist.`);
    return connection;
  }

  /**
   * A secret sent in sealed form would be stored as if this server had sealed it and then fail to
   * open (a 500 on `ischeck=true`, a broken connection at execute): refused at the edge instead.
   */
  private assertPlainSecrets(input: ConnectionInput): ConnectionInput {
    for (const key of SECRET_CONFIG_KEYS) {
      if (this.cipher.isSealed(input.config[key])) {
        throw invalidParameter(`config.${key} may not start with the reserved prefix 'enc:v1:'`);
      }
    }
    return input;
  }

  private async assertCreatable(ns: Namespace, input: ConnectionInput): Promise<void> {
    if (this.resolver.isBuiltIn(input.name)) {
      throw new DlfError('DLF.6309', `The name '${input.name}' is reserved for a built-in connection.`);
    }
    if (input.type === 'DLI') {
      const dli = await this.store.connections.list(ns, {
        offset: 0,
        limit: 1,
        nameContains: '',
        types: ['DLI'],
      });
      if (dli.total > 0) throw new DlfError('DLF.6271');
    }
  }

  async create(ns: Namespace, body: unknown): Promise<void> {
    const input = this.assertPlainSecrets(parseConnectionInput(body));
    await this.assertCreatable(ns, input);
    const sealed = { ...input, config: this.cipher.sealConfig(input.config) };
    if (!(await this.store.connections.create(ns, sealed))) throw new DlfError('DLF.6309');
  }

  async list(ns: Namespace, params: ConnectionListParams) {
    const page = await this.store.connections.list(ns, {
      offset: integerParam('offset', params.offset, 0, 1_000_000_000, 0),
      limit: integerParam('limit', params.limit, 1, 1000, 10),
      nameContains: params.connectionName ?? '',
      types: params.includeExtensionTypes ? CONNECTION_TYPES : V1_CONNECTION_TYPES,
    });
    return { total: page.total, connections: page.connections.map(connectionRepresentation) };
  }

  async get(ns: Namespace, name: string) {
    return connectionRepresentation(await this.existing(ns, name));
  }

  async update(ns: Namespace, name: string, body: unknown, check: boolean): Promise<void> {
    const stored = await this.existing(ns, name);
    const input = this.assertPlainSecrets(parseConnectionInput(body));
    if (input.name !== name) {
      throw invalidParameter(`the connection name cannot be modified (path '${name}', body '${input.name}')`);
    }
    if (input.type !== stored.type) throw new DlfError('DLF.6323');
    // Before any test: with a masked secret, `ischeck` may only ever reach the stored target.
    assertSecretsFollowTarget(input.config, stored.config);
    const merged: ConnectionInput = { ...input, config: mergeSecrets(input.config, stored.config) };
    if (check) {
      const problem = await this.tester.test(ns, {
        ...stored,
        ...merged,
        config: this.cipher.openConfig(merged.config),
      });
      if (problem !== undefined) throw new DlfError('OPENDLF.0602', `The connection test failed: ${problem}`);
    }
    const sealed = { ...merged, config: this.cipher.sealConfig(merged.config) };
    if (!(await this.store.connections.update(ns, sealed))) throw new DlfError('DLF.6322');
  }

  async delete(ns: Namespace, name: string): Promise<void> {
    if (!(await this.store.connections.delete(ns, name))) {
      throw new DlfError('DLF.6322', `The data connection '${name}' does not exist.`);
    }
  }

  /** `DLF_All_DataConnections.zip` with `connections/<name>.conn` (JSON, secrets omitted). */
  async export(ns: Namespace): Promise<Buffer> {
    const files: Record<string, Uint8Array> = {};
    for (let offset = 0; ; offset += 1000) {
      const page = await this.store.connections.list(ns, {
        offset,
        limit: 1000,
        nameContains: '',
        types: CONNECTION_TYPES,
      });
      for (const connection of page.connections) {
        const file = {
          ...connectionRepresentation(connection),
          config: withoutSecrets(publicConfig(connection)),
        };
        files[`connections/${connection.name}.conn`] = strToU8(JSON.stringify(file, null, 2));
      }
      if (page.connections.length < 1000) break;
    }
    return Buffer.from(zipSync(files));
  }

  /**
   * Validates the request, records a RUNNING system task, and imports in the background. As in
   * DataArts, a zip that cannot be imported (invalid, or past the archive limits of
   * connection-archive.ts) is reported by the task, FAILED with the reason.
   */
  async import(ns: Namespace, request: ImportRequest): Promise<string> {
    const zip = request.zip ?? (await this.readImportFile(request.path));
    const task: SystemTask = {
      id: randomUUID(),
      namespace: ns,
      name: 'import connections',
      status: 'RUNNING',
      message: '',
      subtasks: [],
      startTime: Date.now(),
      endTime: null,
      lastUpdate: Date.now(),
    };
    await this.store.systemTasks.save(task);
    void this.runImport(ns, task, zip, request);
    return task.id;
  }

  async systemTask(ns: Namespace, id: string): Promise<SystemTask> {
    const task = await this.store.systemTasks.get(ns, id);
    if (!task) throw new DlfError('DLF.20810', `Task[${id}] does not exist`);
    return task;
  }

  private async readImportFile(path: string | undefined): Promise<Buffer> {
    if (path === undefined || path === '') throw new DlfError('DLF.0803', 'The import path is required.');
    if (path.startsWith('obs://')) {
      throw new DlfError(
        'DLF.0803',
        'OBS paths are not available on this server; upload the zip or use a path in the import directory.',
      );
    }
    // Only files inside the import directory: a client must never read arbitrary server files.
    const root = resolve(this.importDir);
    const candidate = isAbsolute(path) ? resolve(path) : resolve(root, path);
    // Lexical check first: a path outside the directory must be refused the same way whether or not
    // it exists, or the two error codes would tell a client which server files exist.
    if (!isInside(root, candidate)) {
      throw new DlfError('DLF.0803', `The import path must be inside the server's import directory.`);
    }
    let real: string;
    try {
      real = await realpath(candidate);
    } catch {
      throw new DlfError('DLF.0815', `The import file cannot be read: ${path}`);
    }
    const realRoot = await realpath(root).catch(() => root);
    if (!isInside(realRoot, real)) {
      throw new DlfError('DLF.0803', `The import path must be inside the server's import directory.`);
    }
    const bytes = await readFile(real).catch(() => {
      throw new DlfError('DLF.0815', `The import file cannot be read: ${path}`);
    });
    if (bytes.length > MAX_IMPORT_BYTES) throw invalidParameter('the import file is larger than 50 MB');
    return bytes;
  }

  private async runImport(
    ns: Namespace,
    task: SystemTask,
    zip: Buffer,
    request: ImportRequest,
  ): Promise<void> {
    const subtasks: SystemSubtask[] = [];
    const record = (name: string, ok: boolean, message: string) =>
      subtasks.push({
        id: randomUUID(),
        name,
        status: ok ? 'SUCCESSFUL' : 'FAILED',
        message,
        lastUpdate: Date.now(),
      });
    let fatal = '';
    try {
      // Streamed within byte and entry caps: a hostile archive never blocks the event loop.
      const entries = await readConnectionArchive(zip);
      for (const { name: entryName, text } of entries) {
        try {
          const parsed = JSON.parse(text) as Record<string, unknown>;
          const override = request.params.find((p) => p.name === parsed.name);
          const config = { ...(parsed.config as Record<string, unknown> | undefined) };
          for (const [key, value] of Object.entries(override?.params ?? {}))
            config[key] = toWireString(value);
          const input = this.assertPlainSecrets(parseConnectionInput({ ...parsed, config }));
          const existing = await this.store.connections.get(ns, input.name);
          if (existing && request.sameNamePolicy === 'SKIP') {
            record(input.name, true, 'skipped: a connection with this name exists');
            continue;
          }
          if (existing && existing.type !== input.type) throw new DlfError('DLF.6323');
          if (existing) {
            assertSecretsFollowTarget(input.config, existing.config);
            const merged = {
              ...input,
              config: this.cipher.sealConfig(mergeSecrets(input.config, existing.config)),
            };
            await this.store.connections.update(ns, merged);
            record(input.name, true, 'overwritten');
          } else {
            await this.assertCreatable(ns, input);
            await this.store.connections.create(ns, {
              ...input,
              config: this.cipher.sealConfig(input.config),
            });
            record(input.name, true, 'created');
          }
        } catch (error) {
          record(entryName, false, (error as Error).message);
        }
      }
    } catch (error) {
      fatal = (error as Error).message;
    }
    const failed = fatal !== '' || subtasks.some((s) => s.status === 'FAILED');
    const now = Date.now();
    await this.store.systemTasks
      .save({
        ...task,
        status: failed ? 'FAILED' : 'SUCCESSFUL',
        message: fatal || (failed ? 'some connections could not be imported' : ''),
        subtasks,
        endTime: now,
        lastUpdate: now,
      })
      .catch(() => undefined);
  }
}
