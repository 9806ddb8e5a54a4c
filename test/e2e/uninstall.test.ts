// Uninstall leaves the cluster clean: with a GPU pod running, a claim allocated
// but unused and a pod still gated, the components stop (as `kubectl delete -k`
// stops them), and `kubectl cascade uninstall` removes what would otherwise wait
// for Cascade forever: the gate, the finalizers, the webhook configuration and
// the driver's ResourceSlices. The running pod keeps its allocation.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { adminKubeconfig, describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { installAddonWithController, type Component } from '../support/addon.js';
import { nodesPublished, preparedOn, startGpuNode, type GpuNode } from '../support/gpu-node.js';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import { MUTATING_WEBHOOK_CONFIGURATIONS } from '../../pkg/controller/webhook.js';

const DRIVER = 'gpu.cascade.dev';
const GATE = `${DRIVER}/allocation`;

describeCluster('uninstall (kubectl cascade uninstall)', () => {
  const ns = useNamespace('uninstall', { 'cascade-e2e': 'uninstall' });
  let node: GpuNode | undefined;
  let controller: Component | undefined;

  beforeAll(async () => {
    controller = await installAddonWithController('uninstall-controller', { 'cascade-e2e': 'uninstall' });
    node = await startGpuNode(ns.kube, { name: 'un-1', fleet: { gpus: [{ model: 'H100-80GB' }, { model: 'H100-80GB' }] } });
    await nodesPublished(ns.kube, ['un-1'], DRIVER);
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    await node?.stop();
    await ns.kube?.nodes.delete('un-1').catch(() => undefined);
  });

  const run = (...args: string[]): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [join(repoRoot(), 'dist', 'cmd', 'kubectl-cascade', 'main.js'), '--kubeconfig', adminKubeconfig(), 'uninstall', ...args], (err, stdout, stderr) =>
        err ? reject(new Error(stderr || err.message)) : resolve(stdout),
      );
    });

  it('removes every gate, finalizer, webhook configuration and slice of Cascade; the running pod keeps its GPU', async () => {
    const gpu = (count: number) => ({ devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}`, count } }] } });
    // A running GPU pod, a claim allocated that no pod uses, and a pod that waits (three GPUs on a two-GPU node).
    await ns.kube.resourceClaims.create({ metadata: { name: 'used', namespace: ns.name }, spec: gpu(1) });
    await ns.kube.pods.create({
      metadata: { name: 'runs', namespace: ns.name },
      spec: {
        restartPolicy: 'Never',
        resourceClaims: [{ name: 'g', resourceClaimName: 'used' }],
        containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'g' }] } }],
      },
    });
    await ns.kube.resourceClaims.create({ metadata: { name: 'idle', namespace: ns.name }, spec: gpu(1) });
    await ns.kube.resourceClaims.create({ metadata: { name: 'too-big', namespace: ns.name }, spec: gpu(3) });
    await ns.kube.pods.create({
      metadata: { name: 'waits', namespace: ns.name },
      spec: {
        restartPolicy: 'Never',
        resourceClaims: [{ name: 'g', resourceClaimName: 'too-big' }],
        containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'g' }] } }],
      },
    });
    if (!node) throw new Error('no node');
    await preparedOn(node, ns.name, 'runs');
    await eventually('the idle claim allocated', async () => ((await ns.kube.resourceClaims.get('idle', ns.name)).status?.allocation ? true : undefined));
    expect((await ns.kube.pods.get('waits', ns.name)).spec.schedulingGates?.map((g) => g.name)).toEqual([GATE]);

    // The components go, as `kubectl delete -k` takes them.
    await controller?.stop();
    controller = undefined;
    await node.stop();
    node = undefined;
    expect(await run('--dry-run')).toMatch(/dry run: nothing changed/);
    expect((await ns.kube.pods.get('waits', ns.name)).spec.schedulingGates?.map((g) => g.name)).toEqual([GATE]);

    const out = await run();
    expect(out).toContain('- scheduling-gate webhook: deleted');
    // Cluster-wide: earlier tests' objects on this control plane are cleaned up too, so ours are checked one by one.
    expect(out).toMatch(/- pods ungated \(did\): [1-9]/);
    expect(out).toMatch(/- claims released, allocation cleared \(did\): [1-9]/);
    expect(out).toMatch(/- claims in use, finalizer removed, allocation kept for their running pods \(did\): [1-9]/);
    expect((await ns.kube.pods.get('waits', ns.name)).spec.schedulingGates ?? []).toEqual([]);
    const used = await ns.kube.resourceClaims.get('used', ns.name);
    expect(used.metadata.finalizers ?? []).not.toContain(GATE);
    expect(used.status?.allocation?.devices?.results).toHaveLength(1);
    const idle = await ns.kube.resourceClaims.get('idle', ns.name);
    expect([idle.metadata.finalizers ?? [], idle.status?.allocation]).toEqual([[], undefined]);
    expect(await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${DRIVER}` })).toEqual([]);
    expect((await ns.kube.api(MUTATING_WEBHOOK_CONFIGURATIONS).list()).map((w) => w.metadata.name)).not.toContain('cascade-scheduling-gate');
    // Deleting a claim now finishes at once: nothing waits for Cascade.
    await ns.kube.resourceClaims.delete('idle', ns.name);
    await eventually('the idle claim gone', async () => ((await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.name === 'idle') ? undefined : true));
    // A second run finds nothing left.
    expect(await run()).toContain('- pods ungated (did): 0');
  }, 180_000);
});
