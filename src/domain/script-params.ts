/**
 * `${name}` substitution for execute's `params` (DIGEST §5.2): textual, only for names that have a
 * value, unknown placeholders left verbatim (shell scripts rely on `${HOME}` staying as it is).
 * EL (`#{…}`) in values is not evaluated yet.
 */
import { invalidParameter } from './dlf-error.js';
import { assertMapKey, toWireString } from './wire-values.js';

/** DataArts parameter names: ≤16 characters of letters, digits, `-`, `_`, `<`, `>`. */
export const PARAM_NAME_PATTERN = /^[A-Za-z0-9_<>-]{1,16}$/;
const MAX_PARAMS = 1000;

export type ScriptParams = Readonly<Record<string, string>>;

/** Validates execute's body. An absent/empty body means no params; values are coerced to strings. */
export function parseExecuteParams(body: unknown): ScriptParams {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw invalidParameter('the request body must be a JSON object');
  }
  const raw = (body as Record<string, unknown>).params;
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalidParameter('params must be an object');
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > MAX_PARAMS) throw invalidParameter(`at most ${MAX_PARAMS} params are allowed`);
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (!PARAM_NAME_PATTERN.test(name)) {
      throw invalidParameter(
        `parameter name '${name.slice(0, 64)}' must be 1-16 letters, digits, underscores, hyphens, < or >`,
      );
    }
    assertMapKey(name, 'params');
    out[name] = toWireString(value);
  }
  return out;
}

const PLACEHOLDER = /\$\{([A-Za-z0-9_<>-]{1,16})\}/g;

export function substituteParams(content: string, params: ScriptParams): string {
  if (Object.keys(params).length === 0) return content;
  return content.replace(PLACEHOLDER, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? (params[name] ?? whole) : whole,
  );
}
