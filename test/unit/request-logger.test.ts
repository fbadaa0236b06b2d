/**
 * The lazy request logger writes exactly the lines pino's child would write, and makes the child only
 * when a line passes the level.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino, { type Logger } from 'pino';
import { lazyRequestLogger } from '../../src/http/request-logger.js';

function capturing(level: string): { logger: Logger; lines: string[]; children: () => number } {
  const lines: string[] = [];
  const logger = pino(
    { level, timestamp: false, base: undefined },
    { write: (line: string) => lines.push(line) },
  );
  let children = 0;
  const child = logger.child.bind(logger);
  logger.child = ((...args: Parameters<Logger['child']>) => {
    children += 1;
    return child(...args);
  }) as Logger['child'];
  return { logger, lines, children: () => children };
}

describe('lazyRequestLogger', () => {
  it("writes what pino's child writes, for every way of calling it", () => {
    const eager = capturing('trace');
    const lazy = capturing('trace');
    const bindings = { reqId: 'r-1' };
    const eagerChild = eager.logger.child(bindings);
    const lazyChild = lazyRequestLogger(lazy.logger, bindings, {});
    for (const log of [eagerChild, lazyChild]) {
      log.info('plain message');
      log.warn({ route: '/v1/x', statusCode: 401 }, 'refused %s', 'twice');
      log.error({ err: new Error('boom') }, 'failed');
      log.debug({ only: 'object' });
      log.trace('with %d args %s', 2, 'here');
      log.fatal('last');
      log.child({ instanceId: 'i-1' }).info('from a grandchild');
    }
    assert.ok(eager.lines.length >= 7);
    assert.deepEqual(lazy.lines, eager.lines);
  });

  it('makes no child for lines below the level, and one for the first line that passes', () => {
    const { logger, lines, children } = capturing('warn');
    const log = lazyRequestLogger(logger, { reqId: 'r-2' }, {});
    log.info('dropped');
    log.debug({ a: 1 }, 'dropped');
    assert.equal(children(), 0);
    assert.equal(log.level, 'warn');
    log.warn('kept');
    log.error('kept too');
    assert.equal(children(), 1);
    assert.deepEqual(
      lines.map((l) => JSON.parse(l) as Record<string, unknown>).map(({ reqId, msg }) => ({ reqId, msg })),
      [
        { reqId: 'r-2', msg: 'kept' },
        { reqId: 'r-2', msg: 'kept too' },
      ],
    );
  });

  it('a level set on the request logger applies to it alone', () => {
    const { logger, lines } = capturing('warn');
    const log = lazyRequestLogger(logger, { reqId: 'r-3' }, {});
    log.level = 'debug';
    log.debug('now written');
    logger.debug('not by the parent');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
      ['now written'],
    );
  });
});
