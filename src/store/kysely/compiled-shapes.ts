/**
 * Compiled SQL kept per query shape, for the statements every run makes (the instance insert and
 * its guarded transitions). Kysely builds and compiles a query on every call — for the instance
 * insert ~30 µs, a transition ~15 µs, measured in a scratch bench — while the text depends only on
 * the dialect and which columns are set: the shape. The first call of a shape builds the query with
 * a placeholder for each argument and records, for each compiled parameter, which argument it is;
 * later calls only put their arguments in those places.
 */
import { CompiledQuery, type Compilable } from 'kysely';

interface Shape {
  readonly sql: string;
  /** Per compiled parameter: the index of the argument it is, or a constant the builder wrote. */
  readonly slots: readonly ({ readonly argument: number } | { readonly constant: unknown })[];
}

/** Bounds the map if a caller ever builds unbounded shapes (each distinct key is one entry). */
const MAX_SHAPES = 256;

const placeholder = (index: number) => `\u0000opendlf-argument-${index}\u0000`;

export class CompiledShapes {
  private readonly shapes = new Map<string, Shape>();

  /**
   * The compiled query of `build(arguments)`: `key` must name everything but the arguments that
   * changes the SQL text (dialect, columns, list lengths), and each argument must be a final
   * parameter value (build may not transform it). A shape whose arguments are not all parameters is
   * compiled anew each time.
   */
  compile(
    key: string,
    args: readonly unknown[],
    build: (args: readonly unknown[]) => Compilable,
  ): CompiledQuery {
    let shape = this.shapes.get(key);
    if (shape === undefined) {
      const placeholders = args.map((_, index) => placeholder(index));
      const compiled = build(placeholders).compile();
      // An argument written into the text instead of passed as a parameter: not a cacheable shape.
      if (compiled.sql.includes('\u0000')) return build(args).compile();
      const slots = compiled.parameters.map((parameter) => {
        const argument = typeof parameter === 'string' ? placeholders.indexOf(parameter) : -1;
        return argument >= 0 ? { argument } : { constant: parameter };
      });
      shape = { sql: compiled.sql, slots };
      if (this.shapes.size >= MAX_SHAPES) this.shapes.clear();
      this.shapes.set(key, shape);
    }
    return CompiledQuery.raw(
      shape.sql,
      shape.slots.map((slot) => ('argument' in slot ? args[slot.argument] : slot.constant)),
    );
  }
}
