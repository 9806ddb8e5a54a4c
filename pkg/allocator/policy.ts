// Placement policies: how candidate nodes and devices are ordered and how a
// complete placement is scored. "cascade" limits fragmentation; "first-fit" is the
// upstream-like baseline (inventory order, first solution wins).
import { demandFor, type CapacityDemand, type CapacityLayout, type DemandResult } from './capacity.js';
import type { DemandModel } from './demand.js';
import { fragmentationGrowth, unitIndex } from './fgd.js';
import { attributeReader, type AttributeBag, type Inventory } from './inventory.js';
import type { Matcher, MatchSet } from './match.js';
import type { AltPlan } from './plan.js';
import type { State } from './state.js';
import type { PolicyName, ScoreTerm } from './types.js';

/** One request (with its chosen alternative) inside a search. */
export interface SearchPlan {
  readonly claim: number;
  readonly request: string;
  readonly alt: AltPlan;
  /** Indices into the claim's constraint list that apply to this request. */
  readonly constraints: readonly number[];
}

export interface RankedDevice {
  readonly device: number;
  /** Placement cost of this device alone (see damage()); 0 under first-fit. */
  readonly damage: number;
}

export interface Pick {
  readonly plan: number;
  readonly device: number;
  readonly damage: number;
  /** What the allocation consumes of a shareable device (consumable capacity). */
  readonly demand?: CapacityDemand;
}

export interface PolicyContext {
  readonly inv: Inventory;
  readonly state: State;
  readonly matcher: Matcher;
  /** Attributes that group devices into fast interconnect domains, most specific first. */
  readonly topologyAttributes: readonly string[];
  /** The request shapes the fleet has seen recently. */
  readonly demand: DemandModel;
  /** CPU the decision's pod asks for (millicores), and recent pods' CPU per GPU they took. */
  readonly cpu: { podMilli: number; perUnit: number };
}

export interface Score {
  readonly total: number;
  readonly terms: readonly ScoreTerm[];
}

export interface PlacementPolicy {
  readonly name: string;
  /** How many nodes with a complete placement to compare before choosing. */
  readonly nodesToCompare: number;
  /** Orders nodes that passed the free-device prefilter for these requests, best first (the search takes as many as it needs). */
  orderNodes(nodes: readonly number[], plans: readonly SearchPlan[], ctx: PolicyContext): Iterable<number>;
  /**
   * Orders a request's usable devices on one node, best first. `needed`: how many devices this request and the
   * later ones over the same devices take together; `earlier`: the devices the decision holds already.
   */
  orderDevices(candidates: readonly number[], plan: SearchPlan, needed: number, ctx: PolicyContext, earlier: readonly Pick[]): readonly RankedDevice[];
  /** Scores a complete placement on a node; lower is better. */
  score(node: number, plans: readonly SearchPlan[], picks: readonly Pick[], ctx: PolicyContext): Score;
}

// Weights of the cascade score, in units of "one whole GPU's worth of placements lost".
const W_NODE_BREAK = 3;
const W_NODE_FREE = 1;
const W_TOPOLOGY = 2;
// Cost of breaking a whole GPU inside an interconnect domain with f whole GPUs left:
// the domain's worth is taken as f^2 (big jobs need many GPUs in one domain), so the
// step costs 2f-1; 64 is the worth of a whole 8-GPU domain.
const DOMAIN_NORM = 64;
const W_CONTENTION = 4;
// Fragmentation of shared GPUs, in GPUs' worth of capacity the recent demand could no longer use.
const W_SHARED_FRAGMENTATION = 4;
// What a placement leaves unusable on its node for the recent demand, in GPUs' worth (fgd.ts).
const W_DEMAND_FIT = 10;
/**
 * Cost of a passthrough device whose GPU is not bound to vfio-pci yet: taking
 * it means unbinding the GPU from the nvidia driver while one already bound
 * (a pool GPU, or one a VM left) costs nothing, so a bound GPU on any compared
 * node wins, and a GPU changes driver only when no better choice exists.
 */
const W_REBIND = 20;
/**
 * A device on another NUMA node than the pod's other devices on the node
 * (CPUs, NICs, GPUs of an earlier request): less than breaking a whole GPU, so
 * it decides among otherwise equal devices and never costs a GPU.
 */
const W_NUMA = 0.5;

