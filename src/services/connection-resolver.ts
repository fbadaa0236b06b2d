/**
 * Resolves a script's `connectionName` to the engine that will run it. Every workspace has the
 * built-in connections (`local`: Shell and PYTHON as local child processes; `duckdb`: an embedded
 * DuckDB database per workspace, every SQL type); other connections come from the store and get
 * engines from the ConnectionEngineFactory, one set per connection version, so an edited
 * connection's pools are retired once the runs using them have ended. Testing a connection
 * (`ischeck=true`) is the ConnectionTester's job (connection-tester.ts).
 */
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import type { Connection } from '../domain/connection.js';
import type { Instance } from '../domain/instance.js';
import type { Namespace, ScriptType } from '../domain/script.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engines/engine.js';
import type { ConnectionStore } from '../store/store.js';
import type { SecretCipher } from './secret-cipher.js';

export interface BuiltInConnection {
  readonly name: string;
  /** Extension connection type, shown in messages (never in v1 connection responses). */
  readonly type: string;
  readonly engines: readonly Engine[];
}

/** Builds the engines for a stored connection (secrets already opened). Empty: no engine for its type. */
export interface ConnectionEngineFactory {
  /** `projectId` scopes project-owned files the connection names (SSH `keyLocation`). */
  create(connection: Connection, projectId: string): Engine[];
  /**
   * Rejects with DlfError OPENDLF.0611 when the connection target rules refuse where the connection
   * points (the engines check again on every use; this gives a test the refusal as an API error).
   */
  assertTargetAllowed(connection: Connection): Promise<void>;
}

export interface ResolvedConnection {
  readonly connectionName: string;
  readonly engine: Engine;
}

/** Counts runs in flight so a retired engine set is closed only once nothing uses it. */
class EngineSet {
  private inFlight = 0;
  private retired = false;
  private closed = false;
  readonly engines: readonly Engine[];

  constructor(private readonly originals: readonly Engine[]) {
    this.engines = originals.map((engine) => this.counted(engine));
  }

  private counted(engine: Engine): Engine {
    return {
      name: engine.name,
      capabilities: engine.capabilities,
      connectionProbe: engine.connectionProbe,
      supports: (type) => engine.supports(type),
      run: async (request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> => {
        this.inFlight += 1;
        try {
          return await engine.run(request, context);
        } finally {
          this.inFlight -= 1;
          if (this.retired) void this.closeIfIdle();
        }
      },
      ...(engine.recover ? { recover: engine.recover.bind(engine) } : {}),
      close: () => engine.close(),
    };
  }

  private async closeIfIdle(): Promise<void> {
    if (this.inFlight > 0 || this.closed) return;
    this.closed = true;
    await Promise.all(this.originals.map((e) => e.close().catch(() => undefined)));
  }

  /** No new runs will be given to this set; closes it now or when the last run ends. */
  retire(): Promise<void> {
    this.retired = true;
    return this.closeIfIdle();
  }
}

export class ConnectionResolver {
  private readonly builtIns: ReadonlyMap<string, BuiltInConnection>;
  /** Keyed by connection id; holds the engines of the latest version seen. */
  private readonly cache = new Map<string, { version: number; set: EngineSet }>();

  constructor(
    builtIns: readonly BuiltInConnection[],
    private readonly store: ConnectionStore,
    private readonly factory: ConnectionEngineFactory,
    private readonly cipher: SecretCipher,
  ) {
    this.builtIns = new Map(builtIns.map((c) => [c.name, c]));
  }

  isBuiltIn(name: string): boolean {
    return this.builtIns.has(name);
  }

  private enginesFor(connection: Connection, projectId: string): readonly Engine[] {
    const cached = this.cache.get(connection.id);
    if (cached && cached.version === connection.version) return cached.set.engines;
    let created: Engine[];
    try {
      created = this.factory.create(
        { ...connection, config: this.cipher.openConfig(connection.config) },
        projectId,
      );
    } catch (error) {
      throw error instanceof DlfError
        ? error
        : invalidParameter(`connection '${connection.name}' is misconfigured: ${(error as Error).message}`);
    }
    if (cached) void cached.set.retire();
    const set = new EngineSet(created);
    this.cache.set(connection.id, { version: connection.version, set });
    return set.engines;
  }

  /** Errors: unknown connection ⇒ DLF.6322; no engine for its type ⇒ OPENDLF.0603; type mismatch ⇒ OPENDLF.0601. */
  async resolve(ns: Namespace, connectionName: string, scriptType: ScriptType): Promise<ResolvedConnection> {
    const builtIn = this.builtIns.get(connectionName);
    let engines: readonly Engine[];
    let type: string;
    if (builtIn) {
      engines = builtIn.engines;
      type = builtIn.type;
    } else {
      const connection = connectionName === '' ? undefined : await this.store.get(ns, connectionName);
      if (!connection) {
        throw new DlfError(
          'DLF.6322',
          `The data connection '${connectionName}' does not exist. Built-in connections: ${[...this.builtIns.keys()].join(', ') || 'none'}.`,
        );
      }
      engines = this.enginesFor(connection, ns.projectId);
      type = connection.type;
      if (engines.length === 0) {
        throw new DlfError(
          'OPENDLF.0603',
          `Connections of type ${type} are stored but cannot run scripts on this server.`,
        );
      }
    }
    const engine = engines.find((e) => e.supports(scriptType));
    if (!engine) {
      throw new DlfError(
        'OPENDLF.0601',
        `Connection '${connectionName}' (type ${type}) cannot run ${scriptType} scripts.`,
      );
    }
    return { connectionName, engine };
  }

  /**
   * The engine recorded on an instance: the one a claiming node runs it with, and the one that ends
   * its leftover work after a restart. Undefined when its connection was deleted meanwhile.
   */
  async engineOf(instance: Instance): Promise<Engine | undefined> {
    const builtIn = this.builtIns.get(instance.connectionName);
    if (builtIn) return builtIn.engines.find((e) => e.name === instance.engine);
    const connection = await this.store.get(instance.namespace, instance.connectionName);
    if (!connection) return undefined;
    return this.enginesFor(connection, instance.namespace.projectId).find((e) => e.name === instance.engine);
  }

  async close(): Promise<void> {
    const sets = [...this.cache.values()];
    this.cache.clear();
    await Promise.all(sets.map((s) => s.set.retire()));
  }
}
