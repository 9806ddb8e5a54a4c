// Unix socket plumbing for the kubelet-facing servers: where the sockets live,
// removing a stale socket left by a previous run, binding root-only, and
// removing our own socket (and only ours) on shutdown.
import { chmod, lstat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { PRIVATE_FILE_MODE, hasErrorCode } from './atomic-file.js';

export const DEFAULT_REGISTRY_DIR = '/var/lib/kubelet/plugins_registry';
export const DEFAULT_PLUGINS_DIR = '/var/lib/kubelet/plugins';

export interface PluginPaths {
  /** <registryDir>/<driver>-reg.sock: the kubelet's plugin watcher finds us here. */
  readonly registrationSocket: string;
  /** <pluginsDir>/<driver>: our own directory (sockets, checkpoint). */
  readonly pluginDir: string;
  /** <pluginsDir>/<driver>/dra.sock: the endpoint announced in GetInfo. */
  readonly draSocket: string;
}

export function pluginPaths(driver: string, registryDir: string = DEFAULT_REGISTRY_DIR, pluginsDir: string = DEFAULT_PLUGINS_DIR): PluginPaths {
  const pluginDir = join(pluginsDir, driver);
  return {
    registrationSocket: join(registryDir, `${driver}-reg.sock`),
    pluginDir,
    draSocket: join(pluginDir, 'dra.sock'),
  };
}

/** Linux's sun_path holds 107 bytes plus the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/**
 * Removes a socket file left behind by a previous run (a crash leaves it, and
 * bind fails with EADDRINUSE while it exists). Anything that is not a socket is
 * left alone and reported: it is not ours to delete.
 */
export async function removeStaleSocket(path: string): Promise<boolean> {
  try {
    const info = await lstat(path);
    if (!info.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    await unlink(path);
    return true;
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) return false;
    throw err;
  }
}

function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  let previous: number | undefined;
  try {
    previous = process.umask(mask);
  } catch {
    // Worker threads cannot change the umask; the chmod after bind still applies.
  }
  return fn().finally(() => {
    if (previous !== undefined) process.umask(previous);
  });
}

/**
 * Binds server to a unix socket that only root can use: created under umask
 * 077 (so it is never reachable by others, even for an instant, in a shared
 * directory like plugins_registry), then chmod 0600. Returns the socket's
 * inode so that shutdown removes this socket and not a successor's.
 */
export async function bindUnixSocket(server: grpc.Server, path: string): Promise<number> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new Error(`socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes`);
  }
  await removeStaleSocket(path);
  await withUmask(
    0o077,
    () =>
      new Promise<void>((resolve, reject) => {
        server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
      }),
  );
  await chmod(path, PRIVATE_FILE_MODE);
  return (await lstat(path)).ino;
}

/** Removes the socket at path if it is still the one we bound (same inode). */
export async function removeOwnSocket(path: string, ino: number): Promise<void> {
  try {
    const info = await lstat(path);
    if (info.isSocket() && info.ino === ino) await unlink(path);
  } catch (err) {
    if (!hasErrorCode(err, 'ENOENT')) throw err;
  }
}

/**
 * Stops a server: lets running calls finish for up to graceMs (the kubelet
 * allows 45 s per call; a prepare cut in the middle is finished or rolled back
 * by start-up recovery anyway), then cancels whatever is left.
 */
export function shutdownServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      server.forceShutdown();
      finish();
    }, graceMs);
    server.tryShutdown(() => finish());
  });
}