/**
 * What taking a device costs the devices it shares counters with: every sibling
 * that is placeable now and would not be afterwards, weighted by the square of its
 * size, so losing a 7g or 4g placement costs far more than losing a 1g one. A
 * partly used GPU, whose large placements are already gone, therefore costs less
 * than breaking a whole free one.
 */
export function damage(ctx: PolicyContext, d: number): number {
  const { inv, state } = ctx;
  const dev = inv.devices[d];
  if (dev === undefined) return 0;
  // Devices of one GPU consume from one set: the answer holds until that set changes.
  const only = dev.consumes.length === 1 && singleSetSets(inv)[dev.consumes[0]?.set ?? -1] === 1 ? dev.consumes[0]?.set : undefined;
  const version = only === undefined ? -1 : (state.setVersion[only] ?? 0);
  if (version >= 0 && state.damageAt[d] === version) return state.damageCache[d] ?? 0;
  const lost = siblingsLost(ctx, d);
  if (version >= 0) {
    state.damageAt[d] = version;
    state.damageCache[d] = lost;
  }
  return lost;
}

const singleSet = new WeakMap<Inventory, Uint8Array>();

/** Builds the policies' per-inventory lookups now, as part of the index, rather than in the first decision that needs them. */
const rebindTables = new WeakMap<Inventory, Uint8Array>();

/** 1 for a passthrough device ("vfio" type) whose GPU is not bound to vfio-pci now. */
export function needsRebind(inv: Inventory, d: number): boolean {
  let table = rebindTables.get(inv);
  if (table === undefined) {
    table = new Uint8Array(inv.devices.length);
    // Interned values, read by slot: this runs over every device of the fleet.
    const readers = new Map<string, { type: (b: AttributeBag) => string | undefined; bound: (b: AttributeBag) => string | undefined }>();
    for (const dev of inv.devices) {
      let r = readers.get(dev.driver);
      if (r === undefined) readers.set(dev.driver, (r = { type: attributeReader(`${dev.driver}/type`), bound: attributeReader(`${dev.driver}/vfioBound`) }));
      if (r.type(dev.attributes) === 's:vfio' && r.bound(dev.attributes) === 'b:false') table[dev.idx] = 1;
    }
    rebindTables.set(inv, table);
  }
  return table[d] === 1;
}

export function preparePolicyIndexes(inv: Inventory): void {
  needsRebind(inv, -1);
  singleSetSets(inv);
  unitIndex(inv);
}

/** Per counter set: 1 when every device consuming from it consumes from it alone. */
function singleSetSets(inv: Inventory): Uint8Array {
  let flags = singleSet.get(inv);
  if (flags === undefined) {
    flags = new Uint8Array(inv.counterSets.length);
    for (const set of inv.counterSets) flags[set.idx] = set.devices.every((s) => inv.devices[s]?.consumes.length === 1) ? 1 : 0;
    singleSet.set(inv, flags);
  }
  return flags;
}

function siblingsLost(ctx: PolicyContext, d: number): number {
  const { inv, state } = ctx;
  const dev = inv.devices[d];
  if (dev === undefined) return 0;
  let lost = 0;
  for (const c of dev.consumes) {
    const set = inv.counterSets[c.set];
    const used = state.used[c.set];
    if (set === undefined || used === undefined) continue;
    const cap = set.capacity;
    for (const s of set.devices) {
      if (s === d || !state.free(s)) continue;
      const sib = inv.devices[s];
      if (sib === undefined) continue;
      let conflict = false;
      for (const sc of sib.consumes) {
        if (sc.set !== c.set) continue;
        for (let k = 0; k < cap.length; k++) {
          const both = (c.amounts[k] ?? 0) + (sc.amounts[k] ?? 0);
          if (both !== 0 && (used[k] ?? 0) + both > (cap[k] ?? 0)) {
            conflict = true;
            break;
          }
        }
      }
      if (conflict) {
        const size = state.unitShare(s);
        lost += size * size;
      }
    }
  }
  return lost;
}

/**
 * What taking a device costs its interconnect domain: nothing if its GPU is
 * already partly used, else more the more whole GPUs the domain still has, so
 * single GPUs go to broken or small domains and whole NVLink domains stay free.
 */
export function domainCost(ctx: PolicyContext, d: number): number {
  const { inv, state } = ctx;
  const u = inv.deviceUnit[d] ?? -1;
  if (u < 0 || (state.unitHolds[u] ?? 0) > 0) return 0;
  const dom = inv.units[u]?.domain;
  const f = dom === undefined ? 0 : (state.domainFree[dom] ?? 0);
  return f > 0 ? (2 * f - 1) / DOMAIN_NORM : 0;
}

