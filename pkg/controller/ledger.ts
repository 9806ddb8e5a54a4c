// The controller's ledger: the one object that knows which devices are held
// and by whom, which pods' cpu/memory each node's figures include, and the
// allocator built over the fleet. Informer handlers never touch it; the sync
// of a claim or pod brings the ledger's entry for it up to date with the cache
// first (observeClaim, observePod), and a decision records what it took
// (commit) or gives it back (rollback, release).
import type { AllocationResult, DeviceClass, ResourceClaim, ResourceSlice } from '../api/resource.js';
import { Allocator } from '../allocator/allocator.js';
import { PoolCache } from '../allocator/inventory.js';
import { refOfResult } from '../allocator/snapshot.js';
import type { AllocatedDeviceRef, AllocatedOutcome, PolicyName } from '../allocator/types.js';
import { objectKey } from '../k8s/informer.js';
import type { Namespace, Node, Pod } from '../k8s/types.js';
import { isTerminal, nodeFacts, podRequest } from './podfacts.js';

/** The devices of the drivers Cascade allocates in an allocation, as the allocator counts them. */
export function refsOf(alloc: AllocationResult | undefined, drivers: string | readonly string[]): AllocatedDeviceRef[] {
  const mine = (d: string): boolean => (typeof drivers === 'string' ? d === drivers : drivers.includes(d));
  return (alloc?.devices?.results ?? []).filter((r) => mine(r.driver)).map(refOfResult);
}

function sameRefs(a: readonly AllocatedDeviceRef[] | undefined, b: readonly AllocatedDeviceRef[]): boolean {
  if (!a) return b.length === 0;
  if (a.length !== b.length) return false;
  const key = (r: AllocatedDeviceRef): string => `${r.pool}/${r.device}/${r.adminAccess ? 1 : 0}/${r.shareID ?? ''}/${JSON.stringify(r.consumedCapacity ?? {})}`;
  const sa = a.map(key).sort();
  const sb = b.map(key).sort();
  return sa.every((v, i) => v === sb[i]);
}

/** What the ledger reads the fleet from: the informers' caches. */
export interface FleetView {
  slices(): readonly ResourceSlice[];
  classes(): readonly DeviceClass[];
  nodes(): readonly Node[];
  namespaces(): readonly Namespace[];
  pods(): readonly Pod[];
  claims(): readonly ResourceClaim[];
  pod(key: string): Pod | undefined;
}

interface Counted {
  readonly node: string;
  readonly cpu: number;
  readonly mem: number;
  readonly key: string;
}

export class Ledger {
  private allocatorInstance: Allocator | undefined;
  /** Devices the allocator counts as in use, per claim UID: from the API or from our own pending writes. */
  private readonly applied = new Map<string, AllocatedDeviceRef[]>();
  /** Claim key -> UID, so a claim gone from the cache can be forgotten by its key. */
  private readonly claimUid = new Map<string, string>();
  /**
   * Devices of allocations being written, per claim UID. The claim's informer
   * shows it without an allocation until our status write arrives (our
   * finalizer patch lands first); until then the devices stay held.
   */
  private readonly inFlight = new Map<string, AllocatedDeviceRef[]>();
  /** Claim UIDs some consumer has reserved (so "reserved by nobody" means its pods are gone). */
  private readonly everReserved = new Set<string>();
  /** Pods whose cpu/memory the node figures include, and where: bound pods, and decided ones not bound yet. */
  private readonly counted = new Map<string, Counted>();
  /** Pod key -> UID, for pods gone from the cache. */
  private readonly podUid = new Map<string, string>();
  /** Pools parsed by the last build: a rebuild parses only the pools whose slices changed. */
  readonly pools = new PoolCache();

  constructor(
    private readonly fleet: FleetView,
    /** Cascade's own driver first, then the co-allocated ones. */
    private readonly drivers: readonly string[],
    private readonly policy: PolicyName,
    private readonly onRebuild: (ms: number) => void = () => undefined,
  ) {}

