// Atomic file writes: every output file is written under a temporary name in the same folder,
// flushed to disk, then renamed over the final name. A reader (or a crash) therefore sees either
// the old file or the complete new one, never a half-written file. The temporary file lives in
// the same folder because rename is only atomic within one file system.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A fresh temporary name beside `path`: hidden, and unique across processes and calls. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

// One write call moves at most this much (the OS caps a single write near 2 GiB).
const CHUNK = 1 << 30;

/** Write all of `data` at `position`, looping over short writes. */
export async function writeFully(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const len = Math.min(CHUNK, data.byteLength - done);
    const { bytesWritten } = await fh.write(data, done, len, position + done);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename itself durable. Not every platform can open a folder: best effort.
  try {
    const d = await open(dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
  } catch { /* ignore */ }
}

/**
 * A file being written atomically. Write with `write` (positional, any order) or through
 * `handle`; then `commit()` to publish it under `path`, or `abort()` to remove every trace.
 */
export class AtomicFile {
  private done = false;

  private constructor(readonly path: string, readonly tempPath: string, readonly handle: FileHandle) {}

  static async open(path: string): Promise<AtomicFile> {
    const tempPath = tempPathFor(path);
    const handle = await open(tempPath, 'wx');
    return new AtomicFile(path, tempPath, handle);
  }

  /** Write `data` at byte `position` of the new file. */
  async write(data: Uint8Array, position: number): Promise<void> {
    if (this.done) throw new Error(`${this.path}: write after commit/abort`);
    await writeFully(this.handle, data, position);
  }

  /** Flush, close and rename onto the final name. On failure the temporary file is removed. */
  async commit(): Promise<void> {
    if (this.done) throw new Error(`${this.path}: commit after commit/abort`);
    try {
      await this.handle.sync();
      await this.handle.close();
      this.done = true;
      await rename(this.tempPath, this.path);
    } catch (e) {
      await this.abort();
      throw e;
    }
    await fsyncDir(dirname(this.path));
  }

  /** Close and delete the temporary file. Safe to call more than once; never throws. */
  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.handle.close().catch(() => {});
    }
    await unlink(this.tempPath).catch(() => {});
  }
}

/** Write a whole file atomically. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const f = await AtomicFile.open(path);
  try {
    await f.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0);
  } catch (e) {
    await f.abort();
    throw e;
  }
  await f.commit();
}

/** Synchronous twin of `writeFileAtomic`, for code paths that cannot await. */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tempPath = tempPathFor(path);
  const fd = fs.openSync(tempPath, 'wx');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let done = 0;
    while (done < bytes.byteLength) {
      done += fs.writeSync(fd, bytes, done, Math.min(CHUNK, bytes.byteLength - done), done);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tempPath, path);
  } catch (e) {
    try { fs.closeSync(fd); } catch { /* already closed */ }
    try { fs.unlinkSync(tempPath); } catch { /* already gone */ }
    throw e;
  }
  try {
    const d = fs.openSync(dirname(path), 'r');
    try { fs.fsyncSync(d); } finally { fs.closeSync(d); }
  } catch { /* best effort, as above */ }
}

/** Copy `src` to `dest` atomically: a copy under a temporary name beside `dest`, flushed, then renamed. */
export function copyFileAtomicSync(src: string, dest: string): void {
  const tempPath = tempPathFor(dest);
  try {
    fs.copyFileSync(src, tempPath, fs.constants.COPYFILE_EXCL);
    const fd = fs.openSync(tempPath, 'r+');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(tempPath, dest);
  } catch (e) {
    try { fs.unlinkSync(tempPath); } catch { /* never created, or already renamed */ }
    throw e;
  }
}
