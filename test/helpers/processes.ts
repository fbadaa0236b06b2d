/** Helpers to observe processes from outside the engine under test (via /proc). */
import { runMembers } from '../../src/engines/local-process/process-tree.js';

/** Resolves once the run has at least `count` live members (bounded; throws after 10 s). */
export async function waitForRunMembers(runId: number, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (runMembers(runId).length < count) {
    if (Date.now() > deadline) throw new Error(`run ${runId} never reached ${count} processes`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