  /** Starts over from the caches (on becoming the leader). */
  reset(): void {
    this.allocatorInstance = undefined;
    this.applied.clear();
    this.claimUid.clear();
    this.inFlight.clear();
    this.everReserved.clear();
    this.counted.clear();
    this.podUid.clear();
    for (const c of this.fleet.claims()) this.observeClaim(objectKey(c), c);
  }

  /** Slices, classes or nodes changed: the next decision rebuilds the index. */
  fleetChanged(): void {
    this.allocatorInstance = undefined;
  }

  /** Namespace labels (admin access) as the allocator reads them; updated in place, no rebuild. */
  private readonly namespaceLabels: Record<string, Record<string, string>> = {};

  /** A namespace appeared, changed or went: only its labels matter to the allocator. */
  namespacesChanged(): void {
    const now = new Set<string>();
    for (const ns of this.fleet.namespaces()) {
      const name = ns.metadata.name ?? '';
      now.add(name);
      this.namespaceLabels[name] = ns.metadata.labels ?? {};
    }
    for (const name of Object.keys(this.namespaceLabels)) if (!now.has(name)) delete this.namespaceLabels[name];
  }

  /** The allocator over the current caches, rebuilt only when the fleet changed. */
  allocator(): Allocator {
    if (this.allocatorInstance) return this.allocatorInstance;
    const started = performance.now();
    const allocated: AllocatedDeviceRef[] = [];
    for (const refs of this.applied.values()) allocated.push(...refs);
    this.namespacesChanged();
    const allocator = new Allocator(
      // Allocatable only: pods are subtracted below, and from then on incrementally.
      { slices: this.fleet.slices(), classes: this.fleet.classes(), nodes: nodeFacts(this.fleet.nodes(), []), allocated, namespaceLabels: this.namespaceLabels },
      { policy: this.policy, poolCache: this.pools, ...(this.drivers[0] !== undefined ? { driver: this.drivers[0] } : {}) },
    );
    this.allocatorInstance = allocator;
    const decidedUnbound = [...this.counted].filter(([uid, c]) => {
      const p = this.fleet.pod(c.key);
      return p !== undefined && p.metadata.uid === uid && !p.spec.nodeName && !isTerminal(p);
    });
    this.counted.clear();
    for (const p of this.fleet.pods()) if (p.spec.nodeName && !isTerminal(p)) this.account(p, false);
    for (const [uid, c] of decidedUnbound) {
      allocator.adjustNodeFree(c.node, -c.cpu, -c.mem);
      this.counted.set(uid, c);
    }
    this.onRebuild(performance.now() - started);
    return allocator;
  }

  /** The allocator if one is built (gauges must not force a rebuild). */
  get current(): Allocator | undefined {
    return this.allocatorInstance;
  }

  // ---- claims ---------------------------------------------------------------

  /** Brings the ledger's view of one claim up to date with the cache (undefined: gone). */
  observeClaim(key: string, claim: ResourceClaim | undefined): void {
    if (!claim) {
      const uid = this.claimUid.get(key);
      if (uid === undefined) return;
      this.claimUid.delete(key);
      this.inFlight.delete(uid);
      this.setApplied(uid, []);
      this.everReserved.delete(uid);
      return;
    }
    const uid = claim.metadata.uid ?? '';
    const previous = this.claimUid.get(key);
    if (previous !== undefined && previous !== uid) this.observeClaim(key, undefined);
    this.claimUid.set(key, uid);
    if ((claim.status?.reservedFor ?? []).length > 0) this.everReserved.add(uid);
    if (claim.status?.allocation) this.inFlight.delete(uid);
    // Not (yet) showing the allocation we are writing: keep its devices held.
    if (!claim.status?.allocation && this.inFlight.has(uid)) return;
    this.setApplied(uid, refsOf(claim.status?.allocation, this.drivers));
  }

  isInFlight(uid: string): boolean {
    return this.inFlight.has(uid);
  }

  wasReserved(uid: string): boolean {
    return this.everReserved.has(uid);
  }

