// `kubectl cascade defrag`: a plan of moves that makes room for the demand
// the cluster is seeing. Demand is what waits now: every claim of Cascade's
// that has no allocation and fits nowhere. A move re-places one movable pod
// (annotated `gpu.cascade.dev/movable: "true"`) with all its claims: its
// devices are freed, the waiting claim takes the room, and the pod's claims
// must fit again elsewhere; otherwise the move is not made. Each waiting
// claim is served by the fewest moves that serve it (the preemption search:
// fewest pods, then the placement that fragments least), and a claim that no
// set of moves serves is reported as such.
//
// The plan is computed on a private copy of the fleet; nothing is written.
import { Allocator } from '../allocator/allocator.js';
import type { AllocatedDeviceRef, AllocatedOutcome, AllocationRequest, NodeFacts, PodFacts } from '../allocator/types.js';
import type { DeviceClass, ResourceClaim, ResourceSlice } from '../api/resource.js';
import { refOfResult } from '../allocator/snapshot.js';
import { planPreemption, type PreemptionPlan, type VictimCandidate } from '../controller/preemption.js';
import type { Pod } from '../k8s/types.js';

export const MOVABLE_ANNOTATION = (driver: string): string => `${driver}/movable`;

export interface DefragInput {
  readonly slices: readonly ResourceSlice[];
  readonly classes: readonly DeviceClass[];
  readonly nodes: readonly NodeFacts[];
  readonly claims: readonly ResourceClaim[];
  readonly pods: readonly Pod[];
  readonly driver: string;
  /** How pods ask for cpu/memory and where they may go (controller/podfacts.ts). */
  readonly podFacts: (pod: Pod) => PodFacts;
  /** Whether Cascade allocates a claim (its classes are Cascade's). */
  readonly ours: (claim: ResourceClaim) => boolean;
  /** Which movable pods may move (default: all that opted in); the controller's mode needs an owner to re-create them. */
  readonly mayMove?: (pod: Pod) => boolean;
}

export interface Move {
  readonly pod: string;
  readonly from: string;
  readonly fromDevices: readonly string[];
  readonly to: string;
  readonly toDevices: readonly string[];
}

export interface DefragStep {
  /** The waiting claim (or pod) served. */
  readonly serves: string;
  /** "namespace/name" of the waiting pod, when a pod waits (not a claim alone). */
  readonly pod?: string;
  readonly node: string;
  readonly moves: readonly Move[];
  /** The waiting claim's placement once the moves are made (what the controller's mode holds for it). */
  readonly devices: readonly AllocatedDeviceRef[];
}

export interface FleetShape {
  readonly freeGpus: number;
  readonly freeNodes: number;
  readonly freeDomains: number;
}

export interface DefragPlan {
  readonly steps: readonly DefragStep[];
  /** Waiting claims that no set of moves serves, with why. */
  readonly unserved: readonly { readonly claim: string; readonly why: string }[];
  readonly movablePods: number;
  readonly before: FleetShape;
  readonly after: FleetShape;
}

const key = (o: { metadata: { namespace?: string; name?: string } }): string => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;

/** Whole GPUs, whole nodes and whole interconnect domains with nothing in use. */
function shape(a: Allocator): FleetShape {
  const inv = a.inventory;
  let freeGpus = 0;
  for (const u of inv.units) if ((a.state.unitHolds[u.idx] ?? 0) === 0) freeGpus++;
  let freeNodes = 0;
  inv.nodes.forEach((_n, i) => {
    if ((inv.nodeUnits[i] ?? 0) > 0 && (a.state.nodeHolds[i] ?? 0) === 0) freeNodes++;
  });
  let freeDomains = 0;
  for (const d of inv.domains) if (d.units.length > 1 && d.units.every((u) => (a.state.unitHolds[u] ?? 0) === 0)) freeDomains++;
  return { freeGpus, freeNodes, freeDomains };
}

