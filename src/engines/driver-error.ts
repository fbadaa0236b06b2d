/**
 * One readable line for an error thrown by a database driver or the socket under it. Node reports a
 * failed connect to a host name with several addresses (`localhost` → ::1 and 127.0.0.1) as an
 * AggregateError whose own message is empty; the useful text is in its inner errors.
 */
export function describeDriverError(error: unknown): string {
  if (error instanceof AggregateError && !error.message) {
    const inner = error.errors.map((e: unknown) => describeDriverError(e)).filter((m) => m.length > 0);
    if (inner.length > 0) return [...new Set(inner)].join('; ');
  }
  if (error instanceof Error) {
    if (error.message) return error.message;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    return error.name;
  }
  return String(error);
}
