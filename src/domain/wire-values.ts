import { invalidParameter } from './dlf-error.js';

/**
 * GO and Terraform read `configuration` and `params` as map[string]string, so every value the API
 * stores in such a map is a string: scalars as `String(v)`, objects and arrays as JSON, null as "".
 */
export function toWireString(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    // JSON.stringify recurses: a value nested thousands of levels deep overflows the stack.
    throw invalidParameter('a value is nested too deeply');
  }
}

/**
 * `__proto__` cannot be a key of a plain-object map: assigning it changes the prototype (or is
 * silently ignored for a string value) instead of storing an entry, so it is refused.
 */
export function assertMapKey(key: string, field: string): void {
  if (key === '__proto__') throw invalidParameter(`${field} may not have a key named __proto__`);
}
