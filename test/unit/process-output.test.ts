import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LocalProcessEngine } from '../../src/engines/local-process/local-process-engine.js';
import { formatBytes, ProcessOutput, type OutputProblem } from '../../src/engines/process-output.js';

const dir = mkdtempSync(join(tmpdir(), 'opendlf-process-output-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const limits = (maxOutputBytes: number) => ({
  maxResultRows: 1000,
  maxOutputBytes,
  maxResultOutputBytes: 1024 * 1024,
});

/** A run directory whose output.log is /dev/full: every write fails with ENOSPC, like a full disk. */
function fullDiskRunDir(): string {
  const runDir = join(dir, `full-${++seq}`);
  mkdirSync(runDir);
  symlinkSync('/dev/full', join(runDir, 'output.log'));
  return runDir;
}

describe('formatBytes', () => {
  it('names exact binary units, never rounding a limit down to 0', () => {
    assert.equal(formatBytes(64 * 1024), '64 KiB');
    assert.equal(formatBytes(30 * 1024 * 1024), '30 MiB');
    assert.equal(formatBytes(2 * 1024 ** 3), '2 GiB');
    assert.equal(formatBytes(100_000), '100000 bytes');
    assert.equal(formatBytes(1536), '1536 bytes');
  });
});

describe('ProcessOutput', () => {
  it('logs and keeps the output up to the limit, then reports the limit once with its unit', async () => {
    const runDir = join(dir, `limit-${++seq}`);
    const output = await ProcessOutput.open({ runDir, limits: limits(64 * 1024) });
    const problems: OutputProblem[] = [];
    output.onEnded((problem) => problems.push(problem));
    const line = Buffer.from('0123456789abcde\n');
    for (let i = 0; i < 5000; i++) output.add(line);
    await output.close();
    assert.deepEqual(problems, ['output-limit']);
    assert.equal(output.ended, 'output-limit');
    assert.equal(output.problemMessage(), 'The script output exceeds the 64 KiB limit; the run was ended.');
    assert.equal(readFileSync(join(runDir, 'output.log')).length, 64 * 1024);
    const result = output.result();
    assert.equal(result.truncated, true);
    assert.equal(result.rows.length, 1000);
  });

  it('reports a failed output.log as a problem instead of crashing the process', async () => {
    const output = await ProcessOutput.open({ runDir: fullDiskRunDir(), limits: limits(1024 * 1024) });
    const ended = new Promise<OutputProblem>((resolve) => output.onEnded(resolve));
    output.add(Buffer.from('hello\n'));
    assert.equal(await ended, 'log-failed');
    await output.close();
    assert.match(output.problemMessage(), /could not be written to output\.log \(ENOSPC/);
    // What was seen is still the run's result.
    assert.deepEqual(output.result().rows, [['hello']]);
  });
});

describe('local engine with a full disk', () => {
  it('fails the run and ends the script when output.log cannot be written', async () => {
    const engine = new LocalProcessEngine({
      name: 'local-shell',
      scriptTypes: ['Shell'],
      interpreter: 'bash',
      interpreterArgs: [],
      scriptFileName: 'script.sh',
    });
    try {
      const outcome = await engine.run(
        {
          instanceId: `full-disk-${++seq}`,
          namespace: { projectId: 'p', workspaceId: 'w' },
          scriptType: 'Shell',
          content: 'echo started\nsleep 300\n',
          database: '',
          runDir: fullDiskRunDir(),
          limits: limits(1024 * 1024),
        },
        { signal: new AbortController().signal, stopGraceMs: 500, reportHandle: () => Promise.resolve() },
      );
      assert.equal(outcome.kind, 'failed');
      assert.match(outcome.kind === 'failed' ? outcome.message : '', /output\.log \(ENOSPC/);
    } finally {
      await engine.close();
    }
  });
});
