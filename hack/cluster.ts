// `npm run cluster:up` / `cluster:down`: a local control plane in the background
// for humans and checks; the admin kubeconfig lands in .cascade/kubeconfig.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlPlane, alive, stopClusterDir } from '../pkg/cluster/controlplane.js';
import { repoRoot } from '../pkg/cluster/binaries.js';

interface Record_ {
  readonly supervisorPid: number;
  readonly dir: string;
  readonly server: string;
  readonly version: string;
}

const stateDir = join(repoRoot(), '.cascade');
const recordPath = join(stateDir, 'cluster.json');
const kubeconfigPath = join(stateDir, 'kubeconfig');
const logPath = join(stateDir, 'cluster.log');

function readRecord(): Record_ | undefined {
  if (!existsSync(recordPath)) return undefined;
  try {
    return JSON.parse(readFileSync(recordPath, 'utf8')) as Record_;
  } catch {
    return undefined;
  }
}

/** Runs in the detached supervisor: owns the control plane until SIGTERM. */
async function serve(): Promise<void> {
  const cp = await ControlPlane.start({ progress: (l) => console.error(`cascade: ${l}`) });
  await copyFile(cp.adminKubeconfigPath, kubeconfigPath);
  const rec: Record_ = { supervisorPid: process.pid, dir: cp.dir, server: cp.server, version: cp.version };
  await writeFile(recordPath, JSON.stringify(rec, null, 2));
  const shutdown = (): void => {
    void cp.stop().finally(() => {
      rmSync(recordPath, { force: true });
      rmSync(kubeconfigPath, { force: true });
      process.exit(0);
    });
  };
  // ControlPlane installs its own handlers; ours also removes the record files.
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  setInterval(() => undefined, 1 << 30);
}

async function up(): Promise<void> {
  const existing = readRecord();
  if (existing && alive(existing.supervisorPid)) {
    console.log(`cascade: control plane already running (${existing.version} at ${existing.server})`);
    console.log(`  export KUBECONFIG=${kubeconfigPath}`);
    return;
  }
  await mkdir(stateDir, { recursive: true });
  rmSync(recordPath, { force: true });
  const started = Date.now();
  const log = openSync(logPath, 'w');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? 'hack/cluster.ts', 'serve'], {
    detached: true,
    stdio: ['ignore', log, log],
    cwd: repoRoot(),
  });
  closeSync(log);
  child.unref();
  // Show the supervisor's progress (including a first-time build) while waiting.
  let shown = 0;
  for (;;) {
    const text = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
    if (text.length > shown) {
      process.stderr.write(text.slice(shown));
      shown = text.length;
    }
    const rec = readRecord();
    if (rec) {
      console.log(`cascade: control plane ${rec.version} up at ${rec.server} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
      console.log(`  kubectl --kubeconfig ${kubeconfigPath} get nodes`);
      console.log('  npm run cluster:down   # stops it');
      return;
    }
    if (child.pid === undefined || !alive(child.pid)) {
      throw new Error(`the control plane did not start; see ${logPath}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function down(): Promise<void> {
  const rec = readRecord();
  if (!rec) {
    console.log('cascade: no local control plane is running');
    return;
  }
  if (alive(rec.supervisorPid)) {
    process.kill(rec.supervisorPid, 'SIGTERM');
    const deadline = Date.now() + 60_000;
    while (alive(rec.supervisorPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }
  // If the supervisor was gone or stuck, stop what it left directly.
  await stopClusterDir(rec.dir);
  rmSync(recordPath, { force: true });
  rmSync(kubeconfigPath, { force: true });
  console.log('cascade: control plane stopped');
}

const cmd = process.argv[2];
const actions: Record<string, () => Promise<void>> = { up, down, serve };
const action = cmd ? actions[cmd] : undefined;
if (!action) {
  console.error('usage: tsx hack/cluster.ts up|down');
  process.exit(2);
}
action().catch((err: unknown) => {
  console.error(`cascade: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
