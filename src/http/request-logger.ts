/**
 * The logger fastify gives each request (`request.log`), bound to the request id, created only when
 * the request logs something its level lets through. Fastify's default calls pino's `child()` for
 * every request: about 0.7 µs, as much as reading a script from memory and the largest cost left in
 * a GET script that a bare route does not have (bench/ profile under load). Most requests log
 * nothing through it: the access line goes through the server's logger with the id in its object
 * (app.ts), and the rest (errors, refused authentication, audit lines) are the exceptions. The lines
 * written are byte for byte what the pino child would write.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

type LogArguments = [obj: unknown, msg?: string, ...args: unknown[]];

/** Whether `level` is on for this logger; true when it cannot say (not pino), so nothing is dropped. */
export function levelEnabled(logger: FastifyBaseLogger, level: Level): boolean {
  const pino = logger as Partial<Pick<Logger, 'isLevelEnabled'>>;
  return typeof pino.isLevelEnabled === 'function' ? pino.isLevelEnabled(level) : true;
}

class RequestLogger implements FastifyBaseLogger {
  private created: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
  ) {}

  /** The child, made on first use (it takes the parent's level then, as pino's child does). */
  private made(): FastifyBaseLogger {
    return (this.created ??= this.parent.child(this.bindings));
  }

  /** Writes through the child when `level` is on; the arguments are passed on exactly as given. */
  private write(level: Level, args: LogArguments): void {
    if (!levelEnabled(this.created ?? this.parent, level)) return;
    const writer = this.made();
    Reflect.apply(writer[level], writer, args);
  }

  get level(): string {
    return (this.created ?? this.parent).level;
  }

  set level(level: string) {
    this.made().level = level;
  }

  fatal(...args: LogArguments): void {
    this.write('fatal', args);
  }
  error(...args: LogArguments): void {
    this.write('error', args);
  }
  warn(...args: LogArguments): void {
    this.write('warn', args);
  }
  info(...args: LogArguments): void {
    this.write('info', args);
  }
  debug(...args: LogArguments): void {
    this.write('debug', args);
  }
  trace(...args: LogArguments): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.made().child(bindings, options);
  }
}

/**
 * Fastify's `childLoggerFactory`. A route or plugin with a level or serializers of its own gets the
 * child at once, as from fastify's default factory.
 */
export function lazyRequestLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  if (options.level !== undefined || options.serializers !== undefined)
    return logger.child(bindings, options);
  return new RequestLogger(logger, bindings);
}
