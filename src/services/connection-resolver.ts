/**
 * Resolves a script's `connectionName` to the engine that will run it. Until the connections API
 * exists, the only connections are the built-in ones every workspace has: `local` (Shell and PYTHON
 * as local child processes) and `duckdb` (an embedded DuckDB database per workspace, every SQL type).
 */
import { DlfError } from '../domain/dlf-error.js';
import type { Namespace, ScriptType } from '../domain/script.js';
import type { Engine } from '../engines/engine.js';

export interface BuiltInConnection {
  readonly name: string;
  /** Extension connection type, shown in messages (never in v1 connection responses). */
  readonly type: string;
  readonly engines: readonly Engine[];
}

export interface ResolvedConnection {
  readonly connectionName: string;
  readonly engine: Engine;
}

export class ConnectionResolver {
  private readonly byName: ReadonlyMap<string, BuiltInConnection>;

  constructor(builtIns: readonly BuiltInConnection[]) {
    this.byName = new Map(builtIns.map((c) => [c.name, c]));
  }

  /** Errors: unknown connection ⇒ DLF.6322; a connection that cannot run the type ⇒ OPENDLF.0601. */
  resolve(_namespace: Namespace, connectionName: string, scriptType: ScriptType): ResolvedConnection {
    const connection = this.byName.get(connectionName);
    if (!connection) {
      const known = [...this.byName.keys()].join(', ') || 'none';
      throw new DlfError(
        'DLF.6322',
        `The data connection '${connectionName}' does not exist. Connections available on this server: ${known}.`,
      );
    }
    const engine = connection.engines.find((e) => e.supports(scriptType));
    if (!engine) {
      const capable = [...this.byName.values()]
        .filter((c) => c.engines.some((e) => e.supports(scriptType)))
        .map((c) => c.name);
      throw new DlfError(
        'OPENDLF.0601',
        `Connection '${connectionName}' (type ${connection.type}) cannot run ${scriptType} scripts.` +
          (capable.length > 0 ? ` Use one of: ${capable.join(', ')}.` : ' No connection on this server can.'),
      );
    }
    return { connectionName, engine };
  }
}
