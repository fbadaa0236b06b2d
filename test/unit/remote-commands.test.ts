import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  isPreparedRunDir,
  keptDirOf,
  keptShellSetupCommand,
  prepareRunDirCommand,
  removeKeptDirCommand,
} from '../../src/engines/ssh/remote-commands.js';

/** Feeds `input` to a POSIX shell with TMPDIR set; resolves with its stdout once it exited. */
function runShell(shell: string, input: string, tmp: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(shell, [], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('close', () => resolve(out));
    child.stdin.end(input);
  });
}

/** The remote shells these commands must work with that this machine has. */
const shells = ['/usr/bin/dash', '/bin/bash'];

describe("the kept shell's run directories", () => {
  for (const shell of shells) {
    it(`${shell}: a prepared directory is handed out, and nothing is left once the shell exits`, async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'opendlf-kept-shell-'));
      try {
        const out = await runShell(
          shell,
          `${keptShellSetupCommand()}${prepareRunDirCommand()}wait\nexit 0\n`,
          tmp,
        );
        const [announced, prepared, ...rest] = out.split('\n');
        const keptDir = keptDirOf(announced ?? '');
        assert.ok(
          keptDir?.startsWith(`${tmp}/opendlf.`),
          `the shell announces its directory: ${JSON.stringify(out)}`,
        );
        assert.equal(isPreparedRunDir(prepared ?? ''), true, `a prepared directory: ${JSON.stringify(out)}`);
        assert.equal(prepared?.startsWith(`${keptDir}/run.`), true, prepared);
        assert.deepEqual(rest, ['']);
        assert.deepEqual(readdirSync(tmp), []);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it(`${shell}: a shell that exits while its prepare is still running leaves nothing behind`, async () => {
      // The EXIT trap raced the background mktemp: `rm -rf` emptied the shell's directory, mktemp
      // then created its run directory in it, and rmdir failed. Before the trap waited for the job,
      // 300 shells one after another left 2 such pairs with dash; 10 at a time, as here, left some
      // in every run with dash and bash alike.
      const tmp = mkdtempSync(join(tmpdir(), 'opendlf-kept-shell-'));
      try {
        const input = `${keptShellSetupCommand()}${prepareRunDirCommand()}exit 0\n`;
        for (let batch = 0; batch < 20; batch++) {
          await Promise.all(Array.from({ length: 10 }, () => runShell(shell, input, tmp)));
        }
        const left = readdirSync(tmp);
        assert.deepEqual(
          left.map((name) => `${name}: ${readdirSync(join(tmp, name)).join(', ')}`),
          [],
          'directories left behind',
        );
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it(`${shell}: a shell whose output is gone still removes its directory`, async () => {
      // A channel closed under the shell: its writes fail. SIGPIPE would kill it with its trap unrun.
      const tmp = mkdtempSync(join(tmpdir(), 'opendlf-kept-shell-'));
      try {
        const child = spawn(shell, [], {
          env: { ...process.env, TMPDIR: tmp },
          stdio: ['pipe', 'pipe', 'ignore'],
        });
        const closed = new Promise<NodeJS.Signals | null>((resolve) =>
          child.on('close', (_code, signal) => resolve(signal)),
        );
        child.stdout.destroy();
        child.stdin.end(`${keptShellSetupCommand()}${prepareRunDirCommand()}echo still here\n`);
        // Its last echo failed (exit status 1), but no signal ended it.
        assert.equal(await closed, null, 'the signal that ended the shell');
        assert.deepEqual(readdirSync(tmp), [], 'directories left behind');
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  }

  it("removes only what looks like a kept shell's directory", () => {
    assert.equal(removeKeptDirCommand('/tmp/opendlf.AbCdEfGh12'), "rm -rf -- '/tmp/opendlf.AbCdEfGh12'");
    for (const dir of [
      '/tmp',
      '/tmp/opendlf.AbCdEfGh12/run.AbCdEfGh12',
      '/tmp/opendlf.short',
      'relative/opendlf.AbCdEfGh12',
    ]) {
      assert.throws(() => removeKeptDirCommand(dir), /not a kept shell's directory/, dir);
    }
    assert.equal(keptDirOf('OPENDLF_KEPT_DIR=/tmp/opendlf.AbCdEfGh12/run.AbCdEfGh12'), undefined);
    assert.equal(keptDirOf('/tmp/opendlf.AbCdEfGh12'), undefined);
  });
});
