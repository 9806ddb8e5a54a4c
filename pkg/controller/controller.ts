// Cascade's controller: keeps the fleet's inventory from our driver's
// ResourceSlices, allocates the claims of pods (together, on one node) and
// standalone claims before the kube-scheduler places pods, writes
// status.allocation, removes the scheduling gate, deallocates when claims
// are done, and explains every decision in Events.
import type { Logger } from 'winston';
import {
  STANDARD_ATTRIBUTES,
  type AllocationResult,
  type DeviceClass,
  type DeviceRequestAllocationResult,
  type ResourceClaim,
  type ResourceClaimTemplate,
  type ResourceSlice,
} from '../api/resource.js';
import { specProblems } from '../allocator/plan.js';
import type { AllocatedDeviceRef, AllocatedOutcome, AllocationOutcome, PolicyName, UnallocatedOutcome } from '../allocator/types.js';
import { KubeApiError, isConflict, isNotFound } from '../k8s/client.js';
import { EventRecorder, referenceTo } from '../k8s/events.js';
import { Informer, objectKey, type InformerOptions } from '../k8s/informer.js';
import { RESOURCES, type Kube, type KubeObject, type ResourceType } from '../k8s/resources.js';
import { compactSlice, dropManagedFields, ValueInterner } from '../k8s/compact.js';
import type { Namespace, Node, Pod, PodDisruptionBudget } from '../k8s/types.js';
import { errorMessage, logger as makeLogger } from '../log/logger.js';
import { ControllerMetrics } from './metrics.js';
import { GateScope, classNamesOf, claimOwnership, selectorMatches, type GateWebhookConfig, type Ownership } from './ownership.js';
import { MUTATING_WEBHOOK_CONFIGURATIONS } from './webhook.js';
import { claimConfigProblem } from '../nodeplugin/gpu-config.js';
import { Ledger, refsOf } from './ledger.js';
import { isTerminal, nodeFacts, podFacts, podRequest } from './podfacts.js';
import { planDefrag } from '../cli/defrag.js';
import { planPreemption, type VictimCandidate } from './preemption.js';
import { FAILOVER_RESERVES, heldBackBy, inPool, nodeLostSince, reserveFigures, reserveProblem, unitsTaken, type FailoverReserve, type ReserveStatus } from './reserve.js';
import type { Allocator } from '../allocator/allocator.js';
import { WorkQueue, type SyncResult } from './queue.js';
import { ACTION, REASON } from './reasons.js';
import { BindingFailures, bindingWait, describeFailure, failedBindings } from './binding.js';

export interface ControllerOptions {
  readonly kube: Kube;
  readonly driver: string;
  readonly policy?: PolicyName;
  /** Reported in Events (reportingInstance). */
  readonly identity: string;
  readonly workers?: number;
  readonly logger?: Logger;
  readonly metrics?: ControllerMetrics;
  /** How long to wait before re-trying a claim that did not fit (it is also retried on every fleet change). */
  readonly retryUnfitMs?: number;
  /**
   * The scheduling gate's MutatingWebhookConfiguration. Its namespaceSelector decides
   * which namespaces' claims are Cascade's (GateScope); without it, every namespace is.
   */
  readonly gateConfigName?: string;
  /**
   * Other DRA drivers whose devices Cascade allocates too (a CPU driver, a NIC
   * driver), so that one claim can hold GPUs and their CPUs or NICs: their
   * slices join the inventory and every claim of their classes is Cascade's.
   */
  readonly coAllocatedDrivers?: readonly string[];
  /** Evict lower-priority pods for a higher-priority pod whose claims fit nowhere (default true). */
  readonly preemption?: boolean;
  /** How long devices freed by preemption stay held for the preemptor (default 5 minutes). */
  readonly preemptionHoldMs?: number;
  /** Watch FailoverReserve objects (the CRD must be installed) and keep their headroom. */
  readonly failoverReserves?: boolean;
  /**
   * Carry out the defragmentation plan (`kubectl cascade defrag`) slowly: at
   * most one step per interval and one at a time, moving only movable pods a
   * controller owns, through the Eviction API (so within their budgets). Off when absent or 0.
   */
  readonly defragIntervalMs?: number;
}

/** A preemption under way: the victims being evicted and the devices held for the preemptor. */
interface Preempting {
  readonly uid: string;
  readonly node: string;
  readonly victims: readonly string[];
  readonly refs: readonly AllocatedDeviceRef[];
  readonly since: number;
  /** Evicted for priority, or moved by the defragmenter. */
  readonly kind: 'preemption' | 'defrag';
}

const CLAIM = 'claim:';
const POD = 'pod:';
/** The fleet (slices, nodes, classes, namespaces) changed. */
const FLEET = 'fleet';
const NAMESPACES = 'namespaces';
/** The pod index of claims: pods filed under each claim key they use. */
const BY_CLAIM = 'claims';
/** Decisions slower than this are logged with where their time went (the allocator's goal is 100 ms). */
const SLOW_DECISION_SECONDS = 0.1;

function readyOf(n: Node): string | undefined {
  return n.status?.conditions?.find((c) => c.type === 'Ready')?.status;
}

/** The JSON patch that removes the scheduling gate at `index`, only if it is still `gate` there. */
export function gateRemovalOps(index: number, gate: string): { op: 'test' | 'remove'; path: string; value?: string }[] {
  return [
    { op: 'test', path: `/spec/schedulingGates/${index}/name`, value: gate },
    { op: 'remove', path: `/spec/schedulingGates/${index}` },
  ];
}

/** The ledger entry that holds devices for a preemptor pod. */
function holdId(podUid: string): string {
  return `preemption-hold/${podUid}`;
}

/** Whether a PodDisruptionBudget covering the pod allows no disruption now. */
function protectedByBudget(pod: Pod, pdbs: readonly PodDisruptionBudget[]): boolean {
  const labels = pod.metadata.labels ?? {};
  return pdbs.some((b) => b.metadata.namespace === pod.metadata.namespace && b.spec.selector !== undefined && selectorMatches(b.spec.selector, labels) && (b.status?.disruptionsAllowed ?? 0) <= 0);
}

/** The finalizer and scheduling gate Cascade uses: `<driver>/allocation`. */
export function allocationFinalizer(driver: string): string {
  return `${driver}/allocation`;
}
export const schedulingGate = allocationFinalizer;

/**
 * Set on a standalone claim of ours once a pod has reserved it, so that "its pods
 * are gone, release it" survives a controller restart (the in-memory set does not).
 */
export function wasReservedAnnotation(driver: string): string {
  return `${driver}/was-reserved`;
}

/** Where a device sits, for people: "NUMA 0, pci0000:10"; empty when its slice says neither. */
export type Whereabouts = (r: DeviceRequestAllocationResult) => string;

/**
 * "gpu-3", "gpu-0 (gpu/h100)", "a share of gpu-0-shared (20Gi memory, 30% compute)",
 * each followed by where it sits ("[NUMA 0, pci0000:10]") when the slices say.
 */
function describeResult(r: DeviceRequestAllocationResult, driver: string, where: Whereabouts): string {
  const at = where(r);
  return `${describeDevice(r, driver)}${at === '' ? '' : ` [${at}]`}`;
}

function describeDevice(r: DeviceRequestAllocationResult, driver: string): string {
  const sub = r.request.includes('/') ? ` (${r.request})` : '';
  const other = r.driver !== driver ? `${r.driver} ` : '';
  if (r.consumedCapacity === undefined) return `${other}${r.device}${sub}`;
  const rank = (n: string): number => (n === 'memory' ? 0 : n === 'compute' ? 1 : 2);
  const parts = Object.entries(r.consumedCapacity)
    .map(([name, v]) => ({ short: name.startsWith(`${driver}/`) ? name.slice(driver.length + 1) : name, v }))
    .sort((a, b) => rank(a.short) - rank(b.short) || (a.short < b.short ? -1 : 1))
    .map(({ short, v }) => (short === 'compute' ? `${v}% compute` : `${v} ${short}`));
  return `a share of ${other}${r.device}${sub} (${parts.join(', ')})`;
}

/** Claim names a pod uses, in pod.spec order; undefined where the generated name is not known yet. */
export function podClaimNames(pod: Pod): (string | undefined)[] {
  return (pod.spec.resourceClaims ?? []).map((rc) => {
    if (rc.resourceClaimName) return rc.resourceClaimName;
    const st = pod.status?.resourceClaimStatuses?.find((s) => s.name === rc.name);
    return st?.resourceClaimName;
  });
}

