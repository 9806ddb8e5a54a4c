// The allocator: one decision for a pod's claims (or one standalone claim) over an
// indexed snapshot. firstAvailable alternatives are tried in order across the fleet,
// nodes are prefiltered by free-device counts, and the policy picks among feasible nodes.
import type { AllocationResult, ResourceClaim } from '../api/resource.js';
import { DEFAULT_DRIVER_NAME, STANDARD_ATTRIBUTES } from '../api/resource.js';
import { ATTR, qualify } from '../api/devicemodel.js';
import { Quantity } from '../cel/quantity.js';
import { amountsOf, demandFor, type CapacityLayout, type DemandResult } from './capacity.js';
import { DemandModel } from './demand.js';
import { diagnose, explainSuccess, protectedSentence, type AttemptNotes, type PriorUse } from './explain.js';
import { SHARED, buildInventory, type Inventory, type PoolCache } from './inventory.js';
import { Matcher } from './match.js';
import { nodeSelectorMatches, nodeTaintBlocks, quantityToNumber, type NodeRec } from './nodes.js';
import { claimLabel, constraintApplies, planClaims, type AltPlan, type ClaimPlan, type RequestPlan } from './plan.js';
import { makePolicy, preparePolicyIndexes, type Pick, type PlacementPolicy, type PolicyContext, type Score, type SearchPlan } from './policy.js';
import { buildAllocation } from './result.js';
import { refOfResult } from './snapshot.js';
import { NodeSearch, sharedDeviceServes, type FailureNotes } from './search.js';
import { State } from './state.js';
import type { AllocatedDeviceRef, AllocatedOutcome, AllocationOutcome, AllocationRequest, ChosenAlternative, ClaimAllocation, FleetUsage, PodFacts, PolicyName, Snapshot } from './types.js';

export interface AllocatorOptions {
  /** Placement policy: "cascade" (default), "first-fit", or your own. */
  readonly policy?: PolicyName | PlacementPolicy;
  /** Driver whose attribute domain names Cascade's topology attributes (default gpu.cascade.dev). */
  readonly driver?: string;
  /**
   * Attributes whose values together name a device's interconnect domain
   * (default: the NVLink domain and the NUMA node, so a 4-GPU job on an
   * NVSwitch board also stays on one socket).
   */
  readonly topologyAttributes?: readonly string[];
  /** Feasible nodes the cascade and best-fit policies compare before choosing (default 4; twice that for shares). */
  readonly nodesToCompare?: number;
  /** Search steps allowed for one decision (default 200,000) and on one node (default 20,000). */
  readonly stepBudget?: number;
  readonly nodeStepBudget?: number;
  /** firstAvailable combinations tried across a pod's requests (default 256). */
  readonly maxCombinations?: number;
  /**
   * Pools parsed by an earlier build, reused where their slices have not
   * changed (see PoolCache): a long-lived caller passes the same cache to each
   * rebuild, which then parses only the pools that changed.
   */
  readonly poolCache?: PoolCache;
}

/** Why a node was not considered at all, by node index. */
export interface NodeEligibility {
  readonly eligible: readonly number[];
  readonly rejected: ReadonlyMap<string, number>;
}

interface Solution {
  readonly node: number;
  readonly picks: readonly Pick[];
  readonly score: Score;
  readonly compared: number;
  readonly runnerUp: { readonly node: number; readonly total: number } | undefined;
}

export class Allocator {
  readonly inventory: Inventory;
  readonly state: State;
  readonly matcher: Matcher;
  readonly policy: PlacementPolicy;
  private readonly ctx: PolicyContext;
  private readonly snapshot: Snapshot;
  private readonly stepBudget: number;
  private readonly nodeStepBudget: number;
  private readonly maxCombinations: number;
  private readonly driver: string;
  /** The decision's pod CPU, and recent pods' CPU per GPU unit they took (decaying), for the policy. */
  private readonly cpu = { podMilli: 0, perUnit: 0 };
  /** Recent request shapes, for placement that weighs what a choice leaves for them. */
  readonly demand = new DemandModel();
  /** Devices named by existing allocations that are not in the inventory. */
  readonly unknownAllocated: readonly string[];

