import { placedWasteBound, refusedWasteBound, simplexMax } from '../../../bench/packing-bounds.js';
import { seededRandom } from '../../../hack/seeded-random.js';

/** The fewest GPUs that hold every share, by trying every assignment (small inputs only). */
function fewestGpus(millis: readonly number[]): number {
  const items = [...millis].sort((a, b) => b - a);
  let best = items.length;
  const bins: number[] = [];
  const place = (i: number): void => {
    if (bins.length >= best) return;
    if (i === items.length) {
      best = bins.length;
      return;
    }
    const m = items[i] ?? 0;
    const tried = new Set<number>();
    for (let b = 0; b < bins.length; b++) {
      const load = bins[b] ?? 0;
      if (load + m > 1000 || tried.has(load)) continue;
      tried.add(load);
      bins[b] = load + m;
      place(i + 1);
      bins[b] = load;
    }
    bins.push(m);
    place(i + 1);
    bins.pop();
  };
  place(0);
  return best;
}

describe('packing bounds for the sharing stream', () => {
  it('solves a small linear program', () => {
    // max 3x + 2y, x + y <= 4, x + 3y <= 6, x <= 3: x = 3, y = 1.
    const { x, value } = simplexMax(
      [
        [1, 1],
        [1, 3],
        [1, 0],
      ],
      [4, 6, 3],
      [3, 2],
    );
    expect(value).toBeCloseTo(11);
    expect(x[0]).toBeCloseTo(3);
    expect(x[1]).toBeCloseTo(1);
  });

  it('gives the waste of packings whose optimum is known', () => {
    // Three shares over half a GPU need three GPUs.
    expect(placedWasteBound([600, 600, 600])).toBeCloseTo(1.2);
    // Halves pair up exactly.
    expect(placedWasteBound([500, 500, 500, 500])).toBeCloseTo(0);
    // Five 0.4 shares: two per GPU, so three GPUs (the LP's 2.5, rounded up).
    expect(placedWasteBound([400, 400, 400, 400, 400])).toBeCloseTo(1);
    // The trace's commonest share leaves 0.19 of its GPU, which a 0.16 share can fill.
    expect(placedWasteBound([810, 810, 160])).toBeCloseTo(0.22);
    expect(placedWasteBound([])).toBe(0);
  });

  it('never claims more waste than the best packing has', () => {
    const rand = seededRandom(7);
    const sizes = [50, 110, 160, 230, 320, 470, 550, 650, 810];
    for (let trial = 0; trial < 60; trial++) {
      const millis = Array.from({ length: 3 + Math.floor(rand() * 6) }, () => sizes[Math.floor(rand() * sizes.length)] ?? 500);
      const total = millis.reduce((s, m) => s + m, 0) / 1000;
      const exact = fewestGpus(millis) - total;
      const bound = placedWasteBound(millis);
      expect(bound).toBeLessThanOrEqual(exact + 1e-9);
      // The bound is at least the waste of GPUs that must be opened for the sum alone.
      expect(bound).toBeGreaterThanOrEqual(Math.ceil(total - 1e-9) - total - 1e-9);
      expect(refusedWasteBound(millis, 0)).toBeLessThanOrEqual(bound + 1e-9);
    }
  });

  it('lets large shares be refused when that frees GPUs for the rest', () => {
    // Ten 0.81 shares: placing k of them wastes 0.19k, refusing the rest leaves 0.81(10-k)
    // unallocated; the two meet at k = 8.1, 1.539 GPUs.
    expect(refusedWasteBound(new Array<number>(10).fill(810), 0)).toBeCloseTo(1.539, 3);
    // Overshoot (arrived demand beyond capacity) lowers the refused side.
    expect(refusedWasteBound(new Array<number>(10).fill(810), 0.81)).toBeLessThan(1.539);
    expect(() => placedWasteBound([0])).toThrow(RangeError);
  });
});
