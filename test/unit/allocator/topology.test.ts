// Topology-aware placement on an 8-GPU NVSwitch board (GPUs 0-3 on NUMA node 0,
// 4-7 on NUMA node 1): multi-GPU jobs stay on one NUMA node, slices follow the
// pod's other devices, and GPUs are allocated together with CPUs (dra.cpu) and
// NICs (dra.net) in one claim. GPU slices come from the node plugin's own
// inventory code; the other drivers' slices are shaped as they publish them.
import { Allocator, type AllocationOutcome } from '../../../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../../../pkg/api/deviceclasses.js';
import type { DeviceConstraint, DeviceRequest, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { buildDesiredSlices, toResourceSlices } from '../../../pkg/inventory/index.js';
import { discoverInProcess, fleetNode, fleetNodeFacts } from '../../../hack/fake-nvidia-smi/fleet.js';
import { cpuSlice, foreignDeviceClasses, nicDeviceName, nicSlice, type Nic } from '../../support/foreign-drivers.js';
import { claim, req } from './helpers.js';

const D = 'gpu.cascade.dev';
const GPU = `gpu.${D}`;
const MIG = `mig.${D}`;
const NUMA = 'resource.kubernetes.io/numaNode';
const ROOT = 'resource.kubernetes.io/pcieRoot';

/** Root complex of GPU i on the board below: one per GPU, as on HGX H100. */
const rootOf = (i: number): string => `pci0000:${(0x10 + 0x10 * i).toString(16)}`;

async function board(node: string, mig: 'whole' | 'dynamic' = 'whole'): Promise<ResourceSlice[]> {
  const n = fleetNode(node, 'H100-80GB', 8, { mig });
  const d = await discoverInProcess(n.config);
  // discoverInProcess has no sysfs: give each GPU the root complex sysfs would show.
  const discovery = { ...d, gpus: d.gpus.map((g) => ({ ...g, pcieRoot: rootOf(g.index), pcieSwitch: `0000:${(0x11 + 0x10 * g.index).toString(16)}:00.0` })) };
  return toResourceSlices(buildDesiredSlices({ nodeName: node, driverName: D, discovery, ...(n.inventory ? { options: n.inventory } : {}) }), 1);
}

function nics(): Nic[] {
  return Array.from({ length: 8 }, (_v, i) => ({ address: `0000:${(0x12 + 0x10 * i).toString(16)}:00.0`, ifName: `ibp${i}s0`, pcieRoot: rootOf(i), numaNode: i < 4 ? 0 : 1 }));
}

async function allocator(names: readonly string[], extra: (node: string) => ResourceSlice[] = () => [], mig: 'whole' | 'dynamic' = 'whole'): Promise<Allocator> {
  const slices: ResourceSlice[] = [];
  for (const n of names) slices.push(...(await board(n, mig)), ...extra(n));
  const nodes = names.map((n) => fleetNodeFacts(fleetNode(n, 'H100-80GB', 8)));
  return new Allocator({ slices, classes: [...cascadeDeviceClasses(), ...foreignDeviceClasses()], nodes }, { policy: 'cascade' });
}

function place(a: Allocator, c: ResourceClaim): Extract<AllocationOutcome, { kind: 'allocated' }> {
  const o = a.allocate({ claims: [c] });
  if (o.kind !== 'allocated') throw new Error(o.explanation.full);
  a.commit(o);
  return o;
}

function numaOf(a: Allocator, o: Extract<AllocationOutcome, { kind: 'allocated' }>): number[] {
  return o.devices.map((r) => a.inventory.deviceNuma[a.inventory.deviceIndex.get(`${r.driver}/${r.pool}/${r.device}`) ?? -1] ?? -1);
}

const nvlink: DeviceConstraint = { matchAttribute: `${D}/nvlinkDomain` };

describe('NUMA-aware placement of GPUs', () => {
  it('keeps 2- and 4-GPU jobs on one NUMA node of an NVSwitch board, without being asked', async () => {
    const a = await allocator(['n1']);
    const one = place(a, claim('one', [req('gpu', GPU)]));
    expect(numaOf(a, one)).toEqual([0]);
    // Three GPUs are left on NUMA node 0 and four on 1: the pair fills node 0's, keeping node 1's four together.
    const pair = place(a, claim('pair', [req('gpus', GPU, { count: 2 })], { constraints: [nvlink] }));
    expect(new Set(numaOf(a, pair))).toEqual(new Set([0]));
    const four = place(a, claim('four', [req('gpus', GPU, { count: 4 })], { constraints: [nvlink] }));
    expect(numaOf(a, four)).toEqual([1, 1, 1, 1]);
    expect(four.explanation.full).not.toMatch(/span/);
  });

  it('splits a job over both NUMA nodes only when neither has room, and says so in the score', async () => {
    const a = await allocator(['n1']);
    expect(numaOf(a, place(a, claim('a', [req('gpus', GPU, { count: 3 })], { constraints: [nvlink] })))).toEqual([0, 0, 0]);
    expect(numaOf(a, place(a, claim('b', [req('gpus', GPU, { count: 3 })], { constraints: [nvlink] })))).toEqual([1, 1, 1]);
    const o = a.allocate({ claims: [claim('split', [req('gpus', GPU, { count: 2 })], { constraints: [nvlink] })] });
    if (o.kind !== 'allocated') throw new Error(o.explanation.full);
    expect(new Set(numaOf(a, o))).toEqual(new Set([0, 1]));
    expect(o.explanation.full).toMatch(/spans 2 domains/);
  });

  it('puts a MIG slice on the NUMA node of the CPUs the same claim takes', async () => {
    const a = await allocator(
      ['n1'],
      (n) => [
        cpuSlice(n, [
          { numaNode: 0, socket: 0, cpus: 8 },
          { numaNode: 1, socket: 1, cpus: 56 },
        ]),
      ],
      'dynamic',
    );
    // 16 CPUs fit only on NUMA node 1; the slice follows them there without a constraint saying so.
    const requests: DeviceRequest[] = [req('cpus', 'dra.cpu', { capacity: { 'dra.cpu/cpu': '16' } }), req('slice', MIG, { selectors: [`device.attributes["${D}"].profile == "1g.10gb"`] })];
    const o = place(a, claim('job', requests));
    expect(numaOf(a, o)).toEqual([1, 1]);
    expect(o.devices.find((r) => r.driver === 'dra.cpu')?.device).toBe('cpudevnuma001');
  });
});

describe('GPUs together with other drivers in one claim', () => {
  it('allocates 2 GPUs and 32 CPUs on one NUMA node, the CPUs counted as consumed capacity', async () => {
    const a = await allocator(['n1'], (n) => [
      cpuSlice(n, [
        { numaNode: 0, socket: 0, cpus: 48 },
        { numaNode: 1, socket: 1, cpus: 48 },
      ]),
    ]);
    const job = (name: string): ResourceClaim =>
      claim(name, [req('gpus', GPU, { count: 2 }), req('cpus', 'dra.cpu', { capacity: { 'dra.cpu/cpu': '32' } })], { constraints: [{ requests: ['gpus', 'cpus'], matchAttribute: NUMA }] });
    const first = place(a, job('first'));
    expect(new Set(numaOf(a, first)).size).toBe(1);
    const cpu = first.claims[0]?.allocation.devices?.results?.find((r) => r.driver === 'dra.cpu');
    expect(cpu?.consumedCapacity).toEqual({ 'dra.cpu/cpu': '32' });
    expect(cpu?.shareID).toMatch(/^[0-9a-f-]{36}$/);
    // The first job's NUMA node has 16 CPUs left: the second job goes to the other NUMA node.
    const second = place(a, job('second'));
    expect(new Set(numaOf(a, second)).size).toBe(1);
    expect(numaOf(a, second)[0]).not.toBe(numaOf(a, first)[0]);
    // Neither NUMA node has 32 CPUs left: a third cannot be placed, and the reason names the constraint.
    const third = a.allocate({ claims: [job('third')] });
    expect(third.kind).toBe('unallocated');
    if (third.kind === 'unallocated') expect(third.explanation.full).toMatch(/capacity|matchAttribute/);
  });

  it('pairs each of 4 GPUs with a NIC on its PCIe root, the four single-GPU requests kept on one NUMA node', async () => {
    const a = await allocator(['n1'], (n) => [nicSlice(n, nics())]);
    // Two GPUs of NUMA node 0 are taken: its two left are no place for four requests of one GPU each.
    expect(numaOf(a, place(a, claim('pair', [req('gpus', GPU, { count: 2 })], { constraints: [nvlink] })))).toEqual([0, 0]);
    const requests: DeviceRequest[] = [];
    const constraints: DeviceConstraint[] = [{ requests: ['gpu-0', 'gpu-1', 'gpu-2', 'gpu-3'], matchAttribute: `${D}/nvlinkDomain` }];
    for (let i = 0; i < 4; i++) {
      requests.push(req(`gpu-${i}`, GPU), req(`nic-${i}`, 'dra.net', { selectors: ['device.attributes["dra.net"].rdma == true'] }));
      constraints.push({ requests: [`gpu-${i}`, `nic-${i}`], matchAttribute: ROOT });
    }
    const o = place(a, claim('gpudirect', requests, { constraints }));
    const results = o.claims[0]?.allocation.devices?.results ?? [];
    const gpuRoots = [0, 1, 2, 3].map((i) => {
      const g = results.find((r) => r.request === `gpu-${i}`);
      const nic = results.find((r) => r.request === `nic-${i}`);
      const gi = Number(g?.device.replace('gpu-', ''));
      expect(nic?.device).toBe(nicDeviceName(nics()[gi]?.address ?? ''));
      return rootOf(gi);
    });
    expect(new Set(gpuRoots).size).toBe(4);
    // And on one NUMA node, though nothing asked for it.
    expect(new Set(numaOf(a, o))).toEqual(new Set([1]));
  });
});
