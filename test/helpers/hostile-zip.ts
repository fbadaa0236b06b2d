/**
 * Hostile connection-import archives, built header by header as an attacker would: used by the
 * archive tests and by the security benchmark (bench/security.ts).
 */
import { createDeflateRaw } from 'node:zlib';
import type { ApiClient, ApiResponse } from './server.js';

export const BOMB_INFLATED_BYTES = 1024 * 1024 * 1024;
export const BOMB_DECLARED_BYTES = 100;

/** Raw DEFLATE of `total` zero bytes, produced in 1 MiB chunks (never 1 GiB in memory). */
export async function deflatedZeros(total: number): Promise<Buffer> {
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
export function lyingZip(name: string, deflated: Buffer, declaredSize: number): Buffer {
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

/** A ~1 MB entry that inflates to 1 GiB of zeros while its headers declare 100 bytes. */
export async function zipBomb(): Promise<Buffer> {
  return lyingZip('connections/bomb.conn', await deflatedZeros(BOMB_INFLATED_BYTES), BOMB_DECLARED_BYTES);
}

/** POST …/connections/import with the zip as the body (answers with a system task id). */
export function uploadArchive(c: ApiClient, zip: Buffer): Promise<ApiResponse> {
  return c.request('POST', `/v1/${c.projectId}/connections/import`, {
    rawBody: zip,
    headers: { 'content-type': 'application/zip' },
  });
}

/** A connection import's system task, as GET …/system-tasks/{id} returns it. */
export interface ImportTask {
  readonly status: string;
  readonly message: string;
  readonly [field: string]: unknown;
}

/** Polls the import's system task until it is no longer RUNNING (bounded: 120 s). */
export async function settledImportTask(c: ApiClient, taskId: string): Promise<ImportTask> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const task = (await c.request('GET', `/v1/${c.projectId}/system-tasks/${taskId}`)).json as ImportTask;
    if (task.status !== 'RUNNING') return task;
    if (Date.now() > deadline) throw new Error(`the import never finished: ${JSON.stringify(task)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
