// The whole flow on the real control plane with every component under its own
// ServiceAccount: a three-level firstAvailable template, pods created, the real
// kube-controller-manager makes the claims, the webhook gates the pods, the
// controller allocates and removes the gate, the real kube-scheduler binds each
// pod to its allocated node, the kubelet stand-in prepares the devices through
// that node's plugin (MIG instances, CDI specs), and deleting the pods
// unprepares, deallocates and frees everything again.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeCluster, eventually, kubectl, useNamespace } from '../support/cluster.js';
import { installAddonWithController, type Component } from '../support/addon.js';
import { preparedOn, startGpuNode, type GpuNode, nodesPublished } from '../support/gpu-node.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';
import type { EventV1, Pod } from '../../pkg/k8s/types.js';

const DRIVER = 'gpu.cascade.dev';
const attr = (n: string): string => `device.attributes["${DRIVER}"].${n}`;

describeCluster('GPU pods end to end', () => {
  const ns = useNamespace('flow', { 'cascade-e2e': 'flow' });
  const nodes: GpuNode[] = [];
  let controller: Component;

  beforeAll(async () => {
    controller = await installAddonWithController('flow-controller', { 'cascade-e2e': 'flow' });
    nodes.push(
      await startGpuNode(ns.kube, { name: 'flow-h100', fleet: { driverVersion: '580.105.08', cudaVersion: '13.0', gpus: [{ model: 'H100-80GB', migMode: 'Disabled' }] } }),
      await startGpuNode(ns.kube, {
        name: 'flow-a100',
        fleet: { driverVersion: '570.148.08', cudaVersion: '12.8', gpus: [{ model: 'A100-SXM4-40GB' }, { model: 'A100-SXM4-40GB' }], nvlinkGroups: [[0, 1]] },
      }),
      await startGpuNode(ns.kube, { name: 'flow-mig', fleet: { driverVersion: '570.148.08', cudaVersion: '12.8', gpus: [{ model: 'A100-SXM4-40GB', migMode: 'Enabled' }] } }),
    );
    await nodesPublished(ns.kube, ['flow-h100', 'flow-a100', 'flow-mig'], DRIVER);
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'cascading', namespace: ns.name },
      spec: {
        spec: {
          devices: {
            requests: [
              {
                name: 'accel',
                firstAvailable: [
                  { name: 'h100', deviceClassName: `gpu.${DRIVER}`, selectors: [{ cel: { expression: `${attr('productName')}.contains("H100")` } }] },
                  { name: 'two-a100', deviceClassName: `gpu.${DRIVER}`, count: 2, selectors: [{ cel: { expression: `${attr('productName')}.contains("A100")` } }] },
                  { name: 'mig-3g', deviceClassName: `mig.${DRIVER}`, selectors: [{ cel: { expression: `${attr('profile')}.startsWith("3g.")` } }] },
                ],
              },
            ],
            constraints: [{ requests: ['accel/two-a100'], matchAttribute: `${DRIVER}/nvlinkDomain` }],
          },
        },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    for (const n of nodes) await n.stop();
    if (ns.kube) for (const n of nodes) await ns.kube.nodes.delete(n.name).catch(() => undefined);
  });

  const makePod = async (name: string): Promise<Pod> =>
    await ns.kube.pods.create({
      metadata: { name, namespace: ns.name },
      spec: {
        containers: [{ name: 'main', image: 'nvcr.io/nvidia/cuda:12.9.0-base-ubuntu24.04', resources: { requests: { cpu: '1' }, claims: [{ name: 'accel' }] } }],
        resourceClaims: [{ name: 'accel', resourceClaimTemplateName: 'cascading' }],
      },
    });

  const claimOf = async (pod: string): Promise<ResourceClaim> => {
    const p = await ns.kube.pods.get(pod, ns.name);
    const name = p.status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? '';
    return await ns.kube.resourceClaims.get(name, ns.name);
  };

  const boundNode = async (pod: string): Promise<string> => await eventually(`${pod} bound`, async () => (await ns.kube.pods.get(pod, ns.name)).spec.nodeName, 60_000);

  const prepared = (n: GpuNode, pod: string): Promise<readonly string[]> => preparedOn(n, ns.name, pod);

  const node = (name: string): GpuNode => nodes.find((n) => n.name === name)!;

  it('walks down the preference list as the fleet fills, prepares real devices, and frees them again', async () => {
    // 1st pod: the first choice, the H100.
    const first = await makePod('first');
    expect(first.spec.schedulingGates).toEqual([{ name: `${DRIVER}/allocation` }]);
    expect(await boundNode('first')).toBe('flow-h100');
    const c1 = await claimOf('first');
    expect(c1.status?.allocation?.devices?.results?.map((r) => `${r.request} ${r.device}`)).toEqual(['accel/h100 gpu-0']);
    const ids1 = await prepared(node('flow-h100'), 'first');
    expect(ids1).toEqual([`k8s.${DRIVER}/gpu=${c1.metadata.uid ?? ''}-gpu-0`]);
    const cdiFiles = readdirSync(node('flow-h100').dirs.cdi);
    expect(cdiFiles.some((f) => f.includes(c1.metadata.uid ?? '-'))).toBe(true);
    const spec = JSON.parse(
      readFileSync(
        join(
          node('flow-h100').dirs.cdi,
          cdiFiles.find((f) => f.includes(c1.metadata.uid ?? '-'))!,
        ),
        'utf8',
      ),
    ) as { devices: { name: string; containerEdits: { deviceNodes?: { path: string }[] } }[] };
    expect(spec.devices[0]?.containerEdits.deviceNodes?.map((d) => d.path)).toContain('/dev/nvidia0');

    // 2nd pod: no H100 left, so two NVLinked A100s.
    await makePod('second');
    expect(await boundNode('second')).toBe('flow-a100');
    const c2 = await claimOf('second');
    expect(c2.status?.allocation?.devices?.results?.map((r) => `${r.request} ${r.device}`).sort()).toEqual(['accel/two-a100 gpu-0', 'accel/two-a100 gpu-1']);
    expect(await prepared(node('flow-a100'), 'second')).toHaveLength(2);

    // 3rd and 4th: the 3g MIG slices of the MIG-mode A100, created for real at the allocated placements.
    await makePod('third');
    await makePod('fourth');
    expect(await boundNode('third')).toBe('flow-mig');
    expect(await boundNode('fourth')).toBe('flow-mig');
    await prepared(node('flow-mig'), 'third');
    await prepared(node('flow-mig'), 'fourth');
    const placements = [await claimOf('third'), await claimOf('fourth')].map((c) => c.status?.allocation?.devices?.results?.[0]?.device).sort();
    expect(placements).toEqual(['gpu-0-mig-3g-20gb-0', 'gpu-0-mig-3g-20gb-4']);
    const instances = node('flow-mig').sim.readState().gpus[0]?.gpuInstances ?? [];
    expect(instances.map((gi) => gi.start).sort()).toEqual([0, 4]);

    // 5th: nothing left; a person reads why.
    await makePod('fifth');
    const c5name = await eventually('fifth claim', async () => (await ns.kube.pods.get('fifth', ns.name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName);
    const failed = await eventually('AllocationFailed', async () => (await ns.kube.events.list(ns.name)).find((e: EventV1) => e.regarding.name === c5name && e.reason === 'AllocationFailed'));
    expect(failed.note).toMatch(/h100/);
    expect(failed.note).toMatch(/two-a100/);
    expect(failed.note).toMatch(/mig-3g/);
    const described = await kubectl(['describe', 'pod', 'fifth', '-n', ns.name]);
    expect(described.stdout).toContain('AllocationFailed');
    expect((await ns.kube.pods.get('fifth', ns.name)).spec.schedulingGates).toEqual([{ name: `${DRIVER}/allocation` }]);

    // Deleting the first pod frees the H100: the waiting fifth pod gets it.
    await ns.kube.pods.delete('first', ns.name, { gracePeriodSeconds: 0 });
    await eventually('first claim gone', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.uid === c1.metadata.uid), 60_000);
    // The kubelet stand-in unprepares on its own watch of the pod, not before the claim goes: wait for it.
    const c1Spec = join(
      node('flow-h100').dirs.cdi,
      cdiFiles.find((f) => f.includes(c1.metadata.uid ?? '-'))!,
    );
    await eventually('CDI spec of the first claim removed', async () => !existsSync(c1Spec), 60_000);
    expect(await boundNode('fifth')).toBe('flow-h100');

    // Delete everything: MIG instances destroyed, every claim released.
    for (const p of ['second', 'third', 'fourth', 'fifth']) await ns.kube.pods.delete(p, ns.name, { gracePeriodSeconds: 0 });
    await eventually('all claims gone', async () => (await ns.kube.resourceClaims.list(ns.name)).length === 0, 60_000);
    await eventually('MIG instances destroyed', async () => (node('flow-mig').sim.readState().gpus[0]?.gpuInstances ?? []).length === 0, 30_000);
    for (const n of nodes) expect(n.kubelet.errors).toEqual([]);
  }, 300_000);
});
