/**
 * Execute, read results, stop (docs/compatibility.md §4). Execute validates and queues, returning at once;
 * the runner does the work. Stop works in every phase and is idempotent.
 *
 * Parameters: a caller who may write the script gets DataArts' verbatim `${name}` substitution; a
 * caller who may only execute it (operator, deployer) passes data, never code (script-params.ts).
 */
import { DlfError } from '../domain/dlf-error.js';
import {
  executeRequestHash,
  IDEMPOTENCY_KEY_TTL_MS,
  parseCallTimeoutMs,
  runTimeoutMs,
} from '../domain/execute-options.js';
import type { Instance } from '../domain/instance.js';
import { isTerminal } from '../domain/instance-state.js';
import { authorize, type Principal } from '../domain/access.js';
import {
  assertParamsAreData,
  parseExecuteParams,
  substituteParams,
  type ParamContentKind,
} from '../domain/script-params.js';
import { isSqlScriptType, type Namespace, type ScriptType } from '../domain/script.js';
import type { IdempotencyClaim, IdempotencyRecord, Store } from '../store/store.js';
import type { ConnectionResolver } from './connection-resolver.js';
import type { EnvironmentVariableService } from './environment-variable-service.js';
import { liveState, type RunQueue } from './run-queue.js';
import type { ScriptService } from './script-service.js';

export class ExecutionService {
  constructor(
    private readonly store: Store,
    private readonly scripts: ScriptService,
    private readonly connections: ConnectionResolver,
    private readonly runs: RunQueue,
    private readonly parameters: EnvironmentVariableService,
    private readonly limits: ExecutionLimits,
  ) {}

  /**
   * Execute with its extensions: the body's `timeoutSeconds` (or the script's default) becomes the
   * run's limit, and an `idempotencyKey` makes a repeat of the same request within 24 h answer the
   * first instance instead of running again (README "Execute extensions").
   * @param principal who asks: without `write` here, its parameter values must be data only.
   */
  async execute(
    ns: Namespace,
    scriptName: string,
    body: unknown,
    principal: Principal,
    options: { readonly idempotencyKey?: string } = {},
  ): Promise<ExecuteOutcome> {
    const script = await this.scripts.get(ns, scriptName);
    this.scripts.assertExecutable(ns, script);
    const claim: IdempotencyClaim | undefined =
      options.idempotencyKey === undefined
        ? undefined
        : {
            key: options.idempotencyKey,
            requestHash: executeRequestHash(body),
            expiredBefore: new Date(Date.now() - IDEMPOTENCY_KEY_TTL_MS),
          };
    if (claim) {
      // A repeat is answered from one read, before any evaluation (the script may have changed).
      const earlier = await this.store.idempotencyKeys.find(ns, script.id, claim.key, claim.expiredBefore);
      if (earlier) return replayed(earlier, claim);
    }
    const maxMs = this.limits.instanceTimeoutMs;
    const timeoutMs = runTimeoutMs(parseCallTimeoutMs(body, maxMs), script.configuration, maxMs);
    // `#{…}` is evaluated first and the caller's results are what a caller without write must
    // pass as data; environment variables (set by writers) are trusted like the script itself.
    const params = await this.parameters.resolveForExecute(ns, script, parseExecuteParams(body), new Date());
    if (!authorize(principal, ns.projectId, ns.workspaceId, 'write').allowed) {
      assertParamsAreData(contentKind(script.type), script.content, params.fromCaller);
    }
    const { connectionName, engine } = await this.connections.resolve(ns, script.connectionName, script.type);
    if (!this.runs.accepting) throw new DlfError('OPENDLF.0503');
    const submission = {
      namespace: ns,
      scriptId: script.id,
      scriptName: script.name,
      connectionName,
      engine: engine.name,
      startedBy: principal.id,
      request: {
        scriptType: script.type,
        content: substituteParams(script.content, params.values),
        database: script.database,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      },
    };
    // Deleted since it was read: the delete has stopped the script's instances, and this one was
    // never created (the insert is guarded by the script's row).
    const scriptGone = () => new DlfError('DLF.6201');
    if (claim) {
      // The key and the instance are stored together; a concurrent duplicate gets the winner's.
      const once = await this.runs.submitOnce(submission, claim);
      if (once.kind === 'existing') return replayed(once.record, claim);
      if (once.kind === 'scriptGone') throw scriptGone();
      return { instanceId: once.instance.id, replayed: false };
    }
    const instance = await this.runs.submit(submission);
    if (!instance) throw scriptGone();
    return { instanceId: instance.id, replayed: false };
  }

  /**
   * Extension (execute `?waitSeconds=N`): the instance once it is terminal, waiting at most `waitMs`
   * on the same signals as the result long poll; undefined if it is still active then (or gone).
   */
  waitForResult(instanceId: string, waitMs: number): Promise<Instance | undefined> {
    return this.runs.waitUntilSettled(instanceId, waitMs);
  }

