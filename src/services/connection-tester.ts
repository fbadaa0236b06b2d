/**
 * `PUT …/connections/{name}?ischeck=true`: runs each engine's own probe (`connectionProbe`:
 * `SELECT 1`, `exit 0`) against the connection as edited, with fresh engines that are closed
 * afterwards, so a test never touches the pools that running scripts use.
 */
import { DlfError } from '../domain/dlf-error.js';
import type { Connection } from '../domain/connection.js';
import type { Namespace } from '../domain/script.js';
import type { Engine } from '../engines/engine.js';
import type { ConnectionEngineFactory } from './connection-resolver.js';

const TEST_TIMEOUT_MS = 15_000;

export class ConnectionTester {
  constructor(
    private readonly factory: ConnectionEngineFactory,
    /** Scratch directory for connection tests. */
    private readonly scratchDir: string,
  ) {}

  /**
   * Why the connection does not work, or undefined when every engine's probe ran. A refused target
   * or a misconfiguration (a key file outside the project's directory) rejects with its DlfError:
   * those say nothing about the network and are never hidden from the caller.
   */
  async test(ns: Namespace, connection: Connection): Promise<string | undefined> {
    let engines: Engine[];
    try {
      await this.factory.assertTargetAllowed(connection);
      engines = this.factory.create(connection, ns.projectId);
    } catch (error) {
      if (error instanceof DlfError) throw error;
      return (error as Error).message;
    }
    if (engines.length === 0) return `connections of type ${connection.type} cannot be tested by this server`;
    try {
      for (const engine of engines) {
        const outcome = await engine.run(
          {
            instanceId: `connection-test-${connection.id}`,
            namespace: ns,
            scriptType: engine.connectionProbe.scriptType,
            content: engine.connectionProbe.content,
            database: '',
            runDir: `${this.scratchDir}/connection-test-${connection.id}-${Date.now()}`,
            limits: { maxResultRows: 1, maxOutputBytes: 65536, maxResultOutputBytes: 65536 },
          },
          {
            signal: AbortSignal.timeout(TEST_TIMEOUT_MS),
            stopGraceMs: 1000,
            reportHandle: () => Promise.resolve(),
          },
        );
        if (outcome.kind === 'failed') return outcome.message;
        if (outcome.kind === 'aborted') return `no answer within ${TEST_TIMEOUT_MS / 1000} s`;
      }
      return undefined;
    } finally {
      await Promise.all(engines.map((e) => e.close().catch(() => undefined)));
    }
  }
}
