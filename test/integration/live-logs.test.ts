/**
 * Live logs of Shell/Python instances (extension): `GET …/log?offset=&limit=` and the SSE stream
 * `GET …/log/stream`, against real processes. Scripts print numbered lines, then wait for a gate
 * file the test creates, then print more: so "read while it runs" is deterministic (the instance is
 * RUNNING and blocked when the first lines are checked), without any timing assumption.
 *
 *  - offsets: paging with small limits gives the whole output, in order, never a broken character;
 *  - SSE: every line in order, no duplicates, ids are byte offsets, `end` with the final status,
 *    then the stream closes; a reconnect with Last-Event-ID resumes exactly there; an `…-end` id
 *    answers 204; Python too; a stop works while the log is streamed;
 *  - store: no rows for a run without output; rows go with the script;
 *  - errors: a SQL instance, bad limits and offsets, unknown instances;
 *  - SSH (private sshd; skipped without it) and two nodes on PostgreSQL (read from the node that
 *    does not run the instance).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { assertError, assertNoContent, assertOk, until } from '../helpers/assertions.js';
import {
  createClusterDatabase,
  startNode,
  stopNode,
  type ClusterDatabase,
  type ClusterNode,
} from '../helpers/cluster.js';
import { ApiClient, PROJECT, startTestServer, type TestServer } from '../helpers/server.js';
import { sshdUnavailableReason, startSshd, type TestSshd } from '../helpers/sshd.js';

interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** Parses a text/event-stream body (the WHATWG rules this needs: fields, comments, blank-line dispatch). */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let id: string | undefined;
  let data: string[] = [];
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (line === '') {
        if (data.length > 0) yield { event, id, data: data.join('\n') };
        event = 'message';
        id = undefined;
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
    }
  }
}

interface Stream {
  status: number;
  headers: Headers;
  events: AsyncGenerator<SseEvent>;
  abort(): void;
}

async function openStream(
  api: ApiClient,
  script: string,
  id: string,
  headers: Record<string, string> = {},
  query = '',
): Promise<Stream> {
  const controller = new AbortController();
  const response = await fetch(`${api.baseUrl}${api.path(`/${script}/instances/${id}/log/stream${query}`)}`, {
    headers,
    signal: controller.signal,
  });
  const body = response.body;
  return {
    status: response.status,
    headers: response.headers,
    events: body ? sseEvents(body) : (async function* () {})(),
    abort: () => controller.abort(),
  };
}

/** Reads events until `stop` says so (or the stream ends); returns them. */
async function readEvents(
  events: AsyncGenerator<SseEvent>,
  stop: (seen: SseEvent[]) => boolean = () => false,
): Promise<{ seen: SseEvent[]; closed: boolean }> {
  const seen: SseEvent[] = [];
  for (;;) {
    const next = await events.next();
    if (next.done) return { seen, closed: true };
    seen.push(next.value);
    if (stop(seen)) return { seen, closed: false };
  }
}

/** The text of `data` events (each a JSON string). */
const textOf = (events: SseEvent[]) =>
  events
    .filter((e) => e.event === 'data')
    .map((e) => JSON.parse(e.data) as string)
    .join('');

function logPath(api: ApiClient, script: string, id: string, query = ''): string {
  return api.path(`/${script}/instances/${id}/log${query}`);
}

/** Reads the whole log by pages of `limit` bytes until `complete`, checking every page. */
async function readWholeLog(api: ApiClient, script: string, id: string, limit: number): Promise<string> {
  let offset = 0;
  let text = '';
  for (;;) {
    const page = await api.request('GET', logPath(api, script, id, `?offset=${offset}&limit=${limit}`));
    assertOk(page);
    assert.equal(page.json.offset, offset);
    assert.equal(page.json.nextOffset, offset + Buffer.byteLength(page.json.text as string));
    assert.ok(!(page.json.text as string).includes('\uFFFD'), `a page broke a character: ${page.text}`);
    text += page.json.text as string;
    offset = page.json.nextOffset as number;
    if (page.json.complete === true) {
      assert.equal(offset, page.json.size);
      return text;
    }
    if ((page.json.text as string) === '') await new Promise((r) => setTimeout(r, 50));
  }
}

