/**
 * Worker side of TreeObserver (lib.ts): for each `{ id, runId, timeoutMs }` request, snapshot the
 * run's members, answer `armed`, then poll synchronously until every member is dead and a full
 * runMembers scan agrees; answer `gone` with the absolute time of the poll that first saw it.
 */
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { runMembers } from '../src/engines/local-process/process-tree.js';

const POLL_MS = 0.25;
const pause = new Int32Array(new SharedArrayBuffer(4));
const now = () => performance.timeOrigin + performance.now();

function alive(pid: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

interface Request {
  id: number;
  runId: number;
  timeoutMs: number;
}

parentPort?.on('message', ({ id, runId, timeoutMs }: Request) => {
  let watched = runMembers(runId);
  parentPort?.postMessage({ id, kind: 'armed', at: now() });
  const deadline = now() + timeoutMs;
  for (;;) {
    watched = watched.filter(alive);
    if (watched.length === 0) {
      const at = now();
      const newcomers = runMembers(runId);
      if (newcomers.length === 0) {
        parentPort?.postMessage({ id, kind: 'gone', at });
        return;
      }
      watched = newcomers;
    }
    if (now() > deadline) {
      parentPort?.postMessage({ id, kind: 'gone', at: NaN, left: watched });
      return;
    }
    Atomics.wait(pause, 0, 0, POLL_MS);
  }
});
