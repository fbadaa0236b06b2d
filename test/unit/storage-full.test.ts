/**
 * What counts as a full disk (domain/storage-full.ts), and what a run whose output.log hits one is
 * told: the `storage_full` reason, a message naming the cause, and the log cut down to a note.
 * /dev/full stands in for the full disk (every write fails with ENOSPC).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isStorageFull, mentionsStorageFull } from '../../src/domain/storage-full.js';
import { ProcessOutput, type OutputProblem } from '../../src/engines/process-output.js';

const dir = mkdtempSync(join(tmpdir(), 'opendlf-storage-full-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const limits = { maxResultRows: 1000, maxOutputBytes: 1024 * 1024, maxResultOutputBytes: 1024 * 1024 };

const withCode = (code: string, message = 'failed') => Object.assign(new Error(message), { code });

describe('isStorageFull', () => {
  it('recognises a full disk from node:fs, SQLite, PostgreSQL and DuckDB', () => {
    assert.equal(isStorageFull(withCode('ENOSPC')), true);
    assert.equal(isStorageFull(withCode('EDQUOT')), true);
    assert.equal(isStorageFull(withCode('SQLITE_FULL', 'database or disk is full')), true);
    assert.equal(isStorageFull(withCode('53100', 'could not extend file')), true);
    assert.equal(
      isStorageFull(new Error('IO Error: Could not write file "x.duckdb": No space left on device')),
      true,
    );
    // Wrapped: the cause chain is followed.
    assert.equal(isStorageFull(new Error('settle failed', { cause: withCode('SQLITE_FULL') })), true);
  });

  it('does not take other failures for a full disk', () => {
    assert.equal(isStorageFull(withCode('EIO', 'i/o error')), false);
    assert.equal(isStorageFull(withCode('SQLITE_BUSY', 'database is locked')), false);
    assert.equal(isStorageFull(withCode('EACCES', 'permission denied')), false);
    assert.equal(isStorageFull(new Error('Statement 1 failed: table t does not exist')), false);
    assert.equal(isStorageFull(undefined), false);
    assert.equal(isStorageFull('ENOSPC'), false);
    assert.equal(mentionsStorageFull('Failed to commit: No space left on device'), true);
    assert.equal(mentionsStorageFull('syntax error at or near "x"'), false);
  });
});

describe('ProcessOutput on a full disk', () => {
  it('fails the run as storage_full, names the cause, and cuts output.log down to a note', async () => {
    const runDir = join(dir, 'full');
    mkdirSync(runDir);
    symlinkSync('/dev/full', join(runDir, 'output.log'));
    const output = await ProcessOutput.open({ runDir, limits });
    const ended = new Promise<OutputProblem>((resolve) => output.onEnded(resolve));
    output.add(Buffer.from('first line\n'));
    assert.equal(await ended, 'log-failed');
    await output.close();
    assert.equal(output.problemReason(), 'storage_full');
    assert.match(
      output.problemMessage(),
      /\(ENOSPC: no space left on device.*\): the server's storage is full/,
    );
    assert.deepEqual(output.result().rows, [['first line']]);
  });

  it('keeps engine_error for a log failure that is not a full disk', async () => {
    // A directory where output.log should be: the stream fails with EISDIR, not for lack of space.
    const runDir = join(dir, 'not-full');
    mkdirSync(join(runDir, 'output.log'), { recursive: true });
    const output = await ProcessOutput.open({ runDir, limits });
    const ended = new Promise<OutputProblem>((resolve) => output.onEnded(resolve));
    output.add(Buffer.from('x\n'));
    assert.equal(await ended, 'log-failed');
    await output.close();
    assert.equal(output.problemReason(), 'engine_error');
    assert.doesNotMatch(output.problemMessage(), /storage is full/);
  });
});