function claimsOf(pod: Pod, byKey: ReadonlyMap<string, ResourceClaim>): ResourceClaim[] {
  const ns = pod.metadata.namespace ?? '';
  return (pod.spec.resourceClaims ?? []).flatMap((rc) => {
    const name = rc.resourceClaimName ?? pod.status?.resourceClaimStatuses?.find((s) => s.name === rc.name)?.resourceClaimName;
    const c = name ? byKey.get(`${ns}/${name}`) : undefined;
    return c ? [c] : [];
  });
}

const devicesOf = (refs: readonly AllocatedDeviceRef[]): string[] => refs.map((r) => r.device);

/** A claim as it would be asked for afresh (no allocation), for re-placement. */
function fresh(c: ResourceClaim): ResourceClaim {
  return { metadata: c.metadata, spec: c.spec };
}

/** A pod that may move: where it is, what it holds, and how to ask for it afresh. */
export interface Mover {
  readonly key: string;
  readonly node: string;
  readonly refs: readonly AllocatedDeviceRef[];
  readonly request: AllocationRequest;
}

export type Served =
  | { readonly ok: true; readonly plan: PreemptionPlan; readonly served: AllocatedOutcome; readonly placed: readonly { readonly v: VictimCandidate; readonly o: AllocatedOutcome }[] }
  | { readonly ok: false; readonly why: string };

/**
 * Makes room for `request` by moving the fewest movers from one node (the
 * preemption search) and placing each of them again elsewhere. On success the
 * allocator holds the new state (request and movers placed); otherwise it is
 * left as it was.
 */
export function serveWithMoves(a: Allocator, request: AllocationRequest, movers: readonly Mover[]): Served {
  const byKey = new Map(movers.map((m) => [m.key, m]));
  const candidates: VictimCandidate[] = movers.map((m) => ({ key: m.key, uid: m.key, node: m.node, priority: 0, refs: m.refs, milliCpu: 0, memoryBytes: 0 }));
  const plan = candidates.length > 0 ? planPreemption(a, request, candidates) : undefined;
  if (!plan) return { ok: false, why: candidates.length === 0 ? 'no movable pod holds devices (annotate pods that may move)' : 'moving the movable pods would not make room on any one node' };
  // Free the movers, place the waiting claim, then the movers elsewhere.
  for (const v of plan.victims) a.release(v.refs);
  const served = a.allocate(request);
  if (served.kind !== 'allocated') {
    for (const v of plan.victims) a.markAllocated(v.refs);
    return { ok: false, why: 'the room the moves make was not enough once tried' };
  }
  a.commit(served);
  const placed: { v: VictimCandidate; o: AllocatedOutcome }[] = [];
  for (const v of plan.victims) {
    const m = byKey.get(v.key);
    const o = m ? a.allocate(m.request) : undefined;
    if (!o || o.kind !== 'allocated') {
      for (const p of placed) a.release(p.o.devices);
      a.release(served.devices);
      for (const x of plan.victims) a.markAllocated(x.refs);
      return { ok: false, why: 'the pods that would make room fit nowhere else' };
    }
    a.commit(o);
    placed.push({ v, o });
  }
  return { ok: true, plan, served, placed };
}

