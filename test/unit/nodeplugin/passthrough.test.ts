// Passthrough on a simulated host: the real nvidia-smi backend over the
// simulator and the real sysfs code over the sysfs stand-in (hack/fake-sysfs),
// so a GPU bound to vfio-pci leaves nvidia-smi and comes back when returned.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Device } from '../../../pkg/api/resource.js';
import { buildDesiredSlices } from '../../../pkg/inventory/index.js';
import type { DesiredSlice } from '../../../pkg/inventory/types.js';
import { CdiSpecWriter } from '../../../pkg/kubeletplugin/cdi-writer.js';
import { logger } from '../../../pkg/log/logger.js';
import { CheckpointStore } from '../../../pkg/nodeplugin/checkpoint.js';
import { Passthrough, type PassthroughConfig } from '../../../pkg/nodeplugin/passthrough.js';
import { inventorySnapshot } from '../../../pkg/nodeplugin/plan.js';
import { NodePreparer } from '../../../pkg/nodeplugin/preparer.js';
import { PublishedInventory } from '../../../pkg/nodeplugin/published-inventory.js';
import { PciSysfs } from '../../../pkg/nodeplugin/vfio.js';
import { NvidiaSmiBackend } from '../../../pkg/nvidia/smi-backend.js';
import { type FakeConfig, fakeNvidiaSmiBuilt } from '../../../hack/fake-nvidia-smi/testing.js';
import { type FakeHost, type FakeHostOptions, createFakeHost } from '../../../hack/fake-sysfs/testing.js';
import { DRIVER, MemoryClaims, NODE, claim, refOf } from './fakes.js';

const TWO_H100: FakeConfig = {
  gpus: [
    { model: 'H100-80GB', numaNode: 0 },
    { model: 'H100-80GB', numaNode: 1 },
  ],
};
const SWITCHABLE: PassthroughConfig = { pool: [], switchable: 'all' };

let dir: string;
let host: FakeHost | undefined;
beforeAll(() => {
  if (!fakeNvidiaSmiBuilt()) throw new Error('the simulator is not built: run "npm run build" first');
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cascade-vfio-'));
});
afterEach(async () => {
  host?.cleanup();
  host = undefined;
  await rm(dir, { recursive: true, force: true });
});

interface Rig {
  readonly host: FakeHost;
  readonly backend: NvidiaSmiBackend;
  readonly passthrough: Passthrough;
  readonly inventory: PublishedInventory;
  readonly claims: MemoryClaims;
  preparer: NodePreparer;
  /** Rediscovers and republishes, as the inventory loop does. */
  refresh(): Promise<DesiredSlice[]>;
  device(name: string): Device | undefined;
  /** A preparer started afresh over the same checkpoint, as after a restart. */
  restart(): Promise<NodePreparer>;
}

async function rig(fleet: FakeConfig, options: FakeHostOptions, config: PassthroughConfig): Promise<Rig> {
  const h = createFakeHost(fleet, options);
  host = h;
  const backend = new NvidiaSmiBackend({ path: h.smi.path, env: h.smi.env, timeoutMs: 20_000, sysfsRoot: h.sysfs.root });
  const passthrough = new Passthrough(new PciSysfs({ root: h.sysfs.root, devRoot: h.sysfs.devRoot }), config);
  const inventory = new PublishedInventory();
  const claims = new MemoryClaims();
  let slices: DesiredSlice[] = [];
  let preparer: NodePreparer;
  const refresh = async (): Promise<DesiredSlice[]> => {
    const d = await backend.discover();
    const gpus = await passthrough.scan(d, preparer?.stranded ?? {});
    slices = buildDesiredSlices({ nodeName: NODE, driverName: DRIVER, discovery: d, passthrough: gpus, ownedInstances: [] });
    inventory.set(inventorySnapshot(d, slices, gpus));
    return slices;
  };
  const start = async (): Promise<NodePreparer> => {
    const p = new NodePreparer({
      driver: DRIVER,
      nodeName: NODE,
      backend,
      claims,
      status: undefined,
      cdi: new CdiSpecWriter(DRIVER, join(dir, 'cdi')),
      checkpoint: new CheckpointStore({ path: join(dir, 'checkpoint.json'), readBootId: async () => 'boot-1' }),
      inventory,
      migMinorsPath: h.smi.migMinorsPath,
      dynamicMig: true,
      passthrough,
      metadataDir: join(dir, 'metadata'),
      log: logger('test'),
    });
    await p.load();
    expect(await p.recover(await backend.discover())).toBeDefined();
    preparer = p;
    await refresh();
    return p;
  };
  const r: Rig = {
    host: h,
    backend,
    passthrough,
    inventory,
    claims,
    preparer: await start(),
    refresh,
    device: (name) => slices.flatMap((s) => s.spec.devices ?? []).find((d) => d.name === name),
    restart: async () => {
      r.preparer = await start();
      return r.preparer;
    },
  };
  return r;
}

