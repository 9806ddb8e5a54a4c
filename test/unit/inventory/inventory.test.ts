// The desired ResourceSlices of a node: limits, counter consistency (checked
// against the simulator's placement rules), MIG mode decisions, pre-existing
// instances, taints, names and determinism.
import { ATTR, COUNTER, qualify } from '../../../pkg/api/devicemodel.js';
import type { Device, DeviceCounterConsumption } from '../../../pkg/api/resource.js';
import { buildDesiredSlices, carryOverLostGpus, fingerprint, limitViolations, sliceName, toResourceSlices, toSemver } from '../../../pkg/inventory/index.js';
import type { DesiredSlice } from '../../../pkg/inventory/index.js';
import { findModel } from '../../../pkg/nvidia/catalog.js';
import { type FakeGpuInstance, findProfile, placementRefusal } from '../../../hack/fake-nvidia-smi/mig.js';
import { discovery, gpu, h100x8, instance } from './nodes.js';

const DRIVER = 'gpu.cascade.dev';
const q = (n: string): string => qualify(DRIVER, n);

function build(d: ReturnType<typeof discovery>, extra: Partial<Parameters<typeof buildDesiredSlices>[0]> = {}): DesiredSlice[] {
  return buildDesiredSlices({ nodeName: 'node-a', driverName: DRIVER, discovery: d, ...extra });
}

function devicesOf(slices: readonly DesiredSlice[]): Device[] {
  return slices.flatMap((s) => s.spec.devices ?? []);
}

function deviceNames(slices: readonly DesiredSlice[], minor = 0): string[] {
  return devicesOf(slices)
    .map((d) => d.name)
    .filter((n) => n === `gpu-${minor}` || n.startsWith(`gpu-${minor}-`));
}

function counterSet(slices: readonly DesiredSlice[], name: string): Record<string, number> {
  const set = slices.flatMap((s) => s.spec.sharedCounters ?? []).find((c) => c.name === name);
  if (!set) throw new Error(`no counter set ${name}`);
  return Object.fromEntries(Object.entries(set.counters).map(([k, v]) => [k, Number(v.value)]));
}

function use(d: Device): Record<string, number> {
  const c: DeviceCounterConsumption | undefined = d.consumesCounters?.[0];
  return Object.fromEntries(Object.entries(c?.counters ?? {}).map(([k, v]) => [k, Number(v.value)]));
}

/** Whether the counters let all of `devices` be allocated together. */
function fitTogether(total: Record<string, number>, devices: readonly Device[]): boolean {
  const sum: Record<string, number> = {};
  for (const d of devices) for (const [k, v] of Object.entries(use(d))) sum[k] = (sum[k] ?? 0) + v;
  return Object.entries(sum).every(([k, v]) => v <= (total[k] ?? 0));
}

