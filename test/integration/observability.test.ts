/**
 * Health, readiness, Prometheus metrics and structured logs, against a real server.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { processesOfInstance, waitForInstanceProcesses } from '../helpers/processes.js';
import { ApiClient, PROJECT, startTestServer, tempDir } from '../helpers/server.js';

describe('health, readiness, metrics and logs', () => {
  const dataDir = tempDir();
  const logLines: string[] = [];
  let server: RunningServer;
  let api: ApiClient;

  before(async () => {
    server = await startServer(
      loadConfig({ overrides: { port: 0, dataDir, stopGraceMs: 300 } }),
      pino({ level: 'info' }, { write: (line: string) => logLines.push(line) }),
    );
    api = new ApiClient(server.url, PROJECT);
  });
  after(async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("healthz answers while the process is up; readyz checks the store, the data directory's free space and every built-in engine", async () => {
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as { ready: boolean; checks: { name: string; ok: boolean }[] };
    assert.equal(body.ready, true);
    assert.deepEqual(body.checks.map((c) => c.name).sort(), [
      'disk:dataDir',
      'engine:duckdb',
      'engine:local-python',
      'engine:local-shell',
      'store',
    ]);
  });

  it('counts runs, stops, queue and HTTP requests in /metrics', async () => {
    await api.createScript({ name: 'sql', type: 'DWSSQL', content: 'SELECT 1', connectionName: 'duckdb' });
    await api.createScript({ name: 'sh', type: 'Shell', content: 'sleep 300', connectionName: 'local' });
    const sql = await api.execute('sql');
    await api.waitFor('sql', sql);
    const sh = await api.execute('sh');
    await waitForInstanceProcesses(sh, 1);
    assert.equal((await api.stop('sh', sh)).status, 204);
    assert.deepEqual(processesOfInstance(sh), []);

    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await response.text();
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN);
    assert.equal(value(/^opendlf_instances_started_total\{engine="duckdb"\} (\d+)/m), 1);
    assert.equal(value(/^opendlf_instances_finished_total\{engine="duckdb",state="FINISHED"\} (\d+)/m), 1);
    assert.equal(
      value(/^opendlf_instances_finished_total\{engine="local-shell",state="STOPPED"\} (\d+)/m),
      1,
    );
    assert.equal(value(/^opendlf_stop_duration_seconds_count\{engine="local-shell"\} (\d+)/m), 1);
    assert.equal(value(/^opendlf_queue_depth (\d+)/m), 0);
    assert.equal(value(/^opendlf_active_instances (\d+)/m), 0);
    assert.ok(
      value(
        /^opendlf_http_request_duration_seconds_count\{method="POST",route="\/v1\/:projectId\/scripts",status_code="204"\} (\d+)/m,
      ) >= 2,
    );
    assert.match(text, /^opendlf_process_resident_memory_bytes \d+/m);
    assert.doesNotMatch(text, /route="\/v1\/p0/, 'routes are templates, not raw URLs');
  });

  it('logs JSON lines whose request id is the X-Request-Id, and the instance id on run lines', async () => {
    const response = await api.request('GET', api.path('/sql'));
    const requestId = response.headers.get('x-request-id');
    assert.ok(requestId);
    const lines = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      lines.some((l) => l.reqId === requestId),
      'no log line carries the request id',
    );
    assert.ok(lines.some((l) => typeof l.instanceId === 'string' && l.msg === 'run ended'));
  });
});

describe('readiness failure', () => {
  it('is 503 and names the failing check when an engine cannot run', async () => {
    const server = await startTestServer({ localEngine: { python: '/nonexistent/python3' } });
    try {
      const response = await fetch(`${server.url}/readyz`);
      assert.equal(response.status, 503);
      const body = (await response.json()) as {
        ready: boolean;
        checks: { name: string; ok: boolean; detail?: string }[];
      };
      assert.equal(body.ready, false);
      const python = body.checks.find((c) => c.name === 'engine:local-python');
      assert.equal(python?.ok, false);
      assert.match(python?.detail ?? '', /cannot be started/);
    } finally {
      await server.close();
    }
  });
});

describe('readiness when the store is down', () => {
  it('is not ready and names the store', async () => {
    // The SQLite store cannot be taken down from outside a running server, so this drives the same
    // readiness function with a store whose ping fails the way a closed database does.
    const { openSqliteStore } = await import('../../src/store/sqlite/sqlite-store.js');
    const { readinessOf } = await import('../../src/main.js');
    const dir = tempDir();
    const store = await openSqliteStore(`${dir}/s.sqlite`);
    await store.close(); // a closed database: every query now fails
    try {
      const result = await readinessOf(store, []);
      assert.equal(result.ready, false);
      assert.equal(result.checks[0]?.name, 'store');
      assert.equal(result.checks[0]?.ok, false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
