// The add-on as a user installs it: manifests applied with kubectl apply
// --server-side, components running under exactly that RBAC, the ResourceSlice
// policy enforced by the real API server, and leader failover between replicas.
import { join } from 'node:path';
import { describeCluster, adminKubeconfig, clusterDir, eventually, kubectl, useNamespace } from '../support/cluster.js';
import { ADDON_NAMESPACE, Component, applyServerSide, controllerProcess, nodeBoundKubeconfig, renderManifests, webhookToUrl } from '../support/addon.js';
import { wholeGpuSlice } from '../support/fleet.js';
import { createFakeNode, freePort, writeServiceAccountKubeconfig } from '../../pkg/cluster/controlplane.js';
import { Kube } from '../../pkg/k8s/resources.js';
import { KubeApiError } from '../../pkg/k8s/client.js';
import { SlicePublisher } from '../../pkg/publish/publisher.js';
import { MUTATING_WEBHOOK_CONFIGURATIONS } from '../../pkg/controller/webhook.js';
import type { Lease } from '../../pkg/k8s/types.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';

const DRIVER = 'gpu.cascade.dev';

describeCluster('the add-on installed from manifests/', () => {
  const ns = useNamespace('addon', { 'cascade-e2e': 'addon' });
  const nodeA = 'addon-node-a';
  const nodeB = 'addon-node-b';
  let webhookPort: number;
  const controllers: Component[] = [];

  const controller = (name: string, kubeconfig: string, port: number): Component => controllerProcess({ name, kubeconfig, webhookPort: port, extraArgs: ['--lease-duration=10'] });

  beforeAll(async () => {
    webhookPort = await freePort();
    const docs = webhookToUrl(await renderManifests('dev'), `https://127.0.0.1:${webhookPort}/mutate-pods`, { 'cascade-e2e': 'addon' });
    const applied = await applyServerSide(docs);
    if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr}`);
    await createFakeNode(ns.kube, nodeA);
    await createFakeNode(ns.kube, nodeB);
  }, 60_000);

  afterAll(async () => {
    for (const c of controllers) await c.stop();
    if (!ns.kube) return;
    for (const n of [nodeA, nodeB]) await ns.kube.nodes.delete(n).catch(() => undefined);
  });

  it('applies cleanly and idempotently with kubectl apply --server-side', async () => {
    const again = await applyServerSide(webhookToUrl(await renderManifests('dev'), `https://127.0.0.1:${webhookPort}/mutate-pods`, { 'cascade-e2e': 'addon' }));
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/deviceclass.resource.k8s.io\/gpu.gpu.cascade.dev serverside-applied/);
    const dcs = await kubectl(['get', 'deviceclasses', '-o', 'name']);
    expect(dcs.stdout).toContain('deviceclass.resource.k8s.io/gpu.gpu.cascade.dev');
    expect(dcs.stdout).toContain('deviceclass.resource.k8s.io/mig.gpu.cascade.dev');
  });

  it("lets a node plugin write its own node's slices and refuses another node's", async () => {
    const kcA = await nodeBoundKubeconfig(ns.kube, 'cascade-node-plugin', nodeA, join(clusterDir(), 'plugin-a.kubeconfig'));
    const plugin = Kube.fromFile(kcA);
    try {
      const own = new SlicePublisher(plugin, { driver: DRIVER, nodeName: nodeA });
      const slice = await wholeGpuSlice(DRIVER, nodeA, 'H100-80GB', 1);
      const res = await own.publish([{ name: slice.metadata.name!, spec: slice.spec }]);
      expect(res).toMatchObject({ changed: true, created: 1 });

      const other = await wholeGpuSlice(DRIVER, nodeB, 'H100-80GB', 1);
      // The API server loads a new admission policy asynchronously: wait until it is in force.
      await eventually(
        'the ResourceSlice policy to be in force',
        async () => {
          const e = await plugin.resourceSlices.create(other, { dryRun: true }).then(
            () => undefined,
            (x: unknown) => x,
          );
          return e instanceof KubeApiError && e.code === 403;
        },
        30_000,
      );
      const err = (await plugin.resourceSlices.create(other).catch((e: unknown) => e)) as KubeApiError;
      expect(err).toBeInstanceOf(KubeApiError);
      expect(err.code).toBe(403);
      expect(err.message).toContain(`the node plugin on node ${nodeA} may only write ResourceSlices of its own node, not of node ${nodeB}`);

      // Its own node name, but another node's pool: with a huge generation this used
      // to make node B's devices vanish and send claims to the attacker's node.
      const hijack = await wholeGpuSlice(DRIVER, nodeA, 'H100-80GB', 1);
      hijack.metadata.name = `${nodeA}-hijack`;
      hijack.spec.pool = { name: nodeB, generation: 1_000_000, resourceSliceCount: 1 };
      const errPool = (await plugin.resourceSlices.create(hijack).catch((e: unknown) => e)) as KubeApiError;
      expect(errPool).toBeInstanceOf(KubeApiError);
      expect(errPool.code).toBe(403);
      expect(errPool.message).toContain(`may only write ResourceSlices of its own pool (named after the node), not of pool ${nodeB}`);
      // Nor can it move its own slice into another pool (refused by the policy, or as immutable by validation).
      const mine = await ns.kube.resourceSlices.get(slice.metadata.name!);
      const errMove = (await plugin.resourceSlices.replace({ ...mine, spec: { ...mine.spec, pool: { ...mine.spec.pool, name: nodeB } } }).catch((e: unknown) => e)) as KubeApiError;
      expect(errMove).toBeInstanceOf(KubeApiError);
      expect([403, 422]).toContain(errMove.code);

      const foreign = await wholeGpuSlice('other.example.com', nodeA, 'H100-80GB', 1);
      const err2 = (await plugin.resourceSlices.create(foreign).catch((e: unknown) => e)) as KubeApiError;
      expect(err2.code).toBe(403);
      expect(err2.message).toContain('may only write ResourceSlices of driver gpu.cascade.dev');

      // An admin-made slice of node B cannot be deleted by node A's plugin either.
      await ns.kube.resourceSlices.create(other);
      const err3 = (await plugin.resourceSlices.delete(other.metadata.name!).catch((e: unknown) => e)) as KubeApiError;
      expect(err3.code).toBe(403);
      await ns.kube.resourceSlices.delete(other.metadata.name!);

      // The node plugin writes no Events, so its token cannot post any (in any namespace).
      const errEvent = (await plugin.events
        .create({
          metadata: { generateName: 'spoof-', namespace: 'default' },
          eventTime: new Date().toISOString(),
          reportingController: 'x/y',
          reportingInstance: 'x',
          action: 'A',
          reason: 'R',
          type: 'Normal',
          regarding: { kind: 'Pod', name: 'p', namespace: 'default' },
          note: 'spoofed',
        } as never)
        .catch((e: unknown) => e)) as KubeApiError;
      expect(errEvent).toBeInstanceOf(KubeApiError);
      expect(errEvent.code).toBe(403);

      // A token that is not bound to a pod on a node is refused outright.
      const unbound = Kube.fromFile(await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, 'cascade-node-plugin', join(clusterDir(), 'plugin-unbound.kubeconfig')));
      const err4 = (await unbound.resourceSlices.create(await wholeGpuSlice(DRIVER, nodeA, 'H100-80GB', 1)).catch((e: unknown) => e)) as KubeApiError;
      unbound.close();
      expect(err4.code).toBe(403);
      expect(err4.message).toContain('not bound to a pod on a node');
    } finally {
      plugin.close();
    }
  });

  it("limits the controller's token to removing its gate, its own finalizer and the webhook's CA bundle", async () => {
    const kc = await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, 'cascade-controller', join(clusterDir(), 'controller-writes.kubeconfig'));
    const ctl = Kube.fromFile(kc);
    // Outside the gated namespace, so creating the pod needs no running webhook.
    const other = `${ns.name}-writes`;
    await ns.kube.namespaces.create({ metadata: { name: other } });
    try {
      const gates = [{ name: `${DRIVER}/allocation` }, { name: 'example.com/other' }];
      await ns.kube.pods.create({ metadata: { name: 'victim', namespace: other }, spec: { schedulingGates: gates, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } });
      const forbidden = async (p: Promise<unknown>): Promise<KubeApiError> =>
        (await p.then(
          () => undefined,
          (e: unknown) => e,
        )) as KubeApiError;
      // The policy is loaded asynchronously: wait until it refuses an image change.
      // (A new image each try: before the policy is in force a try succeeds, and the same image again would be no change.)
      let attempt = 0;
      const imageChange = (): Promise<unknown> => ctl.pods.jsonPatch('victim', [{ op: 'replace', path: '/spec/containers/0/image', value: `evil.example.com/x:${++attempt}` }], other);
      const err = await eventually(
        'the controller policy to be in force',
        async () => {
          const e = await forbidden(imageChange());
          return e instanceof KubeApiError && e.code === 403 ? e : undefined;
        },
        30_000,
      );
      expect(err.message).toContain('the Cascade controller may only remove its own scheduling gate from a pod');
      // Another controller's gate stays.
      expect((await forbidden(ctl.pods.jsonPatch('victim', [{ op: 'remove', path: '/spec/schedulingGates/1' }], other))).code).toBe(403);
      // Its own gate it may remove.
      const ungated = await ctl.pods.jsonPatch('victim', [{ op: 'remove', path: '/spec/schedulingGates/0' }], other);
      expect(ungated.spec.schedulingGates).toEqual([{ name: 'example.com/other' }]);

      await ns.kube.resourceClaims.create({
        metadata: { name: 'kept', namespace: other, finalizers: ['example.com/keep'] },
        spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } },
      });
      const strip = await forbidden(ctl.resourceClaims.mergePatch('kept', { metadata: { finalizers: [] } }, other));
      expect(strip.code).toBe(403);
      expect(strip.message).toContain('may only add or remove its own finalizer');
      const added = await ctl.resourceClaims.mergePatch('kept', { metadata: { finalizers: ['example.com/keep', `${DRIVER}/allocation`] } }, other);
      expect(added.metadata.finalizers).toEqual(['example.com/keep', `${DRIVER}/allocation`]);
      // Its was-reserved annotation it may set; any other annotation it may not.
      const marked = await ctl.resourceClaims.mergePatch('kept', { metadata: { annotations: { [`${DRIVER}/was-reserved`]: 'true' } } }, other);
      expect(marked.metadata.annotations?.[`${DRIVER}/was-reserved`]).toBe('true');
      expect((await forbidden(ctl.resourceClaims.mergePatch('kept', { metadata: { annotations: { 'example.com/x': 'y' } } }, other))).code).toBe(403);
      await ns.kube.resourceClaims.mergePatch('kept', { metadata: { finalizers: [] } }, other);

      // The webhook: the CA bundle may change, nothing that decides what it gates.
      const hooks = ctl.api<{ metadata: { name?: string }; webhooks: { failurePolicy?: string }[] }>(MUTATING_WEBHOOK_CONFIGURATIONS);
      const widen = await forbidden(hooks.jsonPatch('cascade-scheduling-gate', [{ op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Ignore' }]));
      expect(widen.code).toBe(403);
      expect(widen.message).toContain('may only change the caBundle');
      const rules = await forbidden(hooks.jsonPatch('cascade-scheduling-gate', [{ op: 'replace', path: '/webhooks/0/rules/0/resources', value: ['secrets'] }]));
      expect(rules.code).toBe(403);
    } finally {
      ctl.close();
      await ns.kube.namespaces.delete(other).catch(() => undefined);
    }
  }, 60_000);

  it('refuses a claim or claim template whose Cascade config the node plugin would refuse, when it is created', async () => {
    const cfg = (parameters: unknown): { opaque: { driver: string; parameters: unknown } }[] => [{ opaque: { driver: DRIVER, parameters } }];
    const claim = (name: string, parameters: unknown): ResourceClaim => ({
      metadata: { name, namespace: ns.name },
      spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }], config: cfg(parameters) } },
    });
    // The API server loads the policy asynchronously: wait until it refuses.
    const err = await eventually(
      'the claim-config policy in force',
      async () => {
        const e = await ns.kube.resourceClaims.create(claim('bad-kind', { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GPUConfig' }), { dryRun: true }).then(
          () => undefined,
          (x: unknown) => x,
        );
        return e instanceof KubeApiError && e.code !== 409 ? e : undefined;
      },
      30_000,
    );
    expect(err.code).toBe(422);
    expect(err.message).toContain('must have apiVersion gpu.cascade.dev/v1alpha1 and kind GpuConfig');
    const bad = [
      [{ apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', sharing: { strategy: 'Sometimes' } }, 'sharing.strategy must be Exclusive, TimeSlicing or MPS'],
      [{ apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', extra: 1 }, 'may only have the fields apiVersion, kind and sharing'],
    ] as const;
    for (const [parameters, message] of bad) {
      const e = (await ns.kube.resourceClaims.create(claim('bad', parameters), { dryRun: true }).catch((x: unknown) => x)) as KubeApiError;
      expect([e.code, e.message.includes(message)]).toEqual([422, true]);
    }
    const t = (await ns.kube.resourceClaimTemplates
      .create({ metadata: { name: 'bad-template', namespace: ns.name }, spec: { spec: claim('x', { apiVersion: 'v1', kind: 'GpuConfig' }).spec } }, { dryRun: true })
      .catch((x: unknown) => x)) as KubeApiError;
    expect(t.code).toBe(422);
    // A valid config, and another driver's config, pass.
    await ns.kube.resourceClaims.create(claim('good', { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', sharing: { strategy: 'Exclusive' } }), { dryRun: true });
    await ns.kube.resourceClaims.create(
      {
        ...claim('other', {}),
        spec: { devices: { requests: [{ name: 'nic', exactly: { deviceClassName: 'nic' } }], config: [{ opaque: { driver: 'nic.example.com', parameters: { anything: true } } }] } },
      },
      { dryRun: true },
    );
  });

  it('runs two controller replicas under their ServiceAccount; one leads, allocates, and a killed leader is replaced', async () => {
    const kc = await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, 'cascade-controller', join(clusterDir(), 'controller.kubeconfig'));
    const port2 = await freePort();
    controllers.push(controller('controller-1', kc, webhookPort).start(), controller('controller-2', kc, port2).start());
    const lease = async (): Promise<Lease> => await ns.kube.leases.get('cascade-controller', ADDON_NAMESPACE);
    // A Lease left by an earlier test's controller expires first; then one of ours leads.
    const first = await eventually(
      'one of our replicas to lead',
      async () => {
        const h = (await lease().catch(() => undefined))?.spec.holderIdentity;
        return h === 'controller-1' || h === 'controller-2' ? h : undefined;
      },
      40_000,
    );

    // The leader allocates with nothing but the manifests' RBAC.
    await ns.kube.resourceClaims.create({
      metadata: { name: 'one-h100', namespace: ns.name },
      spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } },
    });
    const claim = await eventually(
      'allocation under RBAC',
      async () => {
        const c = await ns.kube.resourceClaims.get('one-h100', ns.name);
        return c.status?.allocation ? c : undefined;
      },
      30_000,
    );
    expect(claim.status?.allocation?.devices?.results?.[0]).toMatchObject({ driver: DRIVER, pool: nodeA, device: 'gpu-0' });
    const described = await kubectl(['describe', 'resourceclaim', 'one-h100', '-n', ns.name]);
    expect(described.stdout).toMatch(/Allocated\s+.*gpu-0/);

    // Kill -9 the leader: the other replica takes the Lease within its duration.
    const leader = controllers.find((c) => c.name === first)!;
    await leader.stop('SIGKILL');
    const next = await eventually(
      'a new leader',
      async () => {
        const h = (await lease()).spec.holderIdentity;
        return h && h !== first ? h : undefined;
      },
      15_000,
    );
    expect(next).not.toBe(first);

    // And the new leader does the work.
    await ns.kube.resourceClaims.delete('one-h100', ns.name);
    await eventually('deallocation by the new leader', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.name === 'one-h100'), 30_000);
  }, 90_000);
});
