/**
 * Parameters of one execute: the caller's `params` and the workspace's environment variables,
 * each value's `#{…}` evaluated, merged with DataArts' priority (execute params over environment
 * variables of the same name). Environment variables are evaluated only when used — by a `${name}`
 * of the script that no param supplies, by `Env.get`, or by `Job.getParam` — each at most once, and
 * a variable that refers back to itself is an error naming the chain.
 */
import { DlfError } from '../dlf-error.js';
import { placeholderNames, type ScriptParams } from '../script-params.js';
import type { ElContext } from './builtins.js';
import { ElError } from './el-error.js';
import { Evaluator, validateNode } from './evaluator.js';
import { hasExpression, parseTemplate, type TemplatePart } from './parser.js';
import type { ElTimeZone } from './time-zone.js';

export interface ExecutionBinding {
  readonly zone: ElTimeZone;
  /** When the execute was accepted: Job.planTime, Job.startTime and DateUtil.now(). */
  readonly now: Date;
  /** Job.name: the script's name (a script run directly is its own job). */
  readonly scriptName: string;
  readonly projectId: string;
}

export interface ResolvedParameters {
  /** What `${name}` is substituted from: the used environment variables, then every param over them. */
  readonly values: Readonly<Record<string, string>>;
  /** The caller's params, evaluated (what a caller without write must pass as data). */
  readonly fromCaller: Readonly<Record<string, string>>;
}

type Source = 'parameter' | 'environment variable';

/** How deep values may refer to values (Env.get, Job.getParam) before it is an error. */
export const MAX_REFERENCE_DEPTH = 32;

/** The DlfError for an EL problem in a named value. */
function elFailure(source: Source, name: string, value: string, error: ElError): DlfError {
  const at = error.position;
  const where =
    at === undefined
      ? ''
      : ` at position ${at} of '${value.length > 120 ? `${value.slice(Math.max(0, at - 40), at + 40)}` : value}'`;
  return new DlfError(
    'OPENDLF.0620',
    `The EL expression in ${source} '${name}' is invalid: ${error.message}${where}.`,
  );
}

/** Parses and checks a value that may hold `#{…}` (an environment variable being saved). */
export function assertValidTemplate(source: Source, name: string, value: string): void {
  if (!hasExpression(value)) return;
  try {
    for (const part of parseTemplate(value)) if (part.kind === 'expression') validateNode(part.node);
  } catch (error) {
    if (error instanceof ElError) throw elFailure(source, name, value, error);
    throw error;
  }
}

/** True when resolving needs the environment variables (so the caller may skip reading them otherwise). */
export function needsEnvironment(content: string, params: ScriptParams): boolean {
  if (Object.values(params).some(hasExpression)) return true;
  for (const name of placeholderNames(content))
    if (!Object.prototype.hasOwnProperty.call(params, name)) return true;
  return false;
}

export function resolveExecutionParameters(input: {
  content: string;
  params: ScriptParams;
  environment: ReadonlyMap<string, string>;
  binding: ExecutionBinding;
}): ResolvedParameters {
  const { params, environment, binding } = input;
  // The common case: no environment variables to merge and no `#{` anywhere.
  if (environment.size === 0 && !Object.values(params).some(hasExpression)) {
    return { values: params, fromCaller: params };
  }
  const done = new Map<string, string>();
  const inProgress: string[] = [];

  const evaluate = (source: Source, name: string, raw: string): string => {
    const key = `${source}:${name}`;
    const known = done.get(key);
    if (known !== undefined) return known;
    if (!hasExpression(raw)) {
      done.set(key, raw);
      return raw;
    }
    if (inProgress.includes(key)) {
      const chain = [...inProgress.slice(inProgress.indexOf(key)), key]
        .map((k) => k.split(':')[1])
        .join(' → ');
      throw new DlfError(
        'OPENDLF.0620',
        `The EL expression in ${source} '${name}' is invalid: it refers back to itself (${chain}).`,
      );
    }
    // Each level is a nested evaluation on the stack: a long chain of variables is refused, not a stack overflow.
    if (inProgress.length >= MAX_REFERENCE_DEPTH) {
      throw new DlfError(
        'OPENDLF.0620',
        `The EL expression in ${source} '${name}' is invalid: values refer to other values more than ${MAX_REFERENCE_DEPTH} levels deep.`,
      );
    }
    inProgress.push(key);
    try {
      let parts: TemplatePart[];
      let value: string;
      try {
        parts = parseTemplate(raw);
        value = new Evaluator(context).render(parts);
      } catch (error) {
        if (error instanceof ElError) throw elFailure(source, name, raw, error);
        throw error;
      }
      done.set(key, value);
      return value;
    } finally {
      inProgress.pop();
    }
  };

  const envValue = (name: string): string | null => {
    const raw = environment.get(name);
    return raw === undefined ? null : evaluate('environment variable', name, raw);
  };

  const now = binding.now.getTime();
  const context: ElContext = {
    zone: binding.zone,
    now,
    job: { name: binding.scriptName, projectId: binding.projectId, planTime: now, startTime: now },
    env: envValue,
    param: (name) => {
      const raw = Object.prototype.hasOwnProperty.call(params, name) ? params[name] : undefined;
      return raw === undefined ? envValue(name) : evaluate('parameter', name, raw);
    },
  };

  const fromCaller: Record<string, string> = {};
  for (const [name, raw] of Object.entries(params)) fromCaller[name] = evaluate('parameter', name, raw);
  const values: Record<string, string> = {};
  for (const name of placeholderNames(input.content)) {
    // `__proto__` can be no variable's name (names are checked when saved) and no key of a plain object.
    if (name === '__proto__' || Object.prototype.hasOwnProperty.call(fromCaller, name)) continue;
    const value = envValue(name);
    if (value !== null) values[name] = value;
  }
  Object.assign(values, fromCaller);
  return { values, fromCaller };
}
