// The node plugin on the real API server with the nvidia-smi simulator: the
// slices it publishes, health taints, and prepare/unprepare of whole GPUs and
// MIG partitions through the kubelet's real gRPC sockets.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResourceSlice } from '../../pkg/api/resource.js';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import { limitViolations } from '../../pkg/inventory/index.js';
import { cdiSpecFileName } from '../../pkg/kubeletplugin/cdi.js';
import { type RunningNodePlugin, startNodePlugin } from '../../pkg/nodeplugin/run.js';
import { FLEETS, type FakeNvidiaSmi, createFakeNvidiaSmi } from '../../hack/fake-nvidia-smi/testing.js';
import { describeCluster, eventually, kubectl, useNamespace } from '../support/cluster.js';
import { KubeletStandin } from '../support/kubelet-standin.js';
import { type PluginDirs, allocatedClaim, backendFor, cdiSchemaProblems, instanceCount, pluginConfig, pluginDirs, refOf } from './node-plugin-support.js';

describeCluster('the node plugin', () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `np-${tag}.cascade.dev`;
  const ns = useNamespace('np', { 'cascade-test': tag });
  const h100Node = `np-${tag}-h100`;
  const a100Node = `np-${tag}-a100`;
  let h100: { smi: FakeNvidiaSmi; dirs: PluginDirs; plugin: RunningNodePlugin; kubelet: KubeletStandin };
  let a100: { smi: FakeNvidiaSmi; dirs: PluginDirs; plugin: RunningNodePlugin };

  const slicesOf = async (node: string): Promise<ResourceSlice[]> => await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node},spec.driver=${driver}` });

  beforeAll(async () => {
    for (const n of [h100Node, a100Node]) await createFakeNode(ns.kube, n);
    {
      const smi = createFakeNvidiaSmi(FLEETS.h100x8('Enabled'));
      const dirs = pluginDirs();
      const plugin = await startNodePlugin(pluginConfig(driver, h100Node, dirs, smi, { pollIntervalMs: 1000, healthIntervalMs: 200 }), { kube: ns.kube, backend: backendFor(smi) });
      const kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
      h100 = { smi, dirs, plugin, kubelet };
    }
    {
      const smi = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
      const dirs = pluginDirs();
      a100 = { smi, dirs, plugin: await startNodePlugin(pluginConfig(driver, a100Node, dirs, smi), { kube: ns.kube, backend: backendFor(smi) }) };
    }
  }, 60_000);

  afterAll(async () => {
    h100?.kubelet.close();
    for (const n of [h100, a100]) {
      await n?.plugin.stop();
      n?.smi.cleanup();
      n?.dirs.cleanup();
    }
    for (const node of [h100Node, a100Node]) {
      for (const s of (await slicesOf(node).catch(() => [])) ?? []) await ns.kube.resourceSlices.delete(s.metadata.name ?? '').catch(() => undefined);
      await ns.kube.nodes.delete(node).catch(() => undefined);
    }
  });

  /** Every slice of a pool's newest generation, checked against the API limits and each other. */
  function checkPool(slices: ResourceSlice[]): { devices: number; generation: number } {
    const generation = Math.max(...slices.map((s) => s.spec.pool.generation));
    const current = slices.filter((s) => s.spec.pool.generation === generation);
    expect(current.length).toBe(current[0]?.spec.pool.resourceSliceCount);
    const desired = current.map((s) => ({ name: s.metadata.name ?? '', spec: { ...s.spec, pool: { name: s.spec.pool.name, resourceSliceCount: s.spec.pool.resourceSliceCount } } }));
    expect(limitViolations(desired)).toEqual([]);
    return { devices: current.reduce((n, s) => n + (s.spec.devices?.length ?? 0), 0), generation };
  }

  it('publishes an 8x H100 node with MIG on every GPU in slices the API server accepts, with consistent counters', async () => {
    const slices = await slicesOf(h100Node);
    const { devices } = checkPool(slices);
    // 8 GPUs x (whole GPU + its shared form + 25 partitions), counters in a slice of their own.
    expect(devices).toBe(8 * 27);
    expect(slices.filter((s) => (s.spec.sharedCounters?.length ?? 0) > 0)).toHaveLength(1);
    for (const s of slices) {
      expect(s.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Node', name: h100Node });
    }
  });

  it('publishes an A100 with MIG enabled as partitions only (a whole GPU would need a reset)', async () => {
    const slices = await slicesOf(a100Node);
    const { devices } = checkPool(slices);
    const names = slices.flatMap((s) => s.spec.devices ?? []).map((d) => d.name);
    expect(names).not.toContain('gpu-0');
    expect(names).toContain('gpu-0-mig-3g-20gb-4');
    expect(devices).toBe(names.length);
  });

  it('prepares a MIG partition at exactly the allocated placement and hands out a CDI device, then unprepares it', async () => {
    const claim = await allocatedClaim(ns.kube, ns.name, 'mig-one', driver, h100Node, ['gpu-2-mig-3g-40gb-4']);
    const ref = refOf(claim);
    const res = (await h100.kubelet.prepare([ref])).get(ref.uid);
    expect(res?.error).toBe('');
    expect(res?.devices).toEqual([{ requestNames: ['r0'], poolName: h100Node, deviceName: 'gpu-2-mig-3g-40gb-4', cdiDeviceIds: [`k8s.${driver}/gpu=${ref.uid}-gpu-2-mig-3g-40gb-4`] }]);
    const gis = h100.smi.readState().gpus[2]?.gpuInstances ?? [];
    expect(gis.map((g) => [g.profileId, g.start])).toEqual([[9, 4]]);
    const specPath = join(h100.dirs.cdiRoot, cdiSpecFileName(driver, ref.uid));
    const spec = JSON.parse(readFileSync(specPath, 'utf8')) as { devices: { name: string; containerEdits: { env: string[]; deviceNodes: { path: string }[] } }[] };
    const migUuid = gis[0]?.computeInstances[0]?.uuid ?? 'none';
    expect(spec.devices[0]?.containerEdits.env).toContain(`CASCADE_GPU_2_MIG_3G_40GB_4_UUID=${migUuid}`);
    expect(spec.devices[0]?.containerEdits.deviceNodes.map((n) => n.path)).toEqual(expect.arrayContaining(['/dev/nvidia2']));
    expect(await cdiSchemaProblems(h100.dirs.cdiRoot)).toEqual({ files: 1, problems: [] });

    const un = (await h100.kubelet.unprepare([ref])).get(ref.uid);
    expect(un?.error).toBe('');
    expect(instanceCount(h100.smi)).toBe(0);
    expect(existsSync(specPath)).toBe(false);
  });

  it('prepares a whole GPU with its device node and the control nodes every NVIDIA container needs', async () => {
    const claim = await allocatedClaim(ns.kube, ns.name, 'whole', driver, h100Node, ['gpu-5']);
    const ref = refOf(claim);
    const res = (await h100.kubelet.prepare([ref])).get(ref.uid);
    expect(res?.error).toBe('');
    const spec = JSON.parse(readFileSync(join(h100.dirs.cdiRoot, cdiSpecFileName(driver, ref.uid)), 'utf8')) as {
      containerEdits: { deviceNodes: { path: string }[] };
      devices: { containerEdits: { deviceNodes: { path: string }[] } }[];
    };
    expect(spec.devices[0]?.containerEdits.deviceNodes.map((n) => n.path)).toEqual(['/dev/nvidia5']);
    expect(spec.containerEdits.deviceNodes.map((n) => n.path)).toEqual(['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools']);
    // MIG was on: handing out the whole H100 switched it off, and the slices say so.
    expect(h100.smi.readState().gpus[5]?.migCurrent).toBe('Disabled');
    await eventually('gpu-5 republished with MIG off', async () => {
      const dev = (await slicesOf(h100Node)).flatMap((s) => s.spec.devices ?? []).find((d) => d.name === 'gpu-5');
      return dev?.attributes?.[`${driver}/migMode`]?.string === 'Disabled';
    });
    expect(await cdiSchemaProblems(h100.dirs.cdiRoot)).toEqual({ files: 1, problems: [] });
    expect((await h100.kubelet.unprepare([ref])).get(ref.uid)?.error).toBe('');
  });

  it('answers a repeated prepare with the same CDI IDs and creates nothing more', async () => {
    const claim = await allocatedClaim(ns.kube, ns.name, 'twice', driver, h100Node, ['gpu-1-mig-1g-10gb-3', 'gpu-1-mig-2g-20gb-4']);
    const ref = refOf(claim);
    const first = (await h100.kubelet.prepare([ref])).get(ref.uid);
    expect(first?.error).toBe('');
    const second = (await h100.kubelet.prepare([ref])).get(ref.uid);
    expect(second).toEqual(first);
    expect(h100.smi.readState().gpus[1]?.gpuInstances).toHaveLength(2);
    expect((await h100.kubelet.unprepare([ref])).get(ref.uid)?.error).toBe('');
    // Unprepare of a claim the plugin does not know (any more) succeeds.
    expect((await h100.kubelet.unprepare([ref])).get(ref.uid)?.error).toBe('');
    expect(instanceCount(h100.smi)).toBe(0);
  });

  it('refuses the second of two claims whose placements overlap, naming the placement, and leaks nothing', async () => {
    const a = refOf(await allocatedClaim(ns.kube, ns.name, 'overlap-a', driver, h100Node, ['gpu-3-mig-3g-40gb-0']));
    const b = refOf(await allocatedClaim(ns.kube, ns.name, 'overlap-b', driver, h100Node, ['gpu-3-mig-1g-10gb-6', 'gpu-3-mig-2g-20gb-2']));
    const res = await h100.kubelet.prepare([a, b]);
    expect(res.get(a.uid)?.error).toBe('');
    expect(res.get(b.uid)?.error).toMatch(/gpu-3-mig-2g-20gb-2 needs placement 2:2 on gpu-3, which overlaps gpu-3-mig-3g-40gb-0 \(placement 0:4\) held by claim .*overlap-a/);
    expect(res.get(b.uid)?.devices).toEqual([]);
    // Only claim a's instance exists; b's first device was never created.
    expect(h100.smi.readState().gpus[3]?.gpuInstances.map((g) => g.start)).toEqual([0]);
    expect(existsSync(join(h100.dirs.cdiRoot, cdiSpecFileName(driver, b.uid)))).toBe(false);
    await h100.kubelet.unprepare([a, b]);
    expect(instanceCount(h100.smi)).toBe(0);
  });

  it('fails only the claim that is not allocated or whose UID changed', async () => {
    const unallocated = await ns.kube.resourceClaims.create({
      metadata: { name: 'not-allocated', namespace: ns.name },
      spec: { devices: { requests: [{ name: 'r0', exactly: { deviceClassName: `gpu.${driver}` } }] } },
    });
    const good = refOf(await allocatedClaim(ns.kube, ns.name, 'fine', driver, h100Node, ['gpu-6']));
    const stale = { ...refOf(unallocated), name: 'fine', uid: 'a0000000-0000-4000-8000-000000000000' };
    const res = await h100.kubelet.prepare([refOf(unallocated), good, stale]);
    expect(res.get(unallocated.metadata.uid ?? '')?.error).toMatch(/is not allocated/);
    expect(res.get(stale.uid)?.error).toMatch(/different claim under this name/);
    expect(res.get(good.uid)?.error).toBe('');
    await h100.kubelet.unprepare([good]);
  });

  it('gives a failed prepare its reason, in the kubelet error and as Ready=False in the claim status, and clears it on unprepare', async () => {
    const claim = await allocatedClaim(ns.kube, ns.name, 'no-such-gpu', driver, h100Node, ['gpu-9']);
    const ref = refOf(claim);
    const res = (await h100.kubelet.prepare([ref])).get(ref.uid);
    expect(res?.error).toMatch(/^InvalidAllocation: claim .*no-such-gpu .*gpu-9/);
    const status = await eventually('the failure in status.devices', async () => {
      const c = await ns.kube.resourceClaims.get('no-such-gpu', ns.name);
      return c.status?.devices?.length ? c.status.devices : undefined;
    });
    expect(status).toEqual([
      expect.objectContaining({
        driver,
        pool: h100Node,
        device: 'gpu-9',
        conditions: [expect.objectContaining({ type: 'Ready', status: 'False', reason: 'InvalidAllocation', message: expect.stringMatching(/gpu-9/) as unknown })],
      }),
    ]);
    const described = await kubectl(['describe', 'resourceclaim', 'no-such-gpu', '-n', ns.name]);
    expect(described.stdout).toContain('InvalidAllocation');
    await h100.kubelet.unprepare([ref]);
    await eventually('the failure cleared', async () => !(await ns.kube.resourceClaims.get('no-such-gpu', ns.name)).status?.devices?.length);
  });

  it('shows what each device became in the claim status, visible in kubectl describe, and removes it on unprepare', async () => {
    const claim = await allocatedClaim(ns.kube, ns.name, 'described', driver, h100Node, ['gpu-7-mig-3g-40gb-0']);
    const ref = refOf(claim);
    expect((await h100.kubelet.prepare([ref])).get(ref.uid)?.error).toBe('');
    const migUuid = h100.smi.readState().gpus[7]?.gpuInstances[0]?.computeInstances[0]?.uuid ?? 'none';
    const status = await eventually('status.devices written', async () => {
      const c = await ns.kube.resourceClaims.get('described', ns.name);
      return c.status?.devices?.length ? c.status.devices : undefined;
    });
    expect(status).toEqual([
      expect.objectContaining({
        driver,
        pool: h100Node,
        device: 'gpu-7-mig-3g-40gb-0',
        conditions: [expect.objectContaining({ type: 'Ready', status: 'True', reason: 'Prepared' })],
        data: expect.objectContaining({ uuid: migUuid, profile: '3g.40gb', placement: { start: 0, size: 4 } }),
      }),
    ]);
    const described = await kubectl(['describe', 'resourceclaim', 'described', '-n', ns.name]);
    expect(described.stdout).toContain(migUuid);
    expect(described.stdout).toMatch(/Ready/);

    await h100.kubelet.unprepare([ref]);
    await eventually('status.devices removed', async () => !(await ns.kube.resourceClaims.get('described', ns.name)).status?.devices?.length);
  });

  it('taints a lost GPU and its partitions under a new pool generation, reports it on the health stream, and untaints it on recovery', async () => {
    const watch = h100.kubelet.watchHealth();
    try {
      const before = checkPool(await slicesOf(h100Node)).generation;
      h100.smi.addFaults({ lostGpus: [3] });
      const tainted = await eventually('gpu-3 tainted', async () => {
        const slices = await slicesOf(h100Node);
        const g = Math.max(...slices.map((s) => s.spec.pool.generation));
        const devices = slices.filter((s) => s.spec.pool.generation === g).flatMap((s) => s.spec.devices ?? []);
        const gpu3 = devices.filter((d) => d.name === 'gpu-3' || d.name.startsWith('gpu-3-'));
        return gpu3.length > 0 && gpu3.every((d) => d.taints?.some((t) => t.key === `${driver}/unhealthy` && t.effect === 'NoSchedule')) ? { g, devices } : undefined;
      });
      expect(tainted.g).toBeGreaterThan(before);
      expect(tainted.devices.filter((d) => d.name === 'gpu-4' || d.name.startsWith('gpu-4-')).every((d) => !d.taints)).toBe(true);
      const health = await watch.until((devices) => devices.some((d) => d.device?.device_name === 'gpu-3' && d.health === 'UNHEALTHY'));
      expect(health.find((d) => d.device?.device_name === 'gpu-4')?.health).toBe('HEALTHY');

      h100.smi.addFaults({ lostGpus: [] });
      const healed = await eventually('gpu-3 untainted', async () => {
        const slices = await slicesOf(h100Node);
        const g = Math.max(...slices.map((s) => s.spec.pool.generation));
        const devices = slices.filter((s) => s.spec.pool.generation === g).flatMap((s) => s.spec.devices ?? []);
        return devices.some((d) => d.name === 'gpu-3') && devices.every((d) => !d.taints) ? g : undefined;
      });
      expect(healed).toBeGreaterThan(tainted.g);
      await watch.until((devices) => devices.every((d) => d.health === 'HEALTHY'));
    } finally {
      watch.close();
    }
  });

  it('taints a GPU with uncorrectable ECC errors', async () => {
    h100.smi.addFaults({ eccErrors: { '6': 2 } });
    await eventually('gpu-6 tainted for ECC', async () => {
      const devices = (await slicesOf(h100Node)).flatMap((s) => s.spec.devices ?? []);
      return devices.find((d) => d.name === 'gpu-6')?.taints?.[0]?.value?.includes('ECC') ?? false;
    });
    h100.smi.addFaults({ eccErrors: {} });
    await eventually('gpu-6 untainted', async () => !(await slicesOf(h100Node)).flatMap((s) => s.spec.devices ?? []).some((d) => d.taints));
  });

  it('keeps the published slices when nvidia-smi prints garbage for a while', async () => {
    const before = checkPool(await slicesOf(h100Node)).generation;
    h100.smi.addFaults({ garbageNext: 50 });
    try {
      await h100.plugin.inventory.nextCycle();
      await h100.plugin.inventory.nextCycle();
      const after = await slicesOf(h100Node);
      expect(checkPool(after).generation).toBe(before);
      expect(after.flatMap((s) => s.spec.devices ?? [])).toHaveLength(8 * 27);
    } finally {
      h100.smi.addFaults({ garbageNext: 0 });
    }
  });

  it('taints every GPU while the NVIDIA driver is unloaded, refuses to prepare them, and untaints them when it is back', async () => {
    const claim = await allocatedClaim(ns.kube, ns.name, 'no-driver', driver, h100Node, ['gpu-2']);
    const ref = refOf(claim);
    h100.smi.addFaults({ driverNotLoaded: true });
    try {
      const devices = await eventually('every device tainted', async () => {
        const all = (await slicesOf(h100Node)).flatMap((s) => s.spec.devices ?? []);
        return all.length === 8 * 27 && all.every((d) => d.taints?.some((t) => t.key === `${driver}/unhealthy` && t.value === 'nvidia-driver-not-loaded')) ? all : undefined;
      });
      expect(devices).toHaveLength(8 * 27);
      const res = (await h100.kubelet.prepare([ref])).get(ref.uid);
      expect(res?.error).toContain('device gpu-2 is unhealthy (nvidia-driver-not-loaded)');
    } finally {
      h100.smi.addFaults({ driverNotLoaded: false });
    }
    await eventually('every device untainted', async () => !(await slicesOf(h100Node)).flatMap((s) => s.spec.devices ?? []).some((d) => d.taints));
    await h100.plugin.inventory.nextCycle();
    const again = (await h100.kubelet.prepare([ref])).get(ref.uid);
    expect(again?.error).toBe('');
    expect((await h100.kubelet.unprepare([ref])).get(ref.uid)?.error).toBe('');
  });
});