function nodeOf(alloc: AllocationResult | undefined): string | undefined {
  const term = alloc?.nodeSelector?.nodeSelectorTerms?.[0];
  const f = term?.matchFields?.find((m) => m.key === 'metadata.name' && m.operator === 'In');
  return f?.values?.[0];
}

export class Controller {
  readonly claims: Informer<ResourceClaim>;
  /** One informer per driver Cascade allocates (its own first). */
  readonly sliceInformers: readonly Informer<ResourceSlice>[];
  readonly classes: Informer<DeviceClass>;
  readonly pods: Informer<Pod>;
  readonly nodes: Informer<Node>;
  readonly namespaces: Informer<Namespace>;
  /** Only for the webhook's gate decisions. */
  readonly templates: Informer<ResourceClaimTemplate>;
  /** PodDisruptionBudgets, which preemption never breaks; undefined with preemption off. */
  readonly pdbs: Informer<PodDisruptionBudget> | undefined;
  /** Preemptions under way, by preemptor pod key. */
  private readonly preempting = new Map<string, Preempting>();
  /** FailoverReserve objects; undefined when the controller does not keep reserves. */
  readonly reserves: Informer<FailoverReserve> | undefined;
  /** Pods and claims held back by a reserve now, by reserve name (keys: "pod:ns/name" or "claim:ns/name"). */
  private readonly heldBack = new Map<string, Set<string>>();
  /** Pods already deleted from lost nodes (UIDs). */
  private readonly replaced = new Set<string>();
  private reserveTimer: NodeJS.Timeout | undefined;
  private defragTimer: NodeJS.Timeout | undefined;
  private defragRunning = false;
  private lastStatus = new Map<string, string>();
  /** The gate's webhook configuration (one object), when there is a gate. */
  readonly gateConfig: Informer<GateWebhookConfig & { metadata: { name?: string } }> | undefined;
  readonly queue: WorkQueue;
  readonly metrics: ControllerMetrics;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly finalizer: string;
  private readonly gate: string;
  /** Held devices, per-node cpu/memory and the allocator: one owner (ledger.ts). */
  private readonly ledger: Ledger;
  private processing = false;
  private started = false;
  /** The drivers whose devices Cascade allocates: its own, then the co-allocated ones. */
  readonly drivers: readonly string[];

  constructor(private readonly opts: ControllerOptions) {
    const { kube, driver } = opts;
    this.drivers = [driver, ...(opts.coAllocatedDrivers ?? []).filter((d) => d !== driver)];
    this.log = opts.logger ?? makeLogger('controller', { driver });
    this.metrics = opts.metrics ?? new ControllerMetrics(false);
    this.recorder = new EventRecorder(kube, `${driver}/controller`, opts.identity, this.log);
    this.finalizer = allocationFinalizer(driver);
    this.gate = schedulingGate(driver);
    // Nothing here reads managedFields: the caches drop them (a third of a pod's size).
    const opt = <T extends KubeObject>(t: ResourceType, fieldSelector?: string): InformerOptions<T> => ({
      fieldSelector,
      logger: this.log.child({ resource: t.plural }),
      transform: dropManagedFields,
    });
    this.claims = new Informer<ResourceClaim>(kube.client, RESOURCES.resourceClaims, opt(RESOURCES.resourceClaims));
    // Slices: equal attribute, capacity and counter values shared across the fleet (pkg/k8s/compact.ts).
    const interner = new ValueInterner();
    this.sliceInformers = this.drivers.map(
      (d) => new Informer<ResourceSlice>(kube.client, RESOURCES.resourceSlices, { ...opt<ResourceSlice>(RESOURCES.resourceSlices, `spec.driver=${d}`), transform: (s) => compactSlice(s, interner) }),
    );
    this.classes = new Informer<DeviceClass>(kube.client, RESOURCES.deviceClasses, opt(RESOURCES.deviceClasses));
    this.pods = new Informer<Pod>(kube.client, RESOURCES.pods, opt(RESOURCES.pods));
    this.nodes = new Informer<Node>(kube.client, RESOURCES.nodes, opt(RESOURCES.nodes));
    this.namespaces = new Informer<Namespace>(kube.client, RESOURCES.namespaces, opt(RESOURCES.namespaces));
    this.templates = new Informer<ResourceClaimTemplate>(kube.client, RESOURCES.resourceClaimTemplates, opt(RESOURCES.resourceClaimTemplates));
    this.pdbs = opts.preemption === false ? undefined : new Informer<PodDisruptionBudget>(kube.client, RESOURCES.podDisruptionBudgets, opt(RESOURCES.podDisruptionBudgets));
    // Optional: without the CRD (an older install) there are simply no reserves until it appears.
    this.reserves = opts.failoverReserves === true ? new Informer<FailoverReserve>(kube.client, FAILOVER_RESERVES, { ...opt(FAILOVER_RESERVES), optional: true }) : undefined;
    this.gateConfig = opts.gateConfigName ? new Informer(kube.client, MUTATING_WEBHOOK_CONFIGURATIONS, opt(MUTATING_WEBHOOK_CONFIGURATIONS, `metadata.name=${opts.gateConfigName}`)) : undefined;
    this.pods.addIndex(BY_CLAIM, (p) => podClaimNames(p).flatMap((n) => (n ? [`${p.metadata.namespace ?? ''}/${n}`] : [])));
    this.ledger = new Ledger(
      {
        slices: () => this.sliceList(),
        classes: () => this.classes.list(),
        nodes: () => this.nodes.list(),
        namespaces: () => this.namespaces.list(),
        pods: () => this.pods.list(),
        claims: () => this.claims.list(),
        pod: (key) => this.pods.get(key),
      },
      this.drivers,
      opts.policy ?? 'cascade',
      (ms) => {
        this.metrics.inventoryRebuilds.inc();
        this.metrics.inventoryRebuildSeconds.observe(ms / 1000);
        const { parsed, reused } = this.ledger.pools.last;
        this.metrics.inventoryPools.inc({ how: 'parsed' }, parsed);
        this.metrics.inventoryPools.inc({ how: 'reused' }, reused);
        this.log.debug('rebuilt allocator inventory', { ms: Math.round(ms), slices: this.sliceList().length, poolsParsed: parsed, poolsReused: reused });
      },
    );
    this.queue = new WorkQueue((key) => this.sync(key), { workers: opts.workers ?? 4, logger: this.log });
    this.wire();
  }

  /** Every driver's slices, Cascade's own first (one array per informer while only one driver is allocated). */
  sliceList(): readonly ResourceSlice[] {
    const [own, ...others] = this.sliceInformers;
    if (own === undefined) return [];
    return others.length === 0 ? own.list() : [...own.list(), ...others.flatMap((i) => i.list())];
  }

  // ---- wiring -------------------------------------------------------------

  /** Handlers only enqueue: the sync of each key brings the ledger up to date with the cache. */
  private wire(): void {
    const fleetChanged = (): void => this.enqueue(FLEET);
    for (const i of this.sliceInformers) i.on({ add: fleetChanged, update: fleetChanged, delete: fleetChanged });
    this.nodes.on({
      add: fleetChanged,
      update: (a, b) =>
        JSON.stringify(a.status?.allocatable) !== JSON.stringify(b.status?.allocatable) ||
        JSON.stringify(a.spec) !== JSON.stringify(b.spec) ||
        JSON.stringify(a.metadata.labels) !== JSON.stringify(b.metadata.labels) ||
        readyOf(a) !== readyOf(b)
          ? fleetChanged()
          : undefined,
      delete: fleetChanged,
    });
    this.classes.on({ add: fleetChanged, update: fleetChanged, delete: fleetChanged });
    // A namespace's labels decide admin access, nothing in the index: no rebuild for a new namespace.
    const namespacesChanged = (): void => this.enqueue(NAMESPACES);
    this.namespaces.on({ add: namespacesChanged, update: namespacesChanged, delete: namespacesChanged });
    this.gateConfig?.on({ add: () => this.requeueAll(), update: () => this.requeueAll(), delete: () => this.requeueAll() });
    // A new or changed reserve may hold back, or let go, what waits.
    this.reserves?.on({ add: () => this.requeuePending(), update: () => this.requeuePending(), delete: () => this.requeuePending() });
    const claimChanged = (c: ResourceClaim): void => this.requeueUsers(objectKey(c));
    this.claims.on({ add: claimChanged, update: (_o, c) => claimChanged(c), delete: claimChanged });
    const podChanged = (p: Pod): void => {
      this.enqueue(POD + objectKey(p));
      // A pod that ended or went away may release its claims.
      for (const n of podClaimNames(p)) if (n) this.enqueueClaim(`${p.metadata.namespace ?? ''}/${n}`);
    };
    this.pods.on({ add: podChanged, update: (_o, p) => podChanged(p), delete: podChanged });
  }

