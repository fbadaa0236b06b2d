/**
 * Issue 10, finding 7: a connection import zip must not stall the server. The hostile archives are
 * built here: a ~1 MB entry that inflates to 1 GiB of zeros while its headers declare 100 bytes
 * (written header by header, as an attacker would), an honest entry over the per-entry cap, and an
 * archive with more entries than the cap. While the bomb is processed, /healthz is asked every
 * 20 ms and must keep answering (a liveness bound, not a speed test: the old synchronous unzip went
 * silent for seconds).
 */
import assert from 'node:assert/strict';
import { createDeflateRaw } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { startTestServer, type ApiClient, type TestServer } from '../helpers/server.js';

const BOMB_INFLATED_BYTES = 1024 * 1024 * 1024;
const BOMB_DECLARED_BYTES = 100;
/** Generous: a healthy server answers within milliseconds; the synchronous unzip took seconds. */
const MAX_HEALTHZ_GAP_MS = 1_000;

/** Raw DEFLATE of `total` zero bytes, produced in 1 MiB chunks (never 1 GiB in memory). */
async function deflatedZeros(total: number): Promise<Buffer> {
  const deflate = createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    deflate.on('end', resolve);
    deflate.on('error', reject);
  });
  const zeros = Buffer.alloc(1024 * 1024);
  for (let written = 0; written < total; written += zeros.length) {
    if (!deflate.write(zeros)) await new Promise((resolve) => deflate.once('drain', resolve));
  }
  deflate.end();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A one-entry zip whose local header and central directory declare `declaredSize` uncompressed
 * bytes (and a CRC of 0), whatever `deflated` really inflates to.
 */
function lyingZip(name: string, deflated: Buffer, declaredSize: number): Buffer {
  const fileName = Buffer.from(name, 'utf8');
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0); // local file header signature
  local.writeUInt16LE(20, 4); // version needed
  local.writeUInt16LE(0, 6); // flags
  local.writeUInt16LE(8, 8); // method: deflate
  local.writeUInt16LE(0, 10); // time
  local.writeUInt16LE(0x21, 12); // date (1980-01-01)
  local.writeUInt32LE(0, 14); // crc-32 (a lie as well)
  local.writeUInt32LE(deflated.length, 18);
  local.writeUInt32LE(declaredSize, 22);
  local.writeUInt16LE(fileName.length, 26);
  local.writeUInt16LE(0, 28);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0); // central directory header signature
  central.writeUInt16LE(20, 4); // version made by
  central.writeUInt16LE(20, 6); // version needed
  central.writeUInt16LE(0, 8);
  central.writeUInt16LE(8, 10);
  central.writeUInt16LE(0, 12);
  central.writeUInt16LE(0x21, 14);
  central.writeUInt32LE(0, 16);
  central.writeUInt32LE(deflated.length, 20);
  central.writeUInt32LE(declaredSize, 24);
  central.writeUInt16LE(fileName.length, 28);
  // extra, comment, disk, internal attributes, external attributes: 0
  central.writeUInt32LE(0, 42); // offset of the local header
  const centralOffset = local.length + fileName.length + deflated.length;
  const centralSize = central.length + fileName.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); // end of central directory signature
  end.writeUInt16LE(1, 8); // entries on this disk
  end.writeUInt16LE(1, 10); // entries in total
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(centralOffset, 16);
  return Buffer.concat([local, fileName, deflated, central, fileName, end]);
}

async function upload(c: ApiClient, zip: Buffer) {
  return c.request('POST', `/v1/${c.projectId}/connections/import`, {
    rawBody: zip,
    headers: { 'content-type': 'application/zip' },
  });
}

async function finishedTask(c: ApiClient, taskId: string): Promise<any> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const task = (await c.request('GET', `/v1/${c.projectId}/system-tasks/${taskId}`)).json;
    if (task.status !== 'RUNNING') return task;
    if (Date.now() > deadline) throw new Error(`the import never finished: ${JSON.stringify(task)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let server: TestServer;
let bomb: Buffer;

before(async () => {
  server = await startTestServer();
  bomb = lyingZip('connections/bomb.conn', await deflatedZeros(BOMB_INFLATED_BYTES), BOMB_DECLARED_BYTES);
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
      const res = await upload(c, bomb);
      assert.equal(res.status, 200, res.text);
      const task = await finishedTask(c, res.json.taskId as string);
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
    const task = await finishedTask(c, (await upload(c, zip)).json.taskId as string);
    assert.equal(task.status, 'FAILED', JSON.stringify(task));
    assert.match(task.message, /entry connections\/big\.conn declares 2 MiB, more than 1 MiB/);
  });

  it('refuses an archive with more entries than the cap', async () => {
    const c = server.client();
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 1_500; i += 1) files[`connections/c${i}.conn`] = strToU8('{}');
    const task = await finishedTask(c, (await upload(c, Buffer.from(zipSync(files)))).json.taskId as string);
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
    const task = await finishedTask(c, (await upload(c, zip)).json.taskId as string);
    assert.equal(task.status, 'SUCCESSFUL', JSON.stringify(task));
    assert.equal((await c.request('GET', `/v1/${c.projectId}/connections/fine`)).status, 200);
  });
});
