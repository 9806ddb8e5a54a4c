// Mutable allocation state over an inventory: which devices are held, how much of
// each counter set is consumed, and the free-device counts the node prefilter reads.
// A search makes tentative changes and undoes them; commit() makes them stick.
import { UNREACHABLE, type Inventory } from './inventory.js';
import type { Matcher } from './match.js';

export class State {
  readonly inv: Inventory;
  /** Committed non-admin allocations holding each device. */
  readonly useCount: Int32Array;
  /** Committed holds of a shareable device without a share ID: it is then taken whole. */
  readonly dedicated: Int32Array;
  /** Tentative holds by the decision in progress (admin or not). */
  readonly tentative: Int32Array;
  /** Whether a device's counters are currently consumed (committed or tentative). */
  readonly consumed: Uint8Array;
  /** Counter consumption per set, aligned with CounterSetRec.capacity. */
  readonly used: Float64Array[];
  /**
   * Bumped on every change to a set or to a hold of one of its devices, so
   * per-device caches (the policy's damage) know when to recompute.
   */
  readonly setVersion: Int32Array;
  /** The policy's damage of each device, valid while damageAt equals its set's version. */
  readonly damageCache: Float64Array;
  readonly damageAt: Int32Array;
  /** Committed availability: usable, not held, counters fit. */
  readonly available: Uint8Array;
  /** Used capacity units per node and committed device holds per node. */
  readonly nodeUsed: Float64Array;
  readonly nodeHolds: Int32Array;
  /** Per unit: devices holding it (consuming its counters, or holding a counterless device). */
  readonly unitHolds: Int32Array;
  /** Per domain: units nobody holds. */
  readonly domainFree: Int32Array;
  /** Capacity consumed on each shareable device (milli-units, aligned with its layout); committed plus tentative. */
  readonly capUsed: (Float64Array | undefined)[];
  /** The share of its GPU each shareable device counts for in nodeUsed right now. */
  private readonly sharedUse: Float64Array;
  matcher: Matcher | undefined;

  constructor(inv: Inventory) {
    this.inv = inv;
    const n = inv.devices.length;
    this.useCount = new Int32Array(n);
    this.tentative = new Int32Array(n);
    this.dedicated = new Int32Array(n);
    this.consumed = new Uint8Array(n);
    this.used = inv.counterSets.map((s) => new Float64Array(s.capacity.length));
    this.setVersion = new Int32Array(inv.counterSets.length);
    this.damageCache = new Float64Array(n);
    this.damageAt = new Int32Array(n).fill(-1);
    this.available = new Uint8Array(n);
    this.nodeUsed = new Float64Array(inv.nodes.length);
    this.nodeHolds = new Int32Array(inv.nodes.length);
    this.unitHolds = new Int32Array(inv.units.length);
    this.domainFree = new Int32Array(inv.domains.length);
    this.capUsed = new Array<Float64Array | undefined>(n);
    this.sharedUse = new Float64Array(n);
    for (const dom of inv.domains) this.domainFree[dom.idx] = dom.units.length;
    for (let d = 0; d < n; d++) this.available[d] = this.computeAvailable(d) ? 1 : 0;
  }

  /** Whether the device's counters fit next to what is consumed now. */
  countersFit(d: number): boolean {
    const dev = this.inv.devices[d];
    if (dev === undefined) return false;
    for (const c of dev.consumes) {
      const used = this.used[c.set];
      const cap = this.inv.counterSets[c.set]?.capacity;
      if (used === undefined || cap === undefined) return false;
      const a = c.amounts;
      for (let k = 0; k < a.length; k++) {
        const amt = a[k] ?? 0;
        if (amt !== 0 && (used[k] ?? 0) + amt > (cap[k] ?? 0)) return false;
      }
    }
    return true;
  }