/**
 * What breaking a whole GPU costs in contention: the GPU could also have served
 * other kinds of requests seen so far (other match sets it belongs to), each
 * weighted by its share of demand over its remaining free supply. So a MIG slice
 * lands on the GPU model fewer requests compete for, and scarce models stay whole.
 */
export function contentionCost(ctx: PolicyContext, d: number, own: number): number {
  const { inv, state, matcher } = ctx;
  const u = inv.deviceUnit[d] ?? -1;
  if (u < 0 || (state.unitHolds[u] ?? 0) > 0) return 0;
  const p = matcher.pressure;
  if (p.totalDemand <= 0) return 0;
  // Units with the same match sets share a list: one sum per list while the pressure stands.
  const sets = matcher.unitSets(u);
  const memo = contentionMemo.get(sets);
  if (memo !== undefined && memo.version === p.version && memo.own === own) return memo.cost;
  let cost = 0;
  for (const id of sets) {
    if (id === own) continue;
    const demand = p.demand[id] ?? 0;
    if (demand === 0) continue;
    cost += (demand / p.totalDemand) * (inv.units.length / Math.max(1, p.totalFree[id] ?? 0));
  }
  const out = W_CONTENTION * cost;
  contentionMemo.set(sets, { version: p.version, own, cost: out });
  return out;
}

const contentionMemo = new WeakMap<readonly number[], { version: number; own: number; cost: number }>();

/** Free share of a shareable device for a left-over vector: the room left in its fullest capacity (0..1). */
function freeShare(values: Float64Array, left: Float64Array): number {
  let s = Infinity;
  for (let k = 0; k < values.length; k++) {
    const v = values[k] ?? 0;
    if (v > 0) s = Math.min(s, Math.max(0, left[k] ?? 0) / v);
  }
  return s === Infinity ? 0 : s;
}

function fitsIn(left: Float64Array, amounts: Float64Array): boolean {
  for (let k = 0; k < amounts.length; k++) if ((amounts[k] ?? 0) > (left[k] ?? 0)) return false;
  return true;
}

/**
 * What taking a share of a shared GPU does to fragmentation, weighted by the
 * recent demand (FGD's measure, per GPU): for each request shape the fleet has
 * been seeing, the GPU's free capacity that shape could not use, after minus
 * before. Filling a partly used GPU to where nothing fits any more, or to where
 * a common share still fits, costs little or even gains; breaking a whole GPU
 * costs what whole-GPU and multi-GPU demand loses.
 */
export function sharedFragmentationCost(ctx: PolicyContext, d: number, mine: CapacityDemand | undefined): number {
  const { inv, state, matcher } = ctx;
  const dev = inv.devices[d];
  const layout = dev?.capacity;
  if (dev === undefined || !dev.allowMultiple || layout === undefined || mine === undefined) return 0;
  const shapes = ctx.demand.shapes();
  if (shapes.length === 0) return 0;
  const left = state.capacityLeft(d);
  if (left === undefined) return 0;
  const after = left.map((v, k) => v - (mine.amounts[k] ?? 0));
  const u = inv.deviceUnit[d] ?? -1;
  const fresh = u >= 0 && (state.unitHolds[u] ?? 0) === 0;
  const unitSets = u >= 0 ? matcher.unitSets(u) : [];
  const before = freeShare(layout.values, left);
  const rest = freeShare(layout.values, after);
  let cost = 0;
  for (const s of shapes) {
    let fb: number;
    let fa: number;
    if (s.shareable) {
      if (matcher.sets[s.setId]?.member[d] !== 1) continue;
      const r = demandFor(layout, s.capacity, s.capacityKey);
      if (!r.ok) continue;
      fb = fitsIn(left, r.demand.amounts) ? 0 : before;
      fa = fitsIn(after, r.demand.amounts) ? 0 : rest;
    } else {
      // Whole GPUs, MIG partitions and multi-GPU requests need the GPU untouched by shares.
      if (!unitSets.includes(s.setId)) continue;
      fb = fresh ? 0 : before;
      fa = rest;
    }
    cost += s.weight * (fa - fb);
  }
  return W_SHARED_FRAGMENTATION * cost;
}

