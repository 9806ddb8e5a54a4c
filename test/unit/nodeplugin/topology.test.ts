// Where each GPU sits: the node plugin reads the PCIe tree and NUMA node from
// sysfs (here the sysfs stand-in, with the nvidia-smi simulator over the same
// GPUs) and publishes them as the standard attributes and Cascade's own.
import type { Device } from '../../../pkg/api/resource.js';
import { buildDesiredSlices } from '../../../pkg/inventory/index.js';
import { pciePlacementOf } from '../../../pkg/nvidia/pcie.js';
import { NvidiaSmiBackend } from '../../../pkg/nvidia/smi-backend.js';
import { type FakeConfig, fakeNvidiaSmiBuilt } from '../../../hack/fake-nvidia-smi/testing.js';
import { type FakeHost, createFakeHost } from '../../../hack/fake-sysfs/testing.js';
import { DRIVER, NODE } from './fakes.js';

const EIGHT: FakeConfig = {
  gpus: Array.from({ length: 8 }, (_v, i) => ({ model: 'H100-80GB', numaNode: i < 4 ? 0 : 1 })),
  nvlinkGroups: [[0, 1, 2, 3, 4, 5, 6, 7]],
};

describe('the PCIe placement of a function, from its sysfs path', () => {
  it('names the root complex and, behind a switch, the switch by its upstream port', () => {
    expect(pciePlacementOf('/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:01.0/0000:18:00.0')).toEqual({ root: 'pci0000:15', pcieSwitch: '0000:16:00.0' });
  });

  it('has no switch for a function on a root port', () => {
    expect(pciePlacementOf('/sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0')).toEqual({ root: 'pci0000:00', pcieSwitch: undefined });
  });

  it('names the switch nearest the function when switches are nested', () => {
    const nested = '/sys/devices/pci0000:40/0000:40:01.0/0000:41:00.0/0000:42:02.0/0000:43:00.0/0000:44:08.0/0000:45:00.0';
    expect(pciePlacementOf(nested)).toEqual({ root: 'pci0000:40', pcieSwitch: '0000:43:00.0' });
  });

  it('knows nothing of a path outside the PCI tree', () => {
    expect(pciePlacementOf('/sys/devices/platform/foo')).toEqual({ root: undefined, pcieSwitch: undefined });
  });
});

describe('topology attributes the node plugin publishes', () => {
  let host: FakeHost | undefined;
  beforeAll(() => {
    if (!fakeNvidiaSmiBuilt()) throw new Error('the simulator is not built: run "npm run build" first');
  });
  afterEach(() => {
    host?.cleanup();
    host = undefined;
  });

  async function devices(switches?: readonly (readonly number[])[]): Promise<Map<string, Device>> {
    host = createFakeHost(EIGHT, switches ? { switches } : {});
    const backend = new NvidiaSmiBackend({ path: host.smi.path, env: host.smi.env, timeoutMs: 20_000, sysfsRoot: host.sysfs.root });
    const slices = buildDesiredSlices({ nodeName: NODE, driverName: DRIVER, discovery: await backend.discover(), ownedInstances: [] });
    return new Map(slices.flatMap((s) => s.spec.devices ?? []).map((d) => [d.name, d]));
  }

  it('gives every GPU its NUMA node under both names, its PCIe root and its PCIe switch', async () => {
    const byName = await devices([
      [0, 1],
      [4, 5],
    ]);
    const attr = (dev: string, name: string): unknown => {
      const a = byName.get(dev)?.attributes?.[name];
      return a?.int ?? a?.string;
    };
    expect(attr('gpu-0', 'resource.kubernetes.io/numaNode')).toBe(0);
    expect(attr('gpu-0', `${DRIVER}/numaNode`)).toBe(0);
    expect(attr('gpu-5', 'resource.kubernetes.io/numaNode')).toBe(1);
    expect(attr('gpu-5', `${DRIVER}/numaNode`)).toBe(1);
    // GPUs 0 and 1 share a switch (and so a root); GPU 2 has its own.
    expect(attr('gpu-0', 'resource.kubernetes.io/pcieRoot')).toMatch(/^pci0000:[0-9a-f]{2}$/);
    expect(attr('gpu-1', 'resource.kubernetes.io/pcieRoot')).toBe(attr('gpu-0', 'resource.kubernetes.io/pcieRoot'));
    expect(attr('gpu-1', `${DRIVER}/pcieSwitch`)).toBe(attr('gpu-0', `${DRIVER}/pcieSwitch`));
    expect(attr('gpu-2', `${DRIVER}/pcieSwitch`)).not.toBe(attr('gpu-0', `${DRIVER}/pcieSwitch`));
    expect(attr('gpu-2', 'resource.kubernetes.io/pcieRoot')).not.toBe(attr('gpu-0', 'resource.kubernetes.io/pcieRoot'));
    expect(attr('gpu-4', `${DRIVER}/pcieSwitch`)).toBe(attr('gpu-5', `${DRIVER}/pcieSwitch`));
    // A shared GPU and the GPU it is carry the same topology (they are one piece of hardware).
    const shared = [...byName.values()].find((d) => d.attributes?.[`${DRIVER}/type`]?.string === 'shared' && d.attributes?.[`${DRIVER}/index`]?.int === 1);
    expect(shared).toBeDefined();
    expect(shared?.attributes?.[`${DRIVER}/pcieSwitch`]).toEqual(byName.get('gpu-1')?.attributes?.[`${DRIVER}/pcieSwitch`]);
    expect(shared?.attributes?.['resource.kubernetes.io/numaNode']).toEqual({ int: 0 });
  });

  it('publishes no topology attributes it could not read (no sysfs)', async () => {
    host = createFakeHost(EIGHT);
    const backend = new NvidiaSmiBackend({ path: host.smi.path, env: host.smi.env, timeoutMs: 20_000, sysfsRoot: '/nonexistent-sysfs' });
    const slices = buildDesiredSlices({ nodeName: NODE, driverName: DRIVER, discovery: await backend.discover(), ownedInstances: [] });
    const gpu0 = slices.flatMap((s) => s.spec.devices ?? []).find((d) => d.name === 'gpu-0');
    expect(gpu0?.attributes?.['resource.kubernetes.io/pcieRoot']).toBeUndefined();
    expect(gpu0?.attributes?.[`${DRIVER}/pcieSwitch`]).toBeUndefined();
    // The NUMA node comes from nvidia-smi topo -m, sysfs or not.
    expect(gpu0?.attributes?.['resource.kubernetes.io/numaNode']).toEqual({ int: 0 });
  });
});
