import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import { isCancelled, throwIfAborted } from '../errors';

/**
 * Largest image file Headstart reads, in bytes (256 MiB). Checked from the
 * file's size before a byte is read: a photo of the 64-megapixel limit is far
 * smaller as JPEG or PNG; only a bomb or a mislabelled disk image is larger.
 */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

/** A file that is not opened, or not read, with the reason (for the skip list). */
export class UnreadableFileError extends Error {}

/** What kind of thing a non-regular file is, in words. */
export function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}

/**
 * The reason a file of these stats is not read, or undefined when it is a
 * regular file within the size cap. Used both before opening (stat) and on
 * the opened handle (fstat): the file may be swapped in between.
 */
export function refusalOf(st: Stats, maxBytes = MAX_FILE_BYTES): string | undefined {
  if (!st.isFile()) return `not a regular file (${kindOf(st)}); only regular files are read`;
  if (st.size > maxBytes) return `file is ${mib(st.size)}, over the ${mib(maxBytes)} limit for an image`;
  return undefined;
}

const errCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);

/**
 * Opens a regular file for reading and hands its handle to `use`. O_NONBLOCK
 * keeps open() from waiting for a writer when the path is (or was swapped for)
 * a FIFO; fstat on the handle then refuses anything but a regular file within
 * `maxBytes`. Throws UnreadableFileError with the reason.
 */
export async function withRegularFile<T>(file: string, use: (fh: fs.FileHandle, st: Stats) => Promise<T>, maxBytes = MAX_FILE_BYTES): Promise<T> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    // A socket cannot be opened at all (ENXIO): name it rather than the errno.
    const st = await fs.stat(file).catch(() => undefined);
    const refused = st && refusalOf(st, maxBytes);
    throw new UnreadableFileError(refused ?? `cannot read file (${errCode(err)})`);
  }
  try {
    const st = await fh.stat();
    const refused = refusalOf(st, maxBytes);
    if (refused) throw new UnreadableFileError(refused);
    return await use(fh, st);
  } catch (err) {
    if (err instanceof UnreadableFileError || isCancelled(err)) throw err;
    throw new UnreadableFileError(`cannot read file (${errCode(err)})`);
  } finally {
    await fh.close();
  }
}

/** Read size of one chunk while hashing; the AbortSignal is checked between chunks. */
const CHUNK = 1 << 20;

/**
 * Reads a whole regular file into memory (at most `maxBytes`; a file that
 * grew past its fstat size is refused rather than read on).
 */
export async function readRegularFile(file: string, maxBytes = MAX_FILE_BYTES): Promise<Buffer> {
  return withRegularFile(
    file,
    async (fh, st) => {
      const buf = Buffer.allocUnsafe(st.size);
      let off = 0;
      while (off < st.size) {
        const { bytesRead } = await fh.read(buf, off, st.size - off, off);
        if (bytesRead === 0) break; // shrank since fstat: decode what is there
        off += bytesRead;
      }
      return off < st.size ? buf.subarray(0, off) : buf;
    },
    maxBytes,
  );
}

/**
 * sha256 (hex) of a regular file's bytes, read in 1 MiB chunks with the
 * AbortSignal checked between chunks, so a cancel takes effect within one
 * chunk even on a large file.
 */
export async function hashRegularFile(file: string, signal?: AbortSignal, maxBytes = MAX_FILE_BYTES): Promise<string> {
  return withRegularFile(
    file,
    async (fh) => {
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      let total = 0;
      for (;;) {
        throwIfAborted(signal);
        const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        total += bytesRead;
        // The file grew after fstat: refuse it rather than hash without end.
        if (total > maxBytes) throw new UnreadableFileError(`file grew past the ${mib(maxBytes)} limit while it was read`);
        hash.update(buf.subarray(0, bytesRead));
      }
      return hash.digest('hex');
    },
    maxBytes,
  );
}