  /**
   * A decision's devices are in use from now on, before its writes: concurrent
   * decisions never double-book. `claims` are the UIDs and devices written next.
   */
  commit(allocator: Allocator, outcome: AllocatedOutcome, pod: Pod | undefined, claims: readonly (readonly [string, AllocatedDeviceRef[]])[]): void {
    allocator.commit(outcome);
    if (pod?.metadata.uid && outcome.node) {
      this.counted.set(pod.metadata.uid, { node: outcome.node, cpu: podRequest(pod, 'cpu'), mem: podRequest(pod, 'memory'), key: objectKey(pod) });
      this.podUid.set(objectKey(pod), pod.metadata.uid);
    }
    for (const [uid, refs] of claims) {
      this.applied.set(uid, refs);
      this.inFlight.set(uid, refs);
    }
  }

  /** An allocation we did not manage to write: back to what the cache shows for the claim. */
  rollback(uid: string, cached: ResourceClaim | undefined): void {
    this.inFlight.delete(uid);
    // Whichever index is current (it may have been rebuilt meanwhile) counts these devices.
    this.allocatorInstance?.release(this.applied.get(uid) ?? []);
    this.applied.delete(uid);
    if (cached && cached.metadata.uid === uid) this.setApplied(uid, refsOf(cached.status?.allocation, this.drivers));
  }

  /**
   * Keeps devices in use for a pod that preempted others, under `id`, on top
   * of whatever holds them now: when the victims' claims let go, nobody else
   * takes them. Use counts add up, so the devices stay in use until both let go.
   */
  holdDevices(id: string, refs: readonly AllocatedDeviceRef[]): void {
    this.setApplied(id, [...refs]);
  }

  releaseHold(id: string): void {
    this.setApplied(id, []);
  }

  /** We cleared the claim's allocation: its devices are free. */
  released(uid: string): void {
    this.setApplied(uid, []);
  }

  /** Keeps the allocator's in-use set equal to `refs` for one claim. */
  private setApplied(uid: string, refs: AllocatedDeviceRef[]): void {
    const old = this.applied.get(uid);
    if (sameRefs(old, refs)) return;
    if (this.allocatorInstance) {
      if (old) this.allocatorInstance.release(old);
      if (refs.length) this.allocatorInstance.markAllocated(refs);
    }
    if (refs.length) this.applied.set(uid, refs);
    else this.applied.delete(uid);
  }

  // ---- pods -----------------------------------------------------------------

  /** Brings a pod's cpu/memory accounting up to date with the cache (undefined: gone). */
  observePod(key: string, pod: Pod | undefined): void {
    if (pod) {
      this.podUid.set(key, pod.metadata.uid ?? '');
      this.account(pod, false);
      return;
    }
    const uid = this.podUid.get(key);
    if (uid === undefined) return;
    this.podUid.delete(key);
    const prev = this.counted.get(uid);
    if (!prev) return;
    this.allocatorInstance?.adjustNodeFree(prev.node, prev.cpu, prev.mem);
    this.counted.delete(uid);
  }

  /** A pod decided before (its allocation was cleared since) gives its cpu/memory back before a new decision. */
  undecide(pod: Pod): void {
    const uid = pod.metadata.uid;
    const before = uid ? this.counted.get(uid) : undefined;
    if (!uid || !before || pod.spec.nodeName) return;
    this.allocatorInstance?.adjustNodeFree(before.node, before.cpu, before.mem);
    this.counted.delete(uid);
  }

  /** Keeps a pod's cpu/memory subtracted from the node it is bound (or decided) to, and only there. */
  private account(p: Pod, gone: boolean): void {
    const uid = p.metadata.uid ?? '';
    const prev = this.counted.get(uid);
    const live = !gone && !isTerminal(p);
    const node = live ? p.spec.nodeName : undefined;
    if (prev && node === undefined && live) return; // decided, not bound yet: stays counted
    if (prev && prev.node === node) return;
    if (prev) {
      this.allocatorInstance?.adjustNodeFree(prev.node, prev.cpu, prev.mem);
      this.counted.delete(uid);
    }
    if (node) {
      const cpu = podRequest(p, 'cpu');
      const mem = podRequest(p, 'memory');
      this.allocatorInstance?.adjustNodeFree(node, -cpu, -mem);
      this.counted.set(uid, { node, cpu, mem, key: objectKey(p) });
    }
  }
}
