import assert from 'node:assert/strict';
import { waitForRunMembers } from '../helpers/processes.js';
import { runLocalProcessContract } from './local-process-contract.js';

runLocalProcessContract(
  'local shell',
  {
    name: 'local-shell',
    scriptTypes: ['Shell'],
    interpreter: 'bash',
    interpreterArgs: [],
    scriptFileName: 'script.sh',
  },
  {
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
    limits: { endlessOutput: 'while true; do echo 0123456789abcdef; done\n' },
    skip: { stopBetweenStatements: 'a Shell script is one process, not a list of statements' },
    waitUntilWorking: (handle) => waitForRunMembers(Number(handle?.runId), 2),
  },
);
