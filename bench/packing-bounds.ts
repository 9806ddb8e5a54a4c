// Lower bounds on what packing GPU shares must leave unused, for the sharing
// stream's report (bench/sharing.ts). A share is a fraction of one GPU, in
// thousandths (the trace's gpu_milli); a GPU holds shares that sum to at most 1000.
//
// The bounds are linear programs over packing patterns (Gilmore and Gomory's
// cutting-stock relaxation), solved by column generation: a small simplex on the
// dual, and a bounded knapsack that finds the pattern the current prices say is
// worth adding. Every answer is a dual-feasible value, so it is a true lower
// bound, not an estimate.

/** One GPU's worth of share, in thousandths. */
const GPU = 1000;
const EPS = 1e-9;

/**
 * max c.x subject to A x <= b, x >= 0, with every b >= 0 (so the slack basis is
 * feasible). Dense tableau, Bland's rule against cycling on the many zero rows.
 */
export function simplexMax(A: readonly (readonly number[])[], b: readonly number[], c: readonly number[]): { x: number[]; value: number } {
  const m = A.length;
  const n = c.length;
  const w = n + m;
  const t = A.map((row, r) => {
    const out = new Float64Array(w + 1);
    row.forEach((v, j) => (out[j] = v));
    out[n + r] = 1;
    out[w] = b[r] ?? 0;
    return out;
  });
  const z = new Float64Array(w + 1);
  c.forEach((v, j) => (z[j] = -v));
  const basis = Int32Array.from({ length: m }, (_v, r) => n + r);
  for (let step = 0; step < 100_000; step++) {
    let enter = -1;
    for (let j = 0; j < w; j++)
      if ((z[j] ?? 0) < -EPS) {
        enter = j;
        break;
      }
    if (enter < 0) break;
    let leave = -1;
    let ratio = Infinity;
    for (let r = 0; r < m; r++) {
      const a = t[r]?.[enter] ?? 0;
      if (a <= EPS) continue;
      const q = (t[r]?.[w] ?? 0) / a;
      if (q < ratio - 1e-12 || (Math.abs(q - ratio) <= 1e-12 && leave >= 0 && (basis[r] ?? 0) < (basis[leave] ?? 0))) {
        ratio = q;
        leave = r;
      }
    }
    if (leave < 0) throw new Error('the linear program is unbounded');
    const pivot = t[leave];
    if (pivot === undefined) break;
    const pv = pivot[enter] ?? 1;
    for (let j = 0; j <= w; j++) pivot[j] = (pivot[j] ?? 0) / pv;
    for (const row of [...t, z]) {
      if (row === pivot) continue;
      const f = row[enter] ?? 0;
      if (f !== 0) for (let j = 0; j <= w; j++) row[j] = (row[j] ?? 0) - f * (pivot[j] ?? 0);
    }
    basis[leave] = enter;
  }
  const x = new Array<number>(n).fill(0);
  basis.forEach((v, r) => {
    if (v < n) x[v] = t[r]?.[w] ?? 0;
  });
  return { x, value: z[w] ?? 0 };
}

interface Sizes {
  /** Distinct share sizes, largest first. */
  readonly sizes: readonly number[];
  /** How many shares of each size. */
  readonly counts: readonly number[];
  /** Sum of all shares, in GPUs. */
  readonly total: number;
}

function sizesOf(millis: readonly number[]): Sizes {
  const counts = new Map<number, number>();
  for (const m of millis) {
    if (!(m > 0 && m <= GPU)) throw new RangeError(`a share must be in (0, ${GPU}], got ${m}`);
    counts.set(m, (counts.get(m) ?? 0) + 1);
  }
  const sizes = [...counts.keys()].sort((a, b) => b - a);
  return { sizes, counts: sizes.map((s) => counts.get(s) ?? 0), total: millis.reduce((s, m) => s + m, 0) / GPU };
}

