// FailoverReserve arithmetic: the reserve's size, what is free, who may use it.
import { Allocator } from '../../../pkg/allocator/index.js';
import { heldBackBy, reserveFigures, reserveProblem, unitsTaken, type FailoverReserve } from '../../../pkg/controller/reserve.js';
import { deviceClasses, wholeGpuSlice } from '../../support/fleet.js';

const DRIVER = 'gpu.cascade.dev';

function reserve(spec: Partial<FailoverReserve['spec']>): FailoverReserve {
  return { metadata: { name: 'r' }, spec: { priorityThreshold: 1000, ...spec } };
}

async function fleet(): Promise<Allocator> {
  const slices = [await wholeGpuSlice(DRIVER, 'big', 'H100-80GB', 4), await wholeGpuSlice(DRIVER, 'small', 'H100-80GB', 2)];
  const nodes = [
    { name: 'big', labels: { pool: 'train' } },
    { name: 'small', labels: { pool: 'train' } },
  ];
  return new Allocator({ slices, classes: deviceClasses(DRIVER), nodes, allocated: [{ driver: DRIVER, pool: 'small', device: 'gpu-0' }] }, { policy: 'cascade' });
}

const oneGpu = { claims: [{ metadata: { name: 'c', namespace: 'ns' }, spec: { devices: { requests: [{ name: 'g', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } }] };

describe('failover reserves', () => {
  it('keeps the GPUs of the largest nodes free, and holds back only pods below the threshold', async () => {
    const a = await fleet();
    const r = reserve({ tolerateNodeLoss: 1, nodeSelector: { pool: 'train' } });
    const f = reserveFigures(r, a, new Set());
    expect(f).toMatchObject({ poolUnits: 6, reserveUnits: 4, freeUnits: 5, inUse: 0 });
    const o = a.allocate(oneGpu);
    if (o.kind !== 'allocated') throw new Error(o.explanation.full);
    const taken = unitsTaken(a, o, f.poolNodes);
    expect(taken).toBe(1);
    // 5 free - 1 = 4: still the reserve; a second one would dip into it.
    expect(heldBackBy(r, f, 0, taken)).toBeUndefined();
    expect(heldBackBy(r, { ...f, freeUnits: 4 }, 0, 1)).toMatch(/^It waits because taking 1 GPU\(s\) would leave 3 free, less than the 4 that FailoverReserve r keeps free/);
    expect(heldBackBy(r, { ...f, freeUnits: 4 }, 1000, 1)).toBeUndefined();
  });

  it('sizes a percentage reserve in whole GPUs and leaves lost nodes out of the pool', async () => {
    const a = await fleet();
    expect(reserveFigures(reserve({ keepFreePercent: 25 }), a, new Set())).toMatchObject({ poolUnits: 6, reserveUnits: 2 });
    expect(reserveFigures(reserve({ tolerateNodeLoss: 1 }), a, new Set(['big']))).toMatchObject({ poolNodes: [expect.any(Number)], poolUnits: 2, reserveUnits: 2, freeUnits: 1, inUse: 1 });
    expect(reserveFigures(reserve({ tolerateNodeLoss: 1, nodeSelector: { pool: 'serve' } }), a, new Set())).toMatchObject({ poolUnits: 0, reserveUnits: 0 });
  });

  it('says what is wrong with a spec the schema would have refused', () => {
    expect(reserveProblem(reserve({ tolerateNodeLoss: 1, keepFreePercent: 10 }))).toBe('set exactly one of spec.tolerateNodeLoss and spec.keepFreePercent');
    expect(reserveProblem(reserve({}))).toBe('set exactly one of spec.tolerateNodeLoss and spec.keepFreePercent');
    expect(reserveProblem(reserve({ keepFreePercent: 95 }))).toBe('spec.keepFreePercent must be a whole percent from 1 to 90, not 95');
    expect(reserveProblem(reserve({ tolerateNodeLoss: 2 }))).toBeUndefined();
  });
});
