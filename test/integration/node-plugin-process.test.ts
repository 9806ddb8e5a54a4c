// The node plugin as the DaemonSet runs it: dist/cmd/node-plugin/main.js as a
// child process. Killed with SIGKILL between creating a MIG instance and
// completing the checkpoint, it must restart without a leaked instance and
// prepare the retried claim; stopped with SIGTERM it keeps slices and state.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import { cdiSpecFileName } from '../../pkg/kubeletplugin/cdi.js';
import { CRASH_POINT_ENV, type CrashPoint } from '../../pkg/nodeplugin/crash.js';
import { CHECKPOINT_FILE } from '../../pkg/nodeplugin/run.js';
import { FLEETS, type FakeNvidiaSmi, createFakeNvidiaSmi } from '../../hack/fake-nvidia-smi/testing.js';
import { Component } from '../support/addon.js';
import { adminKubeconfig, describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { killDaemons, liveDaemons } from '../../hack/fake-mps-control/testing.js';
import { type PluginDirs, allocatedClaim, registerWith, allocatedShare, cdiSchemaProblems, instanceCount, pluginArgs, pluginConfig, pluginDirs, refOf } from './node-plugin-support.js';

const MAIN = join(repoRoot(), 'dist', 'cmd', 'node-plugin', 'main.js');

function runMain(args: readonly string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describeCluster('the node plugin process', () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `npp-${tag}.cascade.dev`;
  const ns = useNamespace('npp');
  const node = `npp-${tag}`;
  let smi: FakeNvidiaSmi;
  let dirs: PluginDirs;
  const components: Component[] = [];

  const start = (name: string, env: Record<string, string> = {}): Component => {
    const config = pluginConfig(driver, node, dirs, smi, { pollIntervalMs: 600_000, healthIntervalMs: 600_000 });
    const c = new Component(`${node}-${name}`, 'cmd/node-plugin/main.js', pluginArgs(config, adminKubeconfig()), { ...smi.env, ...env }).start();
    components.push(c);
    return c;
  };

  beforeAll(async () => {
    await createFakeNode(ns.kube, node);
    smi = createFakeNvidiaSmi(FLEETS.h100x8('Enabled'));
    dirs = pluginDirs();
  });

  afterAll(async () => {
    for (const c of components) await c.stop('SIGKILL');
    smi?.cleanup();
    dirs?.cleanup();
    for (const s of await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` }).catch(() => [])) {
      await ns.kube.resourceSlices.delete(s.metadata.name ?? '').catch(() => undefined);
    }
    await ns.kube.nodes.delete(node).catch(() => undefined);
  });

  it('prints the slices it would publish with --dry-run', async () => {
    const dry = createFakeNvidiaSmi(FLEETS.a100('Disabled'));
    try {
      const out = await runMain(['--dry-run', '--nvidia-smi', dry.path, '--node-name', 'dry-node'], dry.env);
      expect(out.code).toBe(0);
      const list = JSON.parse(out.stdout) as { kind: string; items: { spec: { nodeName: string; devices?: { name: string }[] } }[] };
      expect(list.kind).toBe('List');
      expect(list.items.flatMap((s) => s.spec.devices ?? []).map((d) => d.name)).toEqual(['gpu-0', 'gpu-0-shared']);
      expect(list.items.map((s) => s.spec.nodeName)).toEqual(['dry-node', 'dry-node']);
    } finally {
      dry.cleanup();
    }
  });

  it.each<[CrashPoint, string]>([
    ['after-mig-create', 'the instance exists but the checkpoint does not know it'],
    ['before-prepare-complete', 'the instance and its CDI spec are recorded but the claim is not completed'],
  ])(
    'restarts after a SIGKILL at %s (%s) with no leaked instance, and the retried prepare succeeds',
    async (point) => {
      const ref = refOf(await allocatedClaim(ns.kube, ns.name, `crash-${point}`, driver, node, ['gpu-4-mig-2g-20gb-2']));
      const crashing = start(`crash-${point}`, { [CRASH_POINT_ENV]: point });
      const first = await registerWith(dirs, driver);
      await expect(first.prepare([ref])).rejects.toThrow();
      first.close();
      await eventually('the plugin to die', async () => !crashing.running);
      // The crash happened inside the window: the instance was created.
      expect(instanceCount(smi)).toBe(1);

      const restarted = start(`restart-${point}`);
      const kubelet = await registerWith(dirs, driver);
      try {
        // Recovery ran before the sockets were served.
        expect(instanceCount(smi)).toBe(0);
        expect(existsSync(join(dirs.cdiRoot, cdiSpecFileName(driver, ref.uid)))).toBe(false);
        const retried = (await kubelet.prepare([ref])).get(ref.uid);
        expect(retried?.error).toBe('');
        expect(retried?.devices.map((d) => d.cdiDeviceIds)).toEqual([[`k8s.${driver}/gpu=${ref.uid}-gpu-4-mig-2g-20gb-2`]]);
        expect(smi.readState().gpus[4]?.gpuInstances.map((g) => g.start)).toEqual([2]);
        expect(await cdiSchemaProblems(dirs.cdiRoot)).toEqual({ files: 1, problems: [] });
        expect((await kubelet.unprepare([ref])).get(ref.uid)?.error).toBe('');
        expect(instanceCount(smi)).toBe(0);
      } finally {
        kubelet.close();
        await restarted.stop('SIGKILL');
      }
    },
    120_000,
  );

  it("restarts after a SIGKILL with a shared GPU's MPS daemon started but the claim not prepared: the daemon is stopped, the retry starts it again", async () => {
    const ref = refOf(await allocatedShare(ns.kube, { namespace: ns.name, name: 'crash-mps', driver, node, device: 'gpu-1-shared', memory: '20Gi', compute: '30' }));
    const mpsRoot = join(dirs.stateDir, 'mps');
    const crashing = start('crash-mps', { [CRASH_POINT_ENV]: 'after-mps-start' });
    const first = await registerWith(dirs, driver);
    await expect(first.prepare([ref])).rejects.toThrow();
    first.close();
    await eventually('the plugin to die', async () => !crashing.running);
    // The daemon outlives the plugin, as a real MPS control daemon does.
    expect(liveDaemons(mpsRoot).size).toBe(1);

    const restarted = start('restart-mps');
    const kubelet = await registerWith(dirs, driver);
    try {
      // Recovery rolled the claim back; nobody shares the GPU, so its daemon is gone.
      expect(liveDaemons(mpsRoot).size).toBe(0);
      const retried = (await kubelet.prepare([ref])).get(ref.uid);
      expect(retried?.error).toBe('');
      expect(liveDaemons(mpsRoot).size).toBe(1);
      expect((await kubelet.unprepare([ref])).get(ref.uid)?.error).toBe('');
      expect(liveDaemons(mpsRoot).size).toBe(0);
    } finally {
      kubelet.close();
      await restarted.stop('SIGKILL');
      killDaemons(mpsRoot);
    }
  }, 120_000);

  it('on SIGTERM stops serving but keeps its slices and checkpoint, and a restart answers the prepared claim unchanged', async () => {
    const ref = refOf(await allocatedClaim(ns.kube, ns.name, 'survivor', driver, node, ['gpu-6-mig-1g-10gb-5']));
    const plugin = start('graceful');
    let kubelet = await registerWith(dirs, driver);
    const prepared = (await kubelet.prepare([ref])).get(ref.uid);
    expect(prepared?.error).toBe('');
    kubelet.close();
    await plugin.stop('SIGTERM');
    expect(plugin.log()).toMatch(/node plugin stopping/);
    expect(existsSync(join(dirs.registryDir, `${driver}-reg.sock`))).toBe(false);
    expect(existsSync(join(dirs.stateDir, CHECKPOINT_FILE))).toBe(true);
    expect((await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` })).length).toBeGreaterThan(0);

    const again = start('graceful-again');
    kubelet = await registerWith(dirs, driver);
    try {
      expect((await kubelet.prepare([ref])).get(ref.uid)).toEqual(prepared);
      expect(instanceCount(smi)).toBe(1);
      expect((await kubelet.unprepare([ref])).get(ref.uid)?.error).toBe('');
      expect(instanceCount(smi)).toBe(0);
    } finally {
      kubelet.close();
      await again.stop('SIGTERM');
    }
  }, 120_000);
});
