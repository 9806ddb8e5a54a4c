// Failover headroom: a FailoverReserve keeps GPU capacity of a node pool free
// so that what runs on a node that fails can start again elsewhere, the way
// vSphere HA admission control keeps failover capacity.
//
// With `tolerateNodeLoss: N` the reserve is the GPU capacity of the pool's N
// largest nodes. Keeping at least that much free is enough: whichever N nodes
// fail, the free capacity on the others is at least what ran on the failed
// ones (free_total >= cap_failed, so free_total - free_failed >= used_failed).
// With `keepFreePercent: P` it is P% of the pool's capacity. Capacity is
// counted in GPUs, and a GPU is free only when nothing of it is in use (no MIG
// partition, no share): what a failed node's pods need is whole room, and a
// half-used GPU is no promise of it.
//
// A decision for a pod below `priorityThreshold` that would leave less than the
// reserve free in the pool is held back; pods at or above it may use the reserve.
import type { Allocator } from '../allocator/allocator.js';
import type { AllocatedOutcome } from '../allocator/types.js';
import type { ObjectMeta } from '../api/resource.js';
import type { Node } from '../k8s/types.js';
import type { ResourceType } from '../k8s/resources.js';

export const FAILOVER_RESERVES: ResourceType = { group: 'gpu.cascade.dev', version: 'v1alpha1', kind: 'FailoverReserve', plural: 'failoverreserves', namespaced: false };

export interface FailoverReserve {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    nodeSelector?: Record<string, string>;
    tolerateNodeLoss?: number;
    keepFreePercent?: number;
    priorityThreshold: number;
    nodeLostAfterSeconds?: number;
  };
  status?: ReserveStatus;
}

export interface ReserveStatus {
  poolNodes?: number;
  poolUnits?: number;
  reserveUnits?: number;
  freeUnits?: number;
  reserveInUse?: number;
  claimsHeldBack?: number;
  lostNodes?: string[];
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[];
}

/** What is wrong with a reserve's spec (the CRD schema checks most of it; this covers objects written around it). */
export function reserveProblem(r: FailoverReserve): string | undefined {
  const s = r.spec as Partial<FailoverReserve['spec']> | undefined;
  if (!s) return 'it has no spec';
  const loss = s.tolerateNodeLoss;
  const pct = s.keepFreePercent;
  if ((loss === undefined) === (pct === undefined)) return 'set exactly one of spec.tolerateNodeLoss and spec.keepFreePercent';
  if (loss !== undefined && (!Number.isInteger(loss) || loss < 1)) return `spec.tolerateNodeLoss must be a whole number of nodes of at least 1, not ${String(loss)}`;
  if (pct !== undefined && (!Number.isInteger(pct) || pct < 1 || pct > 90)) return `spec.keepFreePercent must be a whole percent from 1 to 90, not ${String(pct)}`;
  if (!Number.isInteger(s.priorityThreshold)) return 'spec.priorityThreshold must be an integer priority';
  return undefined;
}

export interface ReserveFigures {
  readonly name: string;
  readonly poolNodes: readonly number[];
  readonly poolUnits: number;
  readonly reserveUnits: number;
  readonly freeUnits: number;
  /** How much of the reserve is taken (by pods allowed to use it): max(0, reserve - free). */
  readonly inUse: number;
}

/** Whether a node is in the reserve's pool. */
export function inPool(r: FailoverReserve, labels: Readonly<Record<string, string>> | undefined): boolean {
  for (const [k, v] of Object.entries(r.spec.nodeSelector ?? {})) if (labels?.[k] !== v) return false;
  return true;
}

/** The reserve's size and what is free in its pool now, over the allocator's view (lost nodes excluded). */
export function reserveFigures(r: FailoverReserve, allocator: Allocator, lost: ReadonlySet<string>): ReserveFigures {
  const inv = allocator.inventory;
  const perNode = new Map<number, { cap: number; free: number }>();
  for (const u of inv.units) {
    const n = inv.nodes[u.node];
    if (n === undefined || lost.has(n.name) || !inPool(r, n.labels)) continue;
    let e = perNode.get(u.node);
    if (!e) perNode.set(u.node, (e = { cap: 0, free: 0 }));
    e.cap++;
    if ((allocator.state.unitHolds[u.idx] ?? 0) === 0) e.free++;
  }
  const caps = [...perNode.values()].map((e) => e.cap).sort((a, b) => b - a);
  const units = caps.reduce((a, c) => a + c, 0);
  const free = [...perNode.values()].reduce((a, e) => a + e.free, 0);
  const reserve = r.spec.tolerateNodeLoss !== undefined ? caps.slice(0, r.spec.tolerateNodeLoss).reduce((a, c) => a + c, 0) : Math.ceil((units * (r.spec.keepFreePercent ?? 0)) / 100);
  return { name: r.metadata.name ?? '', poolNodes: [...perNode.keys()].sort((a, b) => a - b), poolUnits: units, reserveUnits: reserve, freeUnits: free, inUse: Math.max(0, reserve - free) };
}

/** Free GPUs of the pool a decision would start using (a GPU already partly used costs nothing more). */
export function unitsTaken(allocator: Allocator, outcome: AllocatedOutcome, poolNodes: readonly number[]): number {
  const inv = allocator.inventory;
  const pool = new Set(poolNodes);
  const units = new Set<number>();
  for (const ref of outcome.devices) {
    const d = inv.deviceIndex.get(`${ref.driver}/${ref.pool}/${ref.device}`);
    const dev = d === undefined ? undefined : inv.devices[d];
    if (d === undefined || dev === undefined || !pool.has(dev.node) || ref.adminAccess === true) continue;
    const u = inv.deviceUnit[d] ?? -1;
    if (u >= 0 && (allocator.state.unitHolds[u] ?? 0) === 0) units.add(u);
  }
  return units.size;
}

/**
 * Why a decision must wait rather than dip into a reserve, or undefined when it
 * may go ahead. A pod at or above the threshold may always use the reserve.
 */
export function heldBackBy(r: FailoverReserve, f: ReserveFigures, priority: number, taken: number): string | undefined {
  if (priority >= r.spec.priorityThreshold || taken <= 0) return undefined;
  const after = f.freeUnits - taken;
  if (after >= f.reserveUnits) return undefined;
  const policy = r.spec.tolerateNodeLoss !== undefined ? `to restart what runs on ${r.spec.tolerateNodeLoss} failed node(s)` : `${r.spec.keepFreePercent ?? 0}% of the pool`;
  return (
    `It waits because taking ${taken} GPU(s) would leave ${Math.max(0, after)} free, less than the ${f.reserveUnits} that FailoverReserve ${f.name} keeps free ${policy}; ` +
    `only pods of priority ${r.spec.priorityThreshold} or more may use that reserve (this pod has ${priority}). Pool: ${f.poolNodes.length} node(s), ${f.poolUnits} GPU(s), ${f.freeUnits} free.`
  );
}

/** Whether a node counts as lost: Ready is not True and has not been for `graceSeconds`. */
export function nodeLostSince(node: Node): number | undefined {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (!ready || ready.status === 'True') return undefined;
  const t = Date.parse(ready.lastTransitionTime ?? '');
  return Number.isFinite(t) ? t : 0;
}
