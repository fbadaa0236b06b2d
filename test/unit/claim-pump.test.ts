/**
 * ClaimPump: a claim waits for the stop requests being written when it starts, so a queued
 * instance whose stop write began before the claim is never taken by it (the store's guarded
 * stop settles it first). No store: the claim is a function that records when it is called.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { ClaimPump } from '../../src/runner/claim-pump.js';
import type { ClaimedRun } from '../../src/store/store.js';

function pumpWith(stopWritesEnded: () => Promise<void> | undefined) {
  const claims: number[] = [];
  const tasks: Promise<void>[] = [];
  const pump = new ClaimPump(
    {
      claim: () => {
        claims.push(claims.length);
        return Promise.resolve([] as ClaimedRun[]);
      },
    },
    { nodeId: 'node-a', leaseMs: 30_000, shared: false },
    () => 1,
    () => undefined,
    (task) => void tasks.push(task()),
    pino({ level: 'silent' }),
    { storeError: () => undefined },
    stopWritesEnded,
  );
  return { pump, claims, settled: () => Promise.all(tasks) };
}

describe('ClaimPump', () => {
  it('claims at once when no stop request is being written', async () => {
    const { pump, claims, settled } = pumpWith(() => undefined);
    pump.pump();
    await settled();
    assert.equal(claims.length, 1);
  });

  it('does not send a claim until the stop writes in flight have ended', async () => {
    let endWrites: () => void = () => undefined;
    const writes = new Promise<void>((resolve) => (endWrites = resolve));
    let inFlight = true;
    const { pump, claims, settled } = pumpWith(() => (inFlight ? writes : undefined));
    pump.pump();
    // Several turns of the event loop: the claim must still be waiting for the writes.
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(claims.length, 0, 'a claim was sent while a stop write was in flight');
    inFlight = false;
    endWrites();
    await settled();
    assert.equal(claims.length, 1);
  });

  it('also waits for a stop write that began while it was waiting for earlier ones', async () => {
    const pending = new Set<Promise<void>>();
    const ends: (() => void)[] = [];
    const startWrite = () => {
      const write = new Promise<void>((resolve) => ends.push(resolve));
      pending.add(write);
      void write.then(() => pending.delete(write));
    };
    const { pump, claims, settled } = pumpWith(() =>
      pending.size > 0 ? Promise.allSettled([...pending]).then(() => undefined) : undefined,
    );
    startWrite();
    pump.pump();
    await new Promise((resolve) => setImmediate(resolve));
    // A second stop arrives while the claim waits for the first; then the first write ends.
    startWrite();
    ends[0]?.();
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(claims.length, 0, 'a claim was sent while the later stop write was in flight');
    ends[1]?.();
    await settled();
    assert.equal(claims.length, 1);
  });
});