describe('8x H100 with MIG enabled on every GPU', () => {
  const slices = build(h100x8('Enabled'));
  const devices = devicesOf(slices);

  it('publishes within every API limit', () => {
    expect(limitViolations(slices)).toEqual([]);
  });

  it('puts the eight counter sets in one slice of their own and the devices in slices of at most 64', () => {
    const counterSlices = slices.filter((s) => (s.spec.sharedCounters?.length ?? 0) > 0);
    expect(counterSlices).toHaveLength(1);
    expect(counterSlices[0]!.spec.devices).toBeUndefined();
    expect(counterSlices[0]!.spec.sharedCounters).toHaveLength(8);
    const deviceSlices = slices.filter((s) => s.spec.devices);
    expect(deviceSlices.every((s) => s.spec.devices!.length <= 64 && !s.spec.sharedCounters)).toBe(true);
    expect(slices.every((s) => s.spec.pool.resourceSliceCount === slices.length && s.spec.pool.name === 'node-a' && s.spec.nodeName === 'node-a')).toBe(true);
  });

  it('publishes per GPU the whole GPU, its shared form and 25 partitions: 7x1g, 7x1g+me, 4x1g.20gb, 3x2g, 2x3g, 4g, 7g', () => {
    expect(devices).toHaveLength(8 * 27);
    expect(deviceNames(slices, 3)).toEqual(
      [
        'gpu-3',
        'gpu-3-shared',
        ...[0, 1, 2, 3, 4, 5, 6].map((s) => `gpu-3-mig-7g-80gb-0`.replace('7g-80gb-0', `1g-10gb-${s}`)),
        ...[0, 1, 2, 3, 4, 5, 6].map((s) => `gpu-3-mig-1g-10gb-me-${s}`),
        ...[0, 2, 4, 6].map((s) => `gpu-3-mig-1g-20gb-${s}`),
        ...[0, 2, 4].map((s) => `gpu-3-mig-2g-20gb-${s}`),
        'gpu-3-mig-3g-40gb-0',
        'gpu-3-mig-3g-40gb-4',
        'gpu-3-mig-4g-40gb-0',
        'gpu-3-mig-7g-80gb-0',
      ].sort((a, b) => order(a) - order(b)),
    );
  });

  it('makes every consumed counter exist in its counter set', () => {
    for (const d of devices) {
      const c = d.consumesCounters![0]!;
      const set = counterSet(slices, c.counterSet);
      for (const name of Object.keys(c.counters)) expect({ device: d.name, name, exists: name in set }).toEqual({ device: d.name, name, exists: true });
    }
  });

  it('makes the whole GPU consume every counter of its set in full', () => {
    for (let minor = 0; minor < 8; minor++) {
      const whole = devices.find((d) => d.name === `gpu-${minor}`)!;
      expect(whole.consumesCounters).toEqual([
        { counterSet: `gpu-${minor}-counters`, counters: slices.flatMap((s) => s.spec.sharedCounters ?? []).find((c) => c.name === `gpu-${minor}-counters`)!.counters },
      ]);
    }
  });

  it('gives each GPU eight memory-slice counters of 1 and seven compute slices', () => {
    const set = counterSet(slices, 'gpu-0-counters');
    for (let i = 0; i < 8; i++) expect(set[COUNTER.memorySlice(i)]).toBe(1);
    expect(set[COUNTER.computeSlices]).toBe(7);
  });

  const partitions = devices.filter((d) => d.name.startsWith('gpu-0-mig-'));
  const attr = (d: Device, n: string): number => d.attributes![q(n)]!.int!;
  const overlap = (a: Device, b: Device): boolean =>
    attr(a, ATTR.placementStart) < attr(b, ATTR.placementStart) + attr(b, ATTR.placementSize) && attr(b, ATTR.placementStart) < attr(a, ATTR.placementStart) + attr(a, ATTR.placementSize);

  it('makes any two partitions whose placements overlap share a memory-slice counter they cannot both take', () => {
    const set = counterSet(slices, 'gpu-0-counters');
    let pairs = 0;
    for (const a of partitions) {
      for (const b of partitions) {
        if (a === b || !overlap(a, b)) continue;
        pairs++;
        const shared = Object.keys(use(a)).filter((k) => k.startsWith('memory-slice-') && k in use(b) && use(a)[k]! + use(b)[k]! > set[k]!);
        expect({ a: a.name, b: b.name, blocked: shared.length > 0 }).toEqual({ a: a.name, b: b.name, blocked: true });
      }
    }
    expect(pairs).toBeGreaterThan(100);
  });

  it('lets the counters admit exactly the pairs the simulator (REFERENCE rules) accepts', () => {
    const set = counterSet(slices, 'gpu-0-counters');
    const model = findModel('H100-80GB')!;
    for (const a of partitions) {
      for (const b of partitions) {
        if (a === b) continue;
        const pa = findProfile(model, attr(a, ATTR.profileID))!;
        const pb = findProfile(model, attr(b, ATTR.profileID))!;
        const existing: FakeGpuInstance[] = [{ id: 1, profileId: pa.id, start: attr(a, ATTR.placementStart), computeInstances: [] }];
        const hardware = placementRefusal(model, existing, pb, attr(b, ATTR.placementStart)) === undefined;
        expect({ a: a.name, b: b.name, fit: fitTogether(set, [a, b]) }).toEqual({ a: a.name, b: b.name, fit: hardware });
      }
    }
  });

  it('lets the counters admit every full layout the simulator accepts', () => {
    const set = counterSet(slices, 'gpu-0-counters');
    const model = findModel('H100-80GB')!;
    let layouts = 0;
    const visit = (from: number, chosen: Device[], existing: FakeGpuInstance[]): void => {
      let extended = false;
      for (let i = from; i < partitions.length; i++) {
        const d = partitions[i]!;
        const p = findProfile(model, attr(d, ATTR.profileID))!;
        if (placementRefusal(model, existing, p, attr(d, ATTR.placementStart)) !== undefined) continue;
        extended = true;
        visit(i + 1, [...chosen, d], [...existing, { id: i, profileId: p.id, start: attr(d, ATTR.placementStart), computeInstances: [] }]);
      }
      if (!extended) {
        layouts++;
        expect({ layout: chosen.map((d) => d.name), fit: fitTogether(set, chosen) }).toEqual({ layout: chosen.map((d) => d.name), fit: true });
      }
    };
    visit(0, [], []);
    expect(layouts).toBeGreaterThan(10);
  });

  it('keeps the whole GPU apart from every partition', () => {
    const set = counterSet(slices, 'gpu-0-counters');
    const whole = devices.find((d) => d.name === 'gpu-0')!;
    for (const p of partitions) expect({ p: p.name, fit: fitTogether(set, [whole, p]) }).toEqual({ p: p.name, fit: false });
  });

  it('is deterministic: the same discovery in another GPU order gives identical slices', () => {
    const d = h100x8('Enabled');
    const again = build({ ...d, gpus: [...d.gpus].reverse(), migProfiles: [...d.migProfiles].reverse() });
    expect(JSON.stringify(again)).toBe(JSON.stringify(slices));
    expect(fingerprint(again)).toBe(fingerprint(slices));
  });
});

