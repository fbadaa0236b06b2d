/**
 * Workspace environment variables (an extension: DataArts keeps them in its console) and the
 * parameters of an execute: params and environment variables, `#{…}` evaluated, params first
 * (domain/el/parameter-resolver.ts).
 */
import { DlfError, invalidParameter } from '../domain/dlf-error.js';
import {
  assertValidTemplate,
  needsEnvironment,
  resolveExecutionParameters,
  type ResolvedParameters,
} from '../domain/el/parameter-resolver.js';
import { resolveTimeZone, type ElTimeZone } from '../domain/el/time-zone.js';
import { PARAM_NAME_PATTERN, type ScriptParams } from '../domain/script-params.js';
import type { Namespace } from '../domain/script.js';
import { assertMapKey, toWireString } from '../domain/wire-values.js';
import type { EnvironmentVariable, Store } from '../store/store.js';

export type { EnvironmentVariable } from '../store/store.js';

/** Variables one workspace may hold. */
export const MAX_ENVIRONMENT_VARIABLES = 1_000;
/** Characters of one value. */
export const MAX_ENVIRONMENT_VALUE_LENGTH = 65_536;

export class EnvironmentVariableService {
  private readonly zone: ElTimeZone;

  constructor(
    private readonly store: Store,
    options: { timeZone: string },
  ) {
    this.zone = resolveTimeZone(options.timeZone);
  }

  list(ns: Namespace): Promise<EnvironmentVariable[]> {
    return this.store.environmentVariables.list(ns);
  }

  async get(ns: Namespace, name: string): Promise<EnvironmentVariable> {
    const variable = await this.store.environmentVariables.get(ns, checkedName(name));
    if (!variable) throw new DlfError('OPENDLF.0621');
    return variable;
  }

  /** Creates or replaces `name` from a `{"value": …}` body. */
  async put(
    ns: Namespace,
    name: string,
    body: unknown,
  ): Promise<{ created: boolean; variable: EnvironmentVariable }> {
    checkedName(name);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw invalidParameter('the request body must be a JSON object with a value');
    }
    const raw = (body as Record<string, unknown>).value;
    if (raw === undefined || (typeof raw === 'object' && raw !== null)) {
      throw invalidParameter('value is required and must be a string');
    }
    const value = toWireString(raw);
    if (value.length > MAX_ENVIRONMENT_VALUE_LENGTH) {
      throw invalidParameter(`value must be at most ${MAX_ENVIRONMENT_VALUE_LENGTH} characters`);
    }
    // A `#{…}` that could never evaluate (syntax, unknown object or method) is refused now, not at the next execute.
    assertValidTemplate('environment variable', name, value);
    const outcome = await this.store.environmentVariables.put(
      ns,
      name,
      value,
      new Date(),
      MAX_ENVIRONMENT_VARIABLES,
    );
    if (outcome === 'limit') {
      throw invalidParameter(
        `a workspace may hold at most ${MAX_ENVIRONMENT_VARIABLES} environment variables`,
      );
    }
    return { created: outcome === 'created', variable: await this.get(ns, name) };
  }

  async delete(ns: Namespace, name: string): Promise<void> {
    if (!(await this.store.environmentVariables.delete(ns, checkedName(name))))
      throw new DlfError('OPENDLF.0621');
  }

  /**
   * The parameters of one execute of `script`, accepted `now`. Environment variables are read only
   * when the script or a `#{…}` may use them, so an execute that uses neither costs no store read.
   */
  async resolveForExecute(
    ns: Namespace,
    script: { name: string; content: string },
    params: ScriptParams,
    now: Date,
  ): Promise<ResolvedParameters> {
    const environment = needsEnvironment(script.content, params)
      ? new Map((await this.store.environmentVariables.list(ns)).map((v) => [v.name, v.value]))
      : new Map<string, string>();
    return resolveExecutionParameters({
      content: script.content,
      params,
      environment,
      binding: { zone: this.zone, now, scriptName: script.name, projectId: ns.projectId },
    });
  }
}

/** DataArts' rule for parameter names: 1-16 letters, digits, `_`, `-`, `<`, `>`. */
function checkedName(name: string): string {
  if (!PARAM_NAME_PATTERN.test(name)) {
    throw invalidParameter(
      `environment variable name '${name.slice(0, 64)}' must be 1-16 letters, digits, underscores, hyphens, < or >`,
    );
  }
  assertMapKey(name, 'environment variables');
  return name;
}
