// Fragmentation of a node for the demand the fleet is seeing, as FGD (USENIX
// ATC'23) measures it: for each recent request shape, the free GPU capacity on
// the node that shape could not use (a GPU with too little left for a share, a
// partly used GPU for whole-GPU work, every free GPU when the node lacks the CPU
// the shape's pods need or has too few whole GPUs), weighted by the shape's share
// of demand. Placing a pod where this grows least keeps the fleet able to host
// what keeps arriving.
import { demandFor, type CapacityLayout } from './capacity.js';
import type { DemandShape } from './demand.js';
import type { Inventory } from './inventory.js';
import type { Pick, PolicyContext, SearchPlan } from './policy.js';

/** Per-inventory lookups: each GPU unit's shareable device and counter set, and each node's units. */
interface UnitIndex {
  readonly shared: Int32Array;
  readonly set: Int32Array;
  readonly byNode: readonly (readonly number[])[];
}

const indexes = new WeakMap<Inventory, UnitIndex>();

export function unitIndex(inv: Inventory): UnitIndex {
  let ix = indexes.get(inv);
  if (ix !== undefined) return ix;
  const shared = new Int32Array(inv.units.length).fill(-1);
  const set = new Int32Array(inv.units.length).fill(-1);
  const byNode: number[][] = inv.nodes.map(() => []);
  inv.setUnit.forEach((u, s) => {
    if (u >= 0 && (set[u] ?? -1) < 0) set[u] = s;
  });
  inv.unitDevices.forEach((devices, u) => {
    for (const d of devices) if (inv.devices[d]?.allowMultiple === true && inv.devices[d]?.capacity !== undefined && (shared[u] ?? -1) < 0) shared[u] = d;
  });
  for (const u of inv.units) byNode[u.node]?.push(u.idx);
  ix = { shared, set, byNode };
  indexes.set(inv, ix);
  return ix;
}

/** The largest share of any capacity an allocation takes of a layout (0..1). */
function fraction(layout: CapacityLayout, amounts: Float64Array): number {
  let f = 0;
  for (let k = 0; k < layout.values.length; k++) {
    const v = layout.values[k] ?? 0;
    if (v > 0) f = Math.max(f, (amounts[k] ?? 0) / v);
  }
  return f;
}

/** One GPU unit as the measure sees it. */
interface UnitView {
  readonly unit: number;
  free: number;
  /** Nobody holds any part of it. */
  fresh: boolean;
  /** Held through its shareable device (other shares may join; nothing else may). */
  sharing: boolean;
}

function viewOf(ctx: PolicyContext, ix: UnitIndex, u: number): UnitView {
  const { state, inv } = ctx;
  if ((state.unitHolds[u] ?? 0) === 0) return { unit: u, free: 1, fresh: true, sharing: false };
  const s = ix.shared[u] ?? -1;
  if (s >= 0 && (state.useCount[s] ?? 0) > 0) {
    return (state.dedicated[s] ?? 0) > 0 ? { unit: u, free: 0, fresh: false, sharing: false } : { unit: u, free: 1 - state.sharedFill(s), fresh: false, sharing: true };
  }
  const set = ix.set[u] ?? -1;
  const cap = inv.counterSets[set]?.capacity;
  const used = state.used[set];
  if (cap === undefined || used === undefined) return { unit: u, free: 0, fresh: false, sharing: false };
  let share = 0;
  let n = 0;
  for (let k = 0; k < cap.length; k++) {
    const c = cap[k] ?? 0;
    if (c <= 0) continue;
    share += (used[k] ?? 0) / c;
    n++;
  }
  return { unit: u, free: n === 0 ? 0 : Math.max(0, 1 - share / n), fresh: false, sharing: false };
}

/** What one shape needs of a unit, resolved once per decision. */
interface ShapeNeed {
  readonly shape: DemandShape;
  /** Share of a shared GPU it takes (shares), per layout. */
  readonly share: Map<CapacityLayout, number | undefined>;
  /** Whole GPUs it needs (whole-GPU shapes); 0 for partitions. */
  readonly whole: number;
  /** Share of its GPU the smallest device of a partition shape takes. */
  readonly partition: number;
}

/** Needs per list of shapes: the demand model hands out one list until its next observation. */
const needsCache = new WeakMap<readonly DemandShape[], ShapeNeed[]>();