const SHELL_LINES = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i} é 日本\n`).join('');
const PYTHON_LINES = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `py ${from + i} ✓\n`).join('');

/** Prints lines 1-5, waits for the gate file, prints lines 6-10. */
const GATED_SHELL = [
  'for i in 1 2 3 4 5; do echo "line $i é 日本"; done',
  'while [ ! -e "${gate}" ]; do sleep 0.05; done',
  'for i in 6 7 8 9 10; do echo "line $i é 日本"; done',
].join('\n');
const GATED_PYTHON = [
  'import os, time',
  'for i in range(1, 6): print(f"py {i} ✓", flush=True)',
  'while not os.path.exists("${gate}"): time.sleep(0.05)',
  'for i in range(6, 11): print(f"py {i} ✓", flush=True)',
].join('\n');

let gates: string;
let gateCount = 0;
const newGate = () => join(gates, `gate-${++gateCount}`);
const open = (gate: string) => writeFileSync(gate, '');

before(() => {
  gates = mkdtempSync(join(tmpdir(), 'opendlf-live-logs-'));
});
after(() => rmSync(gates, { recursive: true, force: true }));

let scriptCount = 0;
async function gatedRun(
  api: ApiClient,
  type: 'Shell' | 'PYTHON',
  connectionName = 'local',
): Promise<{ script: string; id: string; gate: string }> {
  const script = `logs-${++scriptCount}-${randomBytes(3).toString('hex')}`;
  await api.createScript({
    name: script,
    type,
    connectionName,
    content: type === 'Shell' ? GATED_SHELL : GATED_PYTHON,
  });
  const gate = newGate();
  const id = await api.execute(script, { gate });
  return { script, id, gate };
}

/** A Shell script that prints `started` and then runs until it is stopped, executed once. */
async function endlessRun(api: ApiClient, prefix: string): Promise<{ script: string; id: string }> {
  const script = `${prefix}-${randomBytes(3).toString('hex')}`;
  await api.createScript({
    name: script,
    type: 'Shell',
    connectionName: 'local',
    content: 'echo started\nwhile true; do sleep 0.1; done\n',
  });
  return { script, id: await api.execute(script) };
}

/** SSE over a gated run: lines 1-5 while RUNNING, then the gate, then the rest and `end`. */
async function streamGatedRun(
  api: ApiClient,
  run: { script: string; id: string; gate: string },
  reader: ApiClient,
  first: string,
  all: string,
): Promise<SseEvent[]> {
  const stream = await openStream(reader, run.script, run.id);
  assert.equal(stream.status, 200);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.match(stream.headers.get('x-request-id') ?? '', /^\S+$/);
  const live = await readEvents(stream.events, (seen) => textOf(seen) === first);
  assert.equal(live.closed, false);
  const meanwhile = await api.result(run.script, run.id);
  assert.equal(meanwhile.json.status, 'RUNNING', 'the first lines arrived while the script runs');
  open(run.gate);
  const rest = await readEvents(stream.events);
  assert.equal(rest.closed, true, 'the stream closes after end');
  const events = [...live.seen, ...rest.seen];
  assert.equal(textOf(events), all, 'all output, in order, no duplicates');
  // Ids are the byte offset after each chunk: strictly increasing sums of the chunk sizes.
  let offset = 0;
  for (const event of events.filter((e) => e.event === 'data')) {
    offset += Buffer.byteLength(JSON.parse(event.data) as string);
    assert.equal(event.id, String(offset));
  }
  const end = events.at(-1)!;
  assert.equal(end.event, 'end');
  assert.equal(end.id, `${offset}-end`);
  const ended = JSON.parse(end.data) as { status: string; detailedStatus: string; size: number };
  assert.equal(ended.status, 'FINISHED');
  assert.equal(ended.detailedStatus, 'FINISHED');
  assert.equal(ended.size, Buffer.byteLength(all));
  assert.equal(events.filter((e) => e.event === 'end').length, 1);
  return events;
}

describe('live logs, one node (SQLite)', () => {
  let server: TestServer;
  let api: ApiClient;
  let sqlite: Database.Database;
  /** One node reads the runs' own output.log: nothing is copied into the SQLite store. */
  const storedLogRows = () =>
    (sqlite.prepare('SELECT count(*) AS n FROM instance_logs').get() as { n: number }).n;

  before(async () => {
    server = await startTestServer();
    api = server.client();
    sqlite = new Database(join(server.dataDir, 'opendlf.sqlite'), { readonly: true });
  });
  after(async () => {
    sqlite?.close();
    await server?.close();
  });

  it('pages through the output by byte offsets while it runs and after it ended', async () => {
    const run = await gatedRun(api, 'Shell');
    const first = SHELL_LINES(1, 5);
    // Small pages: offsets land inside the multi-byte characters, pages never break one.
    let offset = 0;
    let text = '';
    await until(
      'the first lines',
      async () => {
        const page = await api.request('GET', logPath(api, run.script, run.id, `?offset=${offset}&limit=5`));
        assertOk(page);
        assert.ok(!(page.json.text as string).includes('\uFFFD'));
        text += page.json.text as string;
        offset = page.json.nextOffset as number;
        return text === first ? page : undefined;
      },
      60_000,
      20,
    );
    const page = await api.request('GET', logPath(api, run.script, run.id, `?offset=${offset}`));
    assert.equal(page.json.complete, false, 'not complete while it runs');
    assert.equal((await api.result(run.script, run.id)).json.status, 'RUNNING');
    open(run.gate);
    await api.waitFor(run.script, run.id);
    const all = SHELL_LINES(1, 10);
    assert.equal(await readWholeLog(api, run.script, run.id, 7), all);
    assert.equal(await readWholeLog(api, run.script, run.id, 1024 * 1024), all);
    const whole = await api.request('GET', logPath(api, run.script, run.id));
    assert.deepEqual(whole.json, {
      offset: 0,
      nextOffset: Buffer.byteLength(all),
      size: Buffer.byteLength(all),
      complete: true,
      text: all,
    });
    // The same bytes as the result's rawResult (both are what output.log holds).
    assert.equal((await api.result(run.script, run.id)).json.results[0].rawResult, all);
    // Past the end: nothing, complete.
    const past = await api.request(
      'GET',
      logPath(api, run.script, run.id, `?offset=${Buffer.byteLength(all) + 10}`),
    );
    assert.equal(past.json.text, '');
    assert.equal(past.json.complete, true);
  });

  it('SSE delivers all output in order, resumes from an offset, and closes at the end', async () => {
    const run = await gatedRun(api, 'Shell');
    const all = SHELL_LINES(1, 10);
    const events = await streamGatedRun(api, run, api, SHELL_LINES(1, 5), all);

    // Resume from the middle with Last-Event-ID: exactly the rest, then end.
    const middle = events.filter((e) => e.event === 'data').at(Math.floor(events.length / 2))!;
    const resumedAt = Number(middle.id);
    const rest = Buffer.from(all).subarray(resumedAt).toString('utf8');
    const resumed = await openStream(api, run.script, run.id, { 'last-event-id': middle.id! });
    const again = await readEvents(resumed.events);
    assert.equal(again.closed, true);
    assert.equal(textOf(again.seen), rest);
    assert.equal(again.seen.at(-1)?.event, 'end');
    // ?offset= does the same for a client that starts there.
    const byQuery = await openStream(api, run.script, run.id, {}, `?offset=${resumedAt}`);
    assert.equal(textOf((await readEvents(byQuery.events)).seen), rest);
    // From the end: only `end`.
    const atEnd = await openStream(api, run.script, run.id, {
      'last-event-id': String(Buffer.byteLength(all)),
    });
    const tail = await readEvents(atEnd.events);
    assert.deepEqual(
      tail.seen.map((e) => e.event),
      ['end'],
    );
    // A client that already got `end` is told to stop reconnecting.
    const done = await openStream(api, run.script, run.id, { 'last-event-id': events.at(-1)!.id! });
    assert.equal(done.status, 204);
  });

  it('streams a PYTHON script', async () => {
    const run = await gatedRun(api, 'PYTHON');
    await streamGatedRun(api, run, api, PYTHON_LINES(1, 5), PYTHON_LINES(1, 10));
    assert.equal(await readWholeLog(api, run.script, run.id, 3), PYTHON_LINES(1, 10));
  });

  it('a stop ends the run while its log is streamed; the stream ends STOPPED', async () => {
    const { script, id } = await endlessRun(api, 'logs-stop');
    const stream = await openStream(api, script, id);
    const live = await readEvents(stream.events, (seen) => textOf(seen) === 'started\n');
    assert.equal(live.closed, false);
    assertNoContent(await api.stop(script, id));
    const rest = await readEvents(stream.events);
    assert.equal(rest.closed, true);
    const end = rest.seen.at(-1)!;
    assert.equal(end.event, 'end');
    assert.equal(JSON.parse(end.data).detailedStatus, 'STOPPED');
    assert.equal(JSON.parse(end.data).status, 'FAILED');
    assert.equal((await api.result(script, id)).json.detailedStatus, 'STOPPED');
  });

  it('deleting the script ends an open stream', async () => {
    const { script, id } = await endlessRun(api, 'logs-delete');
    const stream = await openStream(api, script, id);
    await readEvents(stream.events, (seen) => textOf(seen) === 'started\n');
    assertNoContent(await api.request('DELETE', api.path(`/${script}`)));
    const rest = await readEvents(stream.events);
    assert.equal(rest.closed, true);
    // It saw the stop settle (end, STOPPED) or the instance gone (closed without end).
    const end = rest.seen.find((e) => e.event === 'end');
    if (end) assert.equal(JSON.parse(end.data).detailedStatus, 'STOPPED');
  });

  it('a stream opened before the run starts follows it from its first byte', async () => {
    const run = await gatedRun(api, 'Shell');
    // Opened at once: the instance may still be launching; the lines still all arrive.
    const stream = await openStream(api, run.script, run.id);
    open(run.gate);
    const all = await readEvents(stream.events);
    assert.equal(all.closed, true);
    assert.equal(textOf(all.seen), SHELL_LINES(1, 10));
  });

  it('reads the run directory (no copy in the store), has nothing for a silent run, goes with the script', async () => {
    await api.createScript({
      name: 'logs-silent',
      type: 'Shell',
      connectionName: 'local',
      content: 'true\n',
    });
    const silent = await api.execute('logs-silent');
    await api.waitFor('logs-silent', silent);
    const page = await api.request('GET', logPath(api, 'logs-silent', silent));
    assert.deepEqual(page.json, { offset: 0, nextOffset: 0, size: 0, complete: true, text: '' });

    await api.createScript({
      name: 'logs-deleted',
      type: 'Shell',
      connectionName: 'local',
      content: 'seq 1 2000\n',
    });
    const id = await api.execute('logs-deleted');
    await api.waitFor('logs-deleted', id);
    assert.equal(
      await readWholeLog(api, 'logs-deleted', id, 4096),
      Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join(''),
    );
    assert.equal(storedLogRows(), 0, 'a single node stores no second copy of the output');
    assertNoContent(await api.request('DELETE', api.path('/logs-deleted')));
    assert.equal(existsSync(join(server.dataDir, 'runs', id)), false, 'the log went with the script');
  });

  it('answers DLF errors for other script types, bad ranges and unknown instances', async () => {
    await api.createScript({
      name: 'logs-sql',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'select 1',
    });
    const sql = await api.execute('logs-sql');
    await api.waitFor('logs-sql', sql);
    const notLogged = await api.request('GET', logPath(api, 'logs-sql', sql));
    assertError(notLogged, 400, 'OPENDLF.0660');
    assert.match(notLogged.json.error_msg, /Shell and PYTHON/);
    assertError(await api.request('GET', logPath(api, 'logs-sql', sql, '/stream')), 400, 'OPENDLF.0660');

    await api.createScript({
      name: 'logs-range',
      type: 'Shell',
      connectionName: 'local',
      content: 'echo hi\n',
    });
    const id = await api.execute('logs-range');
    await api.waitFor('logs-range', id);
    for (const query of [
      '?limit=0',
      '?limit=1048577',
      '?limit=abc',
      '?offset=-1',
      '?offset=1.5',
      '?offset=1&offset=2',
    ]) {
      assertError(await api.request('GET', logPath(api, 'logs-range', id, query)), 400, 'DLF.3051');
    }
    assertOk(await api.request('GET', logPath(api, 'logs-range', id, '?limit=1048576')));
    assertError(
      await api.request('GET', logPath(api, 'logs-range', id, '/stream'), {
        headers: { 'last-event-id': 'x' },
      }),
      400,
      'DLF.3051',
    );
    assertError(
      await api.request('GET', logPath(api, 'logs-range', id, '/stream?offset=-3')),
      400,
      'DLF.3051',
    );
    const unknown = '00000000-0000-4000-8000-000000000000';
    assertError(await api.request('GET', logPath(api, 'logs-range', unknown)), 400, 'DLF.6205');
    assertError(await api.request('GET', logPath(api, 'logs-range', unknown, '/stream')), 400, 'DLF.6205');
    assertError(await api.request('GET', logPath(api, 'logs-missing', id)), 400, 'DLF.6201');
  });

  it('closing the server ends an open stream', async () => {
    const other = await startTestServer({ drainTimeoutSeconds: 0 });
    try {
      const client = other.client();
      await client.createScript({
        name: 'logs-forever',
        type: 'Shell',
        connectionName: 'local',
        content: 'echo up\nsleep 300\n',
      });
      const id = await client.execute('logs-forever');
      const stream = await openStream(client, 'logs-forever', id);
      await readEvents(stream.events, (seen) => textOf(seen) === 'up\n');
      const closing = other.close();
      const rest = await readEvents(stream.events);
      assert.equal(rest.closed, true);
      await closing;
    } finally {
      await other.close();
    }
  });
});

const sshSkip = sshdUnavailableReason();

describe('live logs over SSH', { skip: sshSkip }, () => {
  let server: TestServer;
  let api: ApiClient;
  let sshd: TestSshd;

  before(async () => {
    server = await startTestServer();
    api = server.client();
    sshd = await startSshd();
    assertNoContent(
      await api.request('POST', `/v1/${api.projectId}/connections`, {
        body: {
          name: 'host',
          type: 'HOST',
          config: { ip: sshd.host, port: String(sshd.port), userName: 'root', privateKey: sshd.privateKey },
        },
      }),
    );
  });
  after(async () => {
    await server?.close();
    await sshd?.stop();
  });

  it('streams a Shell script run on an SSH host and pages its log', async () => {
    const run = await gatedRun(api, 'Shell', 'host');
    await streamGatedRun(api, run, api, SHELL_LINES(1, 5), SHELL_LINES(1, 10));
    assert.equal(await readWholeLog(api, run.script, run.id, 6), SHELL_LINES(1, 10));
  });

  it('streams a PYTHON script run on an SSH host', async () => {
    const run = await gatedRun(api, 'PYTHON', 'host');
    await streamGatedRun(api, run, api, PYTHON_LINES(1, 5), PYTHON_LINES(1, 10));
  });
});

describe('live logs across two nodes (PostgreSQL store)', () => {
  let database: ClusterDatabase;
  const nodes: ClusterNode[] = [];

  before(async () => {
    database = await createClusterDatabase('opendlf_live_logs');
    nodes.push(
      ...(await Promise.all([
        startNode({ storeUrl: database.url, nodeId: 'logs-a' }),
        startNode({ storeUrl: database.url, nodeId: 'logs-b' }),
      ])),
    );
  });
  after(async () => {
    await Promise.all(nodes.map((node) => stopNode(node)));
    await database?.drop();
  });

  it('the node that does not run the instance streams and pages its log', async () => {
    const [a, b] = nodes;
    assert.ok(a && b);
    const onA = new ApiClient(a.url, PROJECT);
    const onB = new ApiClient(b.url, PROJECT);
    const run = await gatedRun(onA, 'Shell');
    const runsOn = await until('a node to claim it', async () => {
      const body = (await onA.result(run.script, run.id)).json as { status: string; nodeId: string };
      return body.status === 'RUNNING' ? body.nodeId : undefined;
    });
    // Read from the other node, whichever ran it.
    const reader = runsOn === b.nodeId ? onA : onB;
    assert.notEqual(runsOn === b.nodeId ? a.nodeId : b.nodeId, runsOn);
    await streamGatedRun(onA, run, reader, SHELL_LINES(1, 5), SHELL_LINES(1, 10));
    assert.equal(await readWholeLog(reader, run.script, run.id, 9), SHELL_LINES(1, 10));
    assert.ok(
      !existsSync(join(runsOn === a.nodeId ? b.dataDir : a.dataDir, 'runs', run.id)),
      'the reader has no run directory of it',
    );
  });

  it('stores the output in batches, nothing for a silent run, and deletes it with the script', async () => {
    const [a] = nodes;
    assert.ok(a);
    const api = new ApiClient(a.url, PROJECT);
    const rows = async (id: string) =>
      Number(
        (
          await database.admin.query<{ n: string }>(
            'SELECT count(*) AS n FROM instance_logs WHERE instance_id = $1',
            [id],
          )
        ).rows[0]?.n,
      );
    await api.createScript({
      name: 'logs-silent',
      type: 'Shell',
      connectionName: 'local',
      content: 'true\n',
    });
    const silent = await api.execute('logs-silent');
    await api.waitFor('logs-silent', silent);
    assert.equal(await rows(silent), 0, 'no write for a run without output');

    await api.createScript({
      name: 'logs-many',
      type: 'Shell',
      connectionName: 'local',
      content: 'seq 1 20000\n',
    });
    const id = await api.execute('logs-many');
    await api.waitFor('logs-many', id);
    const all = Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join('');
    assert.equal(await readWholeLog(api, 'logs-many', id, 65536), all);
    const stored = await rows(id);
    assert.ok(stored > 0 && stored < 20_000 / 100, `batched: ${stored} rows for 20,000 lines`);
    assertNoContent(await api.request('DELETE', api.path('/logs-many')));
    assert.equal(await rows(id), 0);
  });
});