  /** Whether one more allocation consuming `amounts` fits in what the shareable device has left. */
  capacityFits(d: number, amounts: Float64Array): boolean {
    const layout = this.inv.devices[d]?.capacity;
    if (layout === undefined) return true;
    const used = this.capUsed[d];
    const cap = layout.values;
    for (let k = 0; k < amounts.length; k++) {
      const a = amounts[k] ?? 0;
      if (a !== 0 && (used?.[k] ?? 0) + a > (cap[k] ?? 0)) return false;
    }
    return true;
  }

  /** What is left of each capacity of a shareable device, in milli-units. */
  capacityLeft(d: number): Float64Array | undefined {
    const layout = this.inv.devices[d]?.capacity;
    if (layout === undefined) return undefined;
    const used = this.capUsed[d];
    return layout.values.map((v, k) => v - (used?.[k] ?? 0));
  }

  private changeCapacity(d: number, amounts: Float64Array | undefined, sign: 1 | -1): void {
    if (amounts === undefined || amounts.length === 0) return;
    let used = this.capUsed[d];
    if (used === undefined) this.capUsed[d] = used = new Float64Array(amounts.length);
    for (let k = 0; k < amounts.length && k < used.length; k++) used[k] = (used[k] ?? 0) + sign * (amounts[k] ?? 0);
  }

  /** Share of a shareable device's capacity in use: the fullest of its capacities. */
  sharedFill(d: number): number {
    const layout = this.inv.devices[d]?.capacity;
    const used = this.capUsed[d];
    if (layout === undefined || used === undefined) return 0;
    let fill = 0;
    for (let k = 0; k < used.length; k++) {
      const v = layout.values[k] ?? 0;
      if (v > 0) fill = Math.max(fill, (used[k] ?? 0) / v);
    }
    return Math.min(1, fill);
  }

  /** Held by a committed allocation or by the decision in progress (shareable devices excepted). */
  busy(d: number): boolean {
    const dev = this.inv.devices[d];
    if (dev === undefined) return true;
    // A shareable device is busy only while someone holds it outside of sharing.
    if (dev.allowMultiple) return (this.dedicated[d] ?? 0) > 0;
    return (this.useCount[d] ?? 0) > 0 || (this.tentative[d] ?? 0) > 0;
  }

  /** Free for a new, non-admin allocation, including tentative holds. */
  free(d: number): boolean {
    const dev = this.inv.devices[d];
    if (dev === undefined || dev.unusable !== undefined || dev.node === UNREACHABLE) return false;
    if (this.busy(d)) return false;
    return this.consumed[d] === 1 || this.countersFit(d);
  }

  /** Free, and for a shareable device some of every capacity left (an upper bound for the prefilter). */
  private computeAvailable(d: number): boolean {
    if (!this.free(d)) return false;
    const dev = this.inv.devices[d];
    const used = this.capUsed[d];
    if (dev?.allowMultiple !== true || dev.capacity === undefined || used === undefined) return true;
    const cap = dev.capacity.values;
    for (let k = 0; k < used.length; k++) if ((cap[k] ?? 0) > 0 && (used[k] ?? 0) >= (cap[k] ?? 0)) return false;
    return true;
  }

  private holdUnit(u: number, sign: 1 | -1): void {
    if (u < 0) return;
    const before = this.unitHolds[u] ?? 0;
    const after = before + sign;
    this.unitHolds[u] = after;
    const dom = this.inv.units[u]?.domain;
    if (dom === undefined) return;
    if (before === 0 && after > 0) this.domainFree[dom] = (this.domainFree[dom] ?? 0) - 1;
    else if (before > 0 && after === 0) this.domainFree[dom] = (this.domainFree[dom] ?? 0) + 1;
  }

  /** Whether nobody holds any part of the device's GPU. */
  unitFree(d: number): boolean {
    const u = this.inv.deviceUnit[d] ?? -1;
    return u >= 0 && (this.unitHolds[u] ?? 0) === 0;
  }

