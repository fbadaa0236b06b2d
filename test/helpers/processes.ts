/** Helpers to observe processes from outside the engine under test (via /proc). */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { runMembers } from '../../src/engines/local-process/process-tree.js';

/** The unprivileged OS user multi-user tests run local scripts as (`localEngine.runAs`); .ci/run creates it. */
export const RUNNER_USER = 'opendlf-runner';

/**
 * Creates RUNNER_USER when missing (so the tests also work before .ci/run did). Returns a reason to
 * skip when that is impossible: switching users needs the tests (the server) to run as root.
 */
export function ensureRunnerUser(): string | undefined {
  if (process.getuid?.() !== 0)
    return 'local scripts can switch to another OS user only when the server runs as root';
  try {
    execFileSync('id', [RUNNER_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', [
      '--system',
      '--create-home',
      '--home-dir',
      `/var/lib/${RUNNER_USER}`,
      '--shell',
      '/usr/sbin/nologin',
      RUNNER_USER,
    ]);
  }
  return undefined;
}

/** Resolves once the run has at least `count` live members (bounded; throws after 10 s). */
export async function waitForRunMembers(runId: number, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (runMembers(runId).length < count) {
    if (Date.now() > deadline) throw new Error(`run ${runId} never reached ${count} processes`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Live pids whose environment carries OPENDLF_INSTANCE_ID=<instanceId>: every process a local run
 * started (children inherit the environment), found without asking the server.
 */
export function processesOfInstance(instanceId: string): number[] {
  const needle = `OPENDLF_INSTANCE_ID=${instanceId}`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (environ.split('\0').includes(needle)) pids.push(Number(entry));
    } catch {
      // Exited while we looked, or not readable.
    }
  }
  return pids;
}

/** Waits (bounded, 10 s) until the instance has at least `count` live processes. */
export async function waitForInstanceProcesses(instanceId: string, count: number): Promise<number[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = processesOfInstance(instanceId);
    if (pids.length >= count) return pids;
    if (Date.now() > deadline) throw new Error(`instance ${instanceId} never reached ${count} processes`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