/** The last demand looked up, for loops over devices that mostly share one layout. */
interface DemandMemo {
  layout: CapacityLayout | undefined;
  result: DemandResult | undefined;
}

/** A request's demand on a shareable device, when it is one (for the policies). */
function shareDemand(ctx: PolicyContext, plan: SearchPlan, d: number): CapacityDemand | undefined {
  const dev = ctx.inv.devices[d];
  if (dev === undefined || !dev.allowMultiple || plan.alt.adminAccess) return undefined;
  const r = demandFor(dev.capacity, plan.alt.capacity, plan.alt.capacityKey);
  return r.ok ? r.demand : undefined;
}

/**
 * Free share of a shareable device left after one more allocation of this
 * request, in its fullest capacity (best fit's measure); Infinity when it does not fit. No allocation:
 * this runs for every shared GPU of every candidate node.
 */
function leftAfter(ctx: PolicyContext, plan: SearchPlan, d: number, memo?: DemandMemo): number {
  const dev = ctx.inv.devices[d];
  const layout = dev?.capacity;
  let mine: CapacityDemand | undefined;
  if (memo !== undefined && dev?.allowMultiple === true && !plan.alt.adminAccess) {
    if (memo.layout !== layout || memo.result === undefined) {
      memo.layout = layout;
      memo.result = demandFor(layout, plan.alt.capacity, plan.alt.capacityKey);
    }
    mine = memo.result.ok ? memo.result.demand : undefined;
  } else {
    mine = shareDemand(ctx, plan, d);
  }
  if (layout === undefined || mine === undefined) return ctx.state.unitFree(d) ? 1 : 0;
  const used = ctx.state.capUsed[d];
  const values = layout.values;
  let s = Infinity;
  for (let k = 0; k < values.length; k++) {
    const v = values[k] ?? 0;
    const rest = v - (used?.[k] ?? 0) - (mine.amounts[k] ?? 0);
    if (rest < 0) return Infinity;
    if (v > 0) s = Math.min(s, rest / v);
  }
  return s === Infinity ? 0 : s;
}

/** The least free share any of a node's shared GPUs would keep after this request; Infinity when none has room. */
function tightestShare(ctx: PolicyContext, plan: SearchPlan, node: number): number {
  let best = Infinity;
  const memo: DemandMemo = { layout: undefined, result: undefined };
  for (const x of plan.alt.set.byNode[node] ?? []) if (ctx.state.available[x] === 1) best = Math.min(best, leftAfter(ctx, plan, x, memo));
  return best;
}

/** The interconnect domain of a device: the values of every topology attribute it carries. */
function topologyOf(ctx: PolicyContext, d: number): string | undefined {
  return ctx.inv.deviceDomain[d];
}

/**
 * How many more NUMA nodes a device would add to those the pod's devices on
 * this node already sit on (0 or 1): a MIG slice or a share goes to the NUMA
 * node of the pod's GPUs, CPUs and NICs when it can.
 */
function numaApart(ctx: PolicyContext, d: number, earlier: readonly Pick[]): number {
  const numa = ctx.inv.deviceNuma[d] ?? -1;
  if (numa < 0 || earlier.length === 0) return 0;
  const node = ctx.inv.devices[d]?.node;
  let known = false;
  for (const p of earlier) {
    if (ctx.inv.devices[p.device]?.node !== node) continue;
    const n = ctx.inv.deviceNuma[p.device] ?? -1;
    if (n === numa) return 0;
    if (n >= 0) known = true;
  }
  return known ? 1 : 0;
}

/** The NUMA nodes a set of picks spans (those with a known NUMA node). */
function numaSpan(ctx: PolicyContext, picks: readonly Pick[]): number {
  const seen = new Set<number>();
  for (const p of picks) {
    const n = ctx.inv.deviceNuma[p.device] ?? -1;
    if (n >= 0) seen.add(n);
  }
  return seen.size;
}

const W_STRANDED = 1;

/**
 * GPUs a node would be left unable to use for want of CPU, more than before:
 * with recent pods taking `perUnit` millicores per GPU, a node's free GPUs
 * beyond what its free CPU can feed are stranded (FGD counts them as fragments).
 */
