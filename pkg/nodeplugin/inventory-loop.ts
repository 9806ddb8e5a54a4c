// Keeps the node's ResourceSlices and device health current: rediscovers on a
// poll interval and on demand (MIG mode switched, health changed), taints
// unhealthy GPUs, and never unpublishes because nvidia-smi failed once.
import type { DeviceTaint } from '../api/resource.js';
import { buildDesiredSlices, carryOverLostGpus, profileNotes, taintsFromHealth, unhealthyTaint, unhealthyTaintKey } from '../inventory/index.js';
import type { DesiredSlice, OwnedInstance, PassthroughGpu, SharingOptions } from '../inventory/types.js';
import type { DeviceHealthBoard, DeviceHealthEntry } from '../kubeletplugin/health.js';
import type { SerialQueue } from '../kubeletplugin/serialize.js';
import { errorMessage, type Logger } from '../log/logger.js';
import type { Discovery, GpuBackend } from '../nvidia/backend.js';
import { NvidiaSmiError, NvidiaSmiParseError } from '../nvidia/errors.js';
import type { GpuHealth } from '../nvidia/types.js';
import type { PublishResult, SlicePublisher } from '../publish/publisher.js';
import { type InventorySnapshot, inventorySnapshot } from './plan.js';
import type { PublishedInventory } from './published-inventory.js';

export interface InventoryLoopOptions {
  readonly driver: string;
  readonly nodeName: string;
  readonly backend: GpuBackend;
  /** Where the inventory goes for prepare to validate against. */
  readonly published: PublishedInventory;
  /** The MIG instances that are ours (the checkpoint's), published as ordinary partitions. */
  readonly ownedInstances: (discovery: Discovery) => OwnedInstance[];
  /**
   * Start-up recovery, when the explicit call at start-up could not finish it
   * (nvidia-smi failed then): retried before each pass until it succeeds.
   */
  readonly pendingRecovery?: PendingRecovery;
  /** Shared with prepare/unprepare: discovery must not see a MIG instance between creation and record. */
  readonly queue: SerialQueue;
  /** Undefined: build the inventory without publishing (the benchmark). */
  readonly publisher: SlicePublisher | undefined;
  readonly board: DeviceHealthBoard;
  readonly pollIntervalMs: number;
  readonly healthIntervalMs: number;
  readonly dynamicMig: boolean;
  /** How GPUs are published for sharing (default: on with the default policies). */
  readonly sharing?: SharingOptions | false;
  /** The GPUs this node may pass through, as sysfs shows them after a discovery. */
  readonly passthrough?: (discovery: Discovery) => Promise<PassthroughGpu[]>;
  readonly log: Logger;
}

/** Taints by GPU UUID, one per key (the first wins): lost-GPU and health checks may both report a GPU. */
export function mergeTaints(...sources: ReadonlyArray<Readonly<Record<string, readonly DeviceTaint[]>>>): Record<string, DeviceTaint[]> {
  const out: Record<string, DeviceTaint[]> = {};
  for (const source of sources) {
    for (const [uuid, taints] of Object.entries(source)) {
      const list = (out[uuid] ??= []);
      for (const t of taints) if (!list.some((x) => x.key === t.key && x.effect === t.effect)) list.push(t);
    }
  }
  return out;
}

/** One health-stream entry per published device: UNHEALTHY when it carries our unhealthy taint. */
export function healthEntries(driver: string, slices: readonly DesiredSlice[], at: number): DeviceHealthEntry[] {
  const key = unhealthyTaintKey(driver);
  const out: DeviceHealthEntry[] = [];
  for (const s of slices) {
    for (const d of s.spec.devices ?? []) {
      const taint = d.taints?.find((t) => t.key === key);
      out.push({
        poolName: s.spec.pool.name,
        deviceName: d.name,
        health: taint ? 'UNHEALTHY' : 'HEALTHY',
        lastUpdatedTime: at,
        ...(taint ? { message: taint.value ?? 'unhealthy' } : {}),
      });
    }
  }
  return out;
}

