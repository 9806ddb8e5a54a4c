// kubectl cascade defrag against the live cluster: two nodes of two
// NVLinked H100s, one GPU used on each, and a 2-GPU NVLink job that waits.
// The plan moves the one pod that opted in (gpu.cascade.dev/movable) so that
// the job gets a whole node; nothing in the cluster changes. With the
// controller's --defrag-interval, the same plan is carried out for a pod that a
// ReplicaSet owns: it is evicted, created again on the other node, and the job
// takes the room it left.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { adminKubeconfig, describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { installAddonWithController, type Component } from '../support/addon.js';
import { nodesPublished, startGpuNode, type GpuNode } from '../support/gpu-node.js';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import type { ResourceType } from '../../pkg/k8s/resources.js';
import type { Pod } from '../../pkg/k8s/types.js';

const DRIVER = 'gpu.cascade.dev';
const REPLICA_SETS: ResourceType = { group: 'apps', version: 'v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true };

describeCluster('kubectl cascade defrag', () => {
  const ns = useNamespace('defrag', { 'cascade-e2e': 'defrag' });
  const nodes: GpuNode[] = [];
  let controller: Component;

  beforeAll(async () => {
    // The defragmenter is on: it acts only on movable pods a controller owns (the second test).
    controller = await installAddonWithController('defrag-controller', { 'cascade-e2e': 'defrag' }, ['--defrag-interval=1']);
    for (const name of ['df-a', 'df-b']) nodes.push(await startGpuNode(ns.kube, { name, fleet: { gpus: [{ model: 'H100-80GB' }, { model: 'H100-80GB' }], nvlinkGroups: [[0, 1]] } }));
    await nodesPublished(ns.kube, ['df-a', 'df-b'], DRIVER);
    for (const [name, count] of [
      ['one-gpu', 1],
      ['nvlink-pair', 2],
    ] as const) {
      await ns.kube.resourceClaimTemplates.create({
        metadata: { name, namespace: ns.name },
        spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}`, count } }], constraints: [{ matchAttribute: `${DRIVER}/nvlinkDomain` }] } } },
      });
    }
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    await ns.kube
      ?.api(REPLICA_SETS)
      .delete('movers', ns.name)
      .catch(() => undefined);
    for (const n of nodes) {
      await n.stop();
      await ns.kube?.nodes.delete(n.name).catch(() => undefined);
    }
  });

  const pod = (name: string, template: string, node?: string, movable = false): Pod => ({
    metadata: { name, namespace: ns.name, ...(movable ? { annotations: { [`${DRIVER}/movable`]: 'true' } } : {}) },
    spec: {
      restartPolicy: 'Never',
      ...(node
        ? {
            affinity: {
              nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }] }] } },
            },
          }
        : {}),
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: template }],
      containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }],
    },
  });

  const defrag = (): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [join(repoRoot(), 'dist', 'cmd', 'kubectl-cascade', 'main.js'), '--kubeconfig', adminKubeconfig(), 'defrag'], (err, stdout, stderr) =>
        err ? reject(new Error(stderr || err.message)) : resolve(stdout),
      );
    });

  it('plans the one move that gives the waiting 2-GPU job a whole node', async () => {
    // The mover may go anywhere (a pinned pod could not move); the other pod is pinned to the other node.
    await ns.kube.pods.create(pod('mover', 'one-gpu', undefined, true));
    const from = await eventually('mover bound', async () => (await ns.kube.pods.get('mover', ns.name)).spec.nodeName, 60_000);
    const to = from === 'df-a' ? 'df-b' : 'df-a';
    await ns.kube.pods.create(pod('stays', 'one-gpu', to));
    await eventually('stays bound', async () => (await ns.kube.pods.get('stays', ns.name)).spec.nodeName, 60_000);
    await ns.kube.pods.create(pod('trainer', 'nvlink-pair'));
    await eventually('the trainer to wait', async () => (await ns.kube.events.list(ns.name)).find((e) => e.regarding.name === 'trainer' && e.reason === 'AllocationFailed'));
    const out = await defrag();
    // The plan is fleet-wide: a claim another test leaves waiting meanwhile is listed as not served.
    expect(out).toMatch(/^1 move\(s\) make room for 1 waiting claim\(s\)[.;]/);
    expect(out).toContain(`1. for pod ${ns.name}/trainer, on node ${from}:`);
    expect(out).toMatch(new RegExp(`move pod ${ns.name}/mover: ${from} \\[gpu-\\d\\] -> ${to} \\[gpu-\\d\\]`));
    // A plan only: the mover still runs where it was, the trainer still waits.
    expect((await ns.kube.pods.get('mover', ns.name)).spec.nodeName).toBe(from);
    expect((await ns.kube.pods.get('trainer', ns.name)).spec.nodeName).toBeUndefined();
  }, 120_000);

  it('with --defrag-interval the controller carries the plan out: the ReplicaSet pod moves, the job gets its node', async () => {
    for (const p of ['mover', 'stays', 'trainer']) await ns.kube.pods.delete(p, ns.name, { gracePeriodSeconds: 0 });
    await eventually("the first test's pods gone", async () => ((await ns.kube.pods.list(ns.name)).length === 0 ? true : undefined), 60_000);
    const template = pod('x', 'one-gpu', undefined, true);
    await ns.kube.api(REPLICA_SETS).create({
      metadata: { name: 'movers', namespace: ns.name },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'movers' } },
        template: { metadata: { labels: { app: 'movers' }, annotations: template.metadata.annotations }, spec: { ...template.spec, restartPolicy: 'Always' } },
      },
    } as never);
    const moverPods = async (): Promise<Pod[]> => (await ns.kube.pods.list(ns.name, { labelSelector: 'app=movers' })).filter((p) => !p.metadata.deletionTimestamp);
    const first = await eventually('the ReplicaSet pod bound', async () => (await moverPods()).find((p) => p.spec.nodeName), 60_000);
    const from = first.spec.nodeName ?? '';
    const to = from === 'df-a' ? 'df-b' : 'df-a';
    await ns.kube.pods.create(pod('stays-2', 'one-gpu', to));
    await eventually('stays-2 bound', async () => (await ns.kube.pods.get('stays-2', ns.name)).spec.nodeName, 60_000);
    await ns.kube.pods.create(pod('trainer-2', 'nvlink-pair'));
    const bound = await eventually('trainer-2 bound after the move', async () => (await ns.kube.pods.get('trainer-2', ns.name)).spec.nodeName, 90_000);
    expect(bound).toBe(from);
    const moved = await eventually('the ReplicaSet pod created again on the other node', async () => (await moverPods()).find((p) => p.metadata.uid !== first.metadata.uid && p.spec.nodeName), 60_000);
    expect(moved.spec.nodeName).toBe(to);
    const events = await ns.kube.events.list(ns.name);
    expect(events.find((e) => e.regarding.name === 'trainer-2' && e.reason === 'Defragmenting')?.note).toMatch(
      new RegExp(`^Moving 1 pod\\(s\\) to make room for this pod on node ${from}: ${ns.name}/${first.metadata.name ?? ''} from ${from} to ${to}\\.`),
    );
    expect(events.find((e) => e.regarding.name === first.metadata.name && e.reason === 'Moved')?.note).toContain(`Evicted to defragment node ${from}`);
  }, 180_000);
});
