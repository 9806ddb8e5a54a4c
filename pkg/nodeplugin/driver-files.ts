// The NVIDIA driver's user-space files a CUDA container needs (libcuda, NVML,
// the PTX JIT, nvidia-smi), found under the driver root as the plugin sees it
// and bind-mounted from the host's path of that root by the CDI spec.
import { readdirSync } from 'node:fs';
import { posix } from 'node:path';
import type { CdiContainerEdits, CdiMount } from '../kubeletplugin/cdi.js';

/** Library soname prefixes and the soname a program loads them by. */
const LIBRARIES: readonly { readonly prefix: string; readonly soname: string }[] = [
  { prefix: 'libcuda.so.', soname: 'libcuda.so.1' },
  { prefix: 'libnvidia-ml.so.', soname: 'libnvidia-ml.so.1' },
  { prefix: 'libnvidia-ptxjitcompiler.so.', soname: 'libnvidia-ptxjitcompiler.so.1' },
  { prefix: 'libcudadebugger.so.', soname: 'libcudadebugger.so.1' },
  { prefix: 'libnvidia-nvvm.so.', soname: 'libnvidia-nvvm.so.4' },
];
const LIBRARY_DIRS = ['usr/lib/x86_64-linux-gnu', 'usr/lib/aarch64-linux-gnu', 'usr/lib64', 'lib/x86_64-linux-gnu', 'usr/lib'];
const BINARIES = ['nvidia-smi', 'nvidia-debugdump'];
const BINARY_DIRS = ['usr/bin', 'usr/sbin', 'bin'];

/** Where libraries go in the container: NVIDIA's CUDA images already have it on LD_LIBRARY_PATH. */
export const CONTAINER_LIBRARY_DIR = '/usr/local/nvidia/lib64';

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The full version a versioned library file carries ("libcuda.so.580.105.08" -> [580,105,8]). */
function versionOf(file: string, prefix: string): number[] | undefined {
  const rest = file.slice(prefix.length);
  return /^\d+(\.\d+)+$/.test(rest) ? rest.split('.').map(Number) : undefined;
}

function newer(a: number[], b: number[]): boolean {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return false;
}

/**
 * Container edits that mount the driver's files. `pluginRoot` is the driver
 * root as this process sees it (a hostPath mount, e.g. /driver-root), and
 * `hostRoot` the same directory on the host (e.g. / or /run/nvidia/driver):
 * the container runtime resolves the mounts on the host.
 */
export function driverFileEdits(pluginRoot: string, hostRoot: string): CdiContainerEdits {
  const mounts: CdiMount[] = [];
  for (const lib of LIBRARIES) {
    let best: { dir: string; file: string; version: number[] } | undefined;
    for (const dir of LIBRARY_DIRS) {
      for (const file of list(posix.join(pluginRoot, dir))) {
        if (!file.startsWith(lib.prefix)) continue;
        const version = versionOf(file, lib.prefix);
        if (version && (!best || newer(version, best.version))) best = { dir, file, version };
      }
    }
    if (best) {
      mounts.push({ hostPath: posix.join(hostRoot, best.dir, best.file), containerPath: posix.join(CONTAINER_LIBRARY_DIR, lib.soname), options: ['ro', 'nosuid', 'nodev', 'bind'] });
    }
  }
  for (const bin of BINARIES) {
    const dir = BINARY_DIRS.find((d) => list(posix.join(pluginRoot, d)).includes(bin));
    if (dir) mounts.push({ hostPath: posix.join(hostRoot, dir, bin), containerPath: posix.join('/usr/bin', bin), options: ['ro', 'nosuid', 'nodev', 'bind'] });
  }
  return mounts.length ? { mounts } : {};
}
