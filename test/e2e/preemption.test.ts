// Priority preemption for GPU claims on the real control plane: two nodes of
// two H100s, full of lower-priority pods. A high-priority pod that fits nowhere
// evicts exactly the cheapest victim through the Eviction API, waits for its
// devices (held for it alone), and gets them; a PodDisruptionBudget keeps a pod
// out of the victims; preemptionPolicy Never preempts no one. Both sides are
// told in Events.
import { describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { installAddonWithController, type Component } from '../support/addon.js';
import { preparedOn, startGpuNode, type GpuNode, nodesPublished } from '../support/gpu-node.js';
import type { ResourceType } from '../../pkg/k8s/resources.js';
import { RESOURCES } from '../../pkg/k8s/resources.js';
import type { EventV1, Pod } from '../../pkg/k8s/types.js';

const DRIVER = 'gpu.cascade.dev';
const PRIORITY_CLASSES: ResourceType = { group: 'scheduling.k8s.io', version: 'v1', kind: 'PriorityClass', plural: 'priorityclasses', namespaced: false };
const CLASSES = [
  { name: 'cascade-e2e-low', value: 100 },
  { name: 'cascade-e2e-mid', value: 500 },
  { name: 'cascade-e2e-high', value: 1000 },
  { name: 'cascade-e2e-high-never', value: 1000, preemptionPolicy: 'Never' },
];

describeCluster('priority preemption for GPU claims', () => {
  const ns = useNamespace('preempt', { 'cascade-e2e': 'preempt' });
  const nodes = new Map<string, GpuNode>();
  let controller: Component;

  beforeAll(async () => {
    controller = await installAddonWithController('preempt-controller', { 'cascade-e2e': 'preempt' });
    for (const c of CLASSES) {
      await ns.kube
        .api(PRIORITY_CLASSES)
        .create({ metadata: { name: c.name }, value: c.value, ...(c.preemptionPolicy ? { preemptionPolicy: c.preemptionPolicy } : {}) } as never)
        .catch(() => undefined);
    }
    for (const name of ['pre-a', 'pre-b']) nodes.set(name, await startGpuNode(ns.kube, { name, fleet: { gpus: [{ model: 'H100-80GB' }, { model: 'H100-80GB' }] } }));
    await nodesPublished(ns.kube, ['pre-a', 'pre-b'], DRIVER);
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'one-gpu', namespace: ns.name },
      spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } },
    });
  }, 150_000);

  afterAll(async () => {
    await controller?.stop();
    for (const n of nodes.values()) {
      await n.stop();
      await ns.kube?.nodes.delete(n.name).catch(() => undefined);
    }
    for (const c of CLASSES)
      await ns.kube
        ?.api(PRIORITY_CLASSES)
        .delete(c.name)
        .catch(() => undefined);
  });

  const pod = (name: string, priorityClassName: string, labels: Record<string, string> = {}, nodeName?: string): Pod => ({
    metadata: { name, namespace: ns.name, labels: { app: name, ...labels } },
    spec: {
      priorityClassName,
      restartPolicy: 'Never',
      // Where the test wants it: a required node affinity the allocator honours.
      ...(nodeName
        ? {
            affinity: {
              nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [nodeName] }] }] } },
            },
          }
        : {}),
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
      containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }],
    },
  });

  /** Creates a pod and waits until it is bound and its GPU prepared; returns the device it got. */
  const running = async (p: Pod): Promise<string> => {
    await ns.kube.pods.create(p);
    const bound = await eventually(`${p.metadata.name ?? ''} bound`, async () => (await ns.kube.pods.get(p.metadata.name ?? '', ns.name)).spec.nodeName, 60_000);
    const node = nodes.get(bound);
    if (!node) throw new Error(`bound to unknown node ${bound}`);
    const ids = await preparedOn(node, ns.name, p.metadata.name ?? '');
    return `${bound}/${ids.join(',')}`;
  };

  const events = async (regarding: string, reason: string): Promise<EventV1[]> => (await ns.kube.events.list(ns.name)).filter((e) => e.regarding.name === regarding && e.reason === reason);
  const exists = async (name: string): Promise<boolean> => (await ns.kube.pods.list(ns.name)).some((p) => p.metadata.name === name);

  it('fills the fleet with lower-priority pods', async () => {
    await running(pod('low-a', 'cascade-e2e-low', {}, 'pre-a'));
    await running(pod('mid-a', 'cascade-e2e-mid', { tier: 'protected' }, 'pre-a'));
    await running(pod('mid-b1', 'cascade-e2e-mid', { tier: 'protected' }, 'pre-b'));
    await running(pod('mid-b2', 'cascade-e2e-mid', {}, 'pre-b'));
  }, 120_000);

  it('with preemptionPolicy Never, a high-priority pod waits and preempts no one', async () => {
    await ns.kube.pods.create(pod('never', 'cascade-e2e-high-never'));
    const told = await eventually('the pod to be told it preempts no one', async () => (await events('never', 'NotPreempting'))[0]?.note);
    expect(told).toMatch(/^The pod waits without preempting anyone because its preemptionPolicy is Never/);
    expect(await Promise.all(['low-a', 'mid-a', 'mid-b1', 'mid-b2'].map(exists))).toEqual([true, true, true, true]);
    await ns.kube.pods.delete('never', ns.name, { gracePeriodSeconds: 0 });
  }, 60_000);

  it('a high-priority pod evicts exactly the cheapest victim (the one low-priority pod) and gets its GPU', async () => {
    const claimOfLow = (await ns.kube.pods.get('low-a', ns.name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? '';
    const lowDevice = (await ns.kube.resourceClaims.get(claimOfLow, ns.name)).status?.allocation?.devices?.results?.[0]?.device;
    await ns.kube.pods.create(pod('high', 'cascade-e2e-high'));
    const note = await eventually('the Preempting event', async () => (await events('high', 'Preempting'))[0]?.note);
    expect(note).toMatch(new RegExp(`^Evicting 1 lower-priority pod\\(s\\) on node pre-a to free ${lowDevice ?? '?'} for this pod \\(priority 1000\\): ${ns.name}/low-a \\(priority 100\\)\\.`));
    const victimNote = await eventually('the Preempted event on the victim', async () => (await events('low-a', 'Preempted'))[0]?.note);
    expect(victimNote).toMatch(new RegExp(`^Evicted so that pod ${ns.name}/high \\(priority 1000, above this pod's 100\\) gets the devices it needs on node pre-a`));
    await eventually('low-a to be gone', async () => !(await exists('low-a')), 60_000);
    const got = await eventually(
      'high to be bound',
      async () => {
        const p = await ns.kube.pods.get('high', ns.name);
        return p.spec.nodeName;
      },
      60_000,
    );
    expect(got).toBe('pre-a');
    const claim = await ns.kube.resourceClaims.get((await ns.kube.pods.get('high', ns.name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? '', ns.name);
    expect(claim.status?.allocation?.devices?.results?.[0]?.device).toBe(lowDevice);
    expect(await Promise.all(['mid-a', 'mid-b1', 'mid-b2'].map(exists))).toEqual([true, true, true]);
  }, 120_000);

  it('never picks a pod whose PodDisruptionBudget forbids it: the unprotected one goes', async () => {
    await ns.kube
      .api(RESOURCES.podDisruptionBudgets)
      .create({ metadata: { name: 'protected', namespace: ns.name }, spec: { minAvailable: 2, selector: { matchLabels: { tier: 'protected' } } } } as never);
    await ns.kube.pods.create(pod('high-2', 'cascade-e2e-high'));
    const note = await eventually('the Preempting event', async () => (await events('high-2', 'Preempting'))[0]?.note, 60_000);
    expect(note).toContain(`on node pre-b`);
    expect(note).toContain(`${ns.name}/mid-b2 (priority 500)`);
    await eventually('high-2 to be bound to pre-b', async () => ((await ns.kube.pods.get('high-2', ns.name)).spec.nodeName === 'pre-b' ? true : undefined), 60_000);
    expect(await Promise.all(['mid-a', 'mid-b1', 'mid-b2', 'high'].map(exists))).toEqual([true, true, false, true]);
    // Nothing lower is left that a budget allows to go: a third high-priority pod waits, and is told why.
    await ns.kube.pods.create(pod('high-3', 'cascade-e2e-high'));
    const failed = await eventually('high-3 to be told it does not fit', async () => (await events('high-3', 'AllocationFailed'))[0]?.note);
    expect(failed).toBeDefined();
    expect(await events('high-3', 'Preempting')).toEqual([]);
    expect(await Promise.all(['mid-a', 'mid-b1'].map(exists))).toEqual([true, true]);
  }, 120_000);
});
