// Depth-first search for a complete placement of a pod's requests on one node,
// in request order (as the API's allocator does), with the policy's device order,
// constraint look-ahead, symmetry breaking and a step budget so it cannot explode.
import { LIST_PREFIX, elementsOf, intersection, overlaps } from './attrsets.js';
import { LIMITS } from '../api/resource.js';
import { demandFor, type CapacityDemand } from './capacity.js';
import { SHARED, attributeKeyText, type Inventory } from './inventory.js';
import { deviceTaintBlocks, nodeSelectorMatches } from './nodes.js';
import type { ClaimPlan, ConstraintPlan } from './plan.js';
import type { Pick, PlacementPolicy, PolicyContext, RankedDevice, SearchPlan } from './policy.js';
import type { State } from './state.js';

/** Why a node had no placement, counted per reason text. */
export type FailureNotes = Map<string, number>;

export interface SearchResult {
  readonly ok: boolean;
  readonly picks: readonly Pick[];
  readonly steps: number;
  /** True when the budget ran out before the search finished. */
  readonly exhausted: boolean;
}

interface ConstraintState {
  readonly plan: ConstraintPlan;
  /** matchAttribute: what every device so far shares (the running intersection of their values). */
  value: string | undefined;
  /** The values before each pick, so that undoing a pick restores the intersection. */
  readonly history: (string | undefined)[];
  count: number;
  /** distinctAttribute: the elements taken so far, with how many devices carry each. */
  readonly seen: Map<string, number>;
}

export function note(notes: FailureNotes, reason: string): void {
  notes.set(reason, (notes.get(reason) ?? 0) + 1);
}

function constraintText(c: ConstraintPlan): string {
  return `${c.kind === 'match' ? 'matchAttribute' : 'distinctAttribute'} ${c.attribute}`;
}

/** Whether a device reachable from several nodes can be used from this node. */
export function sharedDeviceServes(inv: Inventory, d: number, node: number): boolean {
  const dev = inv.devices[d];
  const n = inv.nodes[node];
  if (dev === undefined || n === undefined) return false;
  if (dev.allNodes) return true;
  if (dev.nodeSelector !== undefined) return nodeSelectorMatches(dev.nodeSelector, n);
  return false;
}

export class NodeSearch {
  private readonly inv: Inventory;
  private readonly state: State;
  private readonly policy: PlacementPolicy;
  private readonly ctx: PolicyContext;
  private readonly claims: readonly ClaimPlan[];
  private readonly plans: readonly SearchPlan[];
  private readonly node: number;
  private readonly budget: number;
  private readonly notes: FailureNotes;
  private constraints: ConstraintState[][] = [];
  private picks: Pick[] = [];
  private consumedFlags: boolean[] = [];
  private perClaim: number[] = [];
  /** allocationMode All: the devices each such request takes, fixed before the search starts. */
  private allLists = new Map<number, readonly number[]>();
  private steps = 0;
  private exhausted = false;

  constructor(args: {
    inv: Inventory;
    state: State;
    policy: PlacementPolicy;
    ctx: PolicyContext;
    claims: readonly ClaimPlan[];
    plans: readonly SearchPlan[];
    node: number;
    budget: number;
    notes: FailureNotes;
  }) {
    this.inv = args.inv;
    this.state = args.state;
    this.policy = args.policy;
    this.ctx = args.ctx;
    this.claims = args.claims;
    this.plans = args.plans;
    this.node = args.node;
    this.budget = args.budget;
    this.notes = args.notes;
  }

  /** Runs the search and leaves the state as it found it; the picks describe the placement. */
  run(): SearchResult {
    this.constraints = this.claims.map((c) => c.constraints.map((plan) => ({ plan, value: undefined, history: [], count: 0, seen: new Map<string, number>() })));
    this.picks = [];
    this.consumedFlags = [];
    this.perClaim = this.claims.map(() => 0);
    // As upstream: devices that cannot serve the request's capacity at all, or whose
    // capacity existing allocations used up, are not part of "all devices".
    this.allLists = new Map();
    this.plans.forEach((plan, i) => {
      if (!plan.alt.all) return;
      this.allLists.set(
        i,
        this.devicesFor(plan).filter((d) => {
          const demand = this.demand(plan, d, false);
          return demand !== false && (demand === undefined || this.state.capacityFits(d, demand.amounts));
        }),
      );
    });
    const ok = this.solve(0);
    const picks = [...this.picks];
    // Undo in reverse order so counters return exactly to where they were.
    for (let i = this.picks.length - 1; i >= 0; i--) this.undo(i);
    return { ok, picks, steps: this.steps, exhausted: this.exhausted };
  }

