/**
 * The benchmark suite in its smoke mode (`--quick`: about a tenth of the runs, doc not written):
 * every figure is produced and no run failed. Counts only — nothing here looks at a time.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

describe('benchmark smoke run', () => {
  it('produces every figure with all runs completed', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick'], {
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const rows = stdout
      .split('\n')
      .filter((line) => line.startsWith('| ') && !line.startsWith('| figure') && !line.startsWith('| ---'));
    assert.ok(rows.length >= 40, `expected every figure, got ${rows.length} rows`);
    for (const figure of [
      'Shell stop',
      'DuckDB stop',
      'PostgreSQL stop',
      'MariaDB stop',
      'SSH stop',
      'ClickHouse stop',
      'PYTHON stop',
      'Throughput',
      'API read',
      'List latency',
      'Server RSS',
      'Shell `echo 1` → FINISHED as the runAs user',
      'GET script with a token',
      '/healthz during zip-bomb imports',
    ]) {
      assert.ok(
        rows.some((row) => row.startsWith(`| ${figure}`)),
        `missing figure: ${figure}`,
      );
    }
    // `(n=ok/planned)`: a run that failed shows as ok < planned; a skipped figure says `skipped`.
    for (const row of rows) {
      assert.doesNotMatch(row, /skipped/, row);
      const counts = /\(n=(\d+)\/(\d+)\)/.exec(row);
      // API read counts are requests, not runs. SSH execute has a known rare failure (about 1 run in
      // 100: the session ends without an exit status), tracked in the README; it is not hidden here
      // beyond allowing one such run.
      if (!counts || row.startsWith('| API read')) continue;
      const slack = row.startsWith('| Execute SSH') ? 1 : 0;
      assert.ok(Number(counts[2]) - Number(counts[1]) <= slack, `runs failed: ${row}`);
    }
    assert.match(stdout, /--quick: docs\/benchmarks.md not written/);
  });
});
