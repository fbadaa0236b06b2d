import { invalidParameter } from './dlf-error.js';

/**
 * A non-negative integer query parameter within [min, max]; absent or empty ⇒ `fallback`.
 * Anything else (signs, decimals, exponents, out of range) ⇒ DLF.3051 naming the parameter.
 */
export function integerParam(
  name: string,
  raw: string | undefined,
  min: number,
  max: number,
  fallback: number,
): number {
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw invalidParameter(`${name} must be an integer from ${min} to ${max}`);
  }
  return Number(raw);
}