async function prepare(p: NodePreparer, c: ReturnType<typeof claim>): Promise<string[] | string> {
  const out = (await p.prepare([refOf(c)])).get(c.metadata.uid ?? '');
  if (!out) return 'no answer';
  return 'error' in out ? (out.error ?? '') : out.devices.map((d) => d.deviceName);
}

async function cdiSpecs(): Promise<string> {
  const files = await readdir(join(dir, 'cdi')).catch(() => [] as string[]);
  return (await Promise.all(files.map((f) => readFile(join(dir, 'cdi', f), 'utf8')))).join('\n');
}

describe('the passthrough device model', () => {
  it('publishes a switchable GPU also as a passthrough device that consumes the same counters as the whole GPU', async () => {
    const r = await rig(TWO_H100, {}, SWITCHABLE);
    const vfio = r.device('vfio-0000-18-00-0');
    const whole = r.device('gpu-0');
    expect(vfio?.attributes?.[`${DRIVER}/type`]).toEqual({ string: 'vfio' });
    expect(vfio?.attributes?.[`${DRIVER}/vfioBound`]).toEqual({ bool: false });
    expect(vfio?.attributes?.[`${DRIVER}/iommuGroup`]).toEqual({ int: 20 });
    expect(vfio?.attributes?.['resource.kubernetes.io/pciBusID']).toEqual({ string: '0000:18:00.0' });
    expect(vfio?.attributes?.[`${DRIVER}/productName`]).toEqual({ string: 'NVIDIA H100 80GB HBM3' });
    expect(vfio?.consumesCounters).toEqual(whole?.consumesCounters);
    expect(vfio?.consumesCounters?.[0]?.counterSet).toBe('gpu-0-counters');
  });

  it('publishes a pool GPU only for passthrough, bound to vfio-pci after start-up, named from the catalog', async () => {
    const r = await rig(TWO_H100, {}, { pool: ['0000:29:00.0'], switchable: [] });
    expect(r.host.sysfs.driverOf('0000:29:00.0')).toBe('vfio-pci');
    // nvidia-smi sees one GPU; the pool GPU is no container device at all.
    expect((await r.backend.discover()).gpus.map((g) => g.pciBusId)).toEqual(['0000:18:00.0']);
    expect(r.device('gpu-1')).toBeUndefined();
    const vfio = r.device('vfio-0000-29-00-0');
    expect(vfio?.attributes?.[`${DRIVER}/vfioBound`]).toEqual({ bool: true });
    expect(vfio?.attributes?.[`${DRIVER}/passthroughMode`]).toEqual({ string: 'pool' });
    expect(vfio?.attributes?.[`${DRIVER}/productName`]).toEqual({ string: 'NVIDIA H100 80GB HBM3' });
    expect(vfio?.consumesCounters).toBeUndefined();
    expect(r.device('vfio-0000-18-00-0')).toBeUndefined();
  });

  it('taints passthrough devices that cannot be passed through, saying why', async () => {
    const noModule = await rig(TWO_H100, { vfioPci: false }, SWITCHABLE);
    expect(noModule.device('vfio-0000-18-00-0')?.taints).toEqual([{ key: `${DRIVER}/vfio-unavailable`, value: 'vfio-pci-not-loaded', effect: 'NoSchedule' }]);
    host?.cleanup();
    const shared = await rig(TWO_H100, { sharedGroup: [1], bridge: [0] }, SWITCHABLE);
    // A bridge in the group is fine; an unrelated NIC is not.
    expect(shared.device('vfio-0000-18-00-0')?.taints).toBeUndefined();
    expect(shared.device('vfio-0000-29-00-0')?.taints).toEqual([{ key: `${DRIVER}/vfio-unavailable`, value: 'iommu-group-shared', effect: 'NoSchedule' }]);
  });
});

