// Many prepare/unprepare cycles through the kubelet's sockets must leave the
// GPUs as they found them: no MIG instance, no CDI spec, no checkpointed claim.
import { randomBytes } from 'node:crypto';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import { type RunningNodePlugin, startNodePlugin } from '../../pkg/nodeplugin/run.js';
import { FLEETS, type FakeNvidiaSmi, createFakeNvidiaSmi } from '../../hack/fake-nvidia-smi/testing.js';
import { describeCluster, useNamespace } from '../support/cluster.js';
import { KubeletStandin } from '../support/kubelet-standin.js';
import { type PluginDirs, allocatedClaim, backendFor, cdiSchemaProblems, instanceCount, pluginConfig, pluginDirs, refOf } from './node-plugin-support.js';

describeCluster('the node plugin under repeated prepare and unprepare', () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `npc-${tag}.cascade.dev`;
  const ns = useNamespace('npc');
  const node = `npc-${tag}`;
  let smi: FakeNvidiaSmi;
  let dirs: PluginDirs;
  let plugin: RunningNodePlugin;
  let kubelet: KubeletStandin;

  beforeAll(async () => {
    await createFakeNode(ns.kube, node);
    smi = createFakeNvidiaSmi(FLEETS.h100x8('Enabled'));
    dirs = pluginDirs();
    plugin = await startNodePlugin(pluginConfig(driver, node, dirs, smi), { kube: ns.kube, backend: backendFor(smi) });
    kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
  }, 60_000);

  afterAll(async () => {
    kubelet?.close();
    await plugin?.stop();
    smi?.cleanup();
    dirs?.cleanup();
    for (const s of await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` }).catch(() => [])) {
      await ns.kube.resourceSlices.delete(s.metadata.name ?? '').catch(() => undefined);
    }
    await ns.kube.nodes.delete(node).catch(() => undefined);
  });

  it('leaves the simulator with no MIG instance after 200 prepare/unprepare cycles', async () => {
    const devices = ['gpu-0-mig-1g-10gb-0', 'gpu-0-mig-3g-40gb-4', 'gpu-1-mig-7g-80gb-0', 'gpu-2-mig-2g-20gb-2'];
    const claims = [];
    for (const [i, d] of devices.entries()) claims.push(refOf(await allocatedClaim(ns.kube, ns.name, `cycle-${i}`, driver, node, [d])));
    const failures: string[] = [];
    let prepared = 0;
    for (let i = 0; i < 200; i++) {
      const ref = claims[i % claims.length];
      if (!ref) continue;
      const p = (await kubelet.prepare([ref])).get(ref.uid);
      if (p?.error) failures.push(`prepare ${i}: ${p.error}`);
      else if (p?.devices.length === 1) prepared += 1;
      const u = (await kubelet.unprepare([ref])).get(ref.uid);
      if (u?.error) failures.push(`unprepare ${i}: ${u.error}`);
    }
    expect(failures).toEqual([]);
    expect(prepared).toBe(200);
    expect(instanceCount(smi)).toBe(0);
    expect(Object.keys(plugin.preparer.checkpointState.claims)).toEqual([]);
    expect(await cdiSchemaProblems(dirs.cdiRoot)).toEqual({ files: 0, problems: [] });
  }, 300_000);
});
