// An upgrade while GPU workloads run, as a platform engineer does it: the
// previous release (built from this repository's history, checkpoint version
// 3) is installed and prepares a whole GPU, a MIG slice and an MPS share; then
// its manifests, controller and node plugin are replaced by this build
// (checkpoint version 4). Nothing allocated is lost or handed out twice, the
// prepared devices stay prepared (same MIG instance, same MPS daemon, same CDI
// answer to the kubelet), and the kubelet's unprepare afterwards undoes them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeCluster, clusterDir, eventually, useNamespace } from '../support/cluster.js';
import { ADDON_NAMESPACE, applyServerSide, controllerProcess, renderManifests, webhookToUrl, type Component } from '../support/addon.js';
import { preparedOn, startGpuNode, type GpuNode } from '../support/gpu-node.js';
import { doubleBooked } from '../support/claims.js';
import { buildPreviousRelease } from '../support/previous-release.js';
import { freePort, writeServiceAccountKubeconfig } from '../../pkg/cluster/controlplane.js';
import { adminKubeconfig } from '../support/tools.js';
import { liveDaemons } from '../../hack/fake-mps-control/testing.js';
import { CHECKPOINT_WRITER } from '../../pkg/nodeplugin/checkpoint.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';
import type { EventV1 } from '../../pkg/k8s/types.js';

const DRIVER = 'gpu.cascade.dev';
const LABELS = { 'cascade-e2e': 'upgrade' };
const NODE = 'upgrade-h100';