/** The pattern (shares per size on one GPU, at most as many as there are) of the highest total price. */
function bestPattern({ sizes, counts }: Sizes, price: readonly number[]): { value: number; pattern: number[] } {
  const best = new Float64Array(GPU + 1);
  const pick: number[][] = Array.from({ length: GPU + 1 }, () => new Array<number>(sizes.length).fill(0));
  sizes.forEach((s, i) => {
    const copies = Math.min(counts[i] ?? 0, Math.floor(GPU / s));
    for (let k = 0; k < copies; k++)
      for (let room = GPU; room >= s; room--) {
        const v = (best[room - s] ?? 0) + (price[i] ?? 0);
        if (v > (best[room] ?? 0) + 1e-12) {
          best[room] = v;
          const p = [...(pick[room - s] ?? [])];
          p[i] = (p[i] ?? 0) + 1;
          pick[room] = p;
        }
      }
  });
  let at = 0;
  for (let room = 1; room <= GPU; room++) if ((best[room] ?? 0) > (best[at] ?? 0)) at = room;
  return { value: best[at] ?? 0, pattern: pick[at] ?? [] };
}

/** One size per GPU, as many as fit: the patterns column generation starts from. */
function startPatterns({ sizes, counts }: Sizes): number[][] {
  return sizes.map((s, i) => sizes.map((_v, j) => (j === i ? Math.min(counts[i] ?? 0, Math.floor(GPU / s)) : 0)));
}

/**
 * Every share placed: no packing can leave less than this many GPUs' worth unused
 * on the GPUs it uses. The LP says how many GPUs the shares need at the least
 * (a fractional count, rounded up); the bound is that count less the shares' sum.
 */
export function placedWasteBound(millis: readonly number[]): number {
  if (millis.length === 0) return 0;
  const s = sizesOf(millis);
  const patterns = startPatterns(s);
  // Dual: max counts.y subject to pattern.y <= 1 for every pattern.
  for (let round = 0; round < 10_000; round++) {
    const { x: y } = simplexMax(
      patterns,
      patterns.map(() => 1),
      s.counts,
    );
    const { value, pattern } = bestPattern(s, y);
    if (value <= 1 + EPS) {
      // y scaled down by the best pattern's price is dual-feasible, hence a bound.
      const bins = s.counts.reduce((sum, c, i) => sum + c * (y[i] ?? 0), 0) / Math.max(1, value);
      return Math.ceil(bins - 1e-6) - s.total;
    }
    patterns.push(pattern);
  }
  throw new Error('column generation did not converge');
}

/**
 * Shares may also be refused: a bound on the unallocated GPU capacity when the
 * arrived demand has reached the fleet's capacity (overshooting it by
 * `overshoot` GPUs). Unallocated capacity then equals the refused demand less
 * the overshoot, and is at least what the placed shares leave unused on their
 * GPUs; refusing large shares frees GPUs for the rest, so this bound is lower
 * than placedWasteBound's. No policy that places what arrives can beat it.
 */
export function refusedWasteBound(millis: readonly number[], overshoot: number): number {
  if (millis.length === 0) return 0;
  const s = sizesOf(millis);
  const n = s.sizes.length;
  const patterns = startPatterns(s);
  const share = s.sizes.map((m) => m / GPU);
  // Primal: min t with t >= refused - overshoot, t >= GPUs used - placed, placed per
  // size covered by patterns and at most the count. Its dual, over (u, v, y, w):
  // max (total - overshoot) u - counts.w subject to u + v <= 1,
  // pattern.y - v <= 0 per pattern, share_i (u + v) - y_i - w_i <= 0 per size.
  for (let round = 0; round < 10_000; round++) {
    const vars = 2 + 2 * n;
    const row = (): number[] => new Array<number>(vars).fill(0);
    const A: number[][] = [];
    const b: number[] = [];
    const first = row();
    first[0] = 1;
    first[1] = 1;
    A.push(first);
    b.push(1);
    for (const p of patterns) {
      const r = row();
      r[1] = -1;
      p.forEach((a, i) => (r[2 + i] = a));
      A.push(r);
      b.push(0);
    }
    for (let i = 0; i < n; i++) {
      const r = row();
      r[0] = share[i] ?? 0;
      r[1] = share[i] ?? 0;
      r[2 + i] = -1;
      r[2 + n + i] = -1;
      A.push(r);
      b.push(0);
    }
    const c = row();
    c[0] = s.total - overshoot;
    for (let i = 0; i < n; i++) c[2 + n + i] = -(s.counts[i] ?? 0);
    const { x, value: objective } = simplexMax(A, b, c);
    const v = x[1] ?? 0;
    const { value, pattern } = bestPattern(s, x.slice(2, 2 + n));
    if (value <= v + EPS) return Math.max(0, objective);
    patterns.push(pattern);
  }
  throw new Error('column generation did not converge');
}