export function planDefrag(input: DefragInput): DefragPlan {
  const allocated = input.claims.flatMap((c) => (c.status?.allocation?.devices?.results ?? []).map(refOfResult));
  const a = new Allocator({ slices: input.slices, classes: input.classes, nodes: input.nodes, allocated }, { policy: 'cascade', driver: input.driver });
  const byKey = new Map(input.claims.map((c) => [key(c), c]));
  const podOf = new Map<string, Pod>();
  for (const p of input.pods) for (const c of claimsOf(p, byKey)) podOf.set(key(c), p);
  const before = shape(a);

  // Movable pods and what they hold (claims no other pod shares).
  const movable = new Map<string, { pod: Pod; claims: ResourceClaim[]; refs: AllocatedDeviceRef[] }>();
  for (const p of input.pods) {
    if (p.metadata.annotations?.[MOVABLE_ANNOTATION(input.driver)] !== 'true' || !p.spec.nodeName || p.metadata.deletionTimestamp) continue;
    if (input.mayMove && !input.mayMove(p)) continue;
    const claims = claimsOf(p, byKey).filter((c) => c.status?.allocation && input.ours(c));
    const shared = claims.some((c) => (c.status?.reservedFor ?? []).some((r) => r.uid !== p.metadata.uid));
    const refs = claims.flatMap((c) => (c.status?.allocation?.devices?.results ?? []).map(refOfResult));
    if (!shared && refs.length > 0) movable.set(key(p), { pod: p, claims, refs });
  }

  // What waits: claims of ours without an allocation, grouped by pod (a pod's claims go together).
  const waiting: { label: string; claims: ResourceClaim[]; pod: Pod | undefined }[] = [];
  const seen = new Set<string>();
  for (const c of input.claims) {
    if (c.status?.allocation || !input.ours(c) || seen.has(key(c))) continue;
    const p = podOf.get(key(c));
    const group = p ? claimsOf(p, byKey).filter((x) => !x.status?.allocation && input.ours(x)) : [c];
    for (const g of group) seen.add(key(g));
    waiting.push({ label: p ? `pod ${key(p)}` : `claim ${key(c)}`, claims: group.map(fresh), pod: p });
  }

  const steps: DefragStep[] = [];
  const unserved: { claim: string; why: string }[] = [];
  const moved = new Set<string>();
  for (const w of waiting) {
    const request = { claims: w.claims, ...(w.pod ? { pod: input.podFacts(w.pod) } : {}), observeDemand: false };
    const now = a.allocate(request);
    if (now.kind === 'allocated') {
      a.commit(now);
      continue; // fits without moving anyone (the controller will place it)
    }
    const movers: Mover[] = [...movable.entries()]
      .filter(([k]) => !moved.has(k))
      .map(([k, m]) => ({
        key: k,
        node: m.pod.spec.nodeName ?? '',
        refs: m.refs,
        request: { claims: m.claims.map(fresh), pod: input.podFacts({ ...m.pod, spec: { ...m.pod.spec, nodeName: undefined } }), observeDemand: false },
      }));
    const r = serveWithMoves(a, request, movers);
    if (!r.ok) {
      unserved.push({ claim: w.label, why: r.why });
      continue;
    }
    const { plan, served, placed } = r;
    for (const v of plan.victims) moved.add(v.key);
    steps.push({
      serves: w.label,
      ...(w.pod ? { pod: key(w.pod) } : {}),
      node: plan.node,
      devices: served.devices,
      moves: placed.map(({ v, o }) => ({ pod: v.key, from: v.node, fromDevices: devicesOf(v.refs), to: o.node ?? '?', toDevices: devicesOf(o.devices) })),
    });
  }
  return { steps, unserved, movablePods: movable.size, before, after: shape(a) };
}

export function renderDefrag(p: DefragPlan): string {
  const lines: string[] = [];
  const total = p.steps.reduce((n, s) => n + s.moves.length, 0);
  if (p.steps.length === 0 && p.unserved.length === 0) {
    lines.push(`Nothing to do: no claim waits for room (${p.movablePods} movable pod(s)).`);
  } else {
    lines.push(
      `${total} move(s) make room for ${p.steps.length} waiting claim(s)${p.unserved.length > 0 ? `; ${p.unserved.length} cannot be served by moving pods` : ''}. ` +
        `Whole free GPUs ${p.before.freeGpus} -> ${p.after.freeGpus} after they are placed, free nodes ${p.before.freeNodes} -> ${p.after.freeNodes}, free NVLink domains ${p.before.freeDomains} -> ${p.after.freeDomains}.`,
    );
  }
  p.steps.forEach((s, i) => {
    lines.push(`${i + 1}. for ${s.serves}, on node ${s.node}:`);
    for (const m of s.moves) lines.push(`   move pod ${m.pod}: ${m.from} [${m.fromDevices.join(', ')}] -> ${m.to} [${m.toDevices.join(', ')}]`);
  });
  for (const u of p.unserved) lines.push(`- ${u.claim}: not served, ${u.why}`);
  return lines.join('\n');
}