export function strandedCost(ctx: PolicyContext, node: number, units: number): number {
  const n = ctx.inv.nodes[node];
  const per = ctx.cpu.perUnit;
  if (n === undefined || per <= 0 || !Number.isFinite(n.freeMilliCpu)) return 0;
  const total = ctx.inv.nodeUnits[node] ?? 0;
  const freeBefore = Math.max(0, total - (ctx.state.nodeUsed[node] ?? 0));
  const freeAfter = Math.max(0, freeBefore - units);
  const strandedBefore = Math.max(0, freeBefore - n.freeMilliCpu / per);
  const strandedAfter = Math.max(0, freeAfter - Math.max(0, n.freeMilliCpu - ctx.cpu.podMilli) / per);
  return W_STRANDED * (strandedAfter - strandedBefore);
}

/** The first available device of a match set on a node, or -1 (remembered until the node's devices change). */
function firstAvailable(ctx: PolicyContext, set: MatchSet, node: number): number {
  const known = set.firstFree[node] ?? -2;
  if (known !== -2) return known;
  let found = -1;
  for (const d of set.byNode[node] ?? []) {
    if (ctx.state.available[d] === 1) {
      found = d;
      break;
    }
  }
  set.firstFree[node] = found;
  return found;
}

/**
 * Nodes by ascending key, ties by index, handed out lazily: the keys are
 * computed for every candidate (in a typed array), then a heap yields the best
 * ones as the search asks for them, since it rarely looks past the first few.
 */
function sortByKey(nodes: readonly number[], key: (n: number) => number): Iterable<number> {
  const n = nodes.length;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = key(nodes[i] ?? 0);
  return {
    *[Symbol.iterator]() {
      const heap = new Int32Array(n);
      for (let i = 0; i < n; i++) heap[i] = i;
      const less = (a: number, b: number): boolean => {
        const ka = keys[a] ?? 0;
        const kb = keys[b] ?? 0;
        return ka < kb || (ka === kb && (nodes[a] ?? 0) < (nodes[b] ?? 0));
      };
      const down = (start: number, size: number): void => {
        let i = start;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= size) return;
          const r = l + 1;
          const c = r < size && less(heap[r] ?? 0, heap[l] ?? 0) ? r : l;
          if (!less(heap[c] ?? 0, heap[i] ?? 0)) return;
          const t = heap[i] ?? 0;
          heap[i] = heap[c] ?? 0;
          heap[c] = t;
          i = c;
        }
      };
      for (let i = (n >> 1) - 1; i >= 0; i--) down(i, n);
      for (let size = n; size > 0; size--) {
        yield nodes[heap[0] ?? 0] ?? 0;
        heap[0] = heap[size - 1] ?? 0;
        down(0, size - 1);
      }
    },
  };
}

function nodeFreeShare(ctx: PolicyContext, node: number): number {
  const units = ctx.inv.nodeUnits[node] ?? 0;
  if (units <= 0) return 0;
  return Math.max(0, units - (ctx.state.nodeUsed[node] ?? 0)) / units;
}

class CascadePolicy implements PlacementPolicy {
  readonly name = 'cascade';
  readonly nodesToCompare: number;

  constructor(nodesToCompare: number) {
    this.nodesToCompare = nodesToCompare;
  }

  orderNodes(nodes: readonly number[], plans: readonly SearchPlan[], ctx: PolicyContext): Iterable<number> {
    // An estimate of the final score from one free device per request: used nodes
    // before untouched ones (keep whole nodes free), fuller nodes first (best fit),
    // and hardware fewer requests compete for.
    // GPU units the request takes, roughly (a share as half a GPU), for the CPU term.
    let units = 0;
    for (const p of plans) if (!p.alt.adminAccess) units += p.alt.set.shareable ? 0.5 : p.alt.all ? 1 : p.alt.count;
    const key = (n: number): number => {
      let k = ((ctx.state.nodeHolds[n] ?? 0) === 0 ? W_NODE_BREAK : 0) + W_NODE_FREE * nodeFreeShare(ctx, n) + strandedCost(ctx, n, units);
      for (const p of plans) {
        if (p.alt.adminAccess) continue;
        if (p.alt.set.shareable) {
          // Shares: nodes whose shared GPUs this request would fill most tightly first.
          const best = tightestShare(ctx, p, n);
          k += best === Infinity ? W_NODE_BREAK * 10 : W_NODE_FREE * best;
          continue;
        }
        const d = firstAvailable(ctx, p.alt.set, n);
        if (d >= 0) k += domainCost(ctx, d) + contentionCost(ctx, d, p.alt.set.id);
      }
      return k;
    };
    return sortByKey(nodes, key);
  }