  /**
   * The instance, checked to belong to the named script in this namespace. With `waitMs` > 0 and
   * the instance still active, answers as soon as it settles or when `waitMs` has passed (long poll).
   */
  async getInstance(ns: Namespace, scriptName: string, instanceId: string, waitMs = 0): Promise<Instance> {
    const held = this.runs.heldUnsettled(instanceId);
    if (held) {
      // Held here with its settle to come: the settle hands over the row a long poll (or a read of
      // a run being stopped) answers with, so the instance is not read first; the script is (served
      // from memory), for the same checks as a read.
      await this.checkBelongs(held, ns, scriptName);
      const settling =
        waitMs > 0
          ? this.runs.waitUntilSettled(instanceId, waitMs)
          : this.runs.settlingHere(instanceId, SETTLING_READ_WAIT_MS);
      const settled = settling && (await settling);
      if (settled) return settled;
      const current = await this.store.instances.get(instanceId);
      if (current) return this.withLiveState(current);
      // Gone meanwhile: a long poll answers with what it knew, as below; a read finds nothing.
      if (waitMs > 0) return this.withLiveState(held);
      throw new DlfError('DLF.6205');
    }
    const instance = await this.getInstanceNow(ns, scriptName, instanceId);
    if (isTerminal(instance.state)) return instance;
    if (waitMs <= 0) {
      // In-process work stopped here ends within a millisecond or so (DuckDB's interrupt): the read
      // answers with the state it is settling into rather than the RUNNING it is leaving.
      const settling = this.runs.settlingHere(instance.id, SETTLING_READ_WAIT_MS);
      return (settling && (await settling)) ?? instance;
    }
    // A settle on this node hands over the settled row itself: no re-read.
    const settled = await this.runs.waitUntilSettled(instance.id, waitMs);
    if (settled) return settled;
    const current = await this.store.instances.get(instance.id);
    return current ? this.withLiveState(current) : instance;
  }

  private async getInstanceNow(ns: Namespace, scriptName: string, instanceId: string): Promise<Instance> {
    const script = await this.scripts.get(ns, scriptName);
    const instance = await this.store.instances.get(instanceId);
    if (!instance || !belongsTo(instance, ns, script.id)) throw new DlfError('DLF.6205');
    return this.withLiveState(instance);
  }

  /** The checks of getInstanceNow on an instance already at hand (DLF.6201, DLF.6205). */
  private async checkBelongs(instance: Instance, ns: Namespace, scriptName: string): Promise<void> {
    const script = await this.scripts.get(ns, scriptName);
    if (!belongsTo(instance, ns, script.id)) throw new DlfError('DLF.6205');
  }

  /** @param actor the principal asking, recorded on the instance for the audit trail. */
  async stop(ns: Namespace, scriptName: string, instanceId: string, actor: string): Promise<Instance> {
    // A run on this node is ended first, before any store read: its in-memory instance says which
    // namespace and script it belongs to (the checks getInstance makes against the store).
    let held: Instance | undefined;
    const stoppedHere = this.runs.stopHere(instanceId, actor, (running) => {
      held = running;
      return (
        running.scriptName === scriptName &&
        running.namespace.projectId === ns.projectId &&
        running.namespace.workspaceId === ns.workspaceId
      );
    });
    const owner = { scriptName, namespace: ns };
    if (stoppedHere && held) {
      // The rest of getInstance's checks without reading the instance (the script read is served
      // from memory); the answer waits for the settle only, not for reads before and after it.
      const script = await this.scripts.get(ns, scriptName);
      if (held.scriptId !== script.id) throw new DlfError('DLF.6205');
      return (await this.runs.stop(instanceId, actor, owner)) ?? held;
    }
    // Not held here: the stop request is written first, before any read, guarded by the script
    // name and namespace on the row itself (a queued instance is stopped by that write and never
    // claimed). Read only when it found no active instance of this script: then the script check
    // (DLF.6201), and the instance is terminal (answered unchanged) or not this script's (DLF.6205).
    const stopped = await this.runs.stop(instanceId, actor, owner);
    return stopped ?? (await this.getInstanceNow(ns, scriptName, instanceId));
  }

  /** An in-process run on this node writes RUNNING late (or never, when it ends first). */
  private withLiveState(instance: Instance): Instance {
    const state = liveState(this.runs, instance);
    return state === instance.state ? instance : { ...instance, state };
  }
}

/** Whether the instance is one of this script's (by id) in this namespace. */
function belongsTo(instance: Instance, ns: Namespace, scriptId: string): boolean {
  return (
    instance.scriptId === scriptId &&
    instance.namespace.projectId === ns.projectId &&
    instance.namespace.workspaceId === ns.workspaceId
  );
}

/** Limits the service enforces on execute's input. */
export interface ExecutionLimits {
  /** The server's instance timeout: the most a call's `timeoutSeconds` may ask for. */
  readonly instanceTimeoutMs: number;
}

/** What an execute answered: the instance id, and whether it is a repeat's (Idempotency-Key). */
export interface ExecuteOutcome {
  readonly instanceId: string;
  readonly replayed: boolean;
}

/** The first request's instance for a repeated key; a different request under the key is refused. */
function replayed(record: IdempotencyRecord, claim: IdempotencyClaim): ExecuteOutcome {
  if (record.requestHash !== claim.requestHash) throw new DlfError('OPENDLF.0640');
  return { instanceId: record.instanceId, replayed: true };
}

/**
 * How long a read waits for the settle of in-process work that was aborted (bounded: work that
 * ignores its interrupt for longer is shown as it is, RUNNING).
 */
const SETTLING_READ_WAIT_MS = 20;

/** SQL types are SQL; every other type gets the strictest rule (one word), Python's as Shell's. */
function contentKind(type: ScriptType): ParamContentKind {
  if (isSqlScriptType(type)) return 'sql';
  return type === 'Shell' ? 'shell' : 'python';
}
