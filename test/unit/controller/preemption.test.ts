// Choosing victims: the fewest pods first, then the lowest priorities, and
// nobody evicted who is not needed; the allocator is left as it was.
import { Allocator } from '../../../pkg/allocator/index.js';
import type { ResourceClaim } from '../../../pkg/api/resource.js';
import { planPreemption, type VictimCandidate } from '../../../pkg/controller/preemption.js';
import { deviceClasses, wholeGpuSlice } from '../../support/fleet.js';

const DRIVER = 'gpu.cascade.dev';

function gpus(name: string, count: number): ResourceClaim {
  return { metadata: { name, namespace: 'ns', uid: `uid-${name}` }, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}`, count } }] } } };
}

function victim(key: string, node: string, priority: number, devices: string[]): VictimCandidate {
  return { key, uid: `uid-${key}`, node, priority, refs: devices.map((device) => ({ driver: DRIVER, pool: node, device })), milliCpu: 0, memoryBytes: 0 };
}

async function fullFleet(victims: readonly VictimCandidate[]): Promise<Allocator> {
  const slices = [await wholeGpuSlice(DRIVER, 'a', 'H100-80GB', 2), await wholeGpuSlice(DRIVER, 'b', 'H100-80GB', 2)];
  return new Allocator({ slices, classes: deviceClasses(DRIVER), allocated: victims.flatMap((v) => v.refs) }, { policy: 'cascade' });
}

describe('choosing whom to preempt', () => {
  it('takes one pod of priority 300 over two pods of priority 100 when either frees two GPUs', async () => {
    const vs = [victim('ns/big', 'a', 300, ['gpu-0', 'gpu-1']), victim('ns/small-1', 'b', 100, ['gpu-0']), victim('ns/small-2', 'b', 100, ['gpu-1'])];
    const a = await fullFleet(vs);
    const plan = planPreemption(a, { claims: [gpus('two', 2)] }, vs);
    expect(plan?.node).toBe('a');
    expect(plan?.victims.map((v) => v.key)).toEqual(['ns/big']);
    expect(plan?.devices.map((d) => d.device).sort()).toEqual(['gpu-0', 'gpu-1']);
    expect(plan?.placement.map((d) => `${d.pool}/${d.device}`).sort()).toEqual(['a/gpu-0', 'a/gpu-1']);
    // Nothing changed: the fleet is still full.
    expect(a.allocate({ claims: [gpus('probe', 1)] }).kind).toBe('unallocated');
  });

  it('among equally many victims takes the lowest priority, and spares a pod it does not need', async () => {
    const vs = [victim('ns/a-low', 'a', 100, ['gpu-0']), victim('ns/a-mid', 'a', 500, ['gpu-1']), victim('ns/b-mid', 'b', 500, ['gpu-0']), victim('ns/b-mid2', 'b', 500, ['gpu-1'])];
    const a = await fullFleet(vs);
    const one = planPreemption(a, { claims: [gpus('one', 1)] }, vs);
    expect(one?.victims.map((v) => v.key)).toEqual(['ns/a-low']);
    const two = planPreemption(a, { claims: [gpus('two', 2)] }, vs);
    // Two victims either way; node a's highest is 500 as on b, but a's sum (600) is lower.
    expect(two?.node).toBe('a');
    expect(two?.victims.map((v) => v.key)).toEqual(['ns/a-low', 'ns/a-mid']);
  });

  it('finds no plan when no set of candidates frees enough on one node', async () => {
    const vs = [victim('ns/a1', 'a', 100, ['gpu-0']), victim('ns/b1', 'b', 100, ['gpu-0'])];
    const a = await fullFleet([...vs, victim('ns/keep-a', 'a', 2000, ['gpu-1']), victim('ns/keep-b', 'b', 2000, ['gpu-1'])]);
    expect(planPreemption(a, { claims: [gpus('two', 2)] }, vs)).toBeUndefined();
    expect(planPreemption(a, { claims: [gpus('one', 1)] }, vs)?.victims).toHaveLength(1);
  });

  it('holds the whole placement for the preemptor, the GPU that was already free included', async () => {
    const low = victim('ns/a-low', 'a', 100, ['gpu-0']);
    const a = await fullFleet([low, victim('ns/keep-b', 'b', 2000, ['gpu-0', 'gpu-1'])]);
    const plan = planPreemption(a, { claims: [gpus('two', 2)] }, [low]);
    expect(plan?.victims.map((v) => v.key)).toEqual(['ns/a-low']);
    expect(plan?.devices.map((d) => `${d.pool}/${d.device}`)).toEqual(['a/gpu-0']);
    expect(plan?.placement.map((d) => `${d.pool}/${d.device}`).sort()).toEqual(['a/gpu-0', 'a/gpu-1']);
  });
});
