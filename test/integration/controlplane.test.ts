// The local control plane never leaves processes or temp dirs behind: not after
// stop(), not when its owner is killed with SIGKILL, not when its temp dir is
// deleted underneath it.
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane, alive } from '../../pkg/cluster/controlplane.js';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import { describeCluster, eventually } from '../support/cluster.js';

describeCluster('the local control plane', () => {
  it('stops every component and removes its temp dir', async () => {
    const cp = await ControlPlane.start({ binDir: process.env.CASCADE_BIN_DIR });
    const pids = Object.values(cp.pids());
    expect(pids).toHaveLength(4);
    expect(pids.every(alive)).toBe(true);
    await cp.stop();
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(cp.dir)).toBe(false);
  }, 90_000);

  it('still stops every component when its temp dir was deleted underneath it', async () => {
    const cp = await ControlPlane.start({ binDir: process.env.CASCADE_BIN_DIR });
    const pids = Object.values(cp.pids());
    rmSync(cp.dir, { recursive: true, force: true });
    await cp.stop();
    expect(pids.filter(alive)).toEqual([]);
  }, 90_000);

  it('is cleaned up by its watchdog when the owning process is killed with SIGKILL', async () => {
    const script = `import(${JSON.stringify(join(repoRoot(), 'dist', 'pkg', 'cluster', 'controlplane.js'))}).then(async (m) => {
      const cp = await m.ControlPlane.start({ binDir: ${JSON.stringify(process.env.CASCADE_BIN_DIR ?? '')} || undefined });
      process.stdout.write(JSON.stringify({ dir: cp.dir, pids: Object.values(cp.pids()) }) + '\\n');
      setInterval(() => {}, 1000);
    });`;
    const owner = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const started = await new Promise<{ dir: string; pids: number[] }>((resolve, reject) => {
      let out = '';
      owner.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line) as { dir: string; pids: number[] });
      });
      owner.on('exit', (code) => reject(new Error(`owner exited early with ${String(code)}`)));
    });
    expect(started.pids.every(alive)).toBe(true);
    owner.kill('SIGKILL');
    await eventually('components stopped by the watchdog', async () => started.pids.every((p) => !alive(p)), 30_000);
    await eventually('temp dir removed by the watchdog', async () => !existsSync(started.dir), 30_000);
  }, 90_000);
});
