/**
 * GO and Terraform read `configuration` and `params` as map[string]string, so every value the API
 * stores in such a map is a string: scalars as `String(v)`, objects and arrays as JSON, null as "".
 */
export function toWireString(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value) ?? '';
}