  private changeCounters(d: number, sign: 1 | -1): void {
    const dev = this.inv.devices[d];
    if (dev === undefined) return;
    for (const c of dev.consumes) {
      const used = this.used[c.set];
      if (used === undefined) continue;
      for (let k = 0; k < c.amounts.length; k++) used[k] = (used[k] ?? 0) + sign * (c.amounts[k] ?? 0);
      this.setVersion[c.set] = ++this.clock;
      this.holdUnit(this.inv.setUnit[c.set] ?? -1, sign);
    }
    this.consumed[d] = sign === 1 ? 1 : 0;
  }

  /** Counterless devices are units of their own; holding one holds the unit. */
  private holdCounterless(d: number, sign: 1 | -1): void {
    const dev = this.inv.devices[d];
    if (dev !== undefined && dev.consumes.length === 0) this.holdUnit(this.inv.deviceUnit[d] ?? -1, sign);
  }

  /** Marks the sets a device consumes from as changed (its holds count for its siblings' caches). */
  private touch(d: number): void {
    for (const c of this.inv.devices[d]?.consumes ?? []) this.setVersion[c.set] = ++this.clock;
  }

  /**
   * Set versions name states, not events: every change gets a version never
   * used before, and undoing a tentative hold (the search undoes in reverse
   * order) gives its sets back the versions they had, so what was cached for
   * them before the search still holds after it.
   */
  private clock = 0;
  private readonly versionStack: number[] = [];

  private saveVersions(d: number): void {
    const consumes = this.inv.devices[d]?.consumes ?? [];
    for (const c of consumes) this.versionStack.push(this.setVersion[c.set] ?? 0);
    this.versionStack.push(consumes.length, d);
  }

  private restoreVersions(d: number): void {
    const st = this.versionStack;
    if (st.length < 2 || st[st.length - 1] !== d) {
      // Not the last hold taken: keep the fresh versions (always safe) and start over.
      st.length = 0;
      return;
    }
    st.pop();
    const n = st.pop() ?? 0;
    const consumes = this.inv.devices[d]?.consumes ?? [];
    for (let i = n - 1; i >= 0; i--) {
      const v = st.pop() ?? 0;
      const set = consumes[i]?.set;
      if (set !== undefined) this.setVersion[set] = v;
    }
  }

  /** Tentatively hold a device; returns whether its counters were consumed (for untake). */
  take(d: number, admin: boolean, amounts?: Float64Array): boolean {
    this.saveVersions(d);
    this.touch(d);
    this.tentative[d] = (this.tentative[d] ?? 0) + 1;
    if (admin) return false;
    this.changeCapacity(d, amounts, 1);
    this.holdCounterless(d, 1);
    if (this.consumed[d] === 1 || (this.inv.devices[d]?.consumes.length ?? 0) === 0) return false;
    this.changeCounters(d, 1);
    return true;
  }

  untake(d: number, admin: boolean, consumedCounters: boolean, amounts?: Float64Array): void {
    this.touch(d);
    this.tentative[d] = (this.tentative[d] ?? 0) - 1;
    if (!admin) {
      this.changeCapacity(d, amounts, -1);
      this.holdCounterless(d, -1);
      if (consumedCounters) this.changeCounters(d, -1);
    }
    this.restoreVersions(d);
  }

  /** Re-derives committed availability of a device and keeps match-set free counts in step. */
  private refresh(d: number): void {
    const now = this.computeAvailable(d) ? 1 : 0;
    if (now === this.available[d]) return;
    this.available[d] = now;
    const dev = this.inv.devices[d];
    if (this.matcher === undefined || dev === undefined || dev.node < 0) return;
    const delta = now === 1 ? 1 : -1;
    const totals = this.matcher.pressure.totalFree;
    this.matcher.pressure.version++;
    for (const id of this.matcher.setsOf(d)) {
      const set = this.matcher.sets[id];
      if (set !== undefined) {
        set.freeCount[dev.node] = (set.freeCount[dev.node] ?? 0) + delta;
        set.firstFree[dev.node] = -2;
      }
      totals[id] = (totals[id] ?? 0) + delta;
    }
  }