describe('prepare and unprepare of a passthrough GPU', () => {
  it('binds the GPU and its audio function to vfio-pci, hands over the VFIO nodes, and returns both afterwards', async () => {
    const r = await rig(TWO_H100, { audio: [1] }, SWITCHABLE);
    const vm = r.claims.put(claim(1, ['vfio-0000-29-00-0']));
    expect(await prepare(r.preparer, vm)).toEqual(['vfio-0000-29-00-0']);
    expect(r.host.sysfs.driverOf('0000:29:00.0')).toBe('vfio-pci');
    expect(r.host.sysfs.driverOf('0000:29:00.1')).toBe('vfio-pci');
    // Taken from the nvidia driver, the GPU is gone from nvidia-smi.
    expect((await r.backend.discover()).gpus.map((g) => g.pciBusId)).toEqual(['0000:18:00.0']);
    const spec = JSON.parse(await cdiSpecs()) as { devices: { containerEdits: { deviceNodes: { path: string }[]; env: string[] } }[]; containerEdits?: { deviceNodes?: unknown[] } };
    expect(spec.devices[0]?.containerEdits.deviceNodes.map((n) => n.path)).toEqual(['/dev/vfio/vfio', '/dev/vfio/21']);
    expect(spec.devices[0]?.containerEdits.env).toContain('CASCADE_VFIO_0000_29_00_0_PCI_ADDRESS=0000:29:00.0');
    // Nothing of the NVIDIA driver goes to a VM's pod.
    expect(JSON.stringify(spec)).not.toMatch(/nvidiactl/);
    // The KEP-5304 device metadata, where KubeVirt's virt-launcher reads the PCI address.
    const mounts = (spec.devices[0]?.containerEdits as { mounts?: { hostPath: string; containerPath: string; options: string[] }[] }).mounts ?? [];
    expect(mounts.map((m) => [m.containerPath, m.options])).toEqual([['/var/run/kubernetes.io/dra-device-attributes/resourceclaims/c1/r0/gpu.cascade.dev-metadata.json', ['ro', 'bind']]]);
    const metadata = JSON.parse(await readFile(mounts[0]?.hostPath ?? '', 'utf8')) as {
      apiVersion: string;
      requests: { name: string; devices: { driver: string; name: string; attributes: Record<string, { string?: string }> }[] }[];
    };
    expect(metadata.apiVersion).toBe('metadata.resource.k8s.io/v1alpha1');
    expect(metadata.requests[0]?.name).toBe('r0');
    expect(metadata.requests[0]?.devices[0]?.attributes['resource.kubernetes.io/pciBusID']).toEqual({ string: '0000:29:00.0' });
    // While bound, the GPU is published for passthrough only, marked bound.
    await r.refresh();
    expect(r.device('gpu-1')).toBeUndefined();
    expect(r.device('vfio-0000-29-00-0')?.attributes?.[`${DRIVER}/vfioBound`]).toEqual({ bool: true });

    expect((await r.preparer.unprepare([refOf(vm)])).get(vm.metadata.uid ?? '')).toEqual({});
    expect(r.host.sysfs.driverOf('0000:29:00.0')).toBe('nvidia');
    expect(r.host.sysfs.driverOf('0000:29:00.1')).toBe('snd_hda_intel');
    expect((await r.backend.discover()).gpus.map((g) => g.pciBusId)).toEqual(['0000:18:00.0', '0000:29:00.0']);
    expect(r.preparer.stranded).toEqual({});
    expect(r.preparer.checkpointState.claims).toEqual({});
    await expect(readdir(join(dir, 'metadata'))).resolves.toEqual([]);
    await r.refresh();
    expect(r.device('gpu-1')).toBeDefined();
    // The order the kernel documents: override, unbind, probe; and back.
    expect(r.host.sysfs.writes.filter((w) => w.includes('0000:29:00.0'))).toEqual([
      'drivers/nvidia/unbind 0000:29:00.0',
      'drivers_probe 0000:29:00.0',
      'drivers/vfio-pci/unbind 0000:29:00.0',
      'drivers/nvidia/bind 0000:29:00.0',
    ]);
  });

  it('refuses a GPU that processes use, naming them, and leaves it with its driver', async () => {
    const r = await rig(TWO_H100, {}, SWITCHABLE);
    const uuid = (await r.backend.discover()).gpus[0]?.uuid ?? '';
    r.host.smi.setFaults({ processes: { [uuid]: [{ pid: 4242, name: 'python3', usedMiB: 1024 }] } });
    const vm = r.claims.put(claim(1, ['vfio-0000-18-00-0']));
    expect(await prepare(r.preparer, vm)).toMatch(/in use by 1 process\(es\) on the nvidia driver \(pid 4242 python3\)/);
    expect(r.host.sysfs.driverOf('0000:18:00.0')).toBe('nvidia');
    expect(r.preparer.checkpointState.claims).toEqual({});
  });

  it('refuses a GPU whose IOMMU group holds an unrelated device, and one on a node without vfio-pci', async () => {
    const r = await rig(TWO_H100, { sharedGroup: [0] }, SWITCHABLE);
    const vm = r.claims.put(claim(1, ['vfio-0000-18-00-0']));
    expect(await prepare(r.preparer, vm)).toMatch(/IOMMU group 20 of 0000:18:00.0 also holds 0000:18:1e.0 \(class 0x020000, driver mlx5_core\), which is not part of this GPU/);
    expect(r.host.sysfs.driverOf('0000:18:00.0')).toBe('nvidia');

    const other = r.claims.put(claim(2, ['vfio-0000-29-00-0']));
    r.host.sysfs.setVfioModule(false);
    expect(await prepare(r.preparer, other)).toMatch(/the vfio-pci module is not loaded on node node-a/);
    expect(r.host.sysfs.driverOf('0000:29:00.0')).toBe('nvidia');
  });

  it('never gives a container claim a GPU bound for a VM', async () => {
    const r = await rig(TWO_H100, {}, SWITCHABLE);
    const vm = r.claims.put(claim(1, ['vfio-0000-18-00-0']));
    expect(await prepare(r.preparer, vm)).toEqual(['vfio-0000-18-00-0']);
    await r.refresh();
    const container = r.claims.put(claim(2, ['gpu-0']));
    expect(await prepare(r.preparer, container)).toMatch(/device gpu-0 is not in the inventory this node publishes/);
  });

  it('a GPU that does not come back to nvidia-smi is recorded and published unhealthy, and healthy again once it is back', async () => {
    const r = await rig(TWO_H100, {}, SWITCHABLE);
    const vm = r.claims.put(claim(1, ['vfio-0000-18-00-0']));
    expect(await prepare(r.preparer, vm)).toEqual(['vfio-0000-18-00-0']);
    // The GPU rebinds, but the driver cannot reach it (it reads as lost).
    r.host.smi.setFaults({ lostGpus: [0] });
    expect((await r.preparer.unprepare([refOf(vm)])).get(vm.metadata.uid ?? '')).toEqual({});
    expect(Object.keys(r.preparer.stranded)).toEqual(['0000:18:00.0']);
    await r.refresh();
    expect(r.device('vfio-0000-18-00-0')?.taints?.map((t) => t.value)).toContain('did-not-return-to-nvidia');
    // A restart keeps the record: nothing is forgotten.
    await r.restart();
    expect(Object.keys(r.preparer.stranded)).toEqual(['0000:18:00.0']);
    r.host.smi.setFaults({});
    await r.preparer.recover(await r.backend.discover());
    expect(r.preparer.stranded).toEqual({});
  });
});

