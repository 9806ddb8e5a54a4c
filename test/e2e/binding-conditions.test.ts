// Binding conditions (KEP-5007, beta and on in 1.36) on the real control plane:
// GPUs of a composable fabric that must be attached to a node before a pod may
// use them. Cascade allocates them (--co-allocate-drivers), the real
// kube-scheduler holds the pod in PreBind until the attach condition is True,
// and when the fabric reports a failure the scheduler releases the allocation
// and Cascade allocates again, without the device that failed.
//
// The test plays the fabric driver: it publishes the pool and writes the
// conditions into the claim's status.devices, as such a driver's controller does.
import { describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { installAddonWithController, type Component } from '../support/addon.js';
import { nodesPublished, startGpuNode, type GpuNode } from '../support/gpu-node.js';
import type { DeviceRequestAllocationResult, ResourceClaim } from '../../pkg/api/resource.js';
import type { EventV1, Pod } from '../../pkg/k8s/types.js';

const FABRIC = 'fabric.example.com';
const ATTACHED = `${FABRIC}/attached`;
const FAILED = `${FABRIC}/attach-failed`;
const NODES = ['fab-1', 'fab-2'];

describeCluster('binding conditions: fabric-attached GPUs wait for their attach, and a failed attach is allocated again', () => {
  const ns = useNamespace('binding-e2e', { 'cascade-e2e': 'binding' });
  const nodes: GpuNode[] = [];
  let controller: Component;
  const sliceName = 'fabric-pool-e2e';

  beforeAll(async () => {
    controller = await installAddonWithController('binding-controller', { 'cascade-e2e': 'binding' }, [`--co-allocate-drivers=${FABRIC}`]);
    for (const name of NODES) nodes.push(await startGpuNode(ns.kube, { name, fleet: { gpus: [{ model: 'H100-80GB', migMode: 'Disabled' }] } }));
    await nodesPublished(ns.kube, NODES);
    // A fabric pool reachable from every node; each GPU is bound to one node when attached.
    await ns.kube.resourceSlices.create({
      metadata: { name: sliceName },
      spec: {
        driver: FABRIC,
        allNodes: true,
        pool: { name: 'fabric', generation: 1, resourceSliceCount: 1 },
        devices: ['fgpu-0', 'fgpu-1', 'fgpu-2'].map((name) => ({
          name,
          attributes: { [`${FABRIC}/model`]: { string: 'H100-80GB' } },
          bindsToNode: true,
          bindingConditions: [ATTACHED],
          bindingFailureConditions: [FAILED],
        })),
      },
    });
    await ns.kube.deviceClasses.create({ metadata: { name: FABRIC }, spec: { selectors: [{ cel: { expression: `device.driver == "${FABRIC}"` } }] } });
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'fabric-gpu', namespace: ns.name },
      spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: FABRIC } }] } } },
    });
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    for (const n of nodes) await n.stop();
    await ns.kube?.resourceSlices.delete(sliceName).catch(() => undefined);
    await ns.kube?.deviceClasses.delete(FABRIC).catch(() => undefined);
    for (const n of NODES) await ns.kube?.nodes.delete(n).catch(() => undefined);
  });

  const makePod = async (name: string): Promise<Pod> =>
    await ns.kube.pods.create({
      metadata: { name, namespace: ns.name },
      spec: {
        containers: [{ name: 'main', image: 'nvcr.io/nvidia/cuda:12.9.0-base-ubuntu24.04', resources: { claims: [{ name: 'gpu' }] } }],
        resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'fabric-gpu' }],
      },
    });

  const claimOf = async (pod: string): Promise<ResourceClaim> => {
    const name = await eventually(`${pod}'s claim`, async () => (await ns.kube.pods.get(pod, ns.name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName);
    return await ns.kube.resourceClaims.get(name, ns.name);
  };

  const events = async (regarding: string, reason: string): Promise<EventV1[]> => (await ns.kube.events.list(ns.name)).filter((e) => e.regarding.name === regarding && e.reason === reason);

  /** The scheduler reached PreBind: the claim is reserved for the pod, and it said it waits for the conditions. */
  const waitingInPreBind = async (pod: string): Promise<{ claim: ResourceClaim; result: DeviceRequestAllocationResult }> =>
    await eventually(
      `${pod} to wait in the scheduler for its binding conditions`,
      async () => {
        const claim = await claimOf(pod);
        const result = claim.status?.allocation?.devices?.results?.[0];
        const reserved = (claim.status?.reservedFor ?? []).some((r) => r.name === pod);
        if (result === undefined || !reserved) return undefined;
        return (await events(pod, 'BindingConditionsPending')).length > 0 ? { claim, result } : undefined;
      },
      60_000,
    );

  /** Writes one condition of the allocated device, as the fabric driver would. */
  const report = async (claim: ResourceClaim, r: DeviceRequestAllocationResult, type: string, reason: string, message: string): Promise<void> => {
    await ns.kube.resourceClaims.mergePatch(
      claim.metadata.name ?? '',
      {
        status: {
          devices: [
            {
              driver: r.driver,
              pool: r.pool,
              device: r.device,
              conditions: [{ type, status: 'True', reason, message, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }],
            },
          ],
        },
      },
      ns.name,
      'status',
    );
  };

  const boundTo = async (pod: string): Promise<string> => await eventually(`${pod} bound`, async () => (await ns.kube.pods.get(pod, ns.name)).spec.nodeName, 60_000);

  it('holds the pod until the fabric reports the GPU attached, then binds it to the node the GPU was attached to', async () => {
    await makePod('attach');
    const { claim, result } = await waitingInPreBind('attach');
    // Allocated with the device's conditions, pinned to one node because the device binds to it.
    expect(result).toMatchObject({ driver: FABRIC, pool: 'fabric', bindingConditions: [ATTACHED], bindingFailureConditions: [FAILED] });
    const terms = claim.status?.allocation?.nodeSelector?.nodeSelectorTerms ?? [];
    expect(terms).toHaveLength(1);
    const node = terms[0]?.matchFields?.[0]?.values?.[0] ?? '';
    expect(terms[0]?.matchFields?.[0]).toMatchObject({ key: 'metadata.name', operator: 'In' });
    expect(NODES).toContain(node);
    // The Allocated event says what the pod waits for.
    const allocated = await eventually('the Allocated event', async () => (await events(claim.metadata.name ?? '', 'Allocated'))[0]);
    expect(allocated.note).toContain(`binds the pod only once these conditions are True in the claim's status: ${result.device} (${FABRIC}: ${ATTACHED})`);
    // Reserved for it and waiting: not bound before the condition is True.
    expect((await ns.kube.pods.get('attach', ns.name)).spec.nodeName ?? '').toBe('');
    await report(claim, result, ATTACHED, 'Attached', `attached to ${node}`);
    expect(await boundTo('attach')).toBe(node);
    expect((await ns.kube.resourceClaims.get(claim.metadata.name ?? '', ns.name)).status?.allocation?.devices?.results?.[0]?.device).toBe(result.device);
  }, 120_000);

  it('when the attach fails, says so, and the claim is allocated again on another device that then binds', async () => {
    await makePod('retry');
    const first = await waitingInPreBind('retry');
    await report(first.claim, first.result, FAILED, 'AttachFailed', 'fabric port 3 is down');
    const claimName = first.claim.metadata.name ?? '';
    // Said on the claim and on the waiting pod, in plain words first.
    const failed = await eventually('the BindingFailed event on the claim', async () => (await events(claimName, 'BindingFailed'))[0]);
    expect(failed.type).toBe('Warning');
    expect(failed.note).toMatch(
      new RegExp(
        `^Device fabric/${first.result.device} of ${FABRIC.replace(/\./g, '\\.')} could not be made ready for node fab-[12] \\(${FAILED.replace(/[./]/g, '\\$&')}, AttachFailed: fabric port 3 is down\\)`,
      ),
    );
    expect(failed.note).toContain('Cascade allocates the claim again without that device');
    await eventually('the BindingFailed event on the pod', async () => (await events('retry', 'BindingFailed'))[0]);
    // The scheduler released the allocation; Cascade's new one avoids the failed device.
    const second = await eventually(
      'a new allocation of the claim',
      async () => {
        const c = await ns.kube.resourceClaims.get(claimName, ns.name);
        const r = c.status?.allocation?.devices?.results?.[0];
        return r !== undefined && (c.status?.devices ?? []).length === 0 ? { claim: c, result: r } : undefined;
      },
      60_000,
    );
    expect(second.result.device).not.toBe(first.result.device);
    expect((await events(claimName, 'Allocated')).length).toBeGreaterThanOrEqual(2);
    const again = await waitingInPreBind('retry');
    expect(again.result.device).toBe(second.result.device);
    await report(again.claim, again.result, ATTACHED, 'Attached', 'attached');
    const node = again.claim.status?.allocation?.nodeSelector?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values?.[0];
    expect(await boundTo('retry')).toBe(node);
  }, 150_000);
});
