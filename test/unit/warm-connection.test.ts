/**
 * The warm control connection of the SQL engines (the polite stop step goes through it) against a
 * fake driver: opened by the first run, one at a time, reopened after it is lost, closed when idle
 * or when the engine closes — also when it arrives after the close.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WarmConnection, type WarmConnectionDriver } from '../../src/engines/warm-connection.js';

interface FakeConnection {
  readonly id: number;
  closed: boolean;
  lose?: () => void;
}

class FakeDriver implements WarmConnectionDriver<FakeConnection> {
  opened: FakeConnection[] = [];
  failNext = false;
  private pending: Array<{ resolve: (c: FakeConnection) => void; reject: (e: Error) => void }> = [];

  open(): Promise<FakeConnection> {
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  /** Lets the oldest open() finish (or fail when `failNext`). */
  async settleOpen(): Promise<FakeConnection | undefined> {
    const next = this.pending.shift();
    assert.ok(next, 'an open() is pending');
    if (this.failNext) {
      this.failNext = false;
      next.reject(new Error('connect refused'));
      await Promise.resolve();
      return undefined;
    }
    const connection: FakeConnection = { id: this.opened.length + 1, closed: false };
    this.opened.push(connection);
    next.resolve(connection);
    await new Promise((resolve) => setImmediate(resolve));
    return connection;
  }

  get pendingOpens(): number {
    return this.pending.length;
  }

  onLost(connection: FakeConnection, lost: () => void): void {
    connection.lose = lost;
  }

  close(connection: FakeConnection): void {
    connection.closed = true;
  }
}

describe('WarmConnection', () => {
  it('opens on the first warm(), once, and hands the open connection out', async () => {
    const driver = new FakeDriver();
    const warm = new WarmConnection(driver, 60_000);
    assert.equal(warm.ready(), undefined);
    warm.warm();
    warm.warm();
    assert.equal(driver.pendingOpens, 1, 'a second warm() while opening opens nothing');
    assert.equal(warm.ready(), undefined, 'not ready before the connect finished');
    const connection = await driver.settleOpen();
    assert.equal(warm.ready(), connection);
    warm.warm();
    assert.equal(driver.pendingOpens, 0, 'warm() on an open connection opens nothing');
    warm.close();
  });

  it('forgets a lost connection and opens a new one on the next warm()', async () => {
    const driver = new FakeDriver();
    const warm = new WarmConnection(driver, 60_000);
    warm.warm();
    const first = await driver.settleOpen();
    first?.lose?.();
    assert.equal(warm.ready(), undefined);
    assert.equal(first?.closed, true);
    warm.warm();
    const second = await driver.settleOpen();
    assert.notEqual(second, first);
    assert.equal(warm.ready(), second);
    warm.close();
  });

  it('a failed open leaves it not ready, and the next warm() tries again', async () => {
    const driver = new FakeDriver();
    const warm = new WarmConnection(driver, 60_000);
    driver.failNext = true;
    warm.warm();
    await driver.settleOpen();
    assert.equal(warm.ready(), undefined);
    warm.warm();
    const connection = await driver.settleOpen();
    assert.equal(warm.ready(), connection);
    warm.close();
  });

  it('closes the connection once no run warmed it for the idle time', async () => {
    const driver = new FakeDriver();
    const warm = new WarmConnection(driver, 20);
    warm.warm();
    const connection = await driver.settleOpen();
    while (warm.ready() !== undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(connection?.closed, true);
    warm.close();
  });

  it('close() closes the open connection and one that arrives later', async () => {
    const driver = new FakeDriver();
    const warm = new WarmConnection(driver, 60_000);
    warm.warm();
    const open = await driver.settleOpen();
    warm.close();
    assert.equal(open?.closed, true);
    assert.equal(warm.ready(), undefined);

    const late = new WarmConnection(driver, 60_000);
    late.warm();
    late.close();
    const arrived = await driver.settleOpen();
    assert.equal(arrived?.closed, true, 'a connection that arrives after close() is closed');
    assert.equal(late.ready(), undefined);
    late.warm();
    assert.equal(driver.pendingOpens, 0, 'nothing opens after close()');
  });
});
