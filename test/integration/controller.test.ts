// The controller on the real control plane: it allocates standalone claims and
// the claims of gated pods, removes the gate so the real kube-scheduler binds
// the pod to the allocated node, explains failures, and frees devices again.
import { randomBytes } from 'node:crypto';
import { describeCluster, useNamespace, kubectl, eventually, adminKubeconfig } from '../support/cluster.js';
import { deviceClasses, wholeGpuSlice } from '../support/fleet.js';
import { createFakeNode, freePort } from '../../pkg/cluster/controlplane.js';
import { runController, type RunningController } from '../../pkg/controller/run.js';
import { MUTATING_WEBHOOK_CONFIGURATIONS } from '../../pkg/controller/webhook.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';
import type { EventV1, Pod } from '../../pkg/k8s/types.js';

describeCluster('the controller', () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `ctl-${tag}.cascade.dev`;
  const ns = useNamespace('ctl', { 'cascade-test': tag });
  const nodeA = `ctl-${tag}-a`;
  const nodeB = `ctl-${tag}-b`;
  let running: RunningController;
  let start: () => Promise<RunningController>;

  beforeAll(async () => {
    const kube = ns.kube;
    await createFakeNode(kube, nodeA, { cpu: '16', memory: '64Gi' });
    await createFakeNode(kube, nodeB, { cpu: '16', memory: '64Gi' });
    for (const dc of deviceClasses(driver)) await kube.deviceClasses.create(dc);
    await kube.resourceSlices.create(await wholeGpuSlice(driver, nodeA, 'H100-80GB', 1));
    await kube.resourceSlices.create(await wholeGpuSlice(driver, nodeB, 'A100-SXM4-40GB', 2));
    const port = await freePort();
    await kube.api(MUTATING_WEBHOOK_CONFIGURATIONS).create({
      metadata: { name: `cascade-gate-${tag}` },
      webhooks: [
        {
          name: `gate.${driver}`,
          clientConfig: { url: `https://127.0.0.1:${port}/mutate-pods` },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
          namespaceSelector: { matchLabels: { 'cascade-test': tag } },
          failurePolicy: 'Ignore',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 5,
        },
      ],
    } as never);
    start = (): Promise<RunningController> =>
      runController({
        kubeconfig: adminKubeconfig(),
        driver,
        namespace: ns.name,
        identity: 'test-controller',
        policy: 'cascade',
        workers: 4,
        httpPort: 0,
        httpHost: '127.0.0.1',
        leaderElection: false,
        leaseName: 'unused',
        leaseDurationSeconds: 15,
        webhook: { port, host: '127.0.0.1', serviceName: 'cascade-webhook', secretName: 'cascade-webhook-tls', configName: `cascade-gate-${tag}`, extraIpAddresses: ['127.0.0.1'] },
      });
    running = await start();
  }, 60_000);

  afterAll(async () => {
    await running?.stop();
    const kube = ns.kube;
    if (!kube) return;
    await kube
      .api(MUTATING_WEBHOOK_CONFIGURATIONS)
      .delete(`cascade-gate-${tag}`)
      .catch(() => undefined);
    for (const dc of deviceClasses(driver)) await kube.deviceClasses.delete(dc.metadata.name!).catch(() => undefined);
    for (const n of [nodeA, nodeB]) {
      await kube.resourceSlices.delete(`${n}-${driver.replace(/\./g, '-')}-0`).catch(() => undefined);
      await kube.nodes.delete(n).catch(() => undefined);
    }
  });

  const events = async (name: string): Promise<EventV1[]> => (await ns.kube.events.list(ns.name)).filter((e) => e.regarding.name === name);

  it('allocates a standalone claim, adds its finalizer, and says so in an Event', async () => {
    await ns.kube.resourceClaims.create({
      metadata: { name: 'solo', namespace: ns.name },
      spec: {
        devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("H100")` } }] } }] },
      },
    });
    const claim = await eventually('allocation', async () => {
      const c = await ns.kube.resourceClaims.get('solo', ns.name);
      return c.status?.allocation ? c : undefined;
    });
    expect(claim.status?.allocation?.devices?.results).toEqual([{ request: 'gpu', driver, pool: nodeA, device: 'gpu-0' }]);
    expect(claim.status?.allocation?.nodeSelector?.nodeSelectorTerms[0]?.matchFields?.[0]).toEqual({ key: 'metadata.name', operator: 'In', values: [nodeA] });
    expect(claim.metadata.finalizers).toContain(`${driver}/allocation`);
    const ev = await eventually('Allocated event', async () => (await events('solo')).find((e) => e.reason === 'Allocated'));
    expect(ev.note).toContain('gpu-0');
    expect(ev.note).toContain(nodeA);

    // Deleting the claim frees the device: the controller deallocates and drops its finalizer.
    await ns.kube.resourceClaims.delete('solo', ns.name);
    await eventually('claim gone', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.name === 'solo'));
  });

  it('allocates again when someone clears the allocation, as the scheduler does in PostFilter', async () => {
    await ns.kube.resourceClaims.create({
      metadata: { name: 'cleared', namespace: ns.name },
      spec: {
        devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("H100")` } }] } }] },
      },
    });
    const first = await eventually('first allocation', async () => {
      const c = await ns.kube.resourceClaims.get('cleared', ns.name);
      return c.status?.allocation ? c : undefined;
    });
    // The kube-scheduler clears an allocation (and nothing else) when the pod fits no node.
    await ns.kube.resourceClaims.mergePatch('cleared', { metadata: { resourceVersion: first.metadata.resourceVersion }, status: { allocation: null } }, ns.name, 'status');
    const again = await eventually('allocation again', async () => {
      const c = await ns.kube.resourceClaims.get('cleared', ns.name);
      return c.status?.allocation && c.metadata.resourceVersion !== first.metadata.resourceVersion ? c : undefined;
    });
    expect(again.status?.allocation?.devices?.results?.[0]?.device).toBe('gpu-0');
    await ns.kube.resourceClaims.delete('cleared', ns.name);
    await eventually('claim gone', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.name === 'cleared'));
  });

  it('gates a pod, allocates its claim from the preference list, and the scheduler binds it to that node', async () => {
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'prefs', namespace: ns.name },
      spec: {
        spec: {
          devices: {
            requests: [
              {
                name: 'gpus',
                firstAvailable: [
                  { name: 'h200', deviceClassName: `gpu.${driver}`, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("H200")` } }] },
                  { name: 'two-a100', deviceClassName: `gpu.${driver}`, count: 2, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("A100")` } }] },
                ],
              },
            ],
            constraints: [{ requests: ['gpus'], matchAttribute: `${driver}/nvlinkDomain` }],
          },
        },
      },
    });
    const pod = await ns.kube.pods.create({
      metadata: { name: 'trainer', namespace: ns.name },
      spec: {
        containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', resources: { requests: { cpu: '1', memory: '1Gi' }, claims: [{ name: 'gpus' }] } }],
        resourceClaims: [{ name: 'gpus', resourceClaimTemplateName: 'prefs' }],
      },
    });
    // The webhook added the gate at creation.
    expect(pod.spec.schedulingGates).toEqual([{ name: `${driver}/allocation` }]);

    const bound = await eventually(
      'pod bound',
      async () => {
        const p: Pod = await ns.kube.pods.get('trainer', ns.name);
        return p.spec.nodeName ? p : undefined;
      },
      60_000,
    );
    expect(bound.spec.nodeName).toBe(nodeB);
    expect(bound.spec.schedulingGates ?? []).toEqual([]);
    const claimName = bound.status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? '';
    const claim: ResourceClaim = await ns.kube.resourceClaims.get(claimName, ns.name);
    expect(claim.status?.allocation?.devices?.results?.map((r) => `${r.request} ${r.device}`).sort()).toEqual(['gpus/two-a100 gpu-0', 'gpus/two-a100 gpu-1']);
    expect(claim.status?.reservedFor?.map((r) => r.name)).toEqual(['trainer']);

    const ev = await eventually('Allocated event', async () => (await events(claimName)).find((e) => e.reason === 'Allocated'));
    expect(ev.note).toMatch(/alternative 2 \(two-a100\)/);
    const described = await kubectl(['describe', 'pod', 'trainer', '-n', ns.name]);
    // One event on the pod says both: what it got and that the gate is off.
    expect(described.stdout).toMatch(/Allocated/);
    expect(described.stdout).toMatch(/Removed scheduling gate/);

    // Deleting the pod: the claim controller deletes the claim, we deallocate, and the GPUs are free again.
    await ns.kube.pods.delete('trainer', ns.name, { gracePeriodSeconds: 0 });
    await eventually('generated claim gone', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.name === claimName), 60_000);
  }, 90_000);

  it('leaves claims in namespaces the gate does not cover to the kube-scheduler, so one claim never has two allocators', async () => {
    // A namespace outside the webhook's namespaceSelector: its pods are never
    // gated, so the kube-scheduler's built-in allocator owns its claims. Cascade
    // used to allocate them too, and the two double-booked devices across claims.
    const other = `${ns.name}-nogate`;
    await ns.kube.namespaces.create({ metadata: { name: other } });
    const gpuClaim = (name: string, namespace: string): ResourceClaim => ({
      metadata: { name, namespace },
      spec: {
        devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("H100")` } }] } }] },
      },
    });
    try {
      // Two standalone claims for the same H100: the one outside the gate first.
      await ns.kube.resourceClaims.create(gpuClaim('outside', other));
      await ns.kube.resourceClaims.create(gpuClaim('inside', ns.name));
      await eventually('the claim inside the gate allocated', async () => (await ns.kube.resourceClaims.get('inside', ns.name)).status?.allocation !== undefined);
      const outside = await ns.kube.resourceClaims.get('outside', other);
      expect(outside.status?.allocation).toBeUndefined();
      expect(outside.metadata.finalizers ?? []).not.toContain(`${driver}/allocation`);
      await ns.kube.resourceClaims.delete('inside', ns.name);
      await eventually('claim inside gone', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.name === 'inside'));

      // A pod there is not gated and the kube-scheduler alone allocates and binds it.
      const pod = await ns.kube.pods.create({
        metadata: { name: 'ungated', namespace: other },
        spec: {
          containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }],
          resourceClaims: [{ name: 'gpu', resourceClaimName: 'outside' }],
        },
      });
      expect(pod.spec.schedulingGates ?? []).toEqual([]);
      const bound = await eventually(
        'ungated pod bound',
        async () => {
          const p: Pod = await ns.kube.pods.get('ungated', other);
          return p.spec.nodeName ? p : undefined;
        },
        60_000,
      );
      const claim: ResourceClaim = await ns.kube.resourceClaims.get('outside', other);
      expect(claim.status?.allocation?.devices?.results?.[0]).toMatchObject({ driver, pool: nodeA, device: 'gpu-0' });
      expect(bound.spec.nodeName).toBe(nodeA);
      expect(claim.metadata.finalizers ?? []).not.toContain(`${driver}/allocation`);
      const cascadeEvents = (await ns.kube.events.list(other)).filter((e) => e.reportingController === `${driver}/controller`);
      expect(cascadeEvents).toEqual([]);
      await ns.kube.pods.delete('ungated', other, { gracePeriodSeconds: 0 });
    } finally {
      await ns.kube.namespaces.delete(other).catch(() => undefined);
    }
  }, 90_000);

  it('tells a gated pod that the claim it names does not exist, and allocates it once the claim is created', async () => {
    await ns.kube.pods.create({
      metadata: { name: 'waits-for-claim', namespace: ns.name },
      spec: {
        containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }],
        resourceClaims: [{ name: 'gpu', resourceClaimName: 'later' }],
      },
    });
    const ev = await eventually('ClaimNotFound event', async () => (await events('waits-for-claim')).find((e) => e.reason === 'ClaimNotFound'));
    expect(ev.type).toBe('Warning');
    expect(ev.note).toMatch(new RegExp(`^The pod waits because its ResourceClaim ${ns.name}/later does not exist`));
    await ns.kube.resourceClaims.create({
      metadata: { name: 'later', namespace: ns.name },
      spec: {
        devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.matches("A100")` } }] } }] },
      },
    });
    const bound = await eventually(
      'pod bound',
      async () => {
        const p: Pod = await ns.kube.pods.get('waits-for-claim', ns.name);
        return p.spec.nodeName ? p : undefined;
      },
      60_000,
    );
    expect(bound.spec.nodeName).toBe(nodeB);
    await ns.kube.pods.delete('waits-for-claim', ns.name, { gracePeriodSeconds: 0 });
    await eventually('pod gone', async () => !(await ns.kube.pods.list(ns.name)).some((p) => p.metadata.name === 'waits-for-claim'), 60_000);
    await ns.kube.resourceClaims.delete('later', ns.name);
    await eventually('claim gone', async () => !(await ns.kube.resourceClaims.list(ns.name)).some((c) => c.metadata.name === 'later'), 60_000);
  }, 90_000);

  it('does not allocate a claim whose device config the node plugin would refuse, and says why', async () => {
    // A config the add-on's admission policy lets through (it checks the strategy) that the node plugin refuses.
    await ns.kube.resourceClaims.create({
      metadata: { name: 'bad-config', namespace: ns.name },
      spec: {
        devices: {
          requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}` } }],
          config: [
            {
              requests: ['gpu'],
              opaque: { driver, parameters: { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Forever' } } } },
            },
          ],
        },
      },
    });
    const ev = await eventually('InvalidClaim event', async () => (await events('bad-config')).find((e) => e.reason === 'InvalidClaim'));
    expect(ev.type).toBe('Warning');
    expect(ev.note).toMatch(
      /^Cascade does not allocate this claim because its device configuration is invalid: invalid gpu.cascade.dev\/v1alpha1 GpuConfig in the claim's config\[0\] \(requests gpu\): sharing.timeSlicing.interval: must be one of "Default", "Short", "Medium", "Long", got "Forever"/,
    );
    const c = await ns.kube.resourceClaims.get('bad-config', ns.name);
    expect(c.status?.allocation).toBeUndefined();
    await ns.kube.resourceClaims.delete('bad-config', ns.name);
  });

  it('calls a claim for more devices than any claim may hold invalid, not short of devices', async () => {
    await ns.kube.resourceClaims.create({
      metadata: { name: 'too-many', namespace: ns.name },
      spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, count: 33 } }] } },
    });
    // The API server accepts the claim (it limits results, not counts); Cascade must call it invalid.
    const ev = await eventually('InvalidClaim event', async () => (await events('too-many')).find((e) => e.reason === 'InvalidClaim'));
    expect(ev.note).toContain('no fleet could ever satisfy it as written: request gpu: count 33 is more than the 32 devices one claim can be allocated');
    expect((await events('too-many')).some((e) => e.reason === 'AllocationFailed')).toBe(false);
    await ns.kube.resourceClaims.delete('too-many', ns.name);
  });

  it('serves health, readiness and Prometheus metrics about its decisions', async () => {
    const base = `http://127.0.0.1:${running.httpPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${base}/metrics`)).text();
    // Earlier tests allocated a plain claim and a claim whose second preference won.
    expect(text).toMatch(/cascade_allocations_total\{outcome="allocated",rank="exact"\} [1-9]/);
    expect(text).toMatch(/cascade_allocations_total\{outcome="allocated",rank="2"\} [1-9]/);
    expect(text).toMatch(/cascade_decision_seconds_count\{outcome="allocated"\} [1-9]/);
    expect(text).toMatch(/^cascade_pending_claims \d+$/m);
    expect(text).toMatch(/^cascade_fleet_capacity_units \d+$/m);
    expect(text).toMatch(/^cascade_fleet_utilization_ratio [\d.]+$/m);
    expect(text).toMatch(/^cascade_fleet_fragmentation_ratio [\d.]+$/m);
    expect(text).toMatch(/^cascade_leader 1$/m);
  });

  it('tells a person why an impossible claim cannot be allocated', async () => {
    await ns.kube.resourceClaims.create({
      metadata: { name: 'impossible', namespace: ns.name },
      spec: {
        devices: {
          requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, count: 3, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("A100")` } }] } }],
        },
      },
    });
    const ev = await eventually('AllocationFailed event', async () => (await events('impossible')).find((e) => e.reason === 'AllocationFailed'));
    expect(ev.type).toBe('Warning');
    expect(ev.note).toMatch(/gpu/);
    expect(ev.note).toMatch(/2/); // only two A100s exist
    const described = await kubectl(['describe', 'resourceclaim', 'impossible', '-n', ns.name]);
    expect(described.stdout).toContain('AllocationFailed');
    const c = await ns.kube.resourceClaims.get('impossible', ns.name);
    expect(c.status?.allocation).toBeUndefined();
  });
  it('releases a standalone claim whose pod went away while the controller was down, once it is back', async () => {
    await ns.kube.resourceClaims.create({
      metadata: { name: 'outlives', namespace: ns.name },
      spec: {
        devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("A100")` } }] } }] },
      },
    });
    await eventually('allocated', async () => (await ns.kube.resourceClaims.get('outlives', ns.name)).status?.allocation !== undefined);
    await ns.kube.pods.create({
      metadata: { name: 'user', namespace: ns.name },
      spec: { containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }], resourceClaims: [{ name: 'gpu', resourceClaimName: 'outlives' }] },
    });
    // Reserved by the pod, and the claim itself remembers it.
    await eventually(
      'reserved and marked',
      async () => {
        const c = await ns.kube.resourceClaims.get('outlives', ns.name);
        return (c.status?.reservedFor ?? []).length > 0 && c.metadata.annotations?.[`${driver}/was-reserved`] === 'true';
      },
      60_000,
    );
    await running.stop();
    await ns.kube.pods.delete('user', ns.name, { gracePeriodSeconds: 0 });
    await eventually('reservation dropped while the controller is down', async () => ((await ns.kube.resourceClaims.get('outlives', ns.name)).status?.reservedFor ?? []).length === 0, 60_000);
    running = await start();
    const released = await eventually(
      'released by the new controller',
      async () => {
        const c = await ns.kube.resourceClaims.get('outlives', ns.name);
        return c.status?.allocation === undefined ? c : undefined;
      },
      60_000,
    );
    expect(released.metadata.finalizers ?? []).not.toContain(`${driver}/allocation`);
    const ev = await eventually('Deallocated event', async () => (await events('outlives')).find((e) => e.reason === 'Deallocated'));
    expect(ev.note).toMatch(/no pod uses it any more/);
    await ns.kube.resourceClaims.delete('outlives', ns.name);
  }, 120_000);

  it('allocates an admin-access claim in a namespace labelled just now, without rebuilding its index', async () => {
    const rebuilds = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${running.httpPort}/metrics`)).text();
      return Number(/^cascade_inventory_rebuilds_total (\S+)/m.exec(text)?.[1] ?? NaN);
    };
    // The index exists (earlier claims were allocated); a namespace's labels are not part of it.
    const before = await rebuilds();
    await ns.kube.namespaces.mergePatch(ns.name, { metadata: { labels: { 'resource.kubernetes.io/admin-access': 'true' } } });
    try {
      // The API server only takes the claim once the label is there; the allocator must see the label too.
      const spec = { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}`, adminAccess: true } }] } };
      await ns.kube.resourceClaims.create({ metadata: { name: 'monitor', namespace: ns.name }, spec });
      const c = await eventually('allocated', async () => {
        const got = await ns.kube.resourceClaims.get('monitor', ns.name);
        return got.status?.allocation ? got : undefined;
      });
      expect(c.status?.allocation?.devices?.results?.[0]?.adminAccess).toBe(true);
      expect(await rebuilds()).toBe(before);
    } finally {
      await ns.kube.resourceClaims.delete('monitor', ns.name).catch(() => undefined);
      await ns.kube.namespaces.mergePatch(ns.name, { metadata: { labels: { 'resource.kubernetes.io/admin-access': null } } });
    }
  });

  it("rebuilds its index after one node's slice changed by parsing only that pool again", async () => {
    const pools = async (): Promise<{ parsed: number; reused: number }> => {
      const text = await (await fetch(`http://127.0.0.1:${running.httpPort}/metrics`)).text();
      const read = (how: string): number => Number(new RegExp(`^cascade_inventory_pools_total\\{how="${how}"\\} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
      return { parsed: read('parsed'), reused: read('reused') };
    };
    const before = await pools();
    const name = `${nodeA}-${driver.replace(/\./g, '-')}-0`;
    const original = await ns.kube.resourceSlices.get(name);
    // Node A's plugin now publishes two H100s where it published one.
    const grown = await wholeGpuSlice(driver, nodeA, 'H100-80GB', 2);
    await ns.kube.resourceSlices.replace({ ...original, spec: grown.spec });
    try {
      const spec = {
        devices: {
          requests: [{ name: 'gpus', exactly: { deviceClassName: `gpu.${driver}`, count: 2, selectors: [{ cel: { expression: `device.attributes["${driver}"].productName.contains("H100")` } }] } }],
        },
      };
      await ns.kube.resourceClaims.create({ metadata: { name: 'two-h100', namespace: ns.name }, spec });
      const c = await eventually('allocated on the grown node', async () => {
        const got = await ns.kube.resourceClaims.get('two-h100', ns.name);
        return got.status?.allocation ? got : undefined;
      });
      expect((c.status?.allocation?.devices?.results ?? []).map((r) => r.pool).sort()).toEqual([nodeA, nodeA]);
      const after = await pools();
      // Node A's pool was parsed again; node B's came from the build before.
      expect(after.parsed).toBeGreaterThan(before.parsed);
      expect(after.reused).toBeGreaterThan(before.reused);
    } finally {
      await ns.kube.resourceClaims.delete('two-h100', ns.name).catch(() => undefined);
      const now = await ns.kube.resourceSlices.get(name);
      await ns.kube.resourceSlices.replace({ ...now, spec: original.spec });
    }
  });
});