describe('start-up recovery', () => {
  it('returns a switchable GPU no claim holds from vfio-pci to nvidia', async () => {
    const r = await rig(TWO_H100, { boundToVfio: [1] }, SWITCHABLE);
    expect(r.host.sysfs.driverOf('0000:29:00.0')).toBe('nvidia');
    expect((await r.backend.discover()).gpus).toHaveLength(2);
  });

  it('rolls back a claim whose prepare stopped half way and keeps a prepared one bound', async () => {
    const r = await rig(TWO_H100, {}, SWITCHABLE);
    const kept = r.claims.put(claim(1, ['vfio-0000-18-00-0']));
    expect(await prepare(r.preparer, kept)).toEqual(['vfio-0000-18-00-0']);
    // Half done: the function is recorded and moved, the claim never completed (a crash).
    const half = r.claims.put(claim(2, ['vfio-0000-29-00-0']));
    const store = new CheckpointStore({ path: join(dir, 'checkpoint.json'), readBootId: async () => 'boot-1' });
    const { recordVfioTaken, startPrepare } = await import('../../../pkg/nodeplugin/checkpoint.js');
    let state = startPrepare(r.preparer.checkpointState, refOf(half), [
      { request: 'r0', poolName: NODE, deviceName: 'vfio-0000-29-00-0', type: 'vfio', gpuIndex: 1, gpuUuid: 'x', vfio: { address: '0000:29:00.0', mode: 'switchable' } },
    ]);
    state = recordVfioTaken(state, half.metadata.uid ?? '', { address: '0000:29:00.0', returnTo: 'nvidia' });
    await store.save(state);
    await r.passthrough.sysfs.moveTo('0000:29:00.0', 'vfio-pci');

    await r.restart();
    expect(r.host.sysfs.driverOf('0000:29:00.0')).toBe('nvidia');
    expect(r.host.sysfs.driverOf('0000:18:00.0')).toBe('vfio-pci');
    expect(Object.keys(r.preparer.checkpointState.claims)).toEqual([kept.metadata.uid]);
    // The kubelet's repeated prepare of the kept claim answers the same, without touching sysfs.
    expect(await prepare(r.preparer, kept)).toEqual(['vfio-0000-18-00-0']);
  });
});
