// Priority preemption for GPU claims. The kube-scheduler does not preempt to
// free DRA devices, so a high-priority pod whose claims fit nowhere would wait
// behind any number of lower-priority pods. Cascade sees which devices each pod
// holds, so it can find, per node, the cheapest set of lower-priority pods
// whose devices (and cpu/memory) would let the pod in, and evict exactly those.
//
// "Cheapest", in this order: fewest pods; then the lowest highest priority
// among them; then the lowest sum of priorities; then the placement's own
// fragmentation score. The search simulates on the live allocator: it frees
// candidate victims' devices, asks for an allocation, and puts them back, so
// the answer is what a real decision would do once they are gone.
import type { Allocator } from '../allocator/allocator.js';
import type { AllocatedDeviceRef, AllocationRequest } from '../allocator/types.js';

/** A pod that may be evicted for a preemptor, with what it holds. */
export interface VictimCandidate {
  /** "namespace/name". */
  readonly key: string;
  readonly uid: string;
  readonly node: string;
  readonly priority: number;
  /** Devices of the pod's claims (claims no other live pod uses). */
  readonly refs: readonly AllocatedDeviceRef[];
  readonly milliCpu: number;
  readonly memoryBytes: number;
}

export interface PreemptionPlan {
  readonly node: string;
  readonly victims: readonly VictimCandidate[];
  /** Devices the victims free that the preemptor's placement uses. */
  readonly devices: readonly AllocatedDeviceRef[];
  /** The preemptor's whole placement once the victims are gone: what is held for it (free devices included). */
  readonly placement: readonly AllocatedDeviceRef[];
  /** The placement's fragmentation score once the victims are gone (lower is better). */
  readonly score: number;
}

/** Nodes compared at most (those with the lowest-priority candidates first): a bound on the work per pending pod. */
const MAX_NODES = 32;

function better(a: PreemptionPlan, b: PreemptionPlan | undefined): boolean {
  if (b === undefined) return true;
  if (a.victims.length !== b.victims.length) return a.victims.length < b.victims.length;
  const max = (p: PreemptionPlan): number => Math.max(...p.victims.map((v) => v.priority));
  const sum = (p: PreemptionPlan): number => p.victims.reduce((s, v) => s + v.priority, 0);
  if (max(a) !== max(b)) return max(a) < max(b);
  if (sum(a) !== sum(b)) return sum(a) < sum(b);
  if (a.score !== b.score) return a.score < b.score;
  return a.node < b.node;
}

/**
 * The cheapest set of victims on one node that lets `request` be allocated
 * there, or undefined when no set of candidates would. The allocator is left
 * as it was.
 */
export function planPreemption(allocator: Allocator, request: AllocationRequest, candidates: readonly VictimCandidate[]): PreemptionPlan | undefined {
  const byNode = new Map<string, VictimCandidate[]>();
  for (const c of candidates) {
    let list = byNode.get(c.node);
    if (list === undefined) byNode.set(c.node, (list = []));
    list.push(c);
  }
  const nodes = [...byNode.entries()]
    .map(([node, list]) => ({ node, list: [...list].sort((a, b) => a.priority - b.priority || b.refs.length - a.refs.length || (a.key < b.key ? -1 : 1)) }))
    .sort((a, b) => (a.list[0]?.priority ?? 0) - (b.list[0]?.priority ?? 0) || b.list.length - a.list.length || (a.node < b.node ? -1 : 1))
    .slice(0, MAX_NODES);
  const what: AllocationRequest = { ...request, observeDemand: false };
  let best: PreemptionPlan | undefined;
  for (const { node, list } of nodes) {
    const plan = cheapestOnNode(allocator, what, node, list);
    if (plan !== undefined && better(plan, best)) best = plan;
  }
  return best;
}

function cheapestOnNode(allocator: Allocator, request: AllocationRequest, node: string, sorted: readonly VictimCandidate[]): PreemptionPlan | undefined {
  const gone = new Set<VictimCandidate>();
  const free = (v: VictimCandidate): void => {
    allocator.release(v.refs);
    allocator.adjustNodeFree(node, v.milliCpu, v.memoryBytes);
    gone.add(v);
  };
  const restore = (v: VictimCandidate): void => {
    allocator.markAllocated(v.refs);
    allocator.adjustNodeFree(node, -v.milliCpu, -v.memoryBytes);
    gone.delete(v);
  };
  const attempt = (): { devices: readonly AllocatedDeviceRef[]; score: number } | undefined => {
    const o = allocator.allocate(request);
    return o.kind === 'allocated' && o.node === node ? { devices: o.devices, score: o.score.total } : undefined;
  };
  try {
    // Lowest priorities first until the pod fits.
    let fit: ReturnType<typeof attempt> = undefined;
    for (const v of sorted) {
      free(v);
      fit = attempt();
      if (fit) break;
    }
    if (!fit) return undefined;
    // Then spare whoever is not needed after all, highest priority first.
    for (const v of [...gone].reverse()) {
      restore(v);
      const still = attempt();
      if (still) fit = still;
      else free(v);
    }
    const victims = sorted.filter((v) => gone.has(v));
    const taken = new Set(fit.devices.map((r) => `${r.driver}/${r.pool}/${r.device}`));
    const freed = victims.flatMap((v) => v.refs).filter((r) => taken.has(`${r.driver}/${r.pool}/${r.device}`));
    return { node, victims, devices: freed, placement: fit.devices, score: fit.score };
  } finally {
    for (const v of [...gone]) restore(v);
  }
}