  /** Devices of a match set this node can use: its own plus matching shared ones. */
  private devicesFor(plan: SearchPlan): number[] {
    const set = plan.alt.set;
    const local = set.byNode[this.node] ?? [];
    if (set.shared.length === 0) return [...local];
    return [...local, ...set.shared.filter((d) => sharedDeviceServes(this.inv, d, this.node))];
  }

  private heldInClaim(claim: number, d: number): boolean {
    for (const p of this.picks) if (p.device === d && this.plans[p.plan]?.claim === claim) return true;
    return false;
  }

  /**
   * What one allocation of the device takes for this request: undefined when it
   * consumes nothing, false (noted) when the device cannot serve the request's capacity.
   */
  private demand(plan: SearchPlan, d: number, record: boolean): CapacityDemand | undefined | false {
    const dev = this.inv.devices[d];
    if (dev === undefined) return false;
    if (plan.alt.capacity === undefined && !dev.allowMultiple) return undefined;
    const r = demandFor(dev.capacity, plan.alt.capacity, plan.alt.capacityKey);
    if (!r.ok) {
      if (record) note(this.notes, `capacity: ${r.why}`);
      return false;
    }
    // Only a device that allows multiple allocations consumes; others merely have to be big enough.
    return dev.allowMultiple && !plan.alt.adminAccess ? r.demand : undefined;
  }

  /** Usable by this request right now (availability, counters, capacity, taints); notes why not. */
  private usable(plan: SearchPlan, d: number, record: boolean): boolean {
    const dev = this.inv.devices[d];
    if (dev === undefined) return false;
    const demand = this.demand(plan, d, record);
    if (demand === false) return false;
    if (demand !== undefined && !this.state.capacityFits(d, demand.amounts)) {
      if (record) note(this.notes, 'not enough capacity left on the shared device');
      return false;
    }
    if (plan.alt.adminAccess) {
      // Admin access may share a busy device, but not pick one twice for the same claim.
      if (this.heldInClaim(plan.claim, d)) return false;
    } else if (this.state.busy(d)) {
      return false;
    } else if (!this.state.free(d)) {
      if (record) note(this.notes, 'shared counters exhausted (a partition or whole device overlapping it is in use)');
      return false;
    }
    if (dev.blockingTaints.length > 0) {
      const taint = deviceTaintBlocks(dev.blockingTaints, plan.alt.tolerations);
      if (taint !== undefined) {
        if (record) note(this.notes, `device taint ${taint.key}${taint.value !== undefined ? '=' + taint.value : ''}:${taint.effect} not tolerated`);
        return false;
      }
    }
    return true;
  }

  private accepts(plan: SearchPlan, d: number, record: boolean): boolean {
    const dev = this.inv.devices[d];
    const states = this.constraints[plan.claim];
    if (dev === undefined || states === undefined) return false;
    for (const ci of plan.constraints) {
      const cs = states[ci];
      if (cs === undefined) continue;
      const v = dev.attributes.get(cs.plan.attribute);
      let ok: boolean;
      if (v === undefined) ok = false;
      else if (cs.plan.kind === 'match') ok = cs.count === 0 || (cs.value !== undefined && overlaps(cs.value, v));
      else ok = elementsOf(v).every((e) => !cs.seen.has(e));
      if (!ok) {
        if (record) note(this.notes, `${constraintText(cs.plan)} cannot be satisfied${v === undefined ? ' (devices lack the attribute)' : ''}`);
        return false;
      }
    }
    return true;
  }

  private apply(planIdx: number, plan: SearchPlan, r: RankedDevice): void {
    const states = this.constraints[plan.claim] ?? [];
    const dev = this.inv.devices[r.device];
    for (const ci of plan.constraints) {
      const cs = states[ci];
      const v = dev?.attributes.get(cs?.plan.attribute ?? '');
      if (cs === undefined || v === undefined) continue;
      cs.history.push(cs.value);
      cs.value = cs.count === 0 || cs.value === undefined ? v : intersection(cs.value, v);
      cs.count++;
      for (const e of elementsOf(v)) cs.seen.set(e, (cs.seen.get(e) ?? 0) + 1);
    }
    const demand = this.demand(plan, r.device, false) || undefined;
    this.consumedFlags.push(this.state.take(r.device, plan.alt.adminAccess, demand?.amounts));
    this.picks.push({ plan: planIdx, device: r.device, damage: r.damage, ...(demand !== undefined ? { demand } : {}) });
    this.perClaim[plan.claim] = (this.perClaim[plan.claim] ?? 0) + 1;
  }