  orderDevices(candidates: readonly number[], plan: SearchPlan, needed: number, ctx: PolicyContext, earlier: readonly Pick[]): readonly RankedDevice[] {
    const ranked = candidates.map((device) => ({
      device,
      damage: plan.alt.adminAccess
        ? 0
        : damage(ctx, device) +
          domainCost(ctx, device) +
          contentionCost(ctx, device, plan.alt.set.id) +
          sharedFragmentationCost(ctx, device, shareDemand(ctx, plan, device)) +
          (needsRebind(ctx.inv, device) ? W_REBIND : 0) +
          W_NUMA * numaApart(ctx, device, earlier),
    }));
    ranked.sort((a, b) => a.damage - b.damage || a.device - b.device);
    if (needed <= 1) return ranked;
    // Several devices: keep them in one interconnect domain, preferring the domain
    // that fits the request most tightly and then the cheapest devices in it.
    const groups = new Map<string, RankedDevice[]>();
    for (const r of ranked) {
      const g = topologyOf(ctx, r.device) ?? '';
      let list = groups.get(g);
      if (list === undefined) groups.set(g, (list = []));
      list.push(r);
    }
    if (groups.size <= 1) return ranked;
    const ordered = [...groups.values()].map((list) => {
      const fits = list.length >= needed;
      let cost = 0;
      for (const r of list.slice(0, needed)) cost += r.damage;
      return { list, fits, cost, size: list.length, first: list[0]?.device ?? 0 };
    });
    ordered.sort((a, b) => Number(b.fits) - Number(a.fits) || a.cost - b.cost || (a.fits ? a.size - b.size : b.size - a.size) || a.first - b.first);
    return ordered.flatMap((g) => g.list);
  }

  score(node: number, plans: readonly SearchPlan[], picks: readonly Pick[], ctx: PolicyContext): Score {
    const terms: ScoreTerm[] = [];
    let dmg = 0;
    for (const p of picks) dmg += p.damage;
    terms.push({
      name: 'fragmentation',
      value: dmg,
      reason: picks.some((p) => needsRebind(ctx.inv, p.device))
        ? 'a GPU is taken from the nvidia driver for passthrough, which no GPU already bound to vfio-pci would need'
        : dmg === 0
          ? 'no other placement on the same GPUs is lost and no whole GPU is broken'
          : dmg < 0
            ? 'fills a shared GPU so that less of it is left unusable for the requests this cluster sees'
            : 'MIG placements lost on the same GPUs (size-weighted), whole GPUs broken in their NVLink domain, demand for the GPUs broken, and shared capacity left unusable',
    });
    if (node >= 0 && ctx.demand.shapes().length > 0) {
      // Once the cluster has shown what it runs, the node is judged by what the
      // placement leaves for that demand (FGD's measure, CPU included).
      const grown = fragmentationGrowth(ctx, node, plans, picks);
      terms.push({
        name: 'demand-fit',
        value: W_DEMAND_FIT * grown,
        reason:
          grown > 0
            ? `${fmt(grown)} GPUs' worth of the node's free capacity becomes unusable for the requests this cluster sees (weighted by how often each arrives)`
            : grown < 0
              ? `${fmt(-grown)} GPUs' worth of the node's unusable free capacity is put to use`
              : "leaves the node's free capacity as usable for the requests this cluster sees as before",
      });
    } else if (node >= 0) {
      // Before any demand is seen: keep whole nodes free and fill used ones first.
      const holds = ctx.state.nodeHolds[node] ?? 0;
      const units = ctx.inv.nodeUnits[node] ?? 0;
      let taken = 0;
      for (const p of picks) if (ctx.inv.devices[p.device]?.node === node && !(plans[p.plan]?.alt.adminAccess ?? false)) taken += ctx.state.unitShare(p.device);
      const freeAfter = units > 0 ? Math.max(0, units - (ctx.state.nodeUsed[node] ?? 0) - taken) / units : 0;
      const breaks = holds === 0 && freeAfter > 0 ? W_NODE_BREAK : 0;
      terms.push({ name: 'node-break', value: breaks, reason: breaks > 0 ? 'starts using a node that was entirely free' : holds === 0 ? 'takes a whole free node' : 'node already in use' });
      terms.push({ name: 'node-free', value: W_NODE_FREE * freeAfter, reason: `${fmt(100 * freeAfter)}% of the node's GPU capacity stays free (fuller nodes first)` });
      const stranded = strandedCost(ctx, node, taken);
      if (stranded !== 0) {
        terms.push({
          name: 'cpu',
          value: stranded,
          reason: stranded > 0 ? 'GPUs left on the node without the CPU recent pods need to use them' : 'uses GPUs the node had too little CPU to hand out otherwise',
        });
      }
    }
    let topo = 0;
    const spread: string[] = [];
    plans.forEach((plan, i) => {
      const mine = picks.filter((p) => p.plan === i);
      if (mine.length < 2) return;
      const domains = new Set(mine.map((p) => topologyOf(ctx, p.device) ?? '?'));
      if (domains.size > 1) {
        topo += W_TOPOLOGY * (domains.size - 1);
        spread.push(`${plan.alt.resultName} spans ${domains.size} domains`);
      }
    });
    terms.push({ name: 'topology', value: topo, reason: spread.length > 0 ? spread.join('; ') : 'multi-device requests stay in one interconnect domain' });
    const own = picks.filter((p) => !(plans[p.plan]?.alt.adminAccess ?? false) && (node < 0 || ctx.inv.devices[p.device]?.node === node));
    const numas = numaSpan(ctx, own);
    if (numas > 1) terms.push({ name: 'numa', value: W_NUMA * (numas - 1), reason: `the pod's devices on the node span ${numas} NUMA nodes` });
    let total = 0;
    for (const t of terms) total += t.value;
    return { total, terms };
  }
}

