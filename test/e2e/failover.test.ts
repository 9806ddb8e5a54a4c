// Failover headroom on the real control plane: three nodes of two H100s and a
// FailoverReserve that tolerates the loss of one node. Low-priority pods may
// fill the fleet only down to the reserve (the next one waits, told why);
// high-priority pods of a ReplicaSet may use it. When a node goes NotReady
// past the grace period, the controller evicts the ReplicaSet's pod there,
// the kube-controller-manager creates it again, and the new pod is placed on a
// live node, into the reserve. The reserve's status and metrics say all of it.
import { describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { installAddonWithController, type Component } from '../support/addon.js';
import { preparedOn, startGpuNode, type GpuNode, nodesPublished } from '../support/gpu-node.js';
import type { ResourceType } from '../../pkg/k8s/resources.js';
import type { EventV1, Pod } from '../../pkg/k8s/types.js';
import { FAILOVER_RESERVES, type FailoverReserve } from '../../pkg/controller/reserve.js';

const DRIVER = 'gpu.cascade.dev';
const PRIORITY_CLASSES: ResourceType = { group: 'scheduling.k8s.io', version: 'v1', kind: 'PriorityClass', plural: 'priorityclasses', namespaced: false };
const REPLICA_SETS: ResourceType = { group: 'apps', version: 'v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true };
const NODES = ['fo-a', 'fo-b', 'fo-c'];

describeCluster('failover headroom (FailoverReserve)', () => {
  const ns = useNamespace('failover', { 'cascade-e2e': 'failover' });
  const nodes = new Map<string, GpuNode>();
  let controller: Component;

  beforeAll(async () => {
    controller = await installAddonWithController('failover-controller', { 'cascade-e2e': 'failover' });
    for (const [name, value] of [
      ['cascade-e2e-fo-low', 100],
      ['cascade-e2e-fo-critical', 2000],
    ] as const) {
      await ns.kube
        .api(PRIORITY_CLASSES)
        .create({ metadata: { name }, value } as never)
        .catch(() => undefined);
    }
    for (const name of NODES) nodes.set(name, await startGpuNode(ns.kube, { name, labels: { pool: 'fo' }, fleet: { gpus: [{ model: 'H100-80GB' }, { model: 'H100-80GB' }] } }));
    await nodesPublished(ns.kube, NODES, DRIVER);
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'one-gpu', namespace: ns.name },
      spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } },
    });
    // The CRD came with the manifests; it serves once established.
    await eventually(
      'the FailoverReserve to be created',
      async () =>
        await ns.kube
          .api<FailoverReserve>(FAILOVER_RESERVES)
          .create({ metadata: { name: 'fo-pool' }, spec: { nodeSelector: { pool: 'fo' }, tolerateNodeLoss: 1, priorityThreshold: 1000, nodeLostAfterSeconds: 2 } })
          .then(() => true)
          .catch(() => undefined),
      30_000,
    );
  }, 150_000);

  afterAll(async () => {
    await controller?.stop();
    await ns.kube
      ?.api(FAILOVER_RESERVES)
      .delete('fo-pool')
      .catch(() => undefined);
    await ns.kube
      ?.api(REPLICA_SETS)
      .delete('critical', ns.name)
      .catch(() => undefined);
    for (const n of nodes.values()) {
      await n.stop();
      await ns.kube?.nodes.delete(n.name).catch(() => undefined);
    }
    for (const c of ['cascade-e2e-fo-low', 'cascade-e2e-fo-critical'])
      await ns.kube
        ?.api(PRIORITY_CLASSES)
        .delete(c)
        .catch(() => undefined);
  });

  const podSpec = (priorityClassName: string): Pod['spec'] => ({
    priorityClassName,
    restartPolicy: 'Always',
    resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
    containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }],
  });
  const reserve = async (): Promise<FailoverReserve> => await ns.kube.api<FailoverReserve>(FAILOVER_RESERVES).get('fo-pool');
  const events = async (regarding: string, reason: string): Promise<EventV1[]> => (await ns.kube.events.list(ns.name)).filter((e) => e.regarding.name === regarding && e.reason === reason);
  const bound = (name: string): Promise<string> => eventually(`${name} bound`, async () => (await ns.kube.pods.get(name, ns.name)).spec.nodeName, 60_000);
  const criticalPods = async (): Promise<Pod[]> => (await ns.kube.pods.list(ns.name, { labelSelector: 'app=critical' })).filter((p) => !p.metadata.deletionTimestamp);

  it('reports the reserve: the GPUs of the largest node, all free', async () => {
    const r = await eventually('the reserve status', async () => ((await reserve()).status?.reserveUnits !== undefined ? await reserve() : undefined));
    expect(r.status).toMatchObject({ poolNodes: 3, poolUnits: 6, reserveUnits: 2, freeUnits: 6, reserveInUse: 0, claimsHeldBack: 0, lostNodes: [] });
    expect(r.status?.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'True' });
  });

  it('lets low-priority pods fill the fleet down to the reserve, and holds the next one back, saying why', async () => {
    await ns.kube.api(REPLICA_SETS).create({
      metadata: { name: 'critical', namespace: ns.name },
      spec: { replicas: 2, selector: { matchLabels: { app: 'critical' } }, template: { metadata: { labels: { app: 'critical' } }, spec: podSpec('cascade-e2e-fo-critical') } },
    } as never);
    await eventually('both critical pods bound', async () => ((await criticalPods()).filter((p) => p.spec.nodeName).length === 2 ? true : undefined), 60_000);
    for (const name of ['low-1', 'low-2']) {
      await ns.kube.pods.create({ metadata: { name, namespace: ns.name }, spec: podSpec('cascade-e2e-fo-low') });
      await bound(name);
    }
    await ns.kube.pods.create({ metadata: { name: 'low-3', namespace: ns.name }, spec: podSpec('cascade-e2e-fo-low') });
    const note = await eventually('low-3 to be held back', async () => (await events('low-3', 'FailoverReserveHeld'))[0]?.note);
    expect(note).toMatch(
      /^It waits because taking 1 GPU\(s\) would leave 1 free, less than the 2 that FailoverReserve fo-pool keeps free to restart what runs on 1 failed node\(s\); only pods of priority 1000 or more may use that reserve \(this pod has 100\)\./,
    );
    const r = await eventually('the status to count it', async () => ((await reserve()).status?.claimsHeldBack === 1 ? await reserve() : undefined));
    expect(r.status).toMatchObject({ reserveUnits: 2, freeUnits: 2, reserveInUse: 0 });
    expect((await ns.kube.pods.get('low-3', ns.name)).spec.nodeName).toBeUndefined();
  }, 120_000);

  it('re-places the critical pod of a lost node into the reserve', async () => {
    const [victim] = (await criticalPods()).filter((p) => p.spec.nodeName);
    const lostNode = victim?.spec.nodeName ?? '';
    const node = nodes.get(lostNode);
    if (!victim || !node) throw new Error('no critical pod to lose');
    await preparedOn(node, ns.name, victim.metadata.name ?? '');
    // The node stops reporting: Ready goes False (as the node lifecycle controller would mark it).
    const now = new Date().toISOString();
    await ns.kube.nodes.mergePatch(
      lostNode,
      { status: { conditions: [{ type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'test: node lost', lastHeartbeatTime: now, lastTransitionTime: now }] } },
      undefined,
      'status',
    );
    const deleted = await eventually('the pod of the lost node to be deleted', async () => (await events(victim.metadata.name ?? '', 'NodeLost'))[0]?.note, 30_000);
    expect(deleted).toContain(`Evicted because node ${lostNode} is lost`);
    const replacement = await eventually(
      'a new critical pod bound to a live node',
      async () => {
        const ps = (await criticalPods()).filter((p) => p.metadata.uid !== victim.metadata.uid && p.spec.nodeName && p.spec.nodeName !== lostNode);
        return ps.length === 2 ? ps : undefined;
      },
      60_000,
    );
    expect(replacement.every((p) => p.spec.nodeName !== lostNode)).toBe(true);
    const r = await eventually('the status to show the loss and the reserve in use', async () => {
      const now = await reserve();
      return now.status?.lostNodes?.includes(lostNode) && (now.status.reserveInUse ?? 0) > 0 ? now : undefined;
    });
    // Two live nodes, four GPUs; the reserve (one node's two GPUs) is what the critical pod took from.
    expect(r.status).toMatchObject({ poolNodes: 2, poolUnits: 4, reserveUnits: 2 });
    expect(r.status?.reserveInUse).toBeGreaterThan(0);
    // The low-priority pod still waits: it may not take the reserve.
    expect((await ns.kube.pods.get('low-3', ns.name)).spec.nodeName).toBeUndefined();
  }, 120_000);
});