  private undo(i: number): void {
    const p = this.picks[i];
    if (p === undefined) return;
    const plan = this.plans[p.plan];
    if (plan === undefined) return;
    const states = this.constraints[plan.claim] ?? [];
    const dev = this.inv.devices[p.device];
    for (const ci of plan.constraints) {
      const cs = states[ci];
      const v = dev?.attributes.get(cs?.plan.attribute ?? '');
      if (cs === undefined || v === undefined) continue;
      cs.count--;
      for (const e of elementsOf(v)) {
        const left = (cs.seen.get(e) ?? 1) - 1;
        if (left === 0) cs.seen.delete(e);
        else cs.seen.set(e, left);
      }
      cs.value = cs.history.pop();
      if (cs.count === 0) cs.value = undefined;
    }
    this.state.untake(p.device, plan.alt.adminAccess, this.consumedFlags[i] ?? false, p.demand?.amounts);
    this.perClaim[plan.claim] = (this.perClaim[plan.claim] ?? 0) - 1;
  }

  private pop(): void {
    const i = this.picks.length - 1;
    this.undo(i);
    this.picks.pop();
    this.consumedFlags.pop();
  }

  private solve(planIdx: number): boolean {
    if (planIdx >= this.plans.length) return true;
    const plan = this.plans[planIdx];
    if (plan === undefined) return false;
    if (plan.alt.all) return this.solveAll(planIdx, plan, this.allLists.get(planIdx) ?? []);
    const devices = this.devicesFor(plan);
    const needed = plan.alt.count;
    if ((this.perClaim[plan.claim] ?? 0) + needed > LIMITS.allocationResults) {
      note(this.notes, `more than ${LIMITS.allocationResults} devices for one claim`);
      return false;
    }
    const usable = devices.filter((d) => this.usable(plan, d, true));
    if (usable.length < needed) {
      note(this.notes, `only ${usable.length} usable devices for ${plan.alt.resultName}, need ${needed}`);
      return false;
    }
    const ranked = this.policy.orderDevices(usable, plan, this.togetherNeeded(planIdx, plan), this.ctx, this.picks);
    return this.pickSlot(planIdx, plan, ranked, 0, 0);
  }

  /**
   * Devices this request and the later ones over the same devices ask for
   * together: four one-GPU requests (a GPU per NIC, say) are placed like one
   * request for four, so the first lands where all four fit in one domain.
   */
  private togetherNeeded(planIdx: number, plan: SearchPlan): number {
    if (plan.alt.adminAccess) return plan.alt.count;
    let n = plan.alt.count;
    for (let i = planIdx + 1; i < this.plans.length; i++) {
      const p = this.plans[i];
      if (p !== undefined && !p.alt.all && !p.alt.adminAccess && p.alt.set === plan.alt.set) n += p.alt.count;
    }
    return n;
  }

  /** allocationMode All: every matching device of the node, each one usable, or nothing. */
  private solveAll(planIdx: number, plan: SearchPlan, devices: readonly number[]): boolean {
    const incomplete = plan.alt.set.matched.find((d) => {
      const dev = this.inv.devices[d];
      return dev !== undefined && dev.incompletePool && (dev.node === this.node || dev.node === SHARED);
    });
    if (incomplete !== undefined) {
      note(this.notes, `asks for all devices, but pool ${this.inv.devices[incomplete]?.pool ?? '?'} is incomplete`);
      return false;
    }
    if (devices.length === 0) {
      note(this.notes, `no matching device on the node for ${plan.alt.resultName} (allocationMode All needs at least one)`);
      return false;
    }
    if ((this.perClaim[plan.claim] ?? 0) + devices.length > LIMITS.allocationResults) {
      note(this.notes, `more than ${LIMITS.allocationResults} devices for one claim`);
      return false;
    }
    const start = this.picks.length;
    for (const d of devices) {
      if (++this.steps > this.budget) {
        this.exhausted = true;
        break;
      }
      if (!this.usable(plan, d, true)) {
        if (this.state.busy(d)) note(this.notes, `allocationMode All: device ${this.inv.devices[d]?.name ?? d} is in use`);
        this.rollbackTo(start);
        return false;
      }
      if (!this.accepts(plan, d, true)) {
        this.rollbackTo(start);
        return false;
      }
      this.apply(planIdx, plan, { device: d, damage: 0 });
    }
    if (this.exhausted) {
      this.rollbackTo(start);
      return false;
    }
    if (this.solve(planIdx + 1)) return true;
    this.rollbackTo(start);
    return false;
  }

