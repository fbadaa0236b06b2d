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
        name: 'local-python',
        scriptTypes: ['PYTHON'],
        interpreter: 'python3',
        interpreterArgs: ['-u'],
        scriptFileName: 'script.py',
        env: { PYTHONUNBUFFERED: '1' },
        ...sandbox,
      }),
    scriptType: 'PYTHON',
    succeeding: {
      content: 'import sys\nprint("hello")\nprint(6 * 7)\n',
      check(results) {
        assert.deepEqual(results[0]?.rows, [['hello'], ['42']]);
      },
    },
    failing: { content: 'raise ValueError("broken input")\n', messageIncludes: 'broken input' },
    // A Python script that starts a child process tree and waits.
    longRunning:
      'import subprocess, time\nsubprocess.Popen(["sleep", "300"])\nsubprocess.Popen("sleep 300 | cat", shell=True)\ntime.sleep(300)\n',
    ignoresPoliteCancel:
      'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    time.sleep(1)\n',
    waitUntilWorking: (handle) => waitForRunMembers(Number(handle?.runId), 1),
    workGone: (handle) => Promise.resolve(runMembers(Number(handle?.runId)).length === 0),
  });
}

contract('local python', {});

// The same contract as an unprivileged user (localEngine.runAs): the root server must still stop
// and recover the whole tree of another user's processes.
if (ensureRunnerUser() === undefined) {
  const workDirectory = join(tmpdir(), `opendlf-contract-work-python-${process.pid}`);
  contract(`local python as ${RUNNER_USER}`, { runAs: resolveRunAsUser(RUNNER_USER), workDirectory }, () => {
    rmSync(workDirectory, { recursive: true, force: true });
    return Promise.resolve();
  });
}