function describeFailure(err: unknown): Record<string, unknown> {
  if (err instanceof NvidiaSmiError) return { command: err.command, kind: err.kind, exitCode: err.exitCode, error: err.message };
  if (err instanceof NvidiaSmiParseError) return { command: err.command, line: err.lineNumber, error: err.message };
  return { error: errorMessage(err) };
}

/** Recovery still owed; `run` returns whether it destroyed instances (discover again then). */
export interface PendingRecovery {
  owed(): boolean;
  run(discovery: Discovery): Promise<boolean>;
}

export class InventoryLoop {
  private previous: Discovery | undefined;
  private passthrough: PassthroughGpu[] = [];
  private health: readonly GpuHealth[] = [];
  private healthKey = '[]';
  private published: PublishResult | undefined;
  private stopped = true;
  private wake: (() => void) | undefined;
  private wanted = false;
  private loopDone: Promise<void> = Promise.resolve();
  private healthTimer: NodeJS.Timeout | undefined;
  private healthRunning: Promise<void> = Promise.resolve();
  private cycles = 0;
  private running = false;
  private boardKey = '';
  private notesKey = '';
  private readonly cycleWaiters: { after: number; resolve: () => void }[] = [];

  constructor(private readonly o: InventoryLoopOptions) {
    o.published.onChange(() => this.requestRefresh());
  }

  /** The inventory last built, for prepare to validate claims against. */
  get inventory(): InventorySnapshot | undefined {
    return this.o.published.current;
  }

  /** The last successful publication, if any. */
  get lastPublished(): PublishResult | undefined {
    return this.published;
  }

  /**
   * One pass: recovery if still owed, discovery, slices, publication. Errors
   * are logged and the last published slices stay as they are.
   */
  async refresh(): Promise<boolean> {
    let desired: DesiredSlice[];
    try {
      desired = await this.o.queue.run(() => this.build());
    } catch (err) {
      const withoutDriver = this.driverGone(err);
      if (!withoutDriver) {
        this.o.log.error('GPU discovery failed; keeping the slices published last', describeFailure(err));
        return false;
      }
      this.o.log.error('the NVIDIA kernel driver is not loaded; every GPU is published tainted until it is back', describeFailure(err));
      desired = withoutDriver;
    }
    const entries = healthEntries(this.o.driver, desired, Math.floor(Date.now() / 1000));
    const boardKey = JSON.stringify(entries.map((e) => [e.deviceName, e.health, e.message]));
    // The stream sends the whole list on every change: only when something did change.
    if (boardKey !== this.boardKey) {
      this.boardKey = boardKey;
      this.o.board.replaceAll(entries);
    }
    if (!this.o.publisher) return true;
    try {
      this.published = await this.o.publisher.publish(desired);
      return true;
    } catch (err) {
      this.o.log.error('publishing ResourceSlices failed; will retry', { error: errorMessage(err) });
      return false;
    }
  }

  private async build(): Promise<DesiredSlice[]> {
    let current = await this.o.backend.discover();
    const recovery = this.o.pendingRecovery;
    // Instances destroyed by recovery must not be published as they were.
    if (recovery?.owed() && (await recovery.run(current))) current = await this.o.backend.discover();
    const { discovery, taints: lost } = carryOverLostGpus(this.o.driver, this.previous, current);
    const taints = mergeTaints(lost, taintsFromHealth(this.o.driver, this.health, discovery));
    this.previous = discovery;
    this.passthrough = (await this.o.passthrough?.(discovery)) ?? [];
    this.logProfileNotes(discovery);
    return this.publishable(discovery, taints);
  }

  /** Says once (and again when it changes) which MIG values come from the catalog. */
  private logProfileNotes(discovery: Discovery): void {
    const notes = profileNotes(discovery, { dynamicMig: this.o.dynamicMig });
    const key = notes.join('\n');
    if (key === this.notesKey) return;
    this.notesKey = key;
    for (const note of notes) this.o.log.info(note);
  }

