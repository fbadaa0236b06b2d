/**
 * Issue 10, finding 7: a connection import zip must not stall the server. The hostile archives are
 * built here: a ~1 MB entry that inflates to 1 GiB of zeros while its headers declare 100 bytes
 * (written header by header, as an attacker would), an honest entry over the per-entry cap, and an
 * archive with more entries than the cap. While the bomb is processed, /healthz is asked every
 * 20 ms and must keep answering (a liveness bound, not a speed test: the old synchronous unzip went
 * silent for seconds).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { settledImportTask, uploadArchive, zipBomb } from '../helpers/hostile-zip.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Generous: a healthy server answers within milliseconds; the synchronous unzip took seconds. */
const MAX_HEALTHZ_GAP_MS = 1_000;

let server: TestServer;
let bomb: Buffer;

before(async () => {
  server = await startTestServer();
  bomb = await zipBomb();
});

after(async () => {
  await server?.close();
});

describe('connection import archives', () => {
  it('refuses an entry that inflates past its declared size, and /healthz keeps answering meanwhile', async () => {
    const c = server.client();
    assert.ok(bomb.length < 10 * 1024 * 1024, `the bomb is ${bomb.length} bytes`);
    let polling = true;
    let maxGapMs = 0;
    let answers = 0;
    const poller = (async () => {
      let last = Date.now();
      while (polling) {
        const res = await fetch(`${server.url}/healthz`);
        await res.text();
        assert.equal(res.status, 200);
        const now = Date.now();
        maxGapMs = Math.max(maxGapMs, now - last);
        last = now;
        answers += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      const res = await uploadArchive(c, bomb);
      assert.equal(res.status, 200, res.text);
      const task = await settledImportTask(c, res.json.taskId as string);
      assert.equal(task.status, 'FAILED', JSON.stringify(task));
      assert.match(
        task.message,
        /import archive is refused: entry connections\/bomb\.conn does not match its declared size/,
      );
    } finally {
      polling = false;
      await poller;
    }
    assert.ok(answers > 0);
    assert.ok(maxGapMs < MAX_HEALTHZ_GAP_MS, `/healthz went silent for ${maxGapMs} ms`);
    const list = await c.request('GET', `/v1/${c.projectId}/connections?includeExtensionTypes=true`);
    assert.equal(list.json.total, 0);
  });

  it('refuses an entry that declares more than the per-entry cap, before inflating it', async () => {
    const c = server.client();
    const big = JSON.stringify({ name: 'big', type: 'HOST', description: ' '.repeat(2 * 1024 * 1024) });
    const zip = Buffer.from(zipSync({ 'connections/big.conn': strToU8(big) }));
    const task = await settledImportTask(c, (await uploadArchive(c, zip)).json.taskId as string);
    assert.equal(task.status, 'FAILED', JSON.stringify(task));
    assert.match(task.message, /entry connections\/big\.conn declares 2 MiB, more than 1 MiB/);
  });

  it('refuses an archive with more entries than the cap', async () => {
    const c = server.client();
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 1_500; i += 1) files[`connections/c${i}.conn`] = strToU8('{}');
    const task = await settledImportTask(
      c,
      (await uploadArchive(c, Buffer.from(zipSync(files)))).json.taskId as string,
    );
    assert.equal(task.status, 'FAILED', JSON.stringify(task));
    assert.match(task.message, /it has 1500 entries, more than 1000/);
    const list = await c.request('GET', `/v1/${c.projectId}/connections?includeExtensionTypes=true`);
    assert.equal(list.json.total, 0);
  });

  it('still imports an ordinary archive', async () => {
    const c = server.client();
    const conn = { name: 'fine', type: 'HOST', config: { ip: '10.0.0.1', port: '22', userName: 'u' } };
    const zip = Buffer.from(
      zipSync({ 'connections/fine.conn': strToU8(JSON.stringify(conn)), 'README.txt': strToU8('x') }),
    );
    const task = await settledImportTask(c, (await uploadArchive(c, zip)).json.taskId as string);
    assert.equal(task.status, 'SUCCESSFUL', JSON.stringify(task));
    assert.equal((await c.request('GET', `/v1/${c.projectId}/connections/fine`)).status, 200);
  });
});