function order(name: string): number {
  const m = /^gpu-\d+-mig-(.+)-(\d)$/.exec(name);
  if (!m) return -1;
  const ids: Record<string, number> = { '7g-80gb': 0, '4g-40gb': 5, '3g-40gb': 9, '2g-20gb': 14, '1g-20gb': 15, '1g-10gb': 19, '1g-10gb-me': 20 };
  return ids[m[1]!]! * 10 + Number(m[2]);
}

describe('attributes and capacities', () => {
  const slices = build(h100x8('Enabled'));
  const whole = devicesOf(slices).find((d) => d.name === 'gpu-5')!;
  const part = devicesOf(slices).find((d) => d.name === 'gpu-5-mig-3g-40gb-4')!;

  it('describes the whole GPU with driver-domain and standard attributes', () => {
    expect(whole.attributes).toMatchObject({
      [q(ATTR.type)]: { string: 'gpu' },
      [q(ATTR.uuid)]: { string: 'GPU-00000005-0000-0000-0000-000000000000' },
      [q(ATTR.productName)]: { string: 'NVIDIA H100 80GB HBM3' },
      [q(ATTR.architecture)]: { string: 'Hopper' },
      [q(ATTR.cudaComputeCapability)]: { version: '9.0.0' },
      [q(ATTR.driverVersion)]: { version: '580.105.8' },
      [q(ATTR.cudaDriverVersion)]: { version: '13.0.0' },
      [q(ATTR.memory)]: { int: 81559 },
      [q(ATTR.migCapable)]: { bool: true },
      [q(ATTR.nvlinkDomain)]: { string: 'node-a-nvlink-0' },
      'resource.kubernetes.io/pciBusID': { string: '0000:6d:00.0' },
      'resource.kubernetes.io/pcieRoot': { string: 'pci0000:80' },
      'resource.kubernetes.io/numaNode': { int: 1 },
    });
    expect(whole.capacity).toEqual({ [q('memory')]: { value: '81559Mi' }, [q('multiprocessors')]: { value: '132' } });
  });

  it('describes a partition by profile, placement, parent and engines', () => {
    expect(part.attributes).toMatchObject({
      [q(ATTR.type)]: { string: 'mig' },
      [q(ATTR.profile)]: { string: '3g.40gb' },
      [q(ATTR.profileID)]: { int: 9 },
      [q(ATTR.parentUUID)]: { string: 'GPU-00000005-0000-0000-0000-000000000000' },
      [q(ATTR.parentMinor)]: { int: 5 },
      [q(ATTR.placementStart)]: { int: 4 },
      [q(ATTR.placementSize)]: { int: 4 },
      [q(ATTR.memory)]: { int: 40448 },
      [q(ATTR.preexisting)]: { bool: false },
    });
    expect(part.attributes![q(ATTR.nvlinkDomain)]).toBeUndefined();
    expect(part.capacity![q('memory')]).toEqual({ value: '40448Mi' });
    expect(part.capacity![q('multiprocessors')]).toEqual({ value: '60' });
    expect(part.consumesCounters![0]!.counters).toMatchObject({ 'memory-slice-4': { value: '1' }, 'memory-slice-7': { value: '1' }, 'compute-slices': { value: '3' } });
    expect(part.consumesCounters![0]!.counters['memory-slice-3']).toBeUndefined();
  });

  it('gives separate NVLink domains to separate NVLink groups and none to a GPU without NVLink', () => {
    const d = discovery([
      gpu(0, { model: 'H100-80GB', peers: [1] }),
      gpu(1, { model: 'H100-80GB', peers: [0] }),
      gpu(2, { model: 'H100-80GB', peers: [3] }),
      gpu(3, { model: 'H100-80GB', peers: [2] }),
      gpu(4, { model: 'H100-80GB' }),
    ]);
    const domains = devicesOf(build(d, { options: { dynamicMig: false } }))
      .filter((x) => x.attributes![q(ATTR.type)]?.string === 'gpu')
      .map((x) => x.attributes![q(ATTR.nvlinkDomain)]?.string);
    expect(domains).toEqual(['node-a-nvlink-0', 'node-a-nvlink-0', 'node-a-nvlink-2', 'node-a-nvlink-2', undefined]);
  });

  it.each([
    ['580.105.08', '580.105.8'],
    ['9.0', '9.0.0'],
    ['13', '13.0.0'],
    ['1.2.3.4', undefined],
    ['r570', undefined],
  ])('turns version %s into semver %s', (from, to) => {
    expect(toSemver(from)).toBe(to);
  });
});