  private enqueue(key: string): void {
    if (this.processing) this.queue.add(key);
  }

  /** A claim and the pods that use it. */
  private requeueUsers(claimKey: string): void {
    this.enqueueClaim(claimKey);
    for (const p of this.pods.byIndex(BY_CLAIM, claimKey)) this.enqueue(POD + objectKey(p));
  }

  private enqueueClaim(key: string): void {
    this.enqueue(CLAIM + key);
  }

  private requeueScheduled = false;

  /**
   * Puts every unallocated claim (and pods waiting on one) back in the queue,
   * once per turn of the event loop however many changes asked for it: 2,000
   * claims deleted at once would otherwise requeue every pending claim 2,000 times.
   */
  private requeuePending(): void {
    if (!this.processing || this.requeueScheduled) return;
    this.requeueScheduled = true;
    setImmediate(() => {
      this.requeueScheduled = false;
      this.requeuePendingNow();
    });
  }

  private requeuePendingNow(): void {
    if (!this.processing) return;
    // Highest priority first: after a node is lost, its pods' replacements take the reserve before anyone else.
    const waiting = this.claims.list().filter((c) => !c.status?.allocation);
    const priority = (c: ResourceClaim): number => Math.max(0, ...this.pods.byIndex(BY_CLAIM, objectKey(c)).map((p) => p.spec.priority ?? 0));
    if (waiting.some((c) => priority(c) > 0)) waiting.sort((a, b) => priority(b) - priority(a));
    for (const c of waiting) this.requeueUsers(objectKey(c));
  }

  /** The gate's scope changed: every claim and pod may have changed hands. */
  private requeueAll(): void {
    if (!this.processing) return;
    for (const c of this.claims.list()) this.queue.add(CLAIM + objectKey(c));
    for (const p of this.pods.list()) this.queue.add(POD + objectKey(p));
  }

  /** Which namespaces are Cascade's: those the scheduling gate covers. */
  get scope(): GateScope {
    if (!this.gateConfig || !this.opts.gateConfigName) return GateScope.everywhere();
    return GateScope.fromWebhookConfig(this.gateConfig.list()[0], this.opts.gateConfigName);
  }

  /**
   * Whether Cascade allocates a claim in a namespace: the one rule the webhook's
   * gate and the controller share (GateScope), then the claim's device classes.
   */
  owns(spec: ResourceClaim['spec'], namespace: string, classes: ReadonlyMap<string, DeviceClass>, scope = this.scope): Ownership {
    if (!scope.covers(namespace, this.namespaces.get(namespace)?.metadata.labels)) return { ours: false, why: scope.outside(namespace) };
    return claimOwnership(spec, classes, this.drivers);
  }

  private classMap(): Map<string, DeviceClass> {
    return new Map(this.classes.list().map((c) => [c.metadata.name ?? '', c]));
  }

  // ---- lifecycle ----------------------------------------------------------

