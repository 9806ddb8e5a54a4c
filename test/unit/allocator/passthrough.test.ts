// Passthrough placement: VM claims take GPUs already bound to vfio-pci first,
// a GPU changes driver only when no bound one fits, and the Allocated event
// says which happened. Slices are built by the node plugin's own inventory.
import { Allocator, type AllocationOutcome } from '../../../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../../../pkg/api/deviceclasses.js';
import type { ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { buildDesiredSlices, toResourceSlices, type PassthroughGpu } from '../../../pkg/inventory/index.js';
import type { Discovery } from '../../../pkg/nvidia/backend.js';
import { discoverInProcess, fleetNodeFacts, fleetNode } from '../../../hack/fake-nvidia-smi/fleet.js';
import { claim, req } from './helpers.js';

const D = 'gpu.cascade.dev';
const TWO_H100 = { gpus: [{ model: 'H100-80GB' }, { model: 'H100-80GB' }] };

function entry(address: string, mode: 'pool' | 'switchable', driver: string): PassthroughGpu {
  return { address, mode, driver, iommuGroup: 20, numaNode: 0, pcieRoot: undefined, pcieSwitch: undefined, productName: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559 };
}

async function fleet(): Promise<ResourceSlice[]> {
  const d = await discoverInProcess(TWO_H100);
  const addresses = d.gpus.map((g) => g.pciBusId);
  // Node a: both GPUs switchable, on the nvidia driver. Node b: one pool GPU, bound to vfio-pci (nvidia-smi sees none).
  const a = buildDesiredSlices({ nodeName: 'a', driverName: D, discovery: d, passthrough: addresses.map((x) => entry(x, 'switchable', 'nvidia')) });
  const none: Discovery = { ...d, gpus: [], migProfiles: [], gpuInstances: [], computeInstances: [] };
  const b = buildDesiredSlices({ nodeName: 'b', driverName: D, discovery: none, passthrough: [entry(addresses[0] ?? '', 'pool', 'vfio-pci')] });
  return [...toResourceSlices(a, 1), ...toResourceSlices(b, 1)];
}

function place(a: Allocator, c: ResourceClaim): AllocationOutcome {
  const o = a.allocate({ claims: [c] });
  if (o.kind === 'allocated') a.commit(o);
  return o;
}

describe('passthrough placement', () => {
  it('gives a VM a GPU already bound to vfio-pci, then rebinds one only when none is left, saying so', async () => {
    const nodes = [fleetNode('a', 'H100-80GB', 2), fleetNode('b', 'H100-80GB', 1)].map((n) => fleetNodeFacts(n));
    const a = new Allocator({ slices: await fleet(), classes: cascadeDeviceClasses(), nodes }, { policy: 'cascade' });
    const vm = (name: string): ResourceClaim => claim(name, [req('gpu', `vfio.${D}`)]);

    const first = place(a, vm('vm-1'));
    if (first.kind !== 'allocated') throw new Error(first.explanation.full);
    expect(first.devices.map((d) => `${d.pool}/${d.device}`)).toEqual(['b/vfio-0000-18-00-0']);
    expect(first.explanation.short).toMatch(/^Passed through 0000:18:00.0 on node b, already bound to vfio-pci, so no GPU changes driver\./);

    const second = place(a, vm('vm-2'));
    if (second.kind !== 'allocated') throw new Error(second.explanation.full);
    expect(second.devices.map((d) => `${d.pool}/${d.device}`)).toEqual(['a/vfio-0000-18-00-0']);
    expect(second.explanation.short).toMatch(/^Rebinding gpu-0 \(0000:18:00.0\) on node a to vfio-pci: no GPU bound for passthrough was free on a node that fits\./);

    // The GPU given to the VM is gone for containers too (shared counters): a container gets the other one.
    const container = place(a, claim('pod', [req('gpu', `gpu.${D}`)]));
    expect(container.kind === 'allocated' ? container.devices.map((d) => `${d.pool}/${d.device}`) : container.explanation.full).toEqual(['a/gpu-1']);
    const third = place(a, vm('vm-3'));
    expect(third.kind).toBe('unallocated');
  });
});
