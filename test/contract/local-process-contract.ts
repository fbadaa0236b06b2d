/**
 * The engine contract for a local-process engine (Shell, Python), run twice: as the server's own
 * user (single-user mode) and as the unprivileged `localEngine.runAs` user, where the root server
 * must still stop and recover the whole tree of another user's processes.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'node:test';
import {
  LocalProcessEngine,
  type LocalProcessEngineOptions,
} from '../../src/engines/local-process/local-process-engine.js';
import { resolveRunAsUser } from '../../src/engines/local-process/os-user.js';
import { runMembers } from '../../src/engines/local-process/process-tree.js';
import { ensureRunnerUser, RUNNER_USER } from '../helpers/processes.js';
import { runEngineContract, type EngineContractFixture } from './engine-contract.js';

export type LocalProcessCases = Omit<
  EngineContractFixture,
  'name' | 'createEngine' | 'workGone' | 'teardown' | 'recovery' | 'unreachable'
>;

export function runLocalProcessContract(
  label: string,
  engine: Omit<LocalProcessEngineOptions, 'runAs' | 'workDirectory'>,
  cases: LocalProcessCases,
): void {
  const contract = (
    name: string,
    sandbox: Pick<LocalProcessEngineOptions, 'runAs' | 'workDirectory'>,
    teardown?: () => Promise<void>,
  ) =>
    runEngineContract({
      ...cases,
      // A second engine of the same server scope stands for the next process (the default).
      recovery: {},
      skip: { ...cases.skip, unreachable: 'runs on this machine: there is no server to reach' },
      name,
      ...(teardown ? { teardown } : {}),
      createEngine: () => new LocalProcessEngine({ ...engine, ...sandbox }),
      workGone: (handle) => Promise.resolve(runMembers(Number(handle?.runId)).length === 0),
    });

  contract(label, {});
  const cannotSwitchUsers = ensureRunnerUser();
  if (cannotSwitchUsers !== undefined) {
    describe(`engine contract: ${label} as ${RUNNER_USER}`, { skip: cannotSwitchUsers }, () => {});
  } else {
    const workDirectory = join(tmpdir(), `opendlf-contract-work-${engine.name}-${process.pid}`);
    contract(`${label} as ${RUNNER_USER}`, { runAs: resolveRunAsUser(RUNNER_USER), workDirectory }, () => {
      rmSync(workDirectory, { recursive: true, force: true });
      return Promise.resolve();
    });
  }
}