  constructor(snapshot: Snapshot, options: AllocatorOptions = {}) {
    this.snapshot = snapshot;
    const driver = options.driver ?? DEFAULT_DRIVER_NAME;
    this.driver = driver;
    const topologyAttributes = options.topologyAttributes ?? [qualify(driver, ATTR.nvlinkDomain), STANDARD_ATTRIBUTES.numaNode];
    this.inventory = buildInventory(snapshot.slices, snapshot.nodes, topologyAttributes, options.poolCache);
    this.state = new State(this.inventory);
    this.matcher = new Matcher(this.inventory, snapshot.classes, (d) => this.state.available[d] === 1);
    this.state.matcher = this.matcher;
    this.policy = makePolicy(options.policy ?? 'cascade', options.nodesToCompare ?? 4);
    this.ctx = { inv: this.inventory, state: this.state, matcher: this.matcher, topologyAttributes, demand: this.demand, cpu: this.cpu };
    this.stepBudget = options.stepBudget ?? 200_000;
    this.nodeStepBudget = options.nodeStepBudget ?? 20_000;
    this.maxCombinations = options.maxCombinations ?? 256;
    this.unknownAllocated = this.markAllocated(snapshot.allocated ?? []);
    // Each class's selectors run over the whole fleet once, here, rather than in the first
    // decision that names the class (on a large fleet that is most of a second).
    for (const c of snapshot.classes) if (c.metadata.name !== undefined) this.matcher.matchSet(c.metadata.name, undefined);
    preparePolicyIndexes(this.inventory);
  }

