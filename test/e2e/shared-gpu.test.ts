// Shared GPUs end to end on the real control plane, as a user runs them: two
// pods each ask for 20Gi and 30% of a GPU through a ResourceClaimTemplate of
// class shared.gpu.cascade.dev; the webhook gates them, the controller gives
// both a share of the one H100 (consumable capacity), the kube-scheduler binds
// them, the node plugin starts one MPS daemon and writes CDI specs with each
// container's limits. A pod asking for the whole GPU waits, told why, until
// both shares are gone, and then gets it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { installAddonWithController, type Component } from '../support/addon.js';
import { preparedOn, startGpuNode, type GpuNode } from '../support/gpu-node.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';
import type { EventV1, Pod } from '../../pkg/k8s/types.js';
import { liveDaemons } from '../../hack/fake-mps-control/testing.js';
import { fleetRows, renderFleet } from '../../pkg/cli/fleet.js';

const DRIVER = 'gpu.cascade.dev';

describeCluster('shared GPUs end to end', () => {
  const ns = useNamespace('share', { 'cascade-e2e': 'share' });
  let node: GpuNode;
  let controller: Component;

  beforeAll(async () => {
    controller = await installAddonWithController('share-controller', { 'cascade-e2e': 'share' });
    node = await startGpuNode(ns.kube, { name: 'share-h100', fleet: { driverVersion: '580.105.08', cudaVersion: '13.0', gpus: [{ model: 'H100-80GB', migMode: 'Disabled' }] } });
    await eventually('the node to publish', async () => (await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=share-h100` })).length > 0, 60_000);
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'mps-20g', namespace: ns.name },
      spec: {
        spec: {
          devices: {
            requests: [{ name: 'gpu', exactly: { deviceClassName: `shared.${DRIVER}`, capacity: { requests: { [`${DRIVER}/memory`]: '20Gi', [`${DRIVER}/compute`]: '30' } } } }],
          },
        },
      },
    });
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'whole', namespace: ns.name },
      spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } },
    });
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    await node?.stop();
    if (ns.kube) await ns.kube.nodes.delete('share-h100').catch(() => undefined);
  });

  const makePod = async (name: string, template: string): Promise<Pod> =>
    await ns.kube.pods.create({
      metadata: { name, namespace: ns.name },
      spec: {
        containers: [{ name: 'main', image: 'nvcr.io/nvidia/cuda:12.9.0-base-ubuntu24.04', resources: { requests: { cpu: '1' }, claims: [{ name: 'gpu' }] } }],
        resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: template }],
      },
    });

  const claimOf = async (pod: string): Promise<ResourceClaim> => {
    const name = await eventually(`${pod}'s claim`, async () => (await ns.kube.pods.get(pod, ns.name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName);
    return await ns.kube.resourceClaims.get(name, ns.name);
  };

  const boundNode = async (pod: string): Promise<string> => await eventually(`${pod} bound`, async () => (await ns.kube.pods.get(pod, ns.name)).spec.nodeName, 60_000);

  const prepared = (pod: string): Promise<readonly string[]> => preparedOn(node, ns.name, pod);

  it('shares one H100 between two 20Gi/30% pods through MPS, and keeps the whole GPU from a third until both are gone', async () => {
    await makePod('embed', 'mps-20g');
    await makePod('rerank', 'mps-20g');
    expect(await boundNode('embed')).toBe('share-h100');
    expect(await boundNode('rerank')).toBe('share-h100');
    const claims = [await claimOf('embed'), await claimOf('rerank')];
    const results = claims.map((c) => c.status?.allocation?.devices?.results?.[0]);
    for (const r of results) {
      expect(r?.device).toBe('gpu-0-shared');
      expect(r?.consumedCapacity).toEqual({ [`${DRIVER}/memory`]: '20Gi', [`${DRIVER}/compute`]: '30' });
    }
    expect(results[0]?.shareID).toBeDefined();
    expect(results[0]?.shareID).not.toBe(results[1]?.shareID);

    // One MPS daemon for the GPU, and each container told its limits by CDI.
    await prepared('embed');
    await prepared('rerank');
    expect(liveDaemons(node.mpsRoot).size).toBe(1);
    for (const c of claims) {
      const file = readdirSync(node.dirs.cdi).find((f) => f.includes(c.metadata.uid ?? '-'));
      const spec = JSON.parse(readFileSync(join(node.dirs.cdi, file ?? 'missing'), 'utf8')) as { devices: { containerEdits: { env?: string[] } }[] };
      expect(spec.devices[0]?.containerEdits.env).toEqual(expect.arrayContaining(['CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=20480M', 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30']));
    }
    // The Allocated event says what was given, in words first.
    const allocated = await eventually('Allocated event', async () =>
      (await ns.kube.events.list(ns.name)).find((e: EventV1) => e.regarding.name === claims[0]?.metadata.name && e.reason === 'Allocated'),
    );
    expect(allocated.note).toMatch(/^Allocated a share of gpu-0-shared \(20Gi memory, 30% compute\) on node share-h100/);

    // kubectl cascade fleet shows the sharing.
    const rows = fleetRows(await ns.kube.resourceSlices.list(), await ns.kube.resourceClaims.list(ns.name), DRIVER);
    const row = rows.find((r) => r.node === 'share-h100');
    expect(row?.usage).toMatch(/^shared 40Gi\/81559Mi 60%: /);
    expect(renderFleet(rows)).toContain('1 shared');

    // The whole GPU is taken by the shares: the pod waits, and a person reads why.
    await makePod('trainer', 'whole');
    const trainerClaim = (await claimOf('trainer')).metadata.name;
    const failed = await eventually('AllocationFailed for the whole GPU', async () =>
      (await ns.kube.events.list(ns.name)).find((e: EventV1) => e.regarding.name === trainerClaim && e.reason === 'AllocationFailed'),
    );
    expect(failed.note).toMatch(/shared counters/);
    expect((await ns.kube.pods.get('trainer', ns.name)).spec.schedulingGates).toEqual([{ name: `${DRIVER}/allocation` }]);

    // One share leaves: still not whole.
    await ns.kube.pods.delete('embed', ns.name, { gracePeriodSeconds: 0 });
    await eventually('embed claim gone', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.uid === claims[0]?.metadata.uid), 60_000);
    expect((await ns.kube.pods.get('trainer', ns.name)).spec.nodeName).toBeUndefined();
    expect(liveDaemons(node.mpsRoot).size).toBe(1);

    // The last share leaves: the daemon stops and the whole GPU goes to the waiting pod.
    await ns.kube.pods.delete('rerank', ns.name, { gracePeriodSeconds: 0 });
    expect(await boundNode('trainer')).toBe('share-h100');
    expect((await claimOf('trainer')).status?.allocation?.devices?.results?.map((r) => r.device)).toEqual(['gpu-0']);
    await prepared('trainer');
    await eventually('the MPS daemon stopped', async () => liveDaemons(node.mpsRoot).size === 0, 30_000);

    await ns.kube.pods.delete('trainer', ns.name, { gracePeriodSeconds: 0 });
    await eventually('all claims gone', async () => (await ns.kube.resourceClaims.list(ns.name)).length === 0, 60_000);
    expect(node.kubelet.errors).toEqual([]);
  }, 300_000);
});
