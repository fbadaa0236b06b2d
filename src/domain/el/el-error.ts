/**
 * An EL expression that cannot be parsed or evaluated. Internal to src/domain/el: the entry points
 * (el-resolver.ts) turn it into a DlfError naming the parameter or environment variable.
 */
export class ElError extends Error {
  constructor(
    message: string,
    /** Offset in the expression source where the problem is, when known. */
    readonly position?: number,
  ) {
    super(message);
    this.name = 'ElError';
  }
}
