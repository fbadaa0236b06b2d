/**
 * Reads the `.conn` files of a connection import zip without trusting it. A zip is a few MB on the
 * wire but may declare tiny sizes and inflate to gigabytes, or hold millions of entries; read in one
 * synchronous call that stalls the whole server (no /healthz, no stops, no lease renewals). Here:
 *
 * - the central directory's entry count is checked before any entry is read;
 * - each entry's declared size is checked before it is inflated;
 * - inflation runs on zlib streams (the thread pool, chunk by chunk), never in one blocking call;
 * - the bytes actually inflated are counted as they arrive, and yauzl's `validateEntrySizes` ends an
 *   entry that inflates past its declared size: a lying archive is stopped at its first excess chunk.
 *
 * Every refusal is DlfError OPENDLF.0612 with a message saying which limit.
 */
import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { DlfError } from '../domain/dlf-error.js';

export interface ArchiveLimits {
  /** Entries in the central directory (files and folders, `.conn` or not). */
  readonly maxEntries: number;
  /** Inflated bytes of one `.conn` entry (a connection is a few hundred bytes of JSON). */
  readonly maxEntryBytes: number;
  /** Inflated bytes of all `.conn` entries together. */
  readonly maxTotalBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  maxEntries: 1_000,
  maxEntryBytes: 1024 * 1024,
  maxTotalBytes: 16 * 1024 * 1024,
};

export interface ArchiveEntry {
  /** The entry's path inside the zip, e.g. `connections/pg.conn`. */
  readonly name: string;
  readonly text: string;
}

const refused = (detail: string) => new DlfError('OPENDLF.0612', `The import archive is refused: ${detail}.`);

const mib = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 100) / 100} MiB`;

function openZip(zip: Buffer): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(
      zip,
      { lazyEntries: true, validateEntrySizes: true, decodeStrings: true, strictFileNames: false },
      (error, zipfile) => {
        if (error || !zipfile) reject(refused(`not a valid zip (${error?.message ?? 'unreadable'})`));
        else {
          // Errors are taken by the listeners of each read; this keeps a late one from crashing.
          zipfile.on('error', () => undefined);
          resolve(zipfile);
        }
      },
    );
  });
}

function openEntry(zipfile: ZipFile, entry: Entry): Promise<Readable> {
  return new Promise((resolve, reject) => {
    zipfile.openReadStream(entry, (error, stream) => {
      if (error || !stream)
        reject(refused(`entry ${entry.fileName} cannot be read (${error?.message ?? ''})`));
      else resolve(stream);
    });
  });
}

/** Inflates one entry, ending it as soon as more than `maxBytes` arrive. */
async function inflateEntry(zipfile: ZipFile, entry: Entry, maxBytes: number): Promise<Buffer> {
  const stream = await openEntry(zipfile, entry);
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > maxBytes) {
        throw refused(`entry ${entry.fileName} inflates to more than ${mib(maxBytes)}`);
      }
      chunks.push(chunk);
    }
  } catch (error) {
    stream.destroy();
    if (error instanceof DlfError) throw error;
    // yauzl's size validation: the entry inflates to more (or less) than its header declares.
    throw refused(`entry ${entry.fileName} does not match its declared size (${(error as Error).message})`);
  }
  return Buffer.concat(chunks);
}

/** The `.conn` entries of `zip`, each decoded as UTF-8 text. */
export async function readConnectionArchive(
  zip: Buffer,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<ArchiveEntry[]> {
  const zipfile = await openZip(zip);
  try {
    if (zipfile.entryCount > limits.maxEntries) {
      throw refused(`it has ${zipfile.entryCount} entries, more than ${limits.maxEntries}`);
    }
    const entries: ArchiveEntry[] = [];
    let declaredTotal = 0;
    let inflatedTotal = 0;
    for (;;) {
      const entry = await new Promise<Entry | undefined>((resolve, reject) => {
        const onEntry = (e: Entry) => {
          zipfile.off('end', onEnd);
          zipfile.off('error', onError);
          resolve(e);
        };
        const onEnd = () => {
          zipfile.off('entry', onEntry);
          zipfile.off('error', onError);
          resolve(undefined);
        };
        const onError = (error: Error) => {
          zipfile.off('entry', onEntry);
          zipfile.off('end', onEnd);
          reject(refused(`not a valid zip (${error.message})`));
        };
        zipfile.once('entry', onEntry);
        zipfile.once('end', onEnd);
        zipfile.once('error', onError);
        zipfile.readEntry();
      });
      if (!entry) break;
      if (entry.fileName.endsWith('/') || !entry.fileName.endsWith('.conn')) continue;
      // Declared sizes first: an honest archive over the limits is refused without inflating.
      if (entry.uncompressedSize > limits.maxEntryBytes) {
        throw refused(
          `entry ${entry.fileName} declares ${mib(entry.uncompressedSize)}, more than ${mib(limits.maxEntryBytes)}`,
        );
      }
      declaredTotal += entry.uncompressedSize;
      if (declaredTotal > limits.maxTotalBytes) {
        throw refused(`its connection files declare more than ${mib(limits.maxTotalBytes)} in total`);
      }
      const bytes = await inflateEntry(
        zipfile,
        entry,
        Math.min(limits.maxEntryBytes, limits.maxTotalBytes - inflatedTotal),
      );
      inflatedTotal += bytes.length;
      entries.push({ name: entry.fileName, text: bytes.toString('utf8') });
    }
    return entries;
  } finally {
    zipfile.close();
  }
}
