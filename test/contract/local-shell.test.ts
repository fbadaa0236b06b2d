import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LocalProcessEngine,
  type LocalProcessEngineOptions,
} from '../../src/engines/local-process/local-process-engine.js';
import { resolveRunAsUser } from '../../src/engines/local-process/os-user.js';
import { runMembers } from '../../src/engines/local-process/process-tree.js';
import { runEngineContract } from './engine-contract.js';
import { ensureRunnerUser, RUNNER_USER, waitForRunMembers } from '../helpers/processes.js';

function contract(
  name: string,
  sandbox: Pick<LocalProcessEngineOptions, 'runAs' | 'workDirectory'>,
  teardown?: () => Promise<void>,
): void {
  runEngineContract({
    name,
    ...(teardown ? { teardown } : {}),
    createEngine: () =>
      new LocalProcessEngine({
        name: 'local-shell',
        scriptTypes: ['Shell'],
        interpreter: 'bash',
        interpreterArgs: [],
        scriptFileName: 'script.sh',
        ...sandbox,
      }),
    scriptType: 'Shell',
    succeeding: {
      content: 'echo hello\necho world >&2\n',
      check(results) {
        assert.equal(results.length, 1);
        assert.deepEqual(results[0]?.rows, [['hello'], ['world']]);
        assert.deepEqual(results[0]?.schema, [{ output: 'string' }]);
      },
    },
    failing: { content: 'echo about to fail\nexit 3\n', messageIncludes: 'exit code 3' },
    // A tree: background children, a nested subshell, nohup, a pipe.
    longRunning:
      'sleep 300 &\n( sleep 300 & sleep 300; ) &\nnohup sleep 300 >/dev/null 2>&1 &\nsleep 300 | cat &\nwhile true; do sleep 1; done\n',
    ignoresPoliteCancel: "trap '' TERM\n( trap '' TERM; sleep 300 ) &\nwhile true; do sleep 1; done\n",
    waitUntilWorking: (handle) => waitForRunMembers(Number(handle?.runId), 2),
    workGone: (handle) => Promise.resolve(runMembers(Number(handle?.runId)).length === 0),
  });
}

contract('local shell', {});

// The same contract as an unprivileged user (localEngine.runAs): the root server must still stop
// and recover the whole tree of another user's processes.
if (ensureRunnerUser() === undefined) {
  const workDirectory = join(tmpdir(), `opendlf-contract-work-shell-${process.pid}`);
  contract(`local shell as ${RUNNER_USER}`, { runAs: resolveRunAsUser(RUNNER_USER), workDirectory }, () => {
    rmSync(workDirectory, { recursive: true, force: true });
    return Promise.resolve();
  });
}