describe('MIG mode and architecture decide what a GPU publishes', () => {
  const names = (d: ReturnType<typeof discovery>, dynamicMig = true): string[] => devicesOf(build(d, { options: { dynamicMig } })).map((x) => x.name);
  it.each([
    // Wherever the whole GPU is published, its shared form is too (the counters keep the two apart).
    ['an A100 with MIG disabled: the whole GPU and its shared form (enabling needs a reset)', 'A100-SXM4-40GB', 'Disabled', true, 2, true, 0],
    ['an A100 with MIG enabled: partitions only (the whole GPU needs a reset)', 'A100-SXM4-40GB', 'Enabled', true, 25, true, 25],
    ['an H100 with MIG disabled: whole, shared and partitions (switching needs no reset)', 'H100-80GB', 'Disabled', true, 27, true, 25],
    ['an H100 with MIG enabled: whole, shared and partitions', 'H100-80GB', 'Enabled', true, 27, true, 25],
    ['a B200 with MIG disabled: whole, shared and partitions', 'B200', 'Disabled', true, 27, true, 25],
    ['an H100 with MIG disabled and dynamic MIG off: whole and shared only', 'H100-80GB', 'Disabled', false, 2, true, 0],
    ['an H100 with MIG enabled and dynamic MIG off: partitions only', 'H100-80GB', 'Enabled', false, 25, true, 25],
    ['a GPU without MIG: whole and shared only', 'Tesla V100-SXM2-16GB', 'N/A', true, 2, true, 0],
  ] as const)('%s', (_name, model, mig, dynamic, count, counters, partitions) => {
    const d = discovery([gpu(0, { model, mig })]);
    const slices = build(d, { options: { dynamicMig: dynamic } });
    expect(names(d, dynamic)).toHaveLength(count);
    expect(names(d, dynamic).filter((n) => n.includes('-mig-'))).toHaveLength(partitions);
    expect(slices.some((s) => s.spec.sharedCounters)).toBe(counters);
    expect(limitViolations(slices)).toEqual([]);
  });

  it('reports migCapable false for a GPU without MIG; one counter keeps it whole or shared, none without sharing', () => {
    const slices = build(discovery([gpu(0, { model: 'Tesla V100-SXM2-16GB', mig: 'N/A' })]));
    const [whole, shared] = devicesOf(slices);
    expect(whole!.attributes![q(ATTR.migCapable)]).toEqual({ bool: false });
    expect(whole!.consumesCounters).toEqual([{ counterSet: 'gpu-0-counters', counters: { gpu: { value: '1' } } }]);
    expect(shared!.consumesCounters).toEqual(whole!.consumesCounters);
    expect(slices.flatMap((s) => s.spec.sharedCounters ?? [])).toEqual([{ name: 'gpu-0-counters', counters: { gpu: { value: '1' } } }]);
    const alone = devicesOf(build(discovery([gpu(0, { model: 'Tesla V100-SXM2-16GB', mig: 'N/A' })]), { options: { sharing: false } }));
    expect(alone.map((x) => x.name)).toEqual(['gpu-0']);
    expect(alone[0]!.consumesCounters).toBeUndefined();
  });

  it('publishes the shared form with memory in 1Gi steps and compute in percent, tunable per node', () => {
    const shared = devicesOf(build(discovery([gpu(0, { model: 'H100-80GB', mig: 'Disabled' })]))).find((x) => x.name === 'gpu-0-shared')!;
    expect(shared.allowMultipleAllocations).toBe(true);
    expect(shared.attributes![q(ATTR.type)]).toEqual({ string: 'shared' });
    expect(shared.capacity).toEqual({
      [q('compute')]: { value: '100', requestPolicy: { default: '10', validRange: { min: '1', max: '100', step: '1' } } },
      // 81559Mi: a claim that asks for nothing gets all of it in whole steps, 79Gi.
      [q('memory')]: { value: '81559Mi', requestPolicy: { default: '79Gi', validRange: { min: '1Gi', step: '1Gi' } } },
    });
    const tuned = devicesOf(build(discovery([gpu(0, { model: 'H100-80GB', mig: 'Disabled' })]), { options: { sharing: { memoryStep: '4Gi', computeStep: 5, computeDefault: 25 } } })).find(
      (x) => x.name === 'gpu-0-shared',
    )!;
    expect(tuned.capacity![q('memory')]!.requestPolicy).toEqual({ default: '76Gi', validRange: { min: '4Gi', step: '4Gi' } });
    expect(tuned.capacity![q('compute')]!.requestPolicy).toEqual({ default: '25', validRange: { min: '5', max: '100', step: '5' } });
    expect(() => build(discovery([gpu(0, { model: 'H100-80GB' })]), { options: { sharing: { computeStep: 7 } } })).toThrow('must be a whole percent that divides 100');
  });
});

