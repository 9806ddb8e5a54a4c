// The resource.k8s.io/v1 objects Cascade writes survive the real API server
// intact, and the server's validation errors reach the caller readably.
import { describeCluster, useNamespace, kubectl } from '../support/cluster.js';
import { KubeApiError } from '../../pkg/k8s/client.js';
import type { DeviceClass, ResourceClaim, ResourceSlice } from '../../pkg/api/resource.js';

function sliceWithDevices(driver: string, name: string, node: string, count: number): ResourceSlice {
  return {
    metadata: { name },
    spec: {
      driver,
      nodeName: node,
      pool: { name: node, generation: 1, resourceSliceCount: 1 },
      devices: Array.from({ length: count }, (_, i) => ({ name: `gpu-${i}` })),
    },
  };
}

describeCluster('resource.k8s.io/v1 on the real API server', () => {
  const ns = useNamespace('resapi');
  const suffix = Math.random().toString(36).slice(2, 7);
  // A driver of this file's own, so the e2e add-on's controller (gpu.cascade.dev) never touches these objects.
  const DRIVER = `rt-${suffix}.cascade.dev`;

  afterAll(async () => {
    if (!ns.kube) return;
    for (const name of [`rt-counters-${suffix}`, `rt-devices-${suffix}`]) await ns.kube.resourceSlices.delete(name).catch(() => undefined);
    await ns.kube.deviceClasses.delete(`rt-class-${suffix}`).catch(() => undefined);
  });

  it('keeps a DeviceClass with a CEL selector and opaque config exactly as written', async () => {
    const dc: DeviceClass = {
      metadata: { name: `rt-class-${suffix}` },
      spec: {
        selectors: [{ cel: { expression: `device.driver == "${DRIVER}" && device.attributes["${DRIVER}"].type == "gpu" && device.capacity["${DRIVER}"].memory.compareTo(quantity("40Gi")) >= 0` } }],
        config: [{ opaque: { driver: DRIVER, parameters: { apiVersion: `${DRIVER}/v1alpha1`, kind: 'GpuConfig', sharing: { strategy: 'Exclusive' } } } }],
      },
    };
    await ns.kube.deviceClasses.create(dc);
    const back = await ns.kube.deviceClasses.get(dc.metadata.name!);
    expect(back.spec).toEqual(dc.spec);
  });

  it('keeps a ResourceSlice with attributes and capacity, and a separate slice with a shared counter set', async () => {
    const node = `node-${suffix}`;
    const counters: ResourceSlice = {
      metadata: { name: `rt-counters-${suffix}` },
      spec: {
        driver: DRIVER,
        nodeName: node,
        pool: { name: node, generation: 1, resourceSliceCount: 2 },
        sharedCounters: [
          {
            name: 'gpu-0-counters',
            counters: Object.fromEntries([...Array.from({ length: 8 }, (_, i) => [`memory-slice-${i}`, { value: '1' }]), ['compute-slices', { value: '7' }]]),
          },
        ],
      },
    };
    const devices: ResourceSlice = {
      metadata: { name: `rt-devices-${suffix}` },
      spec: {
        driver: DRIVER,
        nodeName: node,
        pool: { name: node, generation: 1, resourceSliceCount: 2 },
        devices: [
          {
            name: 'gpu-0',
            attributes: {
              [`${DRIVER}/type`]: { string: 'gpu' },
              [`${DRIVER}/productName`]: { string: 'NVIDIA H100 80GB HBM3' },
              [`${DRIVER}/cudaComputeCapability`]: { version: '9.0.0' },
              [`${DRIVER}/migCapable`]: { bool: true },
              'resource.kubernetes.io/pciBusID': { string: '0000:06:00.0' },
              'resource.kubernetes.io/numaNode': { int: 0 },
            },
            capacity: { [`${DRIVER}/memory`]: { value: '81559Mi' } },
            consumesCounters: [
              {
                counterSet: 'gpu-0-counters',
                counters: Object.fromEntries([...Array.from({ length: 8 }, (_, i) => [`memory-slice-${i}`, { value: '1' }]), ['compute-slices', { value: '7' }]]),
              },
            ],
          },
          {
            name: 'gpu-0-mig-3g-40gb-4',
            attributes: { [`${DRIVER}/type`]: { string: 'mig' }, [`${DRIVER}/profile`]: { string: '3g.40gb' }, [`${DRIVER}/placementStart`]: { int: 4 } },
            capacity: { [`${DRIVER}/memory`]: { value: '40Gi' } },
            consumesCounters: [
              {
                counterSet: 'gpu-0-counters',
                counters: { 'memory-slice-4': { value: '1' }, 'memory-slice-5': { value: '1' }, 'memory-slice-6': { value: '1' }, 'memory-slice-7': { value: '1' }, 'compute-slices': { value: '3' } },
              },
            ],
          },
        ],
      },
    };
    await ns.kube.resourceSlices.create(counters);
    await ns.kube.resourceSlices.create(devices);
    expect((await ns.kube.resourceSlices.get(counters.metadata.name!)).spec).toEqual(counters.spec);
    expect((await ns.kube.resourceSlices.get(devices.metadata.name!)).spec).toEqual(devices.spec);
  });

  it('rejects a ResourceSlice with 129 devices and says why', async () => {
    const err = await ns.kube.resourceSlices.create(sliceWithDevices(DRIVER, `rt-too-many-${suffix}`, `node-${suffix}`, 129)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    const apiErr = err as KubeApiError;
    expect(apiErr.code).toBe(422);
    expect(apiErr.reason).toBe('Invalid');
    expect(apiErr.message).toMatch(/spec\.devices.*128/);
  });

  it('accepts exactly 128 devices in one slice (the documented limit)', async () => {
    const s = await ns.kube.resourceSlices.create(sliceWithDevices(DRIVER, `rt-max-${suffix}`, `node-${suffix}`, 128), { dryRun: true });
    expect(s.spec.devices).toHaveLength(128);
  });

  it('rejects a slice that holds both devices and shared counters', async () => {
    const s = sliceWithDevices(DRIVER, `rt-both-${suffix}`, `node-${suffix}`, 1);
    s.spec.sharedCounters = [{ name: 'c', counters: { x: { value: '1' } } }];
    const err = (await ns.kube.resourceSlices.create(s, { dryRun: true }).catch((e: unknown) => e)) as KubeApiError;
    expect(err.code).toBe(422);
  });

  it('keeps a ResourceClaim with a three-level firstAvailable list and constraints, and stores an allocation written to status', async () => {
    const claim: ResourceClaim = {
      metadata: { name: 'cascade-prefs', namespace: ns.name },
      spec: {
        devices: {
          requests: [
            {
              name: 'gpus',
              firstAvailable: [
                { name: 'h100', deviceClassName: `gpu.${DRIVER}`, selectors: [{ cel: { expression: `device.attributes["${DRIVER}"].productName.startsWith("NVIDIA H100")` } }] },
                { name: 'two-a100', deviceClassName: `gpu.${DRIVER}`, count: 2, selectors: [{ cel: { expression: `device.attributes["${DRIVER}"].productName.contains("A100")` } }] },
                { name: 'mig-3g', deviceClassName: `mig.${DRIVER}`, selectors: [{ cel: { expression: `device.attributes["${DRIVER}"].profile.startsWith("3g.")` } }] },
              ],
            },
          ],
          constraints: [{ requests: ['gpus/two-a100'], matchAttribute: `${DRIVER}/nvlinkDomain` }],
        },
      },
    };
    const created = await ns.kube.resourceClaims.create(claim);
    const subs = created.spec.devices?.requests?.[0]?.firstAvailable ?? [];
    expect(subs.map((s) => s.name)).toEqual(['h100', 'two-a100', 'mig-3g']);
    expect(subs.map((s) => s.count)).toEqual([1, 2, 1]);
    expect(subs.every((s) => s.allocationMode === 'ExactCount')).toBe(true);
    expect(created.spec.devices?.constraints).toEqual(claim.spec.devices?.constraints);

    // Write an allocation the way the controller will: a merge patch of status only.
    const allocation = {
      devices: {
        results: [
          { request: 'gpus/two-a100', driver: DRIVER, pool: 'node-a', device: 'gpu-0' },
          { request: 'gpus/two-a100', driver: DRIVER, pool: 'node-a', device: 'gpu-1' },
        ],
      },
      nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In' as const, values: ['node-a'] }] }] },
    };
    const patched = await ns.kube.resourceClaims.mergePatch('cascade-prefs', { metadata: { resourceVersion: created.metadata.resourceVersion }, status: { allocation } }, ns.name, 'status');
    expect(patched.status?.allocation?.devices?.results).toEqual(allocation.devices.results);
    expect(patched.status?.allocation?.nodeSelector).toEqual(allocation.nodeSelector);

    // The allocation cannot be changed, only cleared (API rule).
    const change = { devices: { results: [{ request: 'gpus/two-a100', driver: DRIVER, pool: 'node-a', device: 'gpu-2' }] } };
    const err = (await ns.kube.resourceClaims.mergePatch('cascade-prefs', { status: { allocation: change } }, ns.name, 'status').catch((e: unknown) => e)) as KubeApiError;
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.code).toBe(422);

    // kubectl describe shows the allocation to a person.
    const out = await kubectl(['describe', 'resourceclaim', 'cascade-prefs', '-n', ns.name]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/Name:\s+cascade-prefs/);
    expect(out.stdout).toContain('two-a100');
    expect(out.stdout).toContain('gpu-1');
  });

  it('refuses a stale write with 409 Conflict when the patch names an old resourceVersion', async () => {
    const c = await ns.kube.resourceClaims.create({
      metadata: { name: 'stale', namespace: ns.name },
      spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } },
    });
    await ns.kube.resourceClaims.mergePatch('stale', { metadata: { labels: { touched: 'yes' } } }, ns.name);
    const err = (await ns.kube.resourceClaims
      .mergePatch('stale', { metadata: { resourceVersion: c.metadata.resourceVersion, labels: { second: 'yes' } } }, ns.name)
      .catch((e: unknown) => e)) as KubeApiError;
    expect(err.code).toBe(409);
  });
});