  /** The slices for a discovery with its taints; what prepare validates against becomes exactly that. */
  private publishable(discovery: Discovery, taints: Record<string, DeviceTaint[]>): DesiredSlice[] {
    const slices = buildDesiredSlices({
      nodeName: this.o.nodeName,
      driverName: this.o.driver,
      discovery,
      ownedInstances: this.o.ownedInstances(discovery),
      taints,
      options: { dynamicMig: this.o.dynamicMig, ...(this.o.sharing !== undefined ? { sharing: this.o.sharing } : {}) },
      passthrough: this.passthrough,
    });
    this.o.published.set(inventorySnapshot(discovery, slices, this.passthrough));
    return slices;
  }

  /**
   * With the kernel driver unloaded nvidia-smi answers nothing, yet the GPUs are
   * still there and claims still name them: keep publishing what was last
   * discovered, every GPU tainted, so nothing new lands on them and prepare
   * refuses them. Undefined for any other failure (kept as published).
   */
  private driverGone(err: unknown): DesiredSlice[] | undefined {
    if (!(err instanceof NvidiaSmiError) || err.kind !== 'driver-not-loaded' || !this.previous) return undefined;
    const discovery = this.previous;
    const taints: Record<string, DeviceTaint[]> = {};
    for (const g of discovery.gpus) taints[g.uuid] = [unhealthyTaint(this.o.driver, 'nvidia-driver-not-loaded')];
    return this.publishable(discovery, taints);
  }

  /** Asks for a pass as soon as the current one (if any) is done. */
  requestRefresh(): void {
    this.wanted = true;
    this.wake?.();
  }

  /** Resolves after a pass that started after this call has finished (tests). */
  async nextCycle(): Promise<void> {
    const after = this.cycles + (this.running ? 1 : 0);
    this.requestRefresh();
    await new Promise<void>((resolve) => this.cycleWaiters.push({ after, resolve }));
  }

  /** Checks health once, so that the first publication already carries the taints. */
  async initialHealth(): Promise<void> {
    await this.checkHealth();
    this.wanted = false;
  }

  /** Starts the poll loops; the first pass must have been run by the caller (refresh()). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loopDone = this.loop();
    this.scheduleHealth(this.o.healthIntervalMs);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await this.sleep(this.o.pollIntervalMs);
      if (this.stopped) break;
      this.wanted = false;
      this.running = true;
      await this.refresh();
      this.running = false;
      this.cycles += 1;
      for (const w of this.cycleWaiters.splice(0)) {
        if (w.after <= this.cycles) w.resolve();
        else this.cycleWaiters.push(w);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.wanted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private scheduleHealth(delayMs: number): void {
    if (this.stopped) return;
    this.healthTimer = setTimeout(() => {
      this.healthRunning = this.checkHealth().finally(() => this.scheduleHealth(this.o.healthIntervalMs));
    }, delayMs);
  }

  /** Polls GPU health; a change (GPU lost, ECC errors, recovery) republishes with or without taints. */
  private async checkHealth(): Promise<void> {
    let report: GpuHealth[];
    try {
      report = await this.o.backend.health();
    } catch (err) {
      this.o.log.warn('GPU health check failed; keeping the last known health', describeFailure(err));
      // Without the kernel driver discovery taints every GPU: do not wait for the next poll.
      if (err instanceof NvidiaSmiError && err.kind === 'driver-not-loaded') this.requestRefresh();
      return;
    }
    const key = JSON.stringify(report.filter((h) => !h.healthy).map((h) => [h.uuid, h.pciBusId, h.reason]));
    if (key === this.healthKey) return;
    this.healthKey = key;
    this.health = report;
    const unhealthy = report.filter((h) => !h.healthy);
    if (unhealthy.length > 0) this.o.log.warn('GPU health changed', { unhealthy: unhealthy.map((h) => ({ pciBusId: h.pciBusId, uuid: h.uuid, reason: h.reason })) });
    else this.o.log.info('all GPUs healthy again');
    this.requestRefresh();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (this.healthTimer) clearTimeout(this.healthTimer);
    await this.loopDone;
    await this.healthRunning;
    for (const w of this.cycleWaiters.splice(0)) w.resolve();
  }
}
