/**
 * `${name}` substitution for execute's `params` (docs/compatibility.md §4): textual, only for names
 * that have a value, unknown placeholders left verbatim (shell scripts rely on `${HOME}` staying as
 * it is). EL (`#{…}`) in values is evaluated before substitution (el/parameter-resolver.ts).
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

/** The names of the `${name}` placeholders in a script. */
export function placeholderNames(content: string): Set<string> {
  return new Set([...content.matchAll(PLACEHOLDER)].map((m) => m[1] ?? ''));
}

export function substituteParams(content: string, params: ScriptParams): string {
  if (Object.keys(params).length === 0) return content;
  return content.replace(PLACEHOLDER, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? (params[name] ?? whole) : whole,
  );
}

/**
 * Values from a caller who may not change the script (no `write` in the workspace: operator,
 * deployer) are data, never code. DataArts substitutes `${name}` verbatim before statements are
 * split, so an unchecked value could add statements (`1; drop table t`), comments (`1 -- x`),
 * quotes (`' or 1=1`), commands (`x; id`, `$(id)`, backticks, a newline) or arguments. Writers keep
 * verbatim substitution: they could put the same text in the script itself.
 *
 * Every value of such a caller must be at most {@link MAX_DATA_VALUE_LENGTH} characters of
 * {@link DATA_VALUE_CHARACTERS}, never contain `--` or `..`, and not start or end with `-`
 * (a `-` next to one in the script makes `--`; a leading `-` is an option to a command). Then, by
 * where the script uses it:
 *  - SQL: inside a single-quoted string literal any such value is allowed (it cannot end the
 *    literal); anywhere else it could be an identifier or keyword (`id`, `1 or 1=1`), so only an
 *    unsigned number is allowed there. From a literal holding a backslash on, everything counts as
 *    "anywhere else" (MySQL reads `\'` as an escaped quote, PostgreSQL does not).
 *  - Shell and Python: no spaces either, so a value is one word/token (no extra arguments).
 */
export const DATA_VALUE_CHARACTERS = 'letters, digits, space, and _ . , : / + @ = -';
const DATA_VALUE = /^[A-Za-z0-9 _.,:/+@=-]*$/;
const SINGLE_WORD_DATA_VALUE = /^[A-Za-z0-9_.,:/+@=-]*$/;
const UNSIGNED_NUMBER = /^[0-9]{1,32}(\.[0-9]{1,32})?$/;
export const MAX_DATA_VALUE_LENGTH = 256;

export type ParamContentKind = 'sql' | 'shell' | 'python';

function refuse(name: string, why: string): never {
  throw invalidParameter(
    `parameter '${name}' is refused: ${why}. Callers without write permission on the script may pass ` +
      `values of at most ${MAX_DATA_VALUE_LENGTH} characters of ${DATA_VALUE_CHARACTERS} (no spaces in ` +
      `Shell and Python scripts), not starting or ending with '-', without '--' or '..'; in SQL, outside a ` +
      `'quoted' string literal, only an unsigned number`,
  );
}

/** Throws DLF.3051 naming the first parameter whose value could change the code that runs. */
export function assertParamsAreData(kind: ParamContentKind, content: string, params: ScriptParams): void {
  const names = Object.keys(params);
  if (names.length === 0) return;
  const placesInCode = kind === 'sql' ? sqlPlaceholdersOutsideStrings(content) : new Set<string>();
  for (const name of names) {
    const value = params[name] ?? '';
    if (value.length > MAX_DATA_VALUE_LENGTH) refuse(name, 'the value is too long');
    const allowed = kind === 'sql' ? DATA_VALUE : SINGLE_WORD_DATA_VALUE;
    if (!allowed.test(value)) refuse(name, 'the value holds a character that is not allowed');
    if (value.includes('--') || value.includes('..')) refuse(name, "the value holds '--' or '..'");
    if (value.startsWith('-') || value.endsWith('-')) refuse(name, "the value starts or ends with '-'");
    if (placesInCode.has(name) && !UNSIGNED_NUMBER.test(value)) {
      refuse(name, 'the script uses it outside a quoted string, where only an unsigned number is allowed');
    }
  }
}

/**
 * Names of `${name}` placeholders that occur in SQL anywhere but inside a plain single-quoted string
 * literal or a comment: in code, in "identifiers", `backticks` or $tag$ bodies $tag$ (function
 * bodies are code), or from a literal that holds a backslash on. Conservative: an unterminated
 * literal or comment counts as code.
 */
export function sqlPlaceholdersOutsideStrings(content: string): Set<string> {
  const inCode = new Set<string>();
  const placeholdersIn = (text: string) => [...text.matchAll(PLACEHOLDER)].map((m) => m[1] ?? '');
  let i = 0;
  let codeStart = 0;
  const flushCode = (end: number) => {
    for (const name of placeholdersIn(content.slice(codeStart, end))) inCode.add(name);
  };
  while (i < content.length) {
    const c = content[i];
    const next = content[i + 1];
    let end = -1; // end (exclusive) of a literal/comment starting at i; -1: not one
    let safe = false; // whether placeholders inside it are data
    if (c === "'") {
      let j = i + 1;
      for (;;) {
        const q = content.indexOf("'", j);
        if (q === -1) break;
        if (content[q + 1] === "'") {
          j = q + 2;
          continue;
        }
        end = q + 1;
        break;
      }
      // With a backslash inside, where the literal ends depends on the dialect (MySQL: `\'` is an
      // escaped quote): nothing after its start can be trusted to be inside a literal.
      const ambiguous = end !== -1 && content.slice(i, end).includes('\\');
      if (ambiguous) end = content.length;
      safe = end !== -1 && !ambiguous;
    } else if (c === '"' || c === '`') {
      // Quoted identifiers are code; skipped whole so a quote inside one starts no literal.
      const close = content.indexOf(c, i + 1);
      end = close === -1 ? content.length : close + 1;
    } else if ((c === '-' && next === '-') || c === '#') {
      // MySQL reads `--` as a comment only before whitespace (`5--${x}` is 5 minus minus x) and `#`
      // as a comment where PostgreSQL reads an operator: only `-- ` is data in every dialect.
      const nl = content.indexOf('\n', i);
      end = nl === -1 ? content.length : nl;
      safe = c === '-' && /^--\s/.test(content.slice(i, i + 3));
    } else if (c === '/' && next === '*') {
      const close = content.indexOf('*/', i + 2);
      end = close === -1 ? content.length : close + 2;
      // Nested block comments (PostgreSQL) may close later than this, and MySQL runs `/*! … */`
      // and reads `/*+ … */` as hints: those count as code.
      const body = content.slice(i + 2, close === -1 ? content.length : close);
      safe = close !== -1 && !body.includes('/*') && !/^[!+]/.test(body);
    } else if (c === '$' && next !== '{') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(content.slice(i));
      if (tag) {
        const close = content.indexOf(tag[0], i + tag[0].length);
        end = close === -1 ? content.length : close + tag[0].length;
      }
    }
    if (end === -1) {
      i += 1;
      continue;
    }
    flushCode(i);
    if (!safe) for (const name of placeholdersIn(content.slice(i, end))) inCode.add(name);
    i = end;
    codeStart = end;
  }
  flushCode(content.length);
  return inCode;
}