describeCluster('upgrading Cascade while claims are allocated and prepared', () => {
  const ns = useNamespace('upgrade', LABELS);
  let previous: string;
  let node: GpuNode;
  let controller: Component;
  let port: number;
  let controllerKubeconfig: string;

  const install = async (root?: string): Promise<void> => {
    const docs = webhookToUrl(await renderManifests('dev', root), `https://127.0.0.1:${port}/mutate-pods`, LABELS);
    const applied = await applyServerSide(docs);
    if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr}`);
  };

  beforeAll(async () => {
    previous = await buildPreviousRelease(join(clusterDir(), 'previous-release'));
    port = await freePort();
    await install(join(previous, '..'));
    controllerKubeconfig = await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, 'cascade-controller', join(clusterDir(), 'upgrade-controller.kubeconfig'));
    controller = controllerProcess({ name: 'upgrade-controller-previous', kubeconfig: controllerKubeconfig, webhookPort: port, distRoot: previous }).start();
    node = await startGpuNode(ns.kube, {
      name: NODE,
      pluginDist: previous,
      fleet: {
        driverVersion: '580.105.08',
        cudaVersion: '13.0',
        gpus: [
          { model: 'H100-80GB', migMode: 'Disabled' },
          { model: 'H100-80GB', migMode: 'Disabled' },
          { model: 'H100-80GB', migMode: 'Enabled' },
        ],
      },
    });
    await eventually('the node to publish', async () => (await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${NODE}` })).length > 0, 60_000);
    const template = async (name: string, exactly: Record<string, unknown>): Promise<void> => {
      await ns.kube.resourceClaimTemplates.create({ metadata: { name, namespace: ns.name }, spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: exactly as never }] } } } });
    };
    await template('whole', { deviceClassName: `gpu.${DRIVER}` });
    await template('slice', { deviceClassName: `mig.${DRIVER}`, selectors: [{ cel: { expression: `device.attributes["${DRIVER}"].profile == "1g.10gb"` } }] });
    await template('share', { deviceClassName: `shared.${DRIVER}`, capacity: { requests: { [`${DRIVER}/memory`]: '20Gi', [`${DRIVER}/compute`]: '30' } } });
  }, 240_000);

  afterAll(async () => {
    await controller?.stop();
    await node?.stop();
    if (ns.kube) await ns.kube.nodes.delete(NODE).catch(() => undefined);
    // Later tests install this build's manifests again; leave them in place.
    await install().catch(() => undefined);
  });

  const makePod = async (name: string, template: string): Promise<void> => {
    await ns.kube.pods.create({
      metadata: { name, namespace: ns.name },
      spec: {
        containers: [{ name: 'main', image: 'nvcr.io/nvidia/cuda:12.9.0-base-ubuntu24.04', resources: { claims: [{ name: 'gpu' }] } }],
        resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: template }],
      },
    });
  };
  const claimOf = async (pod: string): Promise<ResourceClaim> => {
    const name = await eventually(`${pod}'s claim`, async () => (await ns.kube.pods.get(pod, ns.name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName);
    return await ns.kube.resourceClaims.get(name, ns.name);
  };
  const allocated = async (pod: string): Promise<ResourceClaim> =>
    await eventually(
      `${pod}'s claim allocated`,
      async () => {
        const c = await claimOf(pod);
        return c.status?.allocation ? c : undefined;
      },
      60_000,
    );
  const checkpoint = (): { version: number; payload: { writtenBy: string; claims: Record<string, { state: string; preparedBy?: string }> } } =>
    JSON.parse(readFileSync(join(node.dirs.state, 'checkpoint.json'), 'utf8')) as never;
  const cdiSpecs = (): string[] =>
    readdirSync(node.dirs.cdi)
      .filter((f) => f.endsWith('.json'))
      .sort();

  it('keeps every allocation and prepared device through the upgrade, and unprepares them afterwards', async () => {
    // ---- the previous release at work
    for (const [pod, template] of [
      ['trainer', 'whole'],
      ['notebook', 'slice'],
      ['embed', 'share'],
    ] as const)
      await makePod(pod, template);
    const before = new Map<string, ResourceClaim>();
    for (const pod of ['trainer', 'notebook', 'embed']) before.set(pod, await allocated(pod));
    const cdiBefore = new Map<string, readonly string[]>();
    for (const pod of ['trainer', 'notebook', 'embed']) cdiBefore.set(pod, await preparedOn(node, ns.name, pod));
    expect(checkpoint().version).toBe(3);
    const instancesBefore = node.sim.readState().gpus.map((g) => g.gpuInstances.length);
    expect(instancesBefore.reduce((a, b) => a + b, 0)).toBe(1);
    const daemonsBefore = [...liveDaemons(node.mpsRoot).values()];
    expect(daemonsBefore).toHaveLength(1);
    const specsBefore = cdiSpecs();
    expect(specsBefore).toHaveLength(3);

    // ---- the upgrade: manifests, then the controller, then the node plugin (a DaemonSet rolls one node at a time)
    await install();
    await controller.stop();
    controller = controllerProcess({ name: 'upgrade-controller', kubeconfig: controllerKubeconfig, webhookPort: port }).start();
    await node.plugin.stop();
    node.restartPlugin();
    await node.kubelet.reregister();

    // The checkpoint is converted and written back, each claim marked as prepared by the previous release.
    await eventually('the checkpoint converted to version 4', async () => checkpoint().version === 4, 60_000);
    const converted = checkpoint();
    expect(converted.payload.writtenBy).toBe(CHECKPOINT_WRITER);
    expect(Object.values(converted.payload.claims).map((c) => [c.state, c.preparedBy])).toEqual([
      ['PrepareCompleted', 'cascade-node-plugin (checkpoint v3)'],
      ['PrepareCompleted', 'cascade-node-plugin (checkpoint v3)'],
      ['PrepareCompleted', 'cascade-node-plugin (checkpoint v3)'],
    ]);
    expect(node.plugin.log()).toContain(
      'kept 3 prepared claim(s) of the previous node plugin (cascade-node-plugin (checkpoint v3)); its checkpoint version 3 was converted and written back as version 4',
    );

    // The kubelet asks again after the plugin re-registers: the same answer, nothing set up twice.
    for (const pod of ['trainer', 'notebook', 'embed']) {
      const again = await node.kubelet.prepareAgain(ns.name, pod);
      const errors = [...again.values()].map((r) => r.error).filter((e) => e);
      expect(errors).toEqual([]);
      expect([...again.values()].flatMap((r) => r.devices.flatMap((d) => d.cdiDeviceIds))).toEqual(cdiBefore.get(pod));
    }
    expect(node.sim.readState().gpus.map((g) => g.gpuInstances.length)).toEqual(instancesBefore);
    expect([...liveDaemons(node.mpsRoot).values()]).toEqual(daemonsBefore);
    expect(cdiSpecs()).toEqual(specsBefore);

    // No allocation lost or changed; a new claim gets nothing already held (every GPU is in use).
    for (const claim of before.values()) expect((await ns.kube.resourceClaims.get(claim.metadata.name ?? '', ns.name)).status?.allocation).toEqual(claim.status?.allocation);
    await makePod('late', 'whole');
    const lateClaim = (await claimOf('late')).metadata.name;
    const failed = await eventually('the new controller to refuse the late whole-GPU claim', async () =>
      (await ns.kube.events.list(ns.name)).find((e: EventV1) => e.regarding.name === lateClaim && e.reason === 'AllocationFailed' && e.reportingInstance === 'upgrade-controller'),
    );
    expect(failed.note).toBeTruthy();
    expect(doubleBooked(await ns.kube.resourceClaims.list(ns.name))).toEqual([]);

    // ---- after the upgrade, the kubelet's unprepare undoes what the previous release set up
    const shareGpu = before.get('embed')?.status?.allocation?.devices?.results?.[0]?.device.replace(/-shared$/, '');
    await ns.kube.pods.delete('embed', ns.name, { gracePeriodSeconds: 0 });
    await eventually('the MPS daemon stopped after its last client', async () => liveDaemons(node.mpsRoot).size === 0, 60_000);
    // The freed GPU goes to the waiting pod, and only to it.
    const late = await allocated('late');
    expect(late.status?.allocation?.devices?.results?.[0]?.device).toBe(shareGpu);
    await preparedOn(node, ns.name, 'late');

    await ns.kube.pods.delete('notebook', ns.name, { gracePeriodSeconds: 0 });
    await eventually('the MIG instance destroyed', async () => node.sim.readState().gpus.every((g) => g.gpuInstances.length === 0), 60_000);
    for (const pod of ['trainer', 'late']) await ns.kube.pods.delete(pod, ns.name, { gracePeriodSeconds: 0 });
    await eventually('every claim unprepared', async () => Object.keys(checkpoint().payload.claims).length === 0 && cdiSpecs().length === 0, 60_000);
    expect(node.kubelet.errors).toEqual([]);
  }, 300_000);
});