describe('MIG instances that already exist', () => {
  const base = gpu(0, { model: 'H100-80GB', mig: 'Enabled' });
  const i3g = instance(base, 9, '3g.40gb', 2, 4, 4, 'MIG-aaaaaaaa-0000-0000-0000-000000000000');
  const d = discovery([i3g.gpu], { gpuInstances: [i3g.gi], computeInstances: [i3g.ci] });

  it('publishes an instance we did not create as a preexisting device with its UUID', () => {
    const dev = devicesOf(build(d)).find((x) => x.name === 'gpu-0-mig-3g-40gb-4')!;
    expect(dev.attributes).toMatchObject({ [q(ATTR.preexisting)]: { bool: true }, [q(ATTR.uuid)]: { string: 'MIG-aaaaaaaa-0000-0000-0000-000000000000' } });
  });

  it('drops the whole GPU and every partition overlapping the instance we did not create', () => {
    const names = devicesOf(build(d)).map((x) => x.name);
    expect(names).not.toContain('gpu-0');
    expect(names).not.toContain('gpu-0-mig-7g-80gb-0');
    expect(names.filter((n) => /-(4|5|6)$/.test(n) && n !== 'gpu-0-mig-3g-40gb-4')).toEqual([]);
    expect(names).toContain('gpu-0-mig-3g-40gb-0');
    expect(names).toContain('gpu-0-mig-1g-10gb-3');
  });

  it('publishes an instance we created like any partition and keeps the whole GPU', () => {
    const slices = build(d, { ownedInstances: [{ parentUUID: base.uuid, gpuInstanceId: 2 }] });
    const names = devicesOf(slices).map((x) => x.name);
    expect(names).toContain('gpu-0');
    expect(names).toHaveLength(27);
    expect(devicesOf(slices).find((x) => x.name === 'gpu-0-mig-3g-40gb-4')!.attributes![q(ATTR.preexisting)]).toEqual({ bool: false });
  });

  it('blocks the slices of a foreign instance without a compute instance but does not publish it', () => {
    const bare = discovery([base], { gpuInstances: [i3g.gi] });
    const names = devicesOf(build(bare)).map((x) => x.name);
    expect(names).not.toContain('gpu-0-mig-3g-40gb-4');
    expect(names).not.toContain('gpu-0');
    expect(names).toContain('gpu-0-mig-4g-40gb-0');
  });
});

