// Test helper for the MPS control stand-in: where the launcher is, and a sweep
// that kills any daemon a test left behind under a root.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import { livePid } from './files.js';

/** The launcher; it needs `npm run build` to have produced dist/hack/fake-mps-control/main.js. */
export function fakeMpsControlPath(): string {
  return path.join(repoRoot(), 'hack', 'fake-mps-control', 'nvidia-cuda-mps-control');
}

/** PIDs of live stand-in daemons under an MPS root (<root>/<gpu>/pipe). */
export function liveDaemons(root: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(root)) return out;
  for (const gpu of readdirSync(root)) {
    const pid = livePid(path.join(root, gpu, 'pipe'));
    if (pid !== undefined) out.set(gpu, pid);
  }
  return out;
}

/** Kills every stand-in daemon under a root (test teardown). */
export function killDaemons(root: string): void {
  for (const pid of liveDaemons(root).values()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
