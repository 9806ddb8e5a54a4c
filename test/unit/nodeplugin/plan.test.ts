// Planning a prepare from a claim and the published inventory: everything a
// claim says is checked against what this node published before it can reach
// nvidia-smi, and overlaps with prepared claims are refused by name.
import { ATTR, qualify } from '../../../pkg/api/devicemodel.js';
import type { Device } from '../../../pkg/api/resource.js';
import { type Occupancy, planClaim } from '../../../pkg/nodeplugin/plan.js';
import { h100x8, instance } from '../inventory/nodes.js';
import { DRIVER, NODE, claim, refOf, snapshotOf } from './fakes.js';

const inventory = snapshotOf(h100x8('Enabled'));

function plan(devices: readonly string[], over: Parameters<typeof claim>[2] = {}, held: Occupancy[] = []): ReturnType<typeof planClaim> {
  const c = claim(1, devices, over);
  return planClaim({ driver: DRIVER, nodeName: NODE, ref: refOf(c), claim: c, inventory, held });
}

describe('planning a prepare', () => {
  it('reads the profile ID and placement of a MIG partition from the published device', () => {
    const p = plan(['gpu-2-mig-3g-40gb-4']);
    expect(p).toEqual({ ok: true, devices: [expect.objectContaining({ kind: 'mig', deviceName: 'gpu-2-mig-3g-40gb-4', profileId: 9, placement: { start: 4, size: 4 }, request: 'r0' })] });
  });

  it('hands out a whole GPU by its UUID', () => {
    const p = plan(['gpu-3']);
    expect(p.ok && p.devices[0]?.kind === 'gpu' ? p.devices[0].gpu.index : undefined).toBe(3);
  });

  it.each([
    ['a device this node does not publish', ['gpu-9'], {}, /device gpu-9 is not in the inventory this node publishes/],
    ['a device name that is not a DNS label', ['GPU_0; rm -rf /'], {}, /is not a DNS label/],
    ['a result of another pool only', ['gpu-0'], { pool: 'node-b' }, /no device of driver gpu\.cascade\.dev in pool node-a/],
    [
      'two partitions of one claim that overlap',
      ['gpu-0-mig-3g-40gb-0', 'gpu-0-mig-2g-20gb-2'],
      {},
      /gpu-0-mig-2g-20gb-2 needs placement 2:2 on gpu-0, which overlaps gpu-0-mig-3g-40gb-0 \(placement 0:4\)/,
    ],
    ['a whole GPU and one of its partitions', ['gpu-1', 'gpu-1-mig-1g-10gb-6'], {}, /overlaps gpu-1 \(the whole GPU\)/],
    [
      'time-slicing on a MIG partition',
      ['gpu-0-mig-1g-10gb-0'],
      { config: [{ source: 'FromClaim', opaque: { driver: DRIVER, parameters: { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', sharing: { strategy: 'TimeSlicing' } } } }] },
      /TimeSlicing" is not supported on MIG device gpu-0-mig-1g-10gb-0/,
    ],
    [
      'an opaque config with an unknown field',
      ['gpu-0'],
      { config: [{ source: 'FromClaim', opaque: { driver: DRIVER, parameters: { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', colour: 'red' } } }] },
      /colour: unknown field/,
    ],
  ])('refuses %s', (_what, devices, over, message) => {
    const p = plan(devices, over);
    expect(p.ok).toBe(false);
    expect(p.ok ? '' : p.error).toMatch(message);
    expect(p.ok ? '' : p.error).toMatch(/^claim ns\/c1 \(/);
  });

  it('refuses a partition that overlaps one another claim holds, naming both placements and the claim', () => {
    const held: Occupancy[] = [{ owner: 'claim ns/other', gpuUuid: inventory.discovery.gpus[5]?.uuid ?? '', deviceName: 'gpu-5-mig-4g-40gb-0', placement: { start: 0, size: 4 } }];
    const p = plan(['gpu-5-mig-1g-10gb-3'], {}, held);
    expect(p.ok ? '' : p.error).toMatch(/needs placement 3:1 on gpu-5, which overlaps gpu-5-mig-4g-40gb-0 \(placement 0:4\) held by claim ns\/other/);
    expect(plan(['gpu-5-mig-1g-10gb-4'], {}, held).ok).toBe(true);
  });

  it('refuses a device whose attributes were changed to point elsewhere than its name says', () => {
    const devices = new Map(inventory.devices);
    const original = devices.get('gpu-0-mig-1g-10gb-0') as Device;
    devices.set('gpu-0-mig-1g-10gb-0', { ...original, attributes: { ...original.attributes, [qualify(DRIVER, ATTR.placementStart)]: { int: 5 } } });
    const c = claim(1, ['gpu-0-mig-1g-10gb-0']);
    const p = planClaim({ driver: DRIVER, nodeName: NODE, ref: refOf(c), claim: c, inventory: { ...inventory, devices }, held: [] });
    expect(p.ok ? '' : p.error).toMatch(/does not match its own profile and placement attributes/);
  });

  it('refuses a claim whose UID differs from the one the kubelet named', () => {
    const c = claim(1, ['gpu-0']);
    const p = planClaim({ driver: DRIVER, nodeName: NODE, ref: { ...refOf(c), uid: 'other' }, claim: c, inventory, held: [] });
    expect(p.ok ? '' : p.error).toMatch(/different claim under this name/);
  });

  it('hands out a pre-existing MIG instance as it stands, with its instance IDs', () => {
    const base = h100x8('Enabled');
    const g0 = base.gpus[0];
    if (!g0) throw new Error('no GPU 0');
    const made = instance(g0, 9, '3g.40gb', 2, 4, 4, 'MIG-pre');
    const d = { ...base, gpus: [made.gpu, ...base.gpus.slice(1)], gpuInstances: [made.gi], computeInstances: [made.ci] };
    const snap = snapshotOf(d);
    const c = claim(1, ['gpu-0-mig-3g-40gb-4']);
    const p = planClaim({ driver: DRIVER, nodeName: NODE, ref: refOf(c), claim: c, inventory: snap, held: [] });
    expect(p).toEqual({ ok: true, devices: [expect.objectContaining({ kind: 'preexisting-mig', uuid: 'MIG-pre', gpuInstanceId: 2, computeInstanceId: 0 })] });
  });
});
