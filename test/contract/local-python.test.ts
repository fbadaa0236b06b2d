import assert from 'node:assert/strict';
import { waitForRunMembers } from '../helpers/processes.js';
import { runLocalProcessContract } from './local-process-contract.js';

runLocalProcessContract(
  'local python',
  {
    name: 'local-python',
    scriptTypes: ['PYTHON'],
    interpreter: 'python3',
    interpreterArgs: ['-u'],
    scriptFileName: 'script.py',
    env: { PYTHONUNBUFFERED: '1' },
  },
  {
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
    limits: { endlessOutput: 'while True:\n    print("0123456789abcdef")\n' },
    skip: { stopBetweenStatements: 'a Python script is one process, not a list of statements' },
    waitUntilWorking: (handle) => waitForRunMembers(Number(handle?.runId), 1),
  },
);