/**
 * Best fit: the tightest remaining capacity. Nodes with the least free GPU
 * capacity first; on a node, the device that leaves the least free capacity
 * (a shared GPU filled most, a partly used GPU before a whole one).
 */
class BestFitPolicy implements PlacementPolicy {
  readonly name = 'best-fit';
  readonly nodesToCompare: number;

  constructor(nodesToCompare: number) {
    this.nodesToCompare = nodesToCompare;
  }

  orderNodes(nodes: readonly number[], plans: readonly SearchPlan[], ctx: PolicyContext): Iterable<number> {
    const key = (n: number): number => {
      let k = nodeFreeShare(ctx, n);
      for (const p of plans) {
        if (!p.alt.set.shareable || p.alt.adminAccess) continue;
        const best = tightestShare(ctx, p, n);
        k += best === Infinity ? 100 : best;
      }
      return k;
    };
    return sortByKey(nodes, key);
  }

  orderDevices(candidates: readonly number[], plan: SearchPlan, _needed: number, ctx: PolicyContext): readonly RankedDevice[] {
    const ranked = candidates.map((device) => {
      // Whole or partitioned devices: how much of their GPU stays free (a partly used GPU first).
      const dev = ctx.inv.devices[device];
      const leftover = dev?.allowMultiple ? leftAfter(ctx, plan, device) : ctx.state.unitFree(device) ? 1 - ctx.state.unitShare(device) : -ctx.state.unitShare(device);
      return { device, damage: leftover };
    });
    return ranked.sort((a, b) => a.damage - b.damage || a.device - b.device);
  }

  score(node: number, _plans: readonly SearchPlan[], picks: readonly Pick[], ctx: PolicyContext): Score {
    let left = 0;
    for (const p of picks) left += p.damage;
    const free = node >= 0 ? nodeFreeShare(ctx, node) : 0;
    return { total: left + free, terms: [{ name: 'best-fit', value: left + free, reason: 'the least capacity left free on the devices and the node' }] };
  }
}

class FirstFitPolicy implements PlacementPolicy {
  readonly name = 'first-fit';
  readonly nodesToCompare = 1;

  orderNodes(nodes: readonly number[]): readonly number[] {
    return nodes;
  }

  orderDevices(candidates: readonly number[]): readonly RankedDevice[] {
    return candidates.map((device) => ({ device, damage: 0 }));
  }

  score(): Score {
    return { total: 0, terms: [{ name: 'first-fit', value: 0, reason: 'first node and devices in inventory order that fit' }] };
  }
}

export function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

export function makePolicy(name: PolicyName | PlacementPolicy, nodesToCompare = 4): PlacementPolicy {
  if (typeof name !== 'string') return name;
  switch (name) {
    case 'cascade':
      return new CascadePolicy(nodesToCompare);
    case 'first-fit':
      return new FirstFitPolicy();
    case 'best-fit':
      return new BestFitPolicy(nodesToCompare);
  }
}
