// Helpers shared by tests and the demo that need no jest globals: where the
// control plane is, the real kubectl, and polling with a deadline.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { errorMessage } from '../../pkg/log/logger.js';

/** Points these helpers at a control plane a program started itself (the demo, the probe). */
export function useControlPlane(cp: { readonly adminKubeconfigPath: string; readonly dir: string; readonly binDir: string }): void {
  process.env.CASCADE_KUBECONFIG = cp.adminKubeconfigPath;
  process.env.CASCADE_CLUSTER_DIR = cp.dir;
  process.env.CASCADE_BIN_DIR = cp.binDir;
}

export function adminKubeconfig(): string {
  const p = process.env.CASCADE_KUBECONFIG;
  if (!p) throw new Error('CASCADE_KUBECONFIG is not set: run this test through jest with the integration or e2e project');
  return p;
}

export function clusterDir(): string {
  const d = process.env.CASCADE_CLUSTER_DIR;
  if (!d) throw new Error('CASCADE_CLUSTER_DIR is not set');
  return d;
}

export function binPath(name: string): string {
  const d = process.env.CASCADE_BIN_DIR;
  if (!d) throw new Error('CASCADE_BIN_DIR is not set');
  return join(d, name);
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real kubectl (the one built with the control plane) as admin. */
export async function kubectl(args: readonly string[], kubeconfig = adminKubeconfig()): Promise<CommandResult> {
  return await new Promise((resolve) => {
    execFile(binPath('kubectl'), ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Polls `fn` until it returns a value other than undefined/false, or fails with the last state. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${errorMessage(lastError)}` : ''}`);
}
