// Locates (and if needed builds) the etcd and Kubernetes binaries that
// hack/build-k8s.sh compiles from Go modules into a cache outside the repo.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'] as const;
export type Binary = (typeof BINARIES)[number];

/** The repository root, found from this file's location (works from pkg/ and dist/pkg/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'hack', 'build-k8s.sh'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('cannot find the Cascade repository root (hack/build-k8s.sh)');
}

export function buildScript(): string {
  return join(repoRoot(), 'hack', 'build-k8s.sh');
}

/** The cache directory the build script uses for the pinned versions. */
export async function binDir(): Promise<string> {
  if (process.env.CASCADE_BIN_DIR) return process.env.CASCADE_BIN_DIR;
  const { stdout } = await execFileP('bash', [buildScript(), '--print-dir']);
  return stdout.trim();
}

export function haveAll(dir: string): boolean {
  return BINARIES.every((b) => existsSync(join(dir, b)));
}

/** True when `go` can be run. */
export async function goAvailable(): Promise<boolean> {
  try {
    await execFileP('go', ['version']);
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns the binary directory, running the build script first when the cache
 * is empty. The script's progress goes to our stderr.
 */
export async function ensureBinaries(): Promise<string> {
  const dir = await binDir();
  if (haveAll(dir)) return dir;
  await new Promise<void>((res, rej) => {
    const child = spawn('bash', [buildScript()], { stdio: ['ignore', process.stderr, process.stderr] });
    child.on('error', rej);
    child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`hack/build-k8s.sh failed with exit code ${code ?? 'signal'}`))));
  });
  if (!haveAll(dir)) throw new Error(`hack/build-k8s.sh finished but ${dir} lacks some of ${BINARIES.join(', ')}`);
  return dir;
}

/** The helm binary hack/build-helm.sh builds (for the chart tests), building it first when missing. */
export async function ensureHelm(): Promise<string> {
  const script = join(repoRoot(), 'hack', 'build-helm.sh');
  const { stdout } = await execFileP('bash', [script, '--print-path']);
  const path = stdout.trim();
  if (existsSync(path)) return path;
  await new Promise<void>((res, rej) => {
    const child = spawn('bash', [script], { stdio: ['ignore', process.stderr, process.stderr] });
    child.on('error', rej);
    child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`hack/build-helm.sh failed with exit code ${code ?? 'signal'}`))));
  });
  if (!existsSync(path)) throw new Error(`hack/build-helm.sh finished but ${path} is missing`);
  return path;
}