function needsOf(ctx: PolicyContext): ShapeNeed[] {
  const shapes = ctx.demand.shapes();
  const hit = needsCache.get(shapes);
  if (hit !== undefined) return hit;
  const out: ShapeNeed[] = [];
  needsCache.set(shapes, out);
  for (const shape of shapes) {
    const set = ctx.matcher.sets[shape.setId];
    if (set === undefined || shape.all) continue;
    if (shape.shareable) {
      out.push({ shape, share: new Map(), whole: 0, partition: 0 });
      continue;
    }
    const first = set.matched[0];
    const size = first === undefined ? 1 : ctx.state.unitShare(first);
    if (size >= 0.999) out.push({ shape, share: new Map(), whole: shape.count, partition: 0 });
    else out.push({ shape, share: new Map(), whole: 0, partition: size });
  }
  return out;
}

function shareOn(need: ShapeNeed, layout: CapacityLayout): number | undefined {
  if (need.share.has(layout)) return need.share.get(layout);
  const r = demandFor(layout, need.shape.capacity, need.shape.capacityKey);
  const f = r.ok ? fraction(layout, r.demand.amounts) : undefined;
  need.share.set(layout, f);
  return f;
}

/** The node's fragmentation for the shapes: free GPU capacity each could not use, weighted. */
function fragmentation(ctx: PolicyContext, ix: UnitIndex, needs: readonly ShapeNeed[], views: readonly UnitView[], freeCpu: number): number {
  const { inv, matcher } = ctx;
  let total = 0;
  for (const need of needs) {
    const { shape } = need;
    const set = matcher.sets[shape.setId];
    if (set === undefined) continue;
    const cpuShort = freeCpu < shape.cpuMilli;
    let lost = 0;
    if (shape.shareable) {
      for (const v of views) {
        if (v.free <= 0) continue;
        const s = ix.shared[v.unit] ?? -1;
        const layout = inv.devices[s]?.capacity;
        if (s < 0 || set.member[s] !== 1 || layout === undefined) continue;
        const want = shareOn(need, layout);
        if (cpuShort || want === undefined || (!v.fresh && !v.sharing) || want > v.free + 1e-9) lost += v.free;
      }
    } else {
      let fresh = 0;
      let free = 0;
      let partial = 0;
      for (const v of views) {
        if (v.free <= 0 || !matcher.unitSets(v.unit).includes(shape.setId)) continue;
        free += v.free;
        if (v.fresh) fresh++;
        else if (need.whole > 0 || v.sharing || v.free + 1e-9 < need.partition) partial += v.free;
      }
      lost = cpuShort || (need.whole > 0 && fresh < need.whole) ? free : partial;
    }
    total += shape.weight * lost;
  }
  return total;
}

/**
 * How much a placement on a node grows its fragmentation for the recent demand,
 * in GPUs' worth of capacity (negative: it shrinks). The picks are applied to a
 * view of the node's GPUs; the state is not touched.
 */
export function fragmentationGrowth(ctx: PolicyContext, node: number, plans: readonly SearchPlan[], picks: readonly Pick[]): number {
  const ix = unitIndex(ctx.inv);
  const needs = needsOf(ctx);
  if (needs.length === 0) return 0;
  const units = ix.byNode[node] ?? [];
  const before = units.map((u) => viewOf(ctx, ix, u));
  const after = before.map((v) => ({ ...v }));
  for (const p of picks) {
    if (plans[p.plan]?.alt.adminAccess === true) continue;
    const u = ctx.inv.deviceUnit[p.device] ?? -1;
    const v = after.find((x) => x.unit === u);
    if (v === undefined) continue;
    const layout = ctx.inv.devices[p.device]?.capacity;
    if (p.demand !== undefined && layout !== undefined && ctx.inv.devices[p.device]?.allowMultiple === true) {
      v.free = Math.max(0, v.free - fraction(layout, p.demand.amounts));
      v.sharing = true;
    } else {
      v.free = Math.max(0, v.free - ctx.state.unitShare(p.device));
      v.sharing = false;
    }
    v.fresh = false;
  }
  const n = ctx.inv.nodes[node];
  const cpu = n === undefined || !Number.isFinite(n.freeMilliCpu) ? Infinity : n.freeMilliCpu;
  return fragmentation(ctx, ix, needs, after, cpu - ctx.cpu.podMilli) - fragmentation(ctx, ix, needs, before, cpu);
}
