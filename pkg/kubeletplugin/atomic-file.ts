// Crash-safe file replacement for state the node plugin must never see half
// written (checkpoint, CDI specs): temp file, fsync, rename, fsync directory.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** True when err is a Node file-system error with this code (ENOENT, EEXIST...). */
export function hasErrorCode(err: unknown, code: string): boolean {
  return isErrno(err, code);
}

/**
 * Creates dir (and parents) when missing. The mode applies to directories we
 * create; an existing directory is chmod-ed only when `enforce` is set, because
 * shared directories (plugins_registry, /var/run/cdi) belong to others.
 */
export async function ensureDir(dir: string, mode: number = PRIVATE_DIR_MODE, enforce = false): Promise<void> {
  let existed = true;
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    existed = false;
    await mkdir(dir, { recursive: true, mode });
  }
  // mkdir's mode is filtered by the umask, so a created directory is chmod-ed too.
  if (!existed || enforce) await chmod(dir, mode);
}

/** fsync a directory so that a rename or unlink inside it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces path with data so that a reader (or a restart after a crash) sees
 * either the old or the new content, never a mix. The temp file lives in the
 * same directory because rename is only atomic within one file system.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number = PRIVATE_FILE_MODE): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const handle = await open(tmp, 'wx', mode);
  let renamed = false;
  try {
    try {
      await handle.writeFile(data);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    renamed = true;
    await syncDir(dir);
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Writes only when the content differs, so repeating an idempotent operation
 * costs a read instead of two fsyncs. Returns whether the file was written.
 */
export async function writeFileAtomicIfChanged(path: string, data: string, mode: number = PRIVATE_FILE_MODE): Promise<boolean> {
  try {
    const [current, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    if (current === data && (info.mode & 0o777) === mode) return false;
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  await writeFileAtomic(path, data, mode);
  return true;
}

/** Deletes path durably; a missing file is not an error. Returns whether it existed. */
export async function removeFileDurably(path: string): Promise<boolean> {
  try {
    await unlink(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
  await syncDir(dirname(path));
  return true;
}