  private rollbackTo(n: number): void {
    while (this.picks.length > n) this.pop();
  }

  /**
   * Chooses the slot-th device of a request. Devices of one request are
   * interchangeable, so later slots only look further down the list (no permutations).
   */
  private pickSlot(planIdx: number, plan: SearchPlan, ranked: readonly RankedDevice[], slot: number, from: number): boolean {
    const needed = plan.alt.count;
    if (slot === needed) return this.solve(planIdx + 1);
    const remaining = needed - slot;
    for (let pos = from; pos <= ranked.length - remaining; pos++) {
      if (++this.steps > this.budget) {
        this.exhausted = true;
        return false;
      }
      const r = ranked[pos];
      if (r === undefined) continue;
      // Earlier slots of this request may have taken counters the device needs.
      if (slot > 0 && !this.usable(plan, r.device, false)) continue;
      if (!this.accepts(plan, r.device, true)) continue;
      this.apply(planIdx, plan, r);
      if (plan.constraints.length > 0 && !this.lookahead(planIdx, plan, ranked, pos + 1, remaining - 1)) {
        this.pop();
        continue;
      }
      if (this.pickSlot(planIdx, plan, ranked, slot + 1, pos + 1)) return true;
      this.pop();
      if (this.exhausted) return false;
    }
    return false;
  }

  /**
   * After a pick fixes a matchAttribute value (or grows a distinctAttribute set),
   * checks that enough devices remain to finish this request and the later
   * requests under the same constraint; without this, a request for 8 devices on
   * one NVLink domain would try every combination inside a domain that has 4.
   */
  private lookahead(planIdx: number, plan: SearchPlan, ranked: readonly RankedDevice[], from: number, need: number): boolean {
    const states = this.constraints[plan.claim] ?? [];
    for (const ci of plan.constraints) {
      const cs = states[ci];
      if (cs === undefined) continue;
      const attr = cs.plan.attribute;
      // Devices counted so far, so that one device is not counted twice.
      const counted = new Set<number>();
      const values = new Set<string>();
      const fits = (d: number): boolean => {
        const v = this.inv.devices[d]?.attributes.get(attr);
        if (v === undefined || counted.has(d)) return false;
        if (cs.plan.kind === 'match') {
          if (cs.value === undefined || !overlaps(v, cs.value)) return false;
        } else if (v.startsWith(LIST_PREFIX)) {
          // Lists: counting them greedily could miss a valid choice, so only the taken elements rule one out.
          if (elementsOf(v).some((e) => cs.seen.has(e))) return false;
        } else if (cs.seen.has(v) || values.has(v)) {
          return false;
        }
        counted.add(d);
        values.add(v);
        return true;
      };
      let have = 0;
      for (let i = from; i < ranked.length && have < need; i++) {
        const r = ranked[i];
        if (r !== undefined && fits(r.device)) have++;
      }
      let ok = have >= need;
      if (ok) {
        // Later requests of the claim under the same constraint need devices too.
        let laterNeed = 0;
        const later: SearchPlan[] = [];
        for (let j = planIdx + 1; j < this.plans.length; j++) {
          const p = this.plans[j];
          if (p === undefined || p.claim !== plan.claim || !p.constraints.includes(ci)) continue;
          later.push(p);
          laterNeed += p.alt.all ? 1 : p.alt.count;
        }
        if (laterNeed > 0) {
          let supply = 0;
          for (const p of later) {
            for (const d of this.devicesFor(p)) {
              if (supply >= laterNeed) break;
              if (!p.alt.adminAccess && this.state.busy(d)) continue;
              if (fits(d)) supply++;
            }
          }
          ok = supply >= laterNeed;
        }
      }
      if (!ok) {
        const value = cs.plan.kind === 'match' && cs.value !== undefined ? ` (value ${attributeKeyText(cs.value)} has too few devices)` : '';
        note(this.notes, `${constraintText(cs.plan)} cannot be satisfied${value}`);
        return false;
      }
    }
    return true;
  }
}