describe('taints for health', () => {
  it('keeps a lost GPU published with a NoSchedule taint on it and on its partitions', () => {
    const before = h100x8('Enabled');
    const lostGpu = before.gpus[7]!;
    const now = { ...before, gpus: before.gpus.slice(0, 7), migProfiles: before.migProfiles.filter((p) => p.gpuIndex !== 7), lost: [{ pciBusId: lostGpu.pciBusId, message: 'GPU is lost' }] };
    const { discovery: merged, taints } = carryOverLostGpus(DRIVER, before, now);
    const slices = build(merged, { taints });
    const tainted = devicesOf(slices).filter((x) => x.taints);
    expect(tainted).toHaveLength(27);
    expect(tainted.every((x) => x.name === 'gpu-7' || x.name.startsWith('gpu-7-'))).toBe(true);
    expect(tainted[0]!.taints).toEqual([{ key: 'gpu.cascade.dev/unhealthy', value: 'gpu-lost', effect: 'NoSchedule' }]);
    expect(limitViolations(slices)).toEqual([]);
    expect(fingerprint(slices)).not.toBe(fingerprint(build(before)));
  });

  it('halves the device limit of a slice of untainted whole GPUs once one is tainted', () => {
    const many = discovery(Array.from({ length: 100 }, (_v, i) => gpu(i, { model: 'Tesla V100-SXM2-16GB', mig: 'N/A' })));
    const options = { sharing: false } as const;
    expect(build(many, { options }).map((s) => s.spec.devices?.length)).toEqual([100]);
    const tainted = build(many, { options, taints: { [many.gpus[0]!.uuid]: [{ key: `${DRIVER}/unhealthy`, effect: 'NoSchedule' }] } });
    expect(tainted.map((s) => s.spec.devices?.length)).toEqual([64, 36]);
    expect(limitViolations(tainted)).toEqual([]);
  });
});

describe('slice names and counts', () => {
  it('names slices <node>-<driver with dots as dashes>-<i>', () => {
    expect(build(h100x8('Enabled')).map((s) => s.name)).toEqual([0, 1, 2, 3, 4].map((i) => `node-a-gpu-cascade-dev-${i}`));
  });

  it('shortens a very long node name with a hash and stays a DNS subdomain of at most 253 characters', () => {
    const node = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}`;
    const a = sliceName(node, DRIVER, 3);
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(a).toMatch(/-gpu-cascade-dev-3$/);
    expect(sliceName(`${node}x`, DRIVER, 3)).not.toBe(a);
  });

  it('spreads 16 MIG GPUs over two counter slices of eight sets', () => {
    const all = Array.from({ length: 16 }, (_v, i) => i);
    const d = discovery(all.map((i) => gpu(i, { model: 'H100-80GB', mig: 'Enabled' })));
    const slices = build(d);
    expect(slices.filter((s) => s.spec.sharedCounters).map((s) => s.spec.sharedCounters!.length)).toEqual([8, 8]);
    expect(limitViolations(slices)).toEqual([]);
  });

  it('publishes nothing for a node without GPUs', () => {
    expect(build(discovery([]))).toEqual([]);
  });

  it('makes full ResourceSlice objects for a generation', () => {
    const [first] = toResourceSlices(build(discovery([gpu(0, { model: 'A100-SXM4-40GB' })])), 3);
    expect(first).toMatchObject({
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceSlice',
      metadata: { name: 'node-a-gpu-cascade-dev-0' },
      spec: { pool: { name: 'node-a', generation: 3, resourceSliceCount: 2 } },
    });
  });

  it('finds a slice that breaks a limit and says which', () => {
    const slices = build(h100x8('Enabled'));
    const broken = slices.map((s, i) => (i === 1 ? { ...s, spec: { ...s.spec, devices: [...s.spec.devices!, ...s.spec.devices!] } } : s));
    expect(limitViolations(broken)).toEqual(expect.arrayContaining([expect.stringMatching(/^slice node-a-gpu-cascade-dev-1: 108 devices, limit 64$/)]));
  });
});