  /**
   * Makes one throwaway decision per device class (one device of the class, no
   * selectors), neither committed nor counted as demand. The first real decision
   * then does not pay for code the process has never run (a new process runs it
   * interpreted at first) nor for the class's device lists: on the benchmark's
   * fleet of 189,000 devices the first pod's decision took about 300 ms without
   * it (see bench/decisions.ts). Returns the classes it could not warm, with why.
   */
  warm(): string[] {
    const problems: string[] = [];
    for (const c of this.snapshot.classes) {
      const name = c.metadata.name;
      if (name === undefined) continue;
      const claim: ResourceClaim = {
        apiVersion: 'resource.k8s.io/v1',
        kind: 'ResourceClaim',
        metadata: { namespace: '', name: `warm-up-${name}`, uid: '' },
        spec: { devices: { requests: [{ name: 'warm-up', exactly: { deviceClassName: name } }] } },
      };
      try {
        this.allocate({ claims: [claim], observeDemand: false });
      } catch (err) {
        problems.push(`device class ${name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return problems;
  }

  /** Marks devices of existing allocations as in use; returns those not found. */
  markAllocated(refs: readonly AllocatedDeviceRef[]): string[] {
    const unknown: string[] = [];
    for (const r of refs) {
      const d = this.inventory.deviceIndex.get(`${r.driver}/${r.pool}/${r.device}`);
      if (d === undefined) unknown.push(`${r.driver}/${r.pool}/${r.device}`);
      // A shareable device named without a share ID is held whole, as upstream counts it.
      else this.state.commit(d, r.adminAccess === true, amountsOf(this.inventory.devices[d]?.capacity, r.consumedCapacity), r.shareID === undefined);
    }
    return unknown;
  }

  /** Frees devices of a deallocated claim. */
  release(refs: readonly AllocatedDeviceRef[]): void {
    for (const r of refs) {
      const d = this.inventory.deviceIndex.get(`${r.driver}/${r.pool}/${r.device}`);
      if (d !== undefined) this.state.release(d, r.adminAccess === true, amountsOf(this.inventory.devices[d]?.capacity, r.consumedCapacity), r.shareID === undefined);
    }
  }

  /** Applies a decision: its devices become in use and the pod's cpu/memory leave the node. */
  commit(outcome: AllocatedOutcome): void {
    const idx = outcome.node === undefined ? -1 : (this.inventory.nodeIndex.get(outcome.node) ?? -1);
    const usedBefore = this.state.nodeUsed[idx] ?? 0;
    this.markAllocated(outcome.devices);
    if (outcome.node === undefined) return;
    const n = this.inventory.nodes[idx];
    if (n === undefined) return;
    const milli = outcome.pod?.cpu !== undefined ? quantityToNumber(outcome.pod.cpu, 'milli') : 0;
    const units = (this.state.nodeUsed[idx] ?? 0) - usedBefore;
    if (milli > 0 && units > 0) this.cpu.perUnit = this.cpu.perUnit === 0 ? milli / units : 0.99 * this.cpu.perUnit + 0.01 * (milli / units);
    n.freeMilliCpu -= milli;
    n.freeMemory -= outcome.pod?.memory !== undefined ? quantityToNumber(outcome.pod.memory, 'unit') : 0;
  }

  /**
   * Changes a node's free cpu (millicores) and memory (bytes) by the given
   * amounts: negative when a pod lands there, positive when one leaves. Lets a
   * caller follow pods coming and going without rebuilding the index.
   */
  adjustNodeFree(node: string, milliCpu: number, memoryBytes: number): void {
    const n = this.inventory.nodes[this.inventory.nodeIndex.get(node) ?? -1];
    if (n === undefined) return;
    n.freeMilliCpu += milliCpu;
    n.freeMemory += memoryBytes;
  }

  /** GPU counts of the whole-GPU requests in recent demand, commonest first (for explanations). */
  private wholeGpuDemand(): number[] {
    const counts = new Map<number, number>();
    for (const s of this.demand.shapes()) {
      if (s.shareable || s.all) continue;
      const set = this.matcher.sets[s.setId];
      if (set === undefined || !isWholeGpu(this.inventory, set.matched[0], this.driver)) continue;
      counts.set(s.count, (counts.get(s.count) ?? 0) + s.weight);
    }
    return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  }

  /** The fleet's capacity units in use, and how many of the GPUs in use are only partly used. */
  usage(): FleetUsage {
    let units = 0;
    let used = 0;
    for (let n = 0; n < this.inventory.nodes.length; n++) {
      units += this.inventory.nodeUnits[n] ?? 0;
      used += this.state.nodeUsed[n] ?? 0;
    }
    let inUse = 0;
    let partial = 0;
    this.inventory.counterSets.forEach((set, i) => {
      const u = this.state.used[i];
      if (!u) return;
      let any = false;
      let full = true;
      for (let k = 0; k < set.capacity.length; k++) {
        const v = u[k] ?? 0;
        if (v > 0) any = true;
        if (v < (set.capacity[k] ?? 0)) full = false;
      }
      if (any) {
        inUse++;
        if (!full) partial++;
      }
    });
    return { units, used, fragmentation: inUse === 0 ? 0 : partial / inUse };
  }

  /** Nodes a pod without selectors, affinity or tolerations may use, as far as the fixed node facts say (built once). */
  private baseline: NodeEligibility | undefined;

  private eligibleNodes(claims: readonly ClaimPlan[], pod: PodFacts | undefined): NodeEligibility {
    const cpu = pod?.cpu !== undefined ? Quantity.parse(pod.cpu) : undefined;
    const mem = pod?.memory !== undefined ? Quantity.parse(pod.memory) : undefined;
    const cpuMilli = cpu === undefined ? 0 : Number(cpu.nanos / 1_000_000n);
    const memBytes = mem === undefined ? 0 : Number(mem.nanos / 1_000_000_000n);
    const plain = pod?.nodeSelector === undefined && pod?.requiredNodeAffinity === undefined && (pod?.tolerations ?? []).length === 0 && !claims.some((c) => c.fixed?.nodeSelector !== undefined);
    if (!plain) return this.nodesFor(this.inventory.nodes, new Map(), claims, pod, cpuMilli, memBytes);
    // Most pods name no node constraints: only the free CPU and memory vary between decisions.
    this.baseline ??= this.nodesFor(this.inventory.nodes, new Map(), [], undefined, 0, 0);
    if (cpuMilli === 0 && memBytes === 0) return this.baseline;
    const on = this.baseline.eligible.map((i) => this.inventory.nodes[i]).filter((n): n is NodeRec => n !== undefined);
    return this.nodesFor(on, new Map(this.baseline.rejected), claims, pod, cpuMilli, memBytes);
  }

  private nodesFor(candidates: readonly NodeRec[], rejected: Map<string, number>, claims: readonly ClaimPlan[], pod: PodFacts | undefined, cpuMilli: number, memBytes: number): NodeEligibility {
    const reject = (why: string): void => void rejected.set(why, (rejected.get(why) ?? 0) + 1);
    const eligible: number[] = [];
    for (const n of candidates) {
      if (n.unschedulable) {
        reject('unschedulable');
        continue;
      }
      // Where the scheduler would refuse the pod, the claims must not go either.
      if (pod?.nodeSelector && !Object.entries(pod.nodeSelector).every(([k, v]) => n.labels[k] === v)) {
        reject("outside the pod's nodeSelector");
        continue;
      }
      if (pod?.requiredNodeAffinity && !nodeSelectorMatches(pod.requiredNodeAffinity, n)) {
        reject("outside the pod's required node affinity");
        continue;
      }
      const taint = nodeTaintBlocks(n.taints, pod?.tolerations ?? []);
      if (taint !== undefined) {
        reject(`node taint ${taint.key}:${taint.effect} not tolerated`);
        continue;
      }
      if (n.freeMilliCpu < cpuMilli) {
        reject(`not enough cpu for the pod (needs ${pod?.cpu ?? ''})`);
        continue;
      }
      if (n.freeMemory < memBytes) {
        reject(`not enough memory for the pod (needs ${pod?.memory ?? ''})`);
        continue;
      }
      const pinned = claims.find((c) => c.fixed?.nodeSelector !== undefined && !nodeSelectorMatches(c.fixed.nodeSelector, n));
      if (pinned !== undefined) {
        reject(`outside the node selector of already allocated claim ${claimLabel(pinned.claim)}`);
        continue;
      }
      eligible.push(n.idx);
    }
    return { eligible, rejected };
  }

  /** Free devices of an alternative that one node can use (an upper bound for the prefilter). */
  private capacityOn(alt: AltPlan, node: number, sharedFree: ReadonlyMap<number, number>): number {
    const set = alt.set;
    if (alt.adminAccess) return (set.byNode[node]?.length ?? 0) + set.shared.length;
    return (set.freeCount[node] ?? 0) + (sharedFree.get(set.id) ?? 0);
  }

  private sharedFreeCounts(alts: readonly AltPlan[]): Map<number, number> {
    const out = new Map<number, number>();
    for (const a of alts) {
      if (out.has(a.set.id)) continue;
      let c = 0;
      for (const d of a.set.shared) if (this.state.free(d)) c++;
      out.set(a.set.id, c);
    }
    return out;
  }

  /** Whether one of the node's shareable devices of the set has room for one allocation of the request. */
  private someShareFits(a: AltPlan, node: number): boolean {
    // A node's GPUs are mostly of one model: look the demand up once per layout in a row.
    let layout: CapacityLayout | undefined;
    let r: DemandResult | undefined;
    for (const d of a.set.byNode[node] ?? []) {
      if (this.state.available[d] !== 1) continue;
      const dev = this.inventory.devices[d];
      if (dev === undefined || !dev.allowMultiple) return true;
      if (r === undefined || dev.capacity !== layout) {
        layout = dev.capacity;
        r = demandFor(layout, a.capacity, a.capacityKey);
      }
      if (r.ok && this.state.capacityFits(d, r.demand.amounts)) return true;
    }
    // Devices reachable from several nodes are checked by the search itself.
    return a.set.shared.length > 0;
  }

  /** Whether a node might host a combination: per match set, the summed need fits the free count. */
  private nodeMayFit(node: number, alts: readonly AltPlan[], sharedFree: ReadonlyMap<number, number>): boolean {
    // The common case, one request for dedicated devices: the free count says it.
    const only = alts.length === 1 ? alts[0] : undefined;
    if (only !== undefined && !only.all && !only.adminAccess && !only.set.shareable) return (only.set.freeCount[node] ?? 0) + (sharedFree.get(only.set.id) ?? 0) >= only.count;
    // Small pods: at most a few alternatives, so pairwise summing is cheap.
    for (let i = 0; i < alts.length; i++) {
      const a = alts[i];
      if (a === undefined) continue;
      const cap = this.capacityOn(a, node, sharedFree);
      if (a.all) {
        const total = (a.set.byNode[node]?.length ?? 0) + a.set.shared.filter((d) => sharedDeviceServes(this.inventory, d, node)).length;
        // Shareable devices whose capacity is used up drop out of "all" rather than block it.
        if (total === 0 || (!a.adminAccess && !a.set.shareable && (a.set.freeCount[node] ?? 0) < (a.set.byNode[node]?.length ?? 0))) return false;
        continue;
      }
      if (a.set.shareable && !a.adminAccess && !this.someShareFits(a, node)) return false;
      let need = a.count;
      // A shareable device can serve several requests, so needs only add up for dedicated devices.
      if (!a.adminAccess && !a.set.shareable)
        for (let j = 0; j < i; j++) {
          const b = alts[j];
          if (b !== undefined && !b.adminAccess && !b.all && b.set.id === a.set.id) need += b.count;
        }
      if (cap < need) return false;
    }
    return true;
  }

  /**
   * A selector's runtime error counts where its device could have been chosen
   * (on a candidate node, or reachable from several nodes), as upstream: for a
   * request it fails the claim; for a firstAvailable entry it is that entry's
   * error, which counts only when no earlier entry fits.
   */
  private withRuntimeErrors(r: RequestPlan, eligible: () => ReadonlySet<number>, fail: (error: string) => void): RequestPlan {
    let changed = false;
    const alternatives = r.alternatives.map((a) => {
      if (a.error !== undefined || a.set.runtimeErrors.size === 0) return a;
      let message: string | undefined;
      for (const [d, m] of a.set.runtimeErrors) {
        const node = this.inventory.devices[d]?.node;
        if (node === SHARED || (node !== undefined && node >= 0 && eligible().has(node))) {
          message = m;
          break;
        }
      }
      if (message === undefined) return a;
      if (a.subrequest === undefined) {
        fail(`request ${a.resultName}: ${message}`);
        return a;
      }
      changed = true;
      return { ...a, error: `request ${a.resultName}: ${message}` };
    });
    return changed ? { ...r, alternatives } : r;
  }

  /**
   * Decides where the claims would go. Devices and node figures are left
   * unchanged (commit() applies a decision). What does change is the demand
   * model: every call records its request shapes as an arrival, whether or not
   * they fit, because the placement score weighs what the cluster asks for, not
   * only what it got. Pass `observeDemand: false` for a what-if question (the
   * CLI's explain) that must not count as an arrival.
   */
  allocate(request: AllocationRequest): AllocationOutcome {
    const claims = planClaims(request.claims, this.matcher, this.snapshot.namespaceLabels);
    const errors: string[] = [];
    for (const c of claims) for (const e of c.errors) errors.push(`claim ${claimLabel(c.claim)}: ${e}`);
    const nodes = this.eligibleNodes(claims, request.pod);
    this.cpu.podMilli = request.pod?.cpu !== undefined ? quantityToNumber(request.pod.cpu, 'milli') : 0;
    const labelOf = (r: RequestPlan): string => {
      const c = claims[r.claim];
      return c ? claimLabel(c.claim) : '?';
    };
    let eligible: ReadonlySet<number> | undefined;
    const eligibleSet = (): ReadonlySet<number> => (eligible ??= new Set(nodes.eligible));
    const requests: RequestPlan[] = claims
      .flatMap((c) => (c.fixed === undefined ? c.requests : []))
      .map((r) => this.withRuntimeErrors(r, eligibleSet, (e) => errors.push(`claim ${labelOf(r)}: ${e}`)));
    const attempts: AttemptNotes = new Map();
    // A firstAvailable entry whose selector fails counts only when nothing before it was allocated:
    // it is left out of the search, and its error is reported if the claim fails.
    const altErrors = requests.flatMap((r) => r.alternatives.flatMap((a) => (a.error !== undefined ? [`claim ${labelOf(r)}: ${a.error}`] : [])));
    const fail = (budgetHit: boolean): AllocationOutcome =>
      diagnose({ inv: this.inventory, state: this.state, claims, requests, errors: [...errors, ...altErrors], nodes, attempts, budgetHit, poolProblems: this.inventory.poolProblems });
    if (errors.length > 0) return fail(false);

    // Demand seen so far feeds the policy's contention and fragmentation terms.
    const pressure = this.matcher.pressure;
    // A what-if question (observeDemand: false) is not an arrival for either.
    for (const r of request.observeDemand === false ? [] : requests) {
      const first = r.alternatives[0];
      if (first !== undefined && first.error === undefined) this.demand.observe(first, this.cpu.podMilli);
      r.alternatives.forEach((a, i) => {
        const w = 1 / (i + 1);
        pressure.demand[a.set.id] = (pressure.demand[a.set.id] ?? 0) + w;
        pressure.totalDemand += w;
        pressure.version++;
      });
    }
    const sharedFree = this.sharedFreeCounts(requests.flatMap((r) => r.alternatives));
    // Alternatives no eligible node can hold are skipped up front (order is kept).
    // (One request with one way to serve it: the candidate filter below is that same check.)
    const single = requests.length === 1 && requests[0]?.alternatives.length === 1;
    const viable = requests.map((r) => r.alternatives.filter((a) => a.error === undefined && (single || nodes.eligible.some((n) => this.nodeMayFit(n, [a], sharedFree)))));
    if (requests.length > 0 && (viable.some((v) => v.length === 0) || nodes.eligible.length === 0)) return fail(false);

    let steps = 0;
    let budgetHit = false;
    const odometer = viable.map(() => 0);
    for (let combo = 0; combo < this.maxCombinations; combo++) {
      const alts = viable.map((v, i) => v[odometer[i] ?? 0]).filter((a): a is AltPlan => a !== undefined);
      const plans: SearchPlan[] = alts.map((alt, i) => {
        const req = requests[i];
        const claim = claims[req?.claim ?? 0];
        const constraints: number[] = [];
        claim?.constraints.forEach((c, ci) => {
          if (constraintApplies(c, req?.name ?? '', alt.subrequest)) constraints.push(ci);
        });
        return { claim: req?.claim ?? 0, request: req?.name ?? '', alt, constraints };
      });
      const candidates = nodes.eligible.filter((n) => this.nodeMayFit(n, alts, sharedFree));
      const ordered = this.policy.orderNodes(candidates, plans, this.ctx);
      // Shares are many and small, and where one lands decides what the rest of its GPU
      // can still take: compare twice as many nodes for them.
      const compare = this.policy.nodesToCompare > 1 && plans.some((p) => p.alt.set.shareable) ? 2 * this.policy.nodesToCompare : this.policy.nodesToCompare;
      const found: { node: number; picks: readonly Pick[]; score: Score }[] = [];
      for (const node of ordered) {
        const notes: FailureNotes = attemptNotes(attempts, alts);
        const budget = Math.min(this.nodeStepBudget, this.stepBudget - steps);
        if (budget <= 0) {
          budgetHit = true;
          break;
        }
        const search = new NodeSearch({ inv: this.inventory, state: this.state, policy: this.policy, ctx: this.ctx, claims, plans, node, budget, notes });
        const r = search.run();
        steps += r.steps;
        if (r.exhausted) {
          budgetHit = true;
          notes.set('search budget exhausted', (notes.get('search budget exhausted') ?? 0) + 1);
        }
        if (!r.ok) continue;
        found.push({ node, picks: r.picks, score: this.policy.score(node, plans, r.picks, this.ctx) });
        if (found.length >= compare) break;
      }
      if (found.length > 0) {
        let best = found[0];
        for (const f of found) if (best === undefined || f.score.total < best.score.total) best = f;
        if (best !== undefined) {
          const runner = found.filter((f) => f !== best).sort((a, b) => a.score.total - b.score.total)[0];
          const solution: Solution = {
            node: best.node,
            picks: best.picks,
            score: best.score,
            compared: found.length,
            runnerUp: runner === undefined ? undefined : { node: runner.node, total: runner.score.total },
          };
          return this.success(claims, plans, solution, request.pod);
        }
      }
      if (!advance(odometer, viable)) break;
    }
    return fail(budgetHit);
  }

  private success(claims: readonly ClaimPlan[], plans: readonly SearchPlan[], sol: Solution, pod: PodFacts | undefined): AllocatedOutcome {
    const out: ClaimAllocation[] = claims.map((c) => {
      if (c.fixed !== undefined) {
        return { namespace: c.namespace, name: c.name, allocation: c.fixed, alternatives: [], preexisting: true };
      }
      const allocation: AllocationResult = buildAllocation(this.inventory, this.matcher, c, plans, sol.picks, this.inventory.nodes[sol.node]?.name);
      const alternatives: ChosenAlternative[] = plans
        .filter((p) => p.claim === c.idx)
        .map((p) => (p.alt.subrequest === undefined ? { request: p.request, index: 0 } : { request: p.request, index: p.alt.index, subrequest: p.alt.subrequest }));
      return { namespace: c.namespace, name: c.name, allocation, alternatives, preexisting: false };
    });
    // From the results themselves, so a shared device's consumption and share ID match what is written.
    const devices: AllocatedDeviceRef[] = out.flatMap((c) => (c.preexisting ? [] : (c.allocation.devices?.results ?? []).map(refOfResult)));
    const nodeName = this.inventory.nodes[sol.node]?.name;
    const inv = this.inventory;
    const policyName = this.policy.name;
    // What was in use before this decision: read now, before commit() changes it.
    const prior: PriorUse = {
      gpuInUse: sol.picks.map((p) => (this.state.unitHolds[this.inventory.deviceUnit[p.device] ?? -1] ?? 0) > 0),
      nodeInUse: (this.state.nodeHolds[sol.node] ?? 0) > 0,
    };
    const wholeCounts = this.wholeGpuDemand();
    let explanation: AllocatedOutcome['explanation'] | undefined;
    return {
      kind: 'allocated',
      node: nodeName,
      claims: out,
      score: { total: sol.score.total, terms: sol.score.terms },
      devices,
      pod,
      // Built on first read: bulk callers (the benchmark) never pay for the text.
      get explanation() {
        const protects = protectedSentence(inv, sol.picks, sol.node, prior, wholeCounts, policyName);
        explanation ??= explainSuccess({
          inv,
          claims,
          plans,
          picks: sol.picks,
          node: sol.node,
          score: sol.score,
          compared: sol.compared,
          runnerUp: sol.runnerUp,
          policy: policyName,
          ...(protects !== undefined ? { protects } : {}),
        });
        return explanation;
      },
    };
  }
}

function isWholeGpu(inv: Inventory, d: number | undefined, driver: string): boolean {
  return d !== undefined && inv.devices[d]?.attributes.get(`${driver}/${ATTR.type}`) === 's:gpu';
}

function attemptNotes(attempts: AttemptNotes, alts: readonly AltPlan[]): FailureNotes {
  // Notes are kept per alternative so explanations can say what went wrong with each.
  const key = alts.map((a) => `${a.resultName}#${a.index}`).join(',');
  let n = attempts.get(key);
  if (n === undefined) attempts.set(key, (n = { alts, notes: new Map() }));
  return n.notes;
}

/** Next combination in lexicographic order (last request varies fastest). */
function advance(odometer: number[], viable: readonly (readonly AltPlan[])[]): boolean {
  for (let i = odometer.length - 1; i >= 0; i--) {
    const next = (odometer[i] ?? 0) + 1;
    if (next < (viable[i]?.length ?? 0)) {
      odometer[i] = next;
      return true;
    }
    odometer[i] = 0;
  }
  return false;
}

/** One-shot convenience: build an allocator for a snapshot and decide one request. */
export function allocateOnce(snapshot: Snapshot, request: AllocationRequest, options?: AllocatorOptions): AllocationOutcome {
  return new Allocator(snapshot, options).allocate(request);
}