  private refreshAround(d: number): void {
    this.refresh(d);
    const dev = this.inv.devices[d];
    if (dev === undefined) return;
    for (const c of dev.consumes) for (const s of this.inv.counterSets[c.set]?.devices ?? []) if (s !== d) this.refresh(s);
  }

  /** Share of a counter set's capacity a device takes (mean over the set's counters). */
  unitShare(d: number): number {
    const dev = this.inv.devices[d];
    if (dev === undefined) return 0;
    if (dev.consumes.length === 0) return 1;
    let share = 0;
    for (const c of dev.consumes) {
      const cap = this.inv.counterSets[c.set]?.capacity;
      if (cap === undefined || cap.length === 0) continue;
      let s = 0;
      for (let k = 0; k < cap.length; k++) {
        const cp = cap[k] ?? 0;
        if (cp > 0) s += (c.amounts[k] ?? 0) / cp;
      }
      share += s / cap.length;
    }
    return share;
  }

  /**
   * What a device counts for in its node's used capacity: its share of the GPU,
   * and for a shareable device that share times how full it is.
   */
  private nodeShare(d: number): number {
    const dev = this.inv.devices[d];
    if (dev === undefined || (this.useCount[d] ?? 0) === 0) return 0;
    const share = this.unitShare(d);
    return dev.allowMultiple && dev.capacity !== undefined ? share * this.sharedFill(d) : share;
  }

  private updateNodeUse(d: number, before: number): void {
    const dev = this.inv.devices[d];
    if (dev === undefined || dev.node < 0) return;
    const after = this.nodeShare(d);
    this.nodeUsed[dev.node] = (this.nodeUsed[dev.node] ?? 0) + after - before;
    this.sharedUse[d] = after;
  }

  /**
   * Makes an allocation stick (tentative holds must have been undone). A shareable
   * device committed without `amounts` and with `dedicated` is held outside of sharing.
   */
  commit(d: number, admin: boolean, amounts?: Float64Array, dedicated = false): void {
    const dev = this.inv.devices[d];
    if (dev === undefined || admin) return;
    this.touch(d);
    if (dedicated && dev.allowMultiple) this.dedicated[d] = (this.dedicated[d] ?? 0) + 1;
    const before = this.sharedUse[d] ?? 0;
    const first = (this.useCount[d] ?? 0) === 0;
    this.useCount[d] = (this.useCount[d] ?? 0) + 1;
    this.holdCounterless(d, 1);
    if (dev.allowMultiple) this.changeCapacity(d, amounts, 1);
    if (first) {
      if (dev.consumes.length > 0 && this.consumed[d] === 0) this.changeCounters(d, 1);
      if (dev.node >= 0) this.nodeHolds[dev.node] = (this.nodeHolds[dev.node] ?? 0) + 1;
    }
    this.updateNodeUse(d, before);
    this.refreshAround(d);
  }

  release(d: number, admin: boolean, amounts?: Float64Array, dedicated = false): void {
    const dev = this.inv.devices[d];
    if (dev === undefined || admin || (this.useCount[d] ?? 0) === 0) return;
    this.touch(d);
    if (dedicated && dev.allowMultiple && (this.dedicated[d] ?? 0) > 0) this.dedicated[d] = (this.dedicated[d] ?? 0) - 1;
    const before = this.sharedUse[d] ?? 0;
    this.useCount[d] = (this.useCount[d] ?? 0) - 1;
    this.holdCounterless(d, -1);
    if (dev.allowMultiple) this.changeCapacity(d, amounts, -1);
    if ((this.useCount[d] ?? 0) === 0) {
      if (this.consumed[d] === 1) this.changeCounters(d, -1);
      if (dev.node >= 0) this.nodeHolds[dev.node] = (this.nodeHolds[dev.node] ?? 0) - 1;
    }
    this.updateNodeUse(d, before);
    this.refreshAround(d);
  }
}