  /** Starts the informers (all replicas need them: the webhook reads the caches). */
  async startInformers(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const i of this.informers()) i.start();
    await Promise.all(this.informers().map((i) => i.waitForSync(120_000)));
  }

  private informers(): { start(): void; stop(): void; waitForSync(ms: number): Promise<void>; readonly hasSynced: boolean }[] {
    return [
      this.claims,
      ...this.sliceInformers,
      this.classes,
      this.pods,
      this.nodes,
      this.namespaces,
      this.templates,
      ...(this.gateConfig ? [this.gateConfig] : []),
      ...(this.pdbs ? [this.pdbs] : []),
      ...(this.reserves ? [this.reserves] : []),
    ];
  }

  get synced(): boolean {
    return this.informers().every((i) => i.hasSynced);
  }

  /** Starts allocating (the leader only). */
  async startProcessing(): Promise<void> {
    await this.startInformers();
    this.processing = true;
    this.ledger.reset();
    // The index now, not in the first decision: on a large fleet it takes seconds, and the
    // first pods would wait for it (without leader election this runs before /readyz says ready).
    // One throwaway decision per class, too: a new process runs its code interpreted at first.
    const started = performance.now();
    const problems = this.ledger.allocator().warm();
    for (const p of problems) this.log.warn('warm-up decision failed', { problem: p });
    this.log.info('allocator index built and warmed', { ms: Math.round(performance.now() - started), devices: this.ledger.allocator().inventory.devices.length });
    this.queue.start();
    for (const c of this.claims.list()) this.queue.add(CLAIM + objectKey(c));
    for (const p of this.pods.list()) this.queue.add(POD + objectKey(p));
    if ((this.opts.defragIntervalMs ?? 0) > 0) {
      this.defragTimer = setInterval(() => {
        if (this.defragRunning) return;
        this.defragRunning = true;
        this.defragStep()
          .catch((err: unknown) => this.log.warn('defragmentation step failed', { error: errorMessage(err) }))
          .finally(() => (this.defragRunning = false));
      }, this.opts.defragIntervalMs);
      this.defragTimer.unref();
    }
    if (this.reserves) {
      this.reserveTimer = setInterval(() => void this.tendReserves().catch((err: unknown) => this.log.warn('failover reserve upkeep failed', { error: errorMessage(err) })), 1_000);
      this.reserveTimer.unref();
    }
    this.log.info('controller started', { claims: this.claims.list().length, slices: this.sliceList().length, nodes: this.nodes.list().length });
  }

  async stop(): Promise<void> {
    this.processing = false;
    if (this.reserveTimer) clearInterval(this.reserveTimer);
    this.reserveTimer = undefined;
    if (this.defragTimer) clearInterval(this.defragTimer);
    this.defragTimer = undefined;
    await this.queue.stop();
    for (const i of this.informers()) i.stop();
    this.started = false;
  }

  // ---- sync -----------------------------------------------------------------

  private async sync(key: string): Promise<SyncResult> {
    if (key.startsWith(POD)) return await this.syncPod(key.slice(POD.length));
    if (key.startsWith(CLAIM)) return await this.syncClaim(key.slice(CLAIM.length));
    if (key === FLEET) {
      this.ledger.fleetChanged();
      this.requeuePending();
    }
    if (key === NAMESPACES) {
      this.ledger.namespacesChanged();
      this.requeuePending();
    }
    return undefined;
  }

  private lastGauges = 0;

  /** Refreshes the fleet gauges, at most once a second (it scans every claim). */
  private updateGauges(): void {
    const now = Date.now();
    if (now - this.lastGauges < 1_000) return;
    this.lastGauges = now;
    let pending = 0;
    const classes = this.classMap();
    const scope = this.scope;
    for (const c of this.claims.list()) if (!c.status?.allocation && this.owns(c.spec, c.metadata.namespace ?? '', classes, scope).ours) pending++;
    this.metrics.pendingClaims.set(pending);
    const alloc = this.ledger.current;
    if (!alloc) return;
    const u = alloc.usage();
    this.metrics.fleetUnits.set(u.units);
    this.metrics.fleetUsedUnits.set(u.used);
    this.metrics.fleetUtilization.set(u.units > 0 ? u.used / u.units : 0);
    this.metrics.fragmentation.set(u.fragmentation);
  }

  private async syncPod(key: string): Promise<SyncResult> {
    const pod = this.pods.get(key);
    this.ledger.observePod(key, pod);
    if (!pod || !(pod.spec.schedulingGates ?? []).some((g) => g.name === this.gate)) this.forgetUngated(key);
    if (!pod || pod.metadata.deletionTimestamp || isTerminal(pod)) {
      this.dropPreemption(key);
      return undefined;
    }
    const ns = pod.metadata.namespace ?? '';
    const names = podClaimNames(pod);
    if (names.length === 0) return undefined;
    if (names.some((n) => n === undefined)) return undefined; // the claim controller has not created it yet
    const claims: ResourceClaim[] = [];
    for (const n of names) {
      const c = this.claims.get(`${ns}/${n ?? ''}`);
      if (!c) return this.claimMissing(pod, n ?? '');
      claims.push(c);
    }
    const classes = this.classMap();
    const ownership = claims.map((c) => this.owns(c.spec, ns, classes));
    const ours = claims.filter((_c, i) => ownership[i]?.ours === true);
    const hasGate = (pod.spec.schedulingGates ?? []).some((g) => g.name === this.gate);
    const mixed = ownership.findIndex((o) => !o.ours && o.mixed !== undefined);
    if (mixed >= 0) {
      // Neither allocator may take it alone: the pod stays gated until the claim is split.
      const o = ownership[mixed];
      if (hasGate && o !== undefined && !o.ours) this.tellRefused(pod, claims[mixed]?.metadata.name ?? '', o.why);
      return undefined;
    }
    if (ours.length === 0) {
      if (hasGate) await this.removeGate(pod, 'none of its claims use a Cascade device class');
      return undefined;
    }
    if (pod.spec.nodeName) return undefined; // already bound: the scheduler used the existing allocations
    if (ours.every((c) => c.status?.allocation)) {
      if (hasGate) await this.removeGate(pod, `all ${ours.length} claim(s) are allocated on ${nodeOf(ours[0]?.status?.allocation) ?? 'their node'}`);
      return undefined;
    }
    return await this.decide(ours, pod);
  }

  // ---- failover reserves ------------------------------------------------------

  /** Nodes lost now: NotReady for longer than the shortest grace period of any reserve. */
  lostNodes(now = Date.now()): Set<string> {
    const lost = new Set<string>();
    const reserves = this.reserves?.list() ?? [];
    if (reserves.length === 0) return lost;
    const grace = Math.min(...reserves.map((r) => r.spec.nodeLostAfterSeconds ?? 60)) * 1000;
    for (const n of this.nodes.list()) {
      const since = nodeLostSince(n);
      if (since !== undefined && now - since >= grace) lost.add(n.metadata.name ?? '');
    }
    return lost;
  }

  /**
   * Holds a decision back when it would take capacity a reserve keeps free for
   * pods of higher priority; returns how to requeue, or undefined to go ahead.
   */
  private reserveHold(outcome: AllocatedOutcome, pod: Pod | undefined, claims: ResourceClaim[], allocator: Allocator): SyncResult | undefined {
    const reserves = this.reserves?.list() ?? [];
    if (reserves.length === 0) return undefined;
    const key = pod ? `pod:${objectKey(pod)}` : `claim:${objectKey(claims[0] ?? { metadata: {} })}`;
    const priority = pod?.spec.priority ?? 0;
    const lost = this.lostNodes();
    let why: string | undefined;
    let by: string | undefined;
    for (const r of reserves) {
      if (reserveProblem(r) !== undefined) continue;
      const f = reserveFigures(r, allocator, lost);
      const w = heldBackBy(r, f, priority, unitsTaken(allocator, outcome, f.poolNodes));
      if (w !== undefined && why === undefined) [why, by] = [w, r.metadata.name ?? ''];
    }
    for (const [name, set] of this.heldBack) if (name !== by) set.delete(key);
    if (why === undefined || by === undefined) return undefined;
    let set = this.heldBack.get(by);
    if (!set) this.heldBack.set(by, (set = new Set()));
    const first = !set.has(key);
    set.add(key);
    if (first) {
      const note = why;
      for (const c of claims) this.emit({ regarding: referenceTo(c, 'resource.k8s.io/v1', 'ResourceClaim'), type: 'Normal', reason: REASON.FailoverReserveHeld, action: ACTION.Allocate, note });
      if (pod) this.emit({ regarding: referenceTo(pod, 'v1', 'Pod'), type: 'Normal', reason: REASON.FailoverReserveHeld, action: ACTION.Allocate, note });
    }
    return { requeueAfterMs: this.opts.retryUnfitMs ?? 30_000 };
  }

  /**
   * Once a second: pods on lost nodes that a controller owns are evicted so
   * that their owners create them again (the new pods are placed highest
   * priority first, into the reserve), and each reserve's status is written.
   */
  private async tendReserves(): Promise<void> {
    if (!this.processing || !this.reserves) return;
    const lost = this.lostNodes();
    if (lost.size > 0) {
      const victims = this.pods
        .list()
        .filter((p) => p.spec.nodeName !== undefined && lost.has(p.spec.nodeName) && !p.metadata.deletionTimestamp && !isTerminal(p) && !this.replaced.has(p.metadata.uid ?? ''))
        .sort((a, b) => (b.spec.priority ?? 0) - (a.spec.priority ?? 0));
      for (const p of victims) {
        this.replaced.add(p.metadata.uid ?? '');
        if (this.replaced.size > 100_000) this.replaced.clear();
        const owner = p.metadata.ownerReferences?.find((o) => o.controller === true);
        const node = p.spec.nodeName ?? '';
        if (!owner) {
          this.emit({
            regarding: referenceTo(p, 'v1', 'Pod'),
            type: 'Warning',
            reason: REASON.NodeLost,
            action: ACTION.Allocate,
            note: `Node ${node} is lost (NotReady past the failover grace period), and no controller owns this pod, so nothing would create it again: it is left as it is.`,
          });
          continue;
        }
        try {
          // Evicted at once (no kubelet is there to confirm a graceful end); its budget still applies.
          await this.kube.evictPod(p.metadata.name ?? '', p.metadata.namespace ?? '', { gracePeriodSeconds: 0, ...(p.metadata.uid ? { preconditions: { uid: p.metadata.uid } } : {}) });
          this.emit({
            regarding: referenceTo(p, 'v1', 'Pod'),
            type: 'Warning',
            reason: REASON.NodeLost,
            action: ACTION.Allocate,
            note: `Evicted because node ${node} is lost (NotReady past the failover grace period): ${owner.kind} ${owner.name} creates it again, and the new pod is placed on a live node, into the failover reserve if it needs to (priority ${p.spec.priority ?? 0}).`,
          });
          this.log.info('evicted a pod of a lost node for re-placement', { pod: objectKey(p), node, owner: `${owner.kind}/${owner.name}` });
        } catch (err) {
          if (!isNotFound(err)) this.log.warn('could not evict a pod of a lost node', { pod: objectKey(p), node, error: errorMessage(err) });
        }
      }
    }
    await this.writeReserveStatus(lost);
  }

  private async writeReserveStatus(lost: ReadonlySet<string>): Promise<void> {
    const allocator = this.ledger.allocator();
    for (const r of this.reserves?.list() ?? []) {
      const name = r.metadata.name ?? '';
      const problem = reserveProblem(r);
      const held = [...(this.heldBack.get(name) ?? [])].filter((k) => this.stillWaiting(k));
      this.heldBack.set(name, new Set(held));
      const f = problem === undefined ? reserveFigures(r, allocator, lost) : undefined;
      const poolLost = [...lost].filter((n) => inPool(r, this.nodes.get(n)?.metadata.labels)).sort();
      const status: ReserveStatus = {
        ...(f ? { poolNodes: f.poolNodes.length, poolUnits: f.poolUnits, reserveUnits: f.reserveUnits, freeUnits: f.freeUnits, reserveInUse: f.inUse } : {}),
        claimsHeldBack: held.length,
        lostNodes: poolLost,
        ...(r.metadata.generation !== undefined ? { observedGeneration: r.metadata.generation } : {}),
        conditions: [
          problem === undefined
            ? { type: 'Ready', status: 'True', reason: 'Kept', message: f && f.inUse > 0 ? `${f.inUse} GPU(s) of the reserve are in use by pods allowed to use it.` : 'The reserve is free.' }
            : { type: 'Ready', status: 'False', reason: 'Invalid', message: `The reserve is not kept because ${problem}.` },
        ],
      };
      this.metrics.reserveUnits.set({ reserve: name }, f?.reserveUnits ?? 0);
      this.metrics.reserveInUse.set({ reserve: name }, f?.inUse ?? 0);
      this.metrics.reserveHeldBack.set({ reserve: name }, held.length);
      const text = JSON.stringify(status);
      if (this.lastStatus.get(name) === text) continue;
      const stamped: ReserveStatus = { ...status, conditions: status.conditions?.map((c) => ({ ...c, lastTransitionTime: new Date().toISOString() })) };
      try {
        await this.kube.api<FailoverReserve>(FAILOVER_RESERVES).mergePatch(name, { status: stamped }, undefined, 'status');
        this.lastStatus.set(name, text);
      } catch (err) {
        if (!isNotFound(err)) this.log.warn('could not write a FailoverReserve status', { reserve: name, error: errorMessage(err) });
      }
    }
  }

  /** Whether a held-back pod or claim still waits. */
  private stillWaiting(key: string): boolean {
    if (key.startsWith('pod:')) {
      const p = this.pods.get(key.slice(4));
      return p !== undefined && !p.spec.nodeName && !isTerminal(p) && (p.spec.schedulingGates ?? []).some((g) => g.name === this.gate);
    }
    const c = this.claims.get(key.slice(6));
    return c !== undefined && !c.status?.allocation;
  }

  // ---- defragmentation ------------------------------------------------------

  /**
   * One step of the defragmentation plan, when none is under way: the movers
   * of the first step that serves a waiting pod are evicted (their owners
   * create them again elsewhere) and the devices they free are held for that
   * pod, exactly as for a preemption.
   */
  private async defragStep(): Promise<void> {
    if (!this.processing) return;
    for (const p of this.preempting.values()) if (p.kind === 'defrag') return;
    const classes = this.classMap();
    const scope = this.scope;
    const pods = this.pods.list();
    const plan = planDefrag({
      slices: this.sliceList(),
      classes: this.classes.list(),
      nodes: nodeFacts(this.nodes.list(), pods),
      claims: this.claims.list(),
      pods,
      driver: this.opts.driver,
      podFacts,
      ours: (c) => this.owns(c.spec, c.metadata.namespace ?? '', classes, scope).ours,
      // Only what a controller creates again may move.
      mayMove: (p) => p.metadata.ownerReferences?.some((o) => o.controller === true) === true,
    });
    const step = plan.steps.find((s) => s.pod !== undefined);
    const waiting = step?.pod !== undefined ? this.pods.get(step.pod) : undefined;
    if (!step || !waiting || waiting.metadata.uid === undefined) return;
    const uid = waiting.metadata.uid;
    this.ledger.holdDevices(holdId(uid), step.devices);
    this.preempting.set(objectKey(waiting), { uid, node: step.node, victims: step.moves.map((m) => m.pod), refs: step.devices, since: Date.now(), kind: 'defrag' });
    const moves = step.moves.map((m) => `${m.pod} from ${m.from} to ${m.to}`).join(', ');
    this.emit({
      regarding: referenceTo(waiting, 'v1', 'Pod'),
      type: 'Normal',
      reason: REASON.Defragmenting,
      action: ACTION.Preempt,
      note: `Moving ${step.moves.length} pod(s) to make room for this pod on node ${step.node}: ${moves}. The freed devices wait for this pod.`,
    });
    for (const m of step.moves) {
      const mover = this.pods.get(m.pod);
      const [ns = '', name = ''] = m.pod.split('/');
      if (mover) {
        this.emit({
          regarding: referenceTo(mover, 'v1', 'Pod'),
          related: referenceTo(waiting, 'v1', 'Pod'),
          type: 'Normal',
          reason: REASON.Moved,
          action: ACTION.Preempt,
          note: `Evicted to defragment node ${m.from}: its owner creates it again, and it fits on node ${m.to}; pod ${objectKey(waiting)} takes the room it leaves.`,
        });
      }
      try {
        await this.kube.evictPod(name, ns);
        this.log.info('moved a pod to defragment', { pod: m.pod, from: m.from, to: m.to, for: objectKey(waiting) });
      } catch (err) {
        if (isNotFound(err)) continue;
        this.log.warn('eviction for defragmentation refused', { pod: m.pod, error: errorMessage(err) });
        this.dropPreemption(objectKey(waiting));
        return;
      }
    }
    this.queue.add(POD + objectKey(waiting));
  }

  // ---- preemption -----------------------------------------------------------

  /** Nothing fits: wait for a preemption under way, or preempt, or say why it waits. */
  private async notAllocated(outcome: UnallocatedOutcome, claims: ResourceClaim[], pod: Pod | undefined, who: string, held: Preempting | undefined, allocator: Allocator): Promise<SyncResult> {
    const podKey = pod ? objectKey(pod) : '';
    if (held) {
      // Its victims are still going: keep their devices for it and wait.
      if (this.victimsRemain(held) && Date.now() - held.since < (this.opts.preemptionHoldMs ?? 300_000)) {
        this.ledger.holdDevices(holdId(held.uid), held.refs);
        return { requeueAfterMs: 1_000 };
      }
      this.preempting.delete(podKey);
    }
    if (pod && this.pdbs) {
      const preempted = await this.preempt(pod, claims, allocator, outcome);
      if (preempted) return preempted;
    }
    this.reportFailure(outcome, claims, pod, who);
    return { requeueAfterMs: this.opts.retryUnfitMs ?? 30_000 };
  }

  private dropPreemption(podKey: string): void {
    const p = this.preempting.get(podKey);
    if (!p) return;
    this.preempting.delete(podKey);
    this.ledger.releaseHold(holdId(p.uid));
  }

  /** Whether any victim of a preemption is still there (not yet evicted, or terminating). */
  private victimsRemain(p: Preempting): boolean {
    return p.victims.some((k) => {
      const v = this.pods.get(k);
      return v !== undefined && !isTerminal(v);
    });
  }

  /**
   * Pods a preemptor of `priority` may displace: bound, lower priority, holding
   * devices through claims no other live pod uses (evicting a sharer frees
   * nothing), and not protected by a PodDisruptionBudget that allows no
   * disruption now.
   */
  private victimCandidates(preemptor: Pod, priority: number): VictimCandidate[] {
    const out: VictimCandidate[] = [];
    const pdbs = this.pdbs?.list() ?? [];
    for (const p of this.pods.list()) {
      if (!p.spec.nodeName || isTerminal(p) || p.metadata.deletionTimestamp || p.metadata.uid === preemptor.metadata.uid) continue;
      if ((p.spec.priority ?? 0) >= priority) continue;
      const ns = p.metadata.namespace ?? '';
      const refs: AllocatedDeviceRef[] = [];
      let shared = false;
      for (const n of podClaimNames(p)) {
        const c = n ? this.claims.get(`${ns}/${n}`) : undefined;
        if (!c?.status?.allocation) continue;
        const others = (c.status.reservedFor ?? []).filter((r) => r.uid !== p.metadata.uid && this.pods.get(`${ns}/${r.name}`) !== undefined);
        if (others.length > 0) shared = true;
        refs.push(...refsOf(c.status.allocation, this.drivers));
      }
      if (shared || refs.length === 0 || protectedByBudget(p, pdbs)) continue;
      out.push({ key: objectKey(p), uid: p.metadata.uid ?? '', node: p.spec.nodeName, priority: p.spec.priority ?? 0, refs, milliCpu: podRequest(p, 'cpu'), memoryBytes: podRequest(p, 'memory') });
    }
    return out;
  }

  /** Preemptors already told they preempt no one (pod UID -> why). */
  private readonly toldNoPreemption = new Map<string, string>();

  private tellNoPreemption(pod: Pod, why: string): void {
    const uid = pod.metadata.uid ?? '';
    if (this.toldNoPreemption.get(uid) === why) return;
    if (this.toldNoPreemption.size > 10_000) this.toldNoPreemption.clear();
    this.toldNoPreemption.set(uid, why);
    this.emit({ regarding: referenceTo(pod, 'v1', 'Pod'), type: 'Normal', reason: REASON.NotPreempting, action: ACTION.Preempt, note: why });
  }

  /**
   * A pod that fits nowhere: evicts the cheapest set of lower-priority pods on
   * one node whose devices would let it in, and holds those devices for it.
   * Returns how to requeue when it preempted, undefined when it did not.
   */
  private async preempt(pod: Pod, claims: ResourceClaim[], allocator: Allocator, failed: AllocationOutcome): Promise<SyncResult | undefined> {
    const priority = pod.spec.priority ?? 0;
    const name = `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`;
    const candidates = this.victimCandidates(pod, priority);
    if (candidates.length === 0) return undefined;
    if (pod.spec.preemptionPolicy === 'Never') {
      this.tellNoPreemption(pod, `The pod waits without preempting anyone because its preemptionPolicy is Never, although ${candidates.length} lower-priority pod(s) hold devices.`);
      return undefined;
    }
    const plan = planPreemption(allocator, { claims, pod: podFacts(pod) }, candidates);
    if (!plan) {
      this.tellNoPreemption(pod, `The pod waits: evicting lower-priority pods would not make room for it on any one node. ${failed.kind === 'unallocated' ? failed.explanation.short : ''}`.trim());
      return undefined;
    }
    const uid = pod.metadata.uid ?? '';
    const victims = plan.victims.map((v) => v.key);
    // Held from now on: once the victims let go, their devices wait for this pod alone.
    // The whole placement is held, the devices already free included: nobody takes part of it meanwhile.
    this.ledger.holdDevices(holdId(uid), plan.placement);
    this.preempting.set(objectKey(pod), { uid, node: plan.node, victims, refs: plan.placement, since: Date.now(), kind: 'preemption' });
    const devices = [...new Set(plan.devices.map((r) => r.device))].join(', ');
    const list = plan.victims.map((v) => `${v.key} (priority ${v.priority})`).join(', ');
    this.emit({
      regarding: referenceTo(pod, 'v1', 'Pod'),
      type: 'Normal',
      reason: REASON.Preempting,
      action: ACTION.Preempt,
      note: `Evicting ${plan.victims.length} lower-priority pod(s) on node ${plan.node} to free ${devices} for this pod (priority ${priority}): ${list}. It is allocated once they are gone; until then nobody else gets those devices.`,
    });
    for (const v of plan.victims) {
      const [ns = '', vname = ''] = v.key.split('/');
      const victim = this.pods.get(v.key);
      if (victim) {
        this.emit({
          regarding: referenceTo(victim, 'v1', 'Pod'),
          related: referenceTo(pod, 'v1', 'Pod'),
          type: 'Warning',
          reason: REASON.Preempted,
          action: ACTION.Preempt,
          note: `Evicted so that pod ${name} (priority ${priority}, above this pod's ${v.priority}) gets the devices it needs on node ${plan.node}; this was the cheapest set of pods to displace there.`,
        });
      }
      try {
        await this.kube.evictPod(vname, ns);
        this.metrics.preemptions.inc();
        this.log.info('preempted', { preemptor: name, victim: v.key, node: plan.node, devices });
      } catch (err) {
        if (isNotFound(err)) continue;
        // A budget that changed since we looked (429), or another refusal: let go and decide again later.
        this.log.warn('eviction for preemption refused', { preemptor: name, victim: v.key, error: errorMessage(err) });
        this.dropPreemption(objectKey(pod));
        return { requeueAfterMs: 5_000 };
      }
    }
    return { requeueAfterMs: 1_000 };
  }

  private forgetUngated(podKey: string): void {
    this.ungated.delete(podKey);
  }

  private get wasReservedKey(): string {
    return wasReservedAnnotation(this.opts.driver);
  }

  private async markReserved(claim: ResourceClaim): Promise<void> {
    if (!this.processing) return;
    try {
      await this.kube.resourceClaims.mergePatch(
        claim.metadata.name ?? '',
        { metadata: { resourceVersion: claim.metadata.resourceVersion, annotations: { [this.wasReservedKey]: 'true' } } },
        claim.metadata.namespace,
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }

  /** Claims and pods already told that a claim is refused (UID -> resourceVersion of the claim spec's generation). */
  private readonly toldRefused = new Map<string, string>();
  private readonly bindingFailures = new BindingFailures();

  private onceFor(uid: string, what: string): boolean {
    if (this.toldRefused.get(uid) === what) return false;
    if (this.toldRefused.size > 10_000) this.toldRefused.clear();
    this.toldRefused.set(uid, what);
    return true;
  }

  /** A claim mixing classes Cascade allocates with others: a Warning on the claim, once. */
  private refuseMixed(claim: ResourceClaim, why: string, others: readonly string[]): void {
    if (!this.onceFor(claim.metadata.uid ?? '', why)) return;
    this.emit({
      regarding: referenceTo(claim, 'resource.k8s.io/v1', 'ResourceClaim'),
      type: 'Warning',
      reason: REASON.InvalidClaim,
      action: ACTION.Allocate,
      note: `Cascade refuses to allocate this claim because ${why}. Put the devices of ${others.join(', ')} in a separate claim, or run the controller with their driver in --co-allocate-drivers; until then pods that use it stay gated.`,
    });
  }

  private tellRefused(pod: Pod, claimName: string, why: string): void {
    if (!this.onceFor(pod.metadata.uid ?? '', `${claimName}\u0000${why}`)) return;
    this.emit({
      regarding: referenceTo(pod, 'v1', 'Pod'),
      type: 'Warning',
      reason: REASON.InvalidClaim,
      action: ACTION.Allocate,
      note: `The pod stays gated because its claim ${claimName} is refused: ${why}. Split the claim so that each holds only devices of one kind of allocator.`,
    });
  }

  /** Pods already told that a claim they name does not exist (pod UID -> claim name). */
  private readonly toldMissing = new Map<string, string>();

  /**
   * A pod names a claim the cache does not have. A generated claim is on its
   * way (the claim controller creates it); a claim named by resourceClaimName
   * may never come, and a gated pod would wait forever in silence: say so once.
   * The claim's creation requeues the pod (through the pod index by claim).
   */
  private claimMissing(pod: Pod, claimName: string): SyncResult {
    const direct = (pod.spec.resourceClaims ?? []).some((rc) => rc.resourceClaimName === claimName);
    const hasGate = (pod.spec.schedulingGates ?? []).some((g) => g.name === this.gate);
    const uid = pod.metadata.uid ?? '';
    if (!direct || !hasGate || this.toldMissing.get(uid) === claimName) return undefined;
    this.toldMissing.set(uid, claimName);
    if (this.toldMissing.size > 10_000) this.toldMissing.clear();
    this.emit({
      regarding: referenceTo(pod, 'v1', 'Pod'),
      type: 'Warning',
      reason: REASON.ClaimNotFound,
      action: ACTION.Allocate,
      note: `The pod waits because its ResourceClaim ${pod.metadata.namespace ?? ''}/${claimName} does not exist. Create the claim (or change the pod to use a resourceClaimTemplateName); the pod stays gated until then.`,
    });
    return undefined;
  }

  private async syncClaim(key: string): Promise<SyncResult> {
    const claim = this.claims.get(key);
    this.ledger.observeClaim(key, claim);
    if (!claim) {
      this.queue.forget(CLAIM + key);
      this.bindingFailures.forget(key);
      // Its devices are free: claims waiting for room may fit now.
      this.requeuePending();
      return undefined;
    }
    const hasFinalizer = (claim.metadata.finalizers ?? []).includes(this.finalizer);
    const reserved = (claim.status?.reservedFor ?? []).length > 0;
    const users = this.pods.byIndex(BY_CLAIM, key).filter((p) => !isTerminal(p));

    if (claim.metadata.deletionTimestamp) {
      if (!hasFinalizer) return undefined;
      if (reserved) return undefined; // the kubelet/scheduler side still holds it; we get an update when it is released
      await this.deallocate(claim, 'the claim is being deleted');
      return undefined;
    }
    const wasReserved = this.ledger.wasReserved(claim.metadata.uid ?? '') || claim.metadata.annotations?.[this.wasReservedKey] === 'true';
    if (claim.status?.allocation) {
      if (hasFinalizer) this.noteBindingFailures(key, claim, users);
      // Remember in the claim itself that a pod used it (standalone claims outlive their pods).
      if (hasFinalizer && reserved && !claim.metadata.ownerReferences?.some((o) => o.kind === 'Pod') && claim.metadata.annotations?.[this.wasReservedKey] !== 'true') {
        await this.markReserved(claim);
        return undefined;
      }
      // A claim we allocated that its pods no longer use goes back to the pool.
      if (hasFinalizer && !reserved && users.length === 0 && wasReserved) {
        await this.deallocate(claim, 'no pod uses it any more');
      }
      return undefined;
    }
    const classes = this.classMap();
    const own = this.owns(claim.spec, claim.metadata.namespace ?? '', classes);
    if (!own.ours) {
      // Half ours: refused, and said once where the user looks, instead of silently ignored.
      if (own.mixed) this.refuseMixed(claim, own.why, own.mixed.others);
      return undefined;
    }
    if (users.length > 0 || claim.metadata.ownerReferences?.some((o) => o.kind === 'Pod')) {
      // Decided together with the other claims of its pod.
      for (const p of this.pods.byIndex(BY_CLAIM, key)) this.queue.add(POD + objectKey(p));
      return undefined;
    }
    // Released because its pods were gone: the next pod that uses it allocates it again.
    if (wasReserved) return undefined;
    return await this.decide([claim], undefined);
  }

  // ---- decisions ------------------------------------------------------------

  /**
   * A claim no fleet could satisfy as written (a count over the API's limit, an
   * unknown mode), or whose opaque config the node plugin would refuse (it must
   * not hold a device while its pod retries prepare forever): say so and leave
   * it unallocated. A claim's spec is immutable, so it is not retried.
   */
  private invalidClaim(claims: readonly ResourceClaim[], pod: Pod | undefined): boolean {
    const classes = this.classMap();
    for (const c of claims) {
      if (c.status?.allocation) continue;
      const classConfigs = new Map(classNamesOf(c.spec).map((n) => [n, classes.get(n)?.spec.config ?? []]));
      const configProblem = claimConfigProblem(this.opts.driver, c.spec.devices?.config, classConfigs);
      const spec = specProblems(c.spec);
      if (!configProblem && spec.length === 0) continue;
      const problem = configProblem ?? spec.join('; ');
      const what = configProblem ? 'its device configuration is invalid' : 'no fleet could ever satisfy it as written';
      const note = `Cascade does not allocate this claim because ${what}: ${problem}. Fix it and create the claim again (a claim's spec cannot change).`;
      this.emit({
        regarding: referenceTo(c, 'resource.k8s.io/v1', 'ResourceClaim'),
        related: pod ? referenceTo(pod, 'v1', 'Pod') : undefined,
        type: 'Warning',
        reason: REASON.InvalidClaim,
        action: ACTION.Allocate,
        note,
      });
      if (pod) this.emit({ regarding: referenceTo(pod, 'v1', 'Pod'), type: 'Warning', reason: REASON.InvalidClaim, action: ACTION.Allocate, note: `Claim ${c.metadata.name ?? ''}: ${note}` });
      this.log.info('claim not allocated: invalid claim', { claim: `${c.metadata.namespace ?? ''}/${c.metadata.name ?? ''}`, uid: c.metadata.uid, problem });
      return true;
    }
    return false;
  }

  private async decide(claims: ResourceClaim[], pod: Pod | undefined): Promise<SyncResult> {
    // Another decision for one of these claims is still being written: wait for it.
    if (claims.some((c) => this.ledger.isInFlight(c.metadata.uid ?? ''))) return { requeueAfterMs: 200 };
    if (this.invalidClaim(claims, pod)) return undefined;
    const allocator = this.ledger.allocator();
    // Decided before (its allocation was cleared since): give its cpu/memory back first.
    if (pod) this.ledger.undecide(pod);
    // Devices held for this pod after it preempted others are its to take (the hold comes back below if it still does not fit).
    const podKey = pod ? objectKey(pod) : '';
    const held = this.preempting.get(podKey);
    if (held) this.ledger.releaseHold(holdId(held.uid));
    // Devices whose binding failed for one of these claims are kept out of this decision.
    const avoid = claims.flatMap((c) => this.bindingFailures.avoid(objectKey(c), c.metadata.uid ?? ''));
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const setsBefore = allocator.matcher.sets.length;
    let outcome: AllocationOutcome;
    try {
      allocator.markAllocated(avoid);
      try {
        outcome = allocator.allocate({ claims, pod: pod ? podFacts(pod) : undefined });
      } finally {
        allocator.release(avoid);
      }
    } catch (err) {
      // A bug or an unexpected input must not stop the queue; report it where people look.
      outcome = {
        kind: 'unallocated',
        explanation: { short: `internal error: ${errorMessage(err)}`, full: String((err as Error).stack ?? err) },
        diagnosis: { errors: [errorMessage(err)], requests: [], nodes: { candidates: 0, rejected: {} } },
      };
    }
    const seconds = (performance.now() - started) / 1000;
    this.metrics.decisionSeconds.observe({ outcome: outcome.kind }, seconds);
    const who = pod ? `pod ${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}` : `claim ${claims[0]?.metadata.namespace ?? ''}/${claims[0]?.metadata.name ?? ''}`;
    if (seconds > SLOW_DECISION_SECONDS) {
      // Where a slow decision's time went: CPU well below the wall time means the process
      // waited for a core (or the collector); new device lists mean selectors ran over the fleet.
      const cpu = process.cpuUsage(cpuBefore);
      this.log.warn('slow allocation decision', {
        for: who,
        outcome: outcome.kind,
        ms: Math.round(seconds * 1000),
        cpuMs: Math.round((cpu.user + cpu.system) / 1000),
        newDeviceLists: allocator.matcher.sets.length - setsBefore,
        devices: allocator.inventory.devices.length,
      });
    }
    if (outcome.kind === 'unallocated') return await this.notAllocated(outcome, claims, pod, who, held, allocator);
    if (held) this.preempting.delete(podKey);
    const waitFor = this.reserveHold(outcome, pod, claims, allocator);
    if (waitFor) return waitFor;
    // Count the devices as in use now, before the writes: concurrent decisions never double-book.
    const fresh = outcome.claims.filter((c) => !c.preexisting);
    const byName = new Map(claims.map((c) => [`${c.metadata.namespace ?? ''}/${c.metadata.name ?? ''}`, c]));
    const taken = fresh.flatMap((ca): [string, AllocatedDeviceRef[]][] => {
      const uid = byName.get(`${ca.namespace}/${ca.name}`)?.metadata.uid;
      return uid ? [[uid, refsOf(ca.allocation, this.drivers)]] : [];
    });
    this.ledger.commit(allocator, outcome, pod, taken);
    let allWritten = true;
    // What the pod's own Allocated events say, sent once the gate is off (one event per claim, not two).
    const podNotes: string[] = [];
    for (const [i, ca] of fresh.entries()) {
      const claim = byName.get(`${ca.namespace}/${ca.name}`);
      if (!claim) continue;
      if (!this.processing) {
        // No longer the leader: a new leader decides afresh; write nothing more.
        for (const rest of fresh.slice(i)) {
          const c = byName.get(`${rest.namespace}/${rest.name}`);
          if (c) this.rollback(c);
        }
        return undefined;
      }
      try {
        await this.writeAllocation(claim, ca.allocation);
      } catch (err) {
        allWritten = false;
        // Roll back this claim and the ones not written yet (a pod's claims share one node);
        // the informer brings back whatever the API server really holds.
        for (const rest of fresh.slice(i)) {
          const c = byName.get(`${rest.namespace}/${rest.name}`);
          if (c) this.rollback(c);
        }
        if (err instanceof KubeApiError && (err.code === 409 || err.code === 404)) {
          this.metrics.writeConflicts.inc();
          this.log.info('claim changed while allocating; will re-read and retry', { claim: `${ca.namespace}/${ca.name}`, error: err.message });
          break;
        }
        throw err;
      }
      podNotes.push(this.reportAllocated(claim, ca, outcome, pod));
    }
    this.updateGauges();
    if (pod) {
      let removed = false;
      try {
        const now = this.pods.get(objectKey(pod)) ?? pod;
        if (allWritten && (now.spec.schedulingGates ?? []).some((g) => g.name === this.gate)) removed = await this.removeGate(now, `all claims are allocated on node ${outcome.node ?? '?'}`, true);
      } finally {
        const gone = removed ? ` Removed scheduling gate ${this.gate}: the kube-scheduler may bind the pod now.` : '';
        for (const note of podNotes) this.emit({ regarding: referenceTo(pod, 'v1', 'Pod'), type: 'Normal', reason: REASON.Allocated, action: ACTION.Allocate, note: `${note}${gone}` });
      }
    }
    if (!allWritten) return { requeueAfterMs: 0 };
    return undefined;
  }

  /** Nothing fits: the explanation on each pending claim and on the pod. */
  private reportFailure(outcome: Extract<AllocationOutcome, { kind: 'unallocated' }>, claims: readonly ResourceClaim[], pod: Pod | undefined, who: string): void {
    this.metrics.allocations.inc({ outcome: 'failed', rank: 'none' });
    this.log.info('allocation failed', { for: who, explanation: outcome.explanation.full });
    for (const c of claims.filter((x) => !x.status?.allocation)) {
      this.emit({
        regarding: referenceTo(c, 'resource.k8s.io/v1', 'ResourceClaim'),
        related: pod ? referenceTo(pod, 'v1', 'Pod') : undefined,
        type: 'Warning',
        reason: REASON.AllocationFailed,
        action: ACTION.Allocate,
        note: outcome.explanation.short,
      });
    }
    if (pod) this.emit({ regarding: referenceTo(pod, 'v1', 'Pod'), type: 'Warning', reason: REASON.AllocationFailed, action: ACTION.Allocate, note: outcome.explanation.short });
    this.updateGauges();
  }

  /** A claim's allocation is written: the metrics, the Allocated events and the log line. */
  /**
   * A device of this claim failed to bind (a binding failure condition is True):
   * said once on the claim and its waiting pods, and remembered so that the
   * claim's next allocation (after the kube-scheduler releases this one) avoids it.
   */
  private noteBindingFailures(key: string, claim: ResourceClaim, users: readonly Pod[]): void {
    const failures = failedBindings(claim);
    if (failures.length === 0) return;
    const fresh = this.bindingFailures.add(key, claim.metadata.uid ?? '', failures);
    const node = nodeOf(claim.status?.allocation);
    for (const f of fresh) {
      const note = describeFailure(f, node);
      this.emit({ regarding: referenceTo(claim, 'resource.k8s.io/v1', 'ResourceClaim'), type: 'Warning', reason: REASON.BindingFailed, action: ACTION.Allocate, note });
      for (const p of users) {
        if (!p.spec.nodeName)
          this.emit({ regarding: referenceTo(p, 'v1', 'Pod'), type: 'Warning', reason: REASON.BindingFailed, action: ACTION.Allocate, note: `Claim ${claim.metadata.name ?? ''}: ${note}` });
      }
      this.log.info('device binding failed', {
        claim: key,
        uid: claim.metadata.uid,
        device: `${f.ref.driver}/${f.ref.pool}/${f.ref.device}`,
        condition: f.condition,
        reason: f.reason,
        message: f.message,
      });
    }
  }

  /** The claim's Allocated event; returns what the pod's event says (the caller sends it, with the gate's removal). */
  private reportAllocated(claim: ResourceClaim, ca: AllocatedOutcome['claims'][number], outcome: AllocatedOutcome, pod: Pod | undefined): string {
    const alt = ca.alternatives.map((a) => (a.subrequest ? `${a.request}: alternative ${a.index + 1} (${a.subrequest})` : `${a.request}`)).join('; ');
    const rank = ca.alternatives.length ? String(Math.max(...ca.alternatives.map((a) => a.index)) + 1) : 'exact';
    this.metrics.allocations.inc({ outcome: 'allocated', rank: ca.alternatives.some((a) => a.subrequest) ? rank : 'exact' });
    const devices = (ca.allocation.devices?.results ?? []).map((r) => describeResult(r, this.opts.driver, this.whereabouts)).join(', ');
    const wait = bindingWait(ca.allocation);
    const note = `Allocated ${devices} on node ${outcome.node ?? 'any'}${alt.includes('alternative') ? `; chose ${alt}` : ''}. ${wait !== undefined ? `${wait} ` : ''}${outcome.explanation.short}`;
    this.emit({
      regarding: referenceTo(claim, 'resource.k8s.io/v1', 'ResourceClaim'),
      related: pod ? referenceTo(pod, 'v1', 'Pod') : undefined,
      type: 'Normal',
      reason: REASON.Allocated,
      action: ACTION.Allocate,
      note,
    });
    this.log.info('allocated', { claim: `${ca.namespace}/${ca.name}`, uid: claim.metadata.uid, node: outcome.node, devices, explanation: outcome.explanation.full });
    return `Claim ${claim.metadata.name ?? ''}: ${note}`;
  }

  /** NUMA node and PCIe root of an allocated device, from the allocator's inventory. */
  private readonly whereabouts: Whereabouts = (r) => {
    const inv = this.ledger.current?.inventory;
    const d = inv?.deviceIndex.get(`${r.driver}/${r.pool}/${r.device}`);
    if (inv === undefined || d === undefined) return '';
    const parts: string[] = [];
    const numa = inv.deviceNuma[d] ?? -1;
    if (numa >= 0) parts.push(`NUMA ${numa}`);
    const root = inv.devices[d]?.attributes.get(STANDARD_ATTRIBUTES.pcieRoot);
    if (root !== undefined && root.startsWith('s:')) parts.push(root.slice(2));
    return parts.join(', ');
  };

  /** Forgets an allocation we did not manage to write, keeping the ledger equal to the API's view. */
  private rollback(claim: ResourceClaim): void {
    this.ledger.rollback(claim.metadata.uid ?? '', this.claims.get(objectKey(claim)));
  }

  /** Adds our finalizer, then writes status.allocation, both conditional on what we read. */
  private async writeAllocation(claim: ResourceClaim, allocation: AllocationResult): Promise<void> {
    const ns = claim.metadata.namespace ?? '';
    const name = claim.metadata.name ?? '';
    let rv = claim.metadata.resourceVersion;
    if (!(claim.metadata.finalizers ?? []).includes(this.finalizer)) {
      const updated = await this.kube.resourceClaims.mergePatch(name, { metadata: { resourceVersion: rv, finalizers: [...(claim.metadata.finalizers ?? []), this.finalizer] } }, ns);
      rv = updated.metadata.resourceVersion;
    }
    await this.kube.resourceClaims.mergePatch(
      name,
      { metadata: { resourceVersion: rv }, status: { allocation: { ...allocation, allocationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } } },
      ns,
      'status',
    );
  }

  /** Events are best effort and must not hold up the queue: the recorder logs its own failures. */
  private emit(ev: Parameters<EventRecorder['record']>[0]): void {
    void this.recorder.record(ev);
  }

  private get kube(): Kube {
    return this.opts.kube;
  }

  private async deallocate(claim: ResourceClaim, why: string): Promise<void> {
    if (!this.processing) return;
    const ns = claim.metadata.namespace ?? '';
    const name = claim.metadata.name ?? '';
    let rv = claim.metadata.resourceVersion;
    const devices = (claim.status?.allocation?.devices?.results ?? []).filter((r) => this.drivers.includes(r.driver)).map((r) => r.device);
    try {
      if (claim.status?.allocation) {
        const updated = await this.kube.resourceClaims.mergePatch(name, { metadata: { resourceVersion: rv }, status: { allocation: null } }, ns, 'status');
        rv = updated.metadata.resourceVersion;
        this.ledger.released(claim.metadata.uid ?? '');
        this.metrics.deallocations.inc();
      }
      const finalizers = (claim.metadata.finalizers ?? []).filter((f) => f !== this.finalizer);
      await this.kube.resourceClaims.mergePatch(name, { metadata: { resourceVersion: rv, finalizers } }, ns);
    } catch (err) {
      if (isNotFound(err)) return;
      if (isConflict(err)) this.metrics.writeConflicts.inc();
      throw err;
    }
    this.log.info('deallocated', { claim: `${ns}/${name}`, uid: claim.metadata.uid, devices, why });
    if (devices.length && !claim.metadata.deletionTimestamp) {
      this.emit({
        regarding: referenceTo(claim, 'resource.k8s.io/v1', 'ResourceClaim'),
        type: 'Normal',
        reason: REASON.Deallocated,
        action: ACTION.Deallocate,
        note: `Released ${devices.join(', ')}: ${why}.`,
      });
    }
    this.requeuePending();
  }

  /**
   * Pods (key and UID) whose gate we removed and whose cache entry may still
   * show it: a second sync must not patch again. Forgotten once the cache shows
   * the pod without the gate, or without the pod.
   */
  private readonly ungated = new Map<string, string>();

  /**
   * Removes our gate; true when this call removed it. `quiet`: the caller says so
   * in its own event (the pod's Allocated event), so no SchedulingGateRemoved.
   */
  private async removeGate(pod: Pod, why: string, quiet = false): Promise<boolean> {
    if (!this.processing) return false;
    const gates = pod.spec.schedulingGates ?? [];
    const i = gates.findIndex((g) => g.name === this.gate);
    if (i < 0) return false;
    const key = objectKey(pod);
    const uid = pod.metadata.uid ?? '';
    if (this.ungated.get(key) === uid) return false;
    this.ungated.set(key, uid);
    try {
      await this.kube.pods.jsonPatch(pod.metadata.name ?? '', gateRemovalOps(i, this.gate), pod.metadata.namespace);
    } catch (err) {
      if (isNotFound(err)) return false;
      // 422 from a failed "test": the gates changed under us; the pod update requeues us.
      if (err instanceof KubeApiError && err.code === 422) return false;
      this.ungated.delete(key);
      throw err;
    }
    if (!quiet)
      this.emit({ regarding: referenceTo(pod, 'v1', 'Pod'), type: 'Normal', reason: REASON.SchedulingGateRemoved, action: ACTION.Ungate, note: `Removed scheduling gate ${this.gate}: ${why}.` });
    return true;
  }

  /** For tests and the health endpoint. */
  get pendingWork(): number {
    return this.queue.backlog;
  }
}
