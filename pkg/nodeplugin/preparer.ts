// The node plugin's ClaimPreparer: turns allocated claims into MIG instances
// and CDI specs, and back, with the checkpoint written before every answer so
// that a crash at any line is finished or rolled back by recover().
import { readFile, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { gpuDeviceName } from '../api/devicemodel.js';
import type { ResourceClaim } from '../api/resource.js';
import type { OwnedInstance } from '../inventory/types.js';
import { isNotFound } from '../k8s/client.js';
import { cdiDeviceId, type CdiContainerEdits } from '../kubeletplugin/cdi.js';
import { buildClaimCdiSpec, type CdiGpuDevice, type CdiMps, migCapDevicePaths, parseMigMinors } from './gpu-cdi.js';
import type { CdiSpecWriter } from '../kubeletplugin/cdi-writer.js';
import {
  CHECKPOINT_VERSION,
  type CheckpointState,
  type CheckpointStore,
  type MigInstanceRecord,
  completePrepare,
  emptyCheckpoint,
  forgetMigInstance,
  forgetVfioTaken,
  halfPreparedClaims,
  ownedMigInstances,
  preparedDevices,
  recordMigCreated,
  recordVfioTaken,
  removeClaim,
  setStranded,
  startPrepare,
} from './checkpoint.js';
import type { Passthrough } from './passthrough.js';
import { NVIDIA_DRIVER, VFIO_DRIVER, checkIommuGroup } from './vfio.js';
import { PRIVATE_DIR_MODE, ensureDir, writeFileAtomic } from '../kubeletplugin/atomic-file.js';

/** Set by the resource claim controller on a claim made from a pod's template: the pod's claim entry. */
export const POD_CLAIM_NAME_ANNOTATION = 'resource.kubernetes.io/pod-claim-name';
/** Where KEP-5304 device metadata appears inside a container. */
export const DEVICE_METADATA_CONTAINER_DIR = '/var/run/kubernetes.io/dra-device-attributes';
import { type ClaimPreparer, type ClaimRef, type PrepareFailure, type PrepareResult, type PreparedDevice, type UnprepareResult, baseRequestName, claimLabel } from '../kubeletplugin/preparer.js';
import { errorMessage, type Logger } from '../log/logger.js';
import type { Discovery, GpuBackend } from '../nvidia/backend.js';
import { migToggleNeedsReset } from '../nvidia/catalog.js';
import type { GpuInfo } from '../nvidia/types.js';
import type { ClaimSource, ClaimStatusSink, DeviceStatusData } from './claims.js';
import { crashPoint } from './crash.js';
import { PREPARE_REASON, type PrepareReason } from './prepare-reasons.js';
import type { MpsControl } from './mps.js';
import type { PublishedInventory } from './published-inventory.js';
import { type PlannedDevice, type SharingPlan, describePlacement, intendedDevices, occupancyFromCheckpoint, planClaim } from './plan.js';
import { mpsGpus, sharingReleases, type SharingRelease } from './sharing.js';

export interface NodePreparerOptions {
  readonly driver: string;
  readonly nodeName: string;
  readonly backend: GpuBackend;
  readonly claims: ClaimSource;
  /** Undefined: no status.devices writes (the benchmark). */
  readonly status: ClaimStatusSink | undefined;
  readonly cdi: CdiSpecWriter;
  readonly checkpoint: CheckpointStore;
  /** The inventory last published; prepare validates against it and reports MIG mode switches to it. */
  readonly inventory: PublishedInventory;
  readonly migMinorsPath: string;
  readonly dynamicMig: boolean;
  /** Mounts of the driver's user-space files, added to every claim's CDI spec. */
  readonly driverEdits?: CdiContainerEdits;
  /** MPS control daemons for shared GPUs; undefined: MPS claims are refused on this node. */
  readonly mps?: MpsControl;
  /** The MPS root as the host sees it, when this process sees it under another path. */
  readonly hostMpsRoot?: string;
  /** GPUs this node may pass through to VMs; undefined: passthrough claims are refused. */
  readonly passthrough?: Passthrough;
  /** Where DRA device-metadata files (KEP-5304) are written for passthrough claims; default: none written. */
  readonly metadataDir?: string;
  readonly log: Logger;
}

export interface RecoveryReport {
  /** Claims a crash left half prepared, now rolled back. */
  readonly rolledBack: readonly string[];
  /** MIG instances destroyed (GPU index, GPU instance ID). */
  readonly destroyed: readonly string[];
  /** CDI spec files of claims the checkpoint does not know, deleted. */
  readonly orphanCdiSpecs: readonly string[];
  readonly checkpoint: 'missing' | 'loaded' | 'rebooted' | 'corrupt-discarded';
}

/** A claim-level failure whose message already names the claim. */
class ClaimError extends Error {
  constructor(
    readonly reason: PrepareReason,
    message: string,
  ) {
    super(message);
  }
}

function failure(reason: PrepareReason, error: string): PrepareFailure {
  return { reason, error };
}

export class NodePreparer implements ClaimPreparer {
  private state: CheckpointState = emptyCheckpoint('');
  private loaded: RecoveryReport['checkpoint'] | undefined;
  private recovered = false;
  private recoveryProblem = 'start-up recovery has not run yet';
  private migMinors: ReadonlyMap<string, number> | undefined;

  constructor(private readonly o: NodePreparerOptions) {}

  /** Reads the checkpoint (empty after a reboot). Call once, before anything else. */
  async load(): Promise<void> {
    const outcome = await this.o.checkpoint.load();
    this.state = outcome.state;
    this.loaded = outcome.kind;
    if (outcome.kind === 'loaded' && outcome.convertedFrom !== undefined) {
      const claims = Object.values(outcome.state.claims);
      const prepared = claims.filter((c) => c.state === 'PrepareCompleted').length;
      this.o.log.info(
        `kept ${prepared} prepared claim(s) of the previous node plugin (${outcome.state.writtenBy}); its checkpoint version ${outcome.convertedFrom} was converted and written back as version ${CHECKPOINT_VERSION}`,
        {
          from: outcome.convertedFrom,
          to: CHECKPOINT_VERSION,
          writtenBy: outcome.state.writtenBy,
          claims: claims.length,
          prepared,
        },
      );
    }
    if (outcome.kind === 'rebooted') {
      this.o.log.info('the node rebooted since the checkpoint was written; MIG instances and CDI specs did not survive, starting empty', {
        previousClaims: Object.keys(outcome.previous.claims).length,
      });
      await this.o.checkpoint.save(this.state);
    } else if (outcome.kind === 'corrupt-discarded') {
      this.o.log.error('checkpoint was corrupt and was moved aside', { copy: outcome.corruptCopy, reason: outcome.reason });
    }
  }

  get isRecovered(): boolean {
    return this.recovered;
  }

  /** GPUs that did not come back from passthrough, by PCI address. */
  get stranded(): Readonly<Record<string, string>> {
    return this.state.stranded ?? {};
  }

  /** The checkpoint as it stands (for tests and the publish loop). */
  get checkpointState(): CheckpointState {
    return this.state;
  }

  /**
   * MIG instances on this node that are ours: recorded ones, plus instances at
   * a placement a half-prepared claim intended (created, then a crash before
   * the record). The inventory publishes them as ordinary partitions.
   */
  ownedInstances(discovery: Discovery): OwnedInstance[] {
    const out: OwnedInstance[] = ownedMigInstances(this.state).map((m) => ({ parentUUID: m.gpuUuid, gpuInstanceId: m.gpuInstanceId }));
    for (const c of halfPreparedClaims(this.state)) {
      for (const d of c.intended) {
        if (!d.mig) continue;
        const mig = d.mig;
        const gpu = discovery.gpus.find((g) => g.uuid === d.gpuUuid);
        const gi = gpu && discovery.gpuInstances.find((i) => i.gpuIndex === gpu.index && i.profileId === mig.profileId && i.placement.start === mig.placement.start);
        if (gi) out.push({ parentUUID: d.gpuUuid, gpuInstanceId: gi.instanceId });
      }
    }
    return out;
  }

  /**
   * Start-up recovery, run before the kubelet can call us and given a fresh
   * discovery: half-prepared claims are rolled back (their instances, recorded
   * or only intended, destroyed; their CDI spec deleted), so the kubelet's
   * retry prepares them from scratch. Instances no checkpointed claim names
   * were not created by us and are never touched. Returns undefined and stays
   * unrecovered (prepare refuses) when a roll-back failed; call again later.
   */
  async recover(discovery: Discovery): Promise<RecoveryReport | undefined> {
    const rolledBack: string[] = [];
    const destroyed: string[] = [];
    const problems: string[] = [];
    for (const claim of halfPreparedClaims(this.state)) {
      const label = `${claim.namespace}/${claim.name} (${claim.uid})`;
      const targets: { gpuIndex: number; gpuUuid: string; gi: number; ci: number }[] = [];
      for (const m of claim.migCreated) targets.push({ gpuIndex: m.gpuIndex, gpuUuid: m.gpuUuid, gi: m.gpuInstanceId, ci: m.computeInstanceId });
      // An instance created just before a crash is known only by its intended placement.
      const others = ownedMigInstances(this.state).filter((m) => m.claimUid !== claim.uid);
      for (const d of claim.intended) {
        if (!d.mig) continue;
        const mig = d.mig;
        const gpu = discovery.gpus.find((g) => g.uuid === d.gpuUuid);
        if (!gpu) continue;
        const gi = discovery.gpuInstances.find((i) => i.gpuIndex === gpu.index && i.profileId === mig.profileId && i.placement.start === mig.placement.start);
        if (!gi || targets.some((t) => t.gpuUuid === gpu.uuid && t.gi === gi.instanceId)) continue;
        if (others.some((m) => m.gpuUuid === gpu.uuid && m.gpuInstanceId === gi.instanceId)) continue;
        const ci = discovery.computeInstances.find((c) => c.gpuIndex === gpu.index && c.gpuInstanceId === gi.instanceId);
        targets.push({ gpuIndex: gpu.index, gpuUuid: gpu.uuid, gi: gi.instanceId, ci: ci?.instanceId ?? 0 });
      }
      let failed = false;
      const returned = await this.returnVfio(claim.uid);
      if (returned.length > 0) {
        problems.push(...returned.map((p) => `claim ${label}: ${p}`));
        failed = true;
      }
      for (const t of targets) {
        const gpu = discovery.gpus.find((g) => g.uuid === t.gpuUuid);
        if (!gpu) {
          problems.push(`claim ${label}: GPU ${t.gpuUuid} of GPU instance ${t.gi} is not reachable`);
          failed = true;
          continue;
        }
        try {
          await this.o.backend.destroyMigDevice({ gpuIndex: gpu.index, gpuInstanceId: t.gi, computeInstanceId: t.ci });
          destroyed.push(`GPU ${gpu.index} GPU instance ${t.gi}`);
          this.state = forgetMigInstance(this.state, claim.uid, t.gpuUuid, t.gi);
        } catch (err) {
          problems.push(`claim ${label}: destroy GPU instance ${t.gi} on GPU ${gpu.index}: ${errorMessage(err)}`);
          failed = true;
        }
      }
      if (failed) continue;
      await this.o.cdi.remove(claim.uid);
      this.state = removeClaim(this.state, claim.uid);
      rolledBack.push(label);
    }
    await this.o.checkpoint.save(this.state);
    const orphanCdiSpecs: string[] = [];
    for (const uid of await this.o.cdi.listClaimUids()) {
      if (this.state.claims[uid]) continue;
      await this.o.cdi.remove(uid);
      orphanCdiSpecs.push(uid);
    }
    await this.reconcileMps();
    problems.push(...(await this.reconcilePassthrough()));
    if (problems.length > 0) {
      this.recoveryProblem = `start-up recovery could not roll back: ${problems.join('; ')}`;
      this.o.log.error('start-up recovery incomplete; prepare refuses until it succeeds', { problems });
      return undefined;
    }
    this.recovered = true;
    const report: RecoveryReport = { rolledBack, destroyed, orphanCdiSpecs, checkpoint: this.loaded ?? 'loaded' };
    if (rolledBack.length > 0 || orphanCdiSpecs.length > 0) this.o.log.info('start-up recovery rolled back half-prepared claims', { ...report });
    return report;
  }

  /**
   * After a restart: every GPU that checkpointed claims share through MPS gets
   * its daemon back if it died (a running one is left alone, with its clients);
   * a daemon no claim needs any more is stopped, so none is ever leaked.
   */
  private async reconcileMps(): Promise<void> {
    const mps = this.o.mps;
    if (!mps) return;
    const wanted = mpsGpus(this.state);
    for (const uuid of wanted) {
      try {
        await mps.ensure(uuid);
      } catch (err) {
        this.o.log.error('cannot restart the MPS daemon of a shared GPU; its sharers cannot start new processes', { gpu: uuid, error: errorMessage(err) });
      }
    }
    for (const uuid of await mps.known()) {
      if (wanted.has(uuid)) continue;
      try {
        await mps.stop(uuid);
        this.o.log.info('stopped an MPS daemon no prepared claim uses', { gpu: uuid });
      } catch (err) {
        this.o.log.error('cannot stop an MPS daemon no prepared claim uses', { gpu: uuid, error: errorMessage(err) });
      }
    }
  }

  async prepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, PrepareResult>> {
    const out = new Map<string, PrepareResult>();
    for (const ref of claims) out.set(ref.uid, await this.prepareOne(ref));
    return out;
  }

  async unprepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, UnprepareResult>> {
    const out = new Map<string, UnprepareResult>();
    for (const ref of claims) out.set(ref.uid, await this.unprepareOne(ref));
    return out;
  }

  private async prepareOne(ref: ClaimRef): Promise<PrepareResult> {
    const done = preparedDevices(this.state, ref.uid);
    if (done) return { devices: done };
    const label = claimLabel(ref);
    if (!this.recovered) return failure(PREPARE_REASON.NotReady, `claim ${label}: the node plugin is not ready: ${this.recoveryProblem}`);
    const leftover = this.state.claims[ref.uid];
    if (leftover) {
      // An earlier attempt failed and could not clean up; try again before starting over.
      const problem = await this.rollBack(ref.uid);
      if (problem) return failure(PREPARE_REASON.LeftoverInstances, `claim ${label}: an earlier failed prepare left MIG instances that cannot be removed: ${problem}`);
    }
    const inventory = this.o.inventory.current;
    if (!inventory) return failure(PREPARE_REASON.NotReady, `claim ${label}: the node's GPUs have not been discovered yet; see the node plugin's log`);
    let claim: ResourceClaim;
    try {
      claim = await this.o.claims.get(ref.namespace, ref.name);
    } catch (err) {
      return isNotFound(err)
        ? failure(PREPARE_REASON.ClaimNotFound, `claim ${label}: the ResourceClaim does not exist`)
        : failure(PREPARE_REASON.ClaimUnreadable, `claim ${label}: cannot read the ResourceClaim: ${errorMessage(err)}`);
    }
    // From here on a failure is also written to the claim's status.devices.
    const failed = (reason: PrepareReason, error: string): PrepareFailure => {
      this.o.status?.failed(ref, this.ourDevices(claim), reason, error);
      return failure(reason, error);
    };
    const plan = planClaim({ driver: this.o.driver, nodeName: this.o.nodeName, ref, claim, inventory, held: occupancyFromCheckpoint(this.state, ref.uid) });
    if (!plan.ok) return failed(PREPARE_REASON.InvalidAllocation, plan.error);

    try {
      if (plan.devices.some((d) => d.kind === 'mig' || d.kind === 'preexisting-mig')) await this.loadMigMinors();
      this.state = startPrepare(this.state, ref, intendedDevices(plan.devices));
      await this.o.checkpoint.save(this.state);
    } catch (err) {
      this.state = removeClaim(this.state, ref.uid);
      return failed(PREPARE_REASON.CheckpointFailed, `claim ${label}: ${errorMessage(err)}`);
    }

    const cdiDevices: CdiGpuDevice[] = [];
    const statusData: DeviceStatusData[] = [];
    let devices: PreparedDevice[];
    // What a failure that is not a ClaimError is blamed on: the step it happened in.
    let step: PrepareReason = PREPARE_REASON.SetupFailed;
    try {
      for (const d of plan.devices) {
        const ids = [cdiDeviceId(this.o.driver, ref.uid, d.deviceName)];
        const { cdi, data } = await this.setUp(ref, d, claim);
        cdiDevices.push(cdi);
        statusData.push({ device: d.deviceName, ...(d.kind === 'shared' ? { shareID: d.shareId } : {}), data: { ...data, cdiDeviceIds: ids } });
      }
      step = PREPARE_REASON.CdiWriteFailed;
      await this.o.cdi.write(ref.uid, buildClaimCdiSpec({ driver: this.o.driver, claimUid: ref.uid, devices: cdiDevices, ...(this.o.driverEdits ? { commonEdits: this.o.driverEdits } : {}) }));
      step = PREPARE_REASON.CheckpointFailed;
      devices = plan.devices.map((d) => ({
        requestNames: [baseRequestName(d.request)],
        poolName: d.poolName,
        deviceName: d.deviceName,
        cdiDeviceIds: [cdiDeviceId(this.o.driver, ref.uid, d.deviceName)],
      }));
      crashPoint('before-prepare-complete');
      this.state = completePrepare(this.state, ref.uid, { devices });
      await this.o.checkpoint.save(this.state);
    } catch (err) {
      const reason = err instanceof ClaimError ? err.reason : step;
      const message = err instanceof ClaimError ? err.message : `claim ${label}: ${errorMessage(err)}`;
      const problem = await this.rollBack(ref.uid);
      return failed(reason, problem ? `${message}; rolling back also failed: ${problem}` : message);
    }
    this.o.status?.prepared(ref, statusData);
    return { devices };
  }

  /** The devices of this driver on this node that the claim's allocation names. */
  private ourDevices(claim: ResourceClaim): string[] {
    return (claim.status?.allocation?.devices?.results ?? []).filter((r) => r.driver === this.o.driver && r.pool === this.o.nodeName).map((r) => r.device);
  }

  /** Sets up one device; returns its CDI device and the data for the claim status. */
  private async setUp(ref: ClaimRef, d: PlannedDevice, claim: ResourceClaim): Promise<{ cdi: CdiGpuDevice; data: Record<string, unknown> }> {
    if (d.kind === 'vfio') {
      const out = await this.passThrough(ref, d);
      const metadata = await this.writeDeviceMetadata(ref, claim, d);
      return metadata && out.cdi.type === 'vfio' ? { ...out, cdi: { ...out.cdi, metadata } } : out;
    }
    const parent = { parentUUID: d.gpu.uuid, parentMinor: d.gpu.minor };
    switch (d.kind) {
      case 'gpu': {
        await this.ensureMigMode(ref, d.gpu, false, d.deviceName);
        const shared = d.sharing ? await this.shareGpu(ref, d.gpu, d.sharing, d.deviceName) : undefined;
        return {
          cdi: { type: 'gpu', deviceName: d.deviceName, uuid: d.gpu.uuid, minor: d.gpu.minor, ...(shared?.mps ? { mps: shared.mps } : {}) },
          data: { type: 'gpu', uuid: d.gpu.uuid, productName: d.gpu.productName, minor: d.gpu.minor, pciBusID: d.gpu.pciBusId, ...(shared ? { sharing: shared.status } : {}) },
        };
      }
      case 'shared': {
        // Sharing needs MIG off, like the whole GPU (the counters keep partitions away).
        await this.ensureMigMode(ref, d.gpu, false, d.deviceName);
        const shared = await this.shareGpu(ref, d.gpu, d.sharing, d.deviceName);
        return {
          cdi: { type: 'gpu', deviceName: d.deviceName, uuid: d.gpu.uuid, minor: d.gpu.minor, ...(shared.mps ? { mps: shared.mps } : {}) },
          data: { type: 'shared', uuid: d.gpu.uuid, productName: d.gpu.productName, minor: d.gpu.minor, pciBusID: d.gpu.pciBusId, shareID: d.shareId, sharing: shared.status },
        };
      }
      case 'preexisting-mig': {
        const shared = d.sharing ? await this.shareGpu(ref, d.gpu, d.sharing, d.deviceName, d.uuid) : undefined;
        return {
          cdi: {
            type: 'mig',
            deviceName: d.deviceName,
            uuid: d.uuid,
            parentUuid: d.gpu.uuid,
            parentMinor: d.gpu.minor,
            capDevicePaths: this.capPaths(d.gpu, d.gpuInstanceId, d.computeInstanceId),
            ...(shared?.mps ? { mps: shared.mps } : {}),
          },
          data: {
            type: 'mig',
            uuid: d.uuid,
            profile: d.profile,
            placement: d.placement,
            gpuInstanceId: d.gpuInstanceId,
            computeInstanceId: d.computeInstanceId,
            preexisting: true,
            ...parent,
            ...(shared ? { sharing: shared.status } : {}),
          },
        };
      }
      case 'mig': {
        await this.ensureMigMode(ref, d.gpu, true, d.deviceName);
        const where = `MIG ${d.profile} at placement ${describePlacement(d.placement)} on ${gpuDeviceName(d.gpu.minor)} (GPU ${d.gpu.index})`;
        let created;
        try {
          created = await this.o.backend.createMigDevice({
            gpuIndex: d.gpu.index,
            profileId: d.profileId,
            placementStart: d.placement.start,
            placementSize: d.placement.size,
            knownMigUuids: this.knownMigUuids(d.gpu),
            // Recorded the moment it exists: any later failure rolls it back instead of leaking it.
            onCreated: async (ids) => {
              this.state = recordMigCreated(this.state, ref.uid, {
                deviceName: d.deviceName,
                gpuIndex: d.gpu.index,
                gpuUuid: d.gpu.uuid,
                gpuInstanceId: ids.gpuInstanceId,
                computeInstanceId: ids.computeInstanceId ?? 0,
                migUuid: '',
                profile: d.profile,
                profileId: d.profileId,
                placement: d.placement,
                confirmed: false,
              });
              await this.o.checkpoint.save(this.state);
            },
          });
        } catch (err) {
          throw new ClaimError(PREPARE_REASON.MigCreateFailed, `claim ${claimLabel(ref)}: cannot create ${where} for device ${d.deviceName}: ${errorMessage(err)}`);
        }
        crashPoint('after-mig-create');
        const record: MigInstanceRecord = {
          deviceName: d.deviceName,
          gpuIndex: d.gpu.index,
          gpuUuid: d.gpu.uuid,
          gpuInstanceId: created.gpuInstanceId,
          computeInstanceId: created.computeInstanceId,
          migUuid: created.uuid,
          profile: created.profile,
          profileId: created.profileId,
          placement: created.placement,
          confirmed: true,
        };
        this.state = recordMigCreated(this.state, ref.uid, record);
        await this.o.checkpoint.save(this.state);
        if (created.placement.start !== d.placement.start || created.profileId !== d.profileId) {
          throw new ClaimError(PREPARE_REASON.MigCreateFailed, `claim ${claimLabel(ref)}: nvidia-smi created ${created.profile} at ${describePlacement(created.placement)} instead of ${where}`);
        }
        const shared = d.sharing ? await this.shareGpu(ref, d.gpu, d.sharing, d.deviceName, created.uuid) : undefined;
        return {
          cdi: {
            type: 'mig',
            deviceName: d.deviceName,
            uuid: created.uuid,
            parentUuid: d.gpu.uuid,
            parentMinor: d.gpu.minor,
            capDevicePaths: this.capPaths(d.gpu, created.gpuInstanceId, created.computeInstanceId),
            ...(shared?.mps ? { mps: shared.mps } : {}),
          },
          data: {
            type: 'mig',
            uuid: created.uuid,
            profile: created.profile,
            placement: created.placement,
            gpuInstanceId: created.gpuInstanceId,
            computeInstanceId: created.computeInstanceId,
            ...parent,
            ...(shared ? { sharing: shared.status } : {}),
          },
        };
      }
    }
  }

  /**
   * Hands a GPU to a VM: checks that vfio-pci is there, that the GPU's IOMMU
   * group holds nothing else but bridges and the GPU's own functions, and that
   * no process uses it; then records and moves each function to vfio-pci and
   * checks that the group's /dev/vfio node appeared.
   */
  private async passThrough(ref: ClaimRef, d: Extract<PlannedDevice, { kind: 'vfio' }>): Promise<{ cdi: CdiGpuDevice; data: Record<string, unknown> }> {
    const label = claimLabel(ref);
    const fail = (message: string): ClaimError => new ClaimError(PREPARE_REASON.PassthroughFailed, `claim ${label}: cannot pass ${d.deviceName} (${d.address}) through: ${message}`);
    const pt = this.o.passthrough;
    if (!pt) throw fail(`passthrough is off on node ${this.o.nodeName} (--passthrough-pool, --passthrough-switchable)`);
    const sysfs = pt.sysfs;
    if (!(await sysfs.vfioLoaded())) throw fail(`the vfio-pci module is not loaded on node ${this.o.nodeName} (modprobe vfio-pci, and load it at boot)`);
    const fn = await sysfs.fn(d.address);
    if (!fn) throw fail(`sysfs has no PCI function ${d.address} any more`);
    const group = await checkIommuGroup(sysfs, fn);
    if (!group.ok) throw fail(group.reason);
    if (fn.driver === NVIDIA_DRIVER) {
      const uuid = d.gpu?.uuid;
      let users;
      try {
        users = (await this.o.backend.computeProcesses()).filter((p) => p.gpuUuid === uuid);
      } catch (err) {
        throw fail(`cannot tell whether processes use it: ${errorMessage(err)}`);
      }
      if (users.length > 0) {
        const list = users.slice(0, 5).map((u) => `pid ${u.pid} ${u.name}`);
        throw fail(`it is in use by ${users.length} process(es) on the nvidia driver (${list.join(', ')}); a GPU is taken from its driver only when nothing uses it`);
      }
    }
    for (const f of group.functions) {
      // The way back is on disk before the function moves.
      const returnTo = d.mode === 'pool' ? VFIO_DRIVER : (f.driver ?? null);
      this.state = recordVfioTaken(this.state, ref.uid, { address: f.address, returnTo });
      await this.o.checkpoint.save(this.state);
      try {
        await sysfs.moveTo(f.address, VFIO_DRIVER);
      } catch (err) {
        throw fail(errorMessage(err));
      }
      crashPoint('after-vfio-bind');
    }
    if (!(await sysfs.groupNodeExists(group.group))) throw fail(`vfio-pci took the GPU, but /dev/vfio/${group.group} did not appear`);
    if (fn.driver !== VFIO_DRIVER) {
      this.o.log.info('bound a GPU to vfio-pci for a VM', { claim: label, device: d.deviceName, pciAddress: d.address, iommuGroup: group.group, functions: group.functions.map((f) => f.address) });
      this.o.inventory.changed();
    }
    return {
      cdi: { type: 'vfio', deviceName: d.deviceName, address: d.address, iommuGroup: group.group },
      data: { type: 'vfio', pciBusID: d.address, iommuGroup: group.group, functions: group.functions.map((f) => f.address), productName: d.gpu?.productName, ...(d.gpu ? { uuid: d.gpu.uuid } : {}) },
    };
  }

  /**
   * The DRA device-metadata file of a passthrough request (KEP-5304, format
   * metadata.resource.k8s.io/v1alpha1), which KubeVirt's GPUsWithDRA path
   * reads in virt-launcher for the GPU's resource.kubernetes.io/pciBusID. The
   * file is written on the host under metadataDir and mounted read-only where
   * a consumer looks: .../resourceclaimtemplates/<pod claim name>/<request>/
   * for a claim made from a template, .../resourceclaims/<claim>/<request>/
   * otherwise. Undefined when no metadata directory is configured.
   */
  private async writeDeviceMetadata(ref: ClaimRef, claim: ResourceClaim, d: Extract<PlannedDevice, { kind: 'vfio' }>): Promise<{ hostPath: string; containerPath: string } | undefined> {
    const dir = this.o.metadataDir;
    if (dir === undefined) return undefined;
    const request = baseRequestName(d.request);
    const podClaimName = claim.metadata.annotations?.[POD_CLAIM_NAME_ANNOTATION];
    // Names from the API are DNS labels/subdomains; checked again before they become paths.
    const safe = (v: string | undefined): v is string => v !== undefined && /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v);
    if (!safe(ref.namespace) || !safe(ref.name) || !safe(request) || (podClaimName !== undefined && !safe(podClaimName))) {
      throw new ClaimError(PREPARE_REASON.InvalidAllocation, `claim ${claimLabel(ref)}: its names cannot form a device-metadata path`);
    }
    const attributes = this.o.inventory.current?.devices.get(d.deviceName)?.attributes ?? {};
    const doc = {
      apiVersion: 'metadata.resource.k8s.io/v1alpha1',
      kind: 'DeviceMetadata',
      metadata: { name: ref.name, namespace: ref.namespace, uid: ref.uid },
      ...(podClaimName !== undefined ? { podClaimName } : {}),
      requests: [{ name: request, devices: [{ driver: this.o.driver, pool: d.poolName, name: d.deviceName, attributes }] }],
    };
    const hostPath = posix.join(dir, `${ref.namespace}_${ref.name}`, request, 'metadata.json');
    await ensureDir(posix.dirname(hostPath), PRIVATE_DIR_MODE, true);
    // Read by the pod's container through a read-only bind mount.
    await writeFileAtomic(hostPath, `${JSON.stringify(doc)}\n`, 0o644);
    const where = podClaimName !== undefined ? `resourceclaimtemplates/${podClaimName}` : `resourceclaims/${ref.name}`;
    return { hostPath, containerPath: posix.join(DEVICE_METADATA_CONTAINER_DIR, where, request, `${this.o.driver}-metadata.json`) };
  }

  /** Removes a claim's device-metadata files. */
  private async removeDeviceMetadata(ref: { readonly namespace: string; readonly name: string }): Promise<void> {
    if (this.o.metadataDir === undefined || !/^[a-z0-9][-a-z0-9.]*$/.test(ref.namespace) || !/^[a-z0-9][-a-z0-9.]*$/.test(ref.name)) return;
    await rm(posix.join(this.o.metadataDir, `${ref.namespace}_${ref.name}`), { recursive: true, force: true });
  }

  /**
   * Returns every PCI function a claim took for passthrough to the driver it
   * came from (a pool GPU stays with vfio-pci), forgetting each once it is
   * back. A GPU back on nvidia must show in nvidia-smi again; one that does not
   * is recorded as stranded and published unhealthy, never silently lost.
   * Returns problems (the functions not returned stay recorded).
   */
  private async returnVfio(uid: string): Promise<string[]> {
    const claim = this.state.claims[uid];
    const taken = claim?.vfioTaken ?? [];
    if (taken.length === 0) return [];
    const sysfs = this.o.passthrough?.sysfs;
    if (!sysfs) return [`PCI functions ${taken.map((t) => t.address).join(', ')} were taken for passthrough, but passthrough is now off on this node; return them by hand`];
    const problems: string[] = [];
    const backToNvidia: string[] = [];
    for (const t of [...taken].reverse()) {
      try {
        await sysfs.moveTo(t.address, t.returnTo);
      } catch (err) {
        problems.push(`cannot return ${t.address} to ${t.returnTo ?? 'no driver'}: ${errorMessage(err)}`);
        continue;
      }
      if (t.returnTo === NVIDIA_DRIVER) backToNvidia.push(t.address);
      crashPoint('after-vfio-return');
      this.state = forgetVfioTaken(this.state, uid, t.address);
      await this.o.checkpoint.save(this.state);
    }
    if (backToNvidia.length > 0) {
      await this.checkReturned(backToNvidia);
      this.o.inventory.changed();
    }
    if (problems.length === 0 && claim) await this.removeDeviceMetadata(claim);
    return problems;
  }

  /** Marks GPUs nvidia-smi does not list after their return as stranded (or clears the mark). */
  private async checkReturned(addresses: readonly string[]): Promise<void> {
    let seen: Set<string>;
    try {
      seen = new Set((await this.o.backend.discover()).gpus.map((g) => g.pciBusId));
    } catch (err) {
      seen = new Set();
      this.o.log.warn('cannot run nvidia-smi to check GPUs returned from passthrough', { error: errorMessage(err) });
    }
    for (const a of addresses) {
      const reason = seen.has(a) ? undefined : 'bound to the nvidia driver again, but nvidia-smi does not list it';
      if (reason !== undefined) this.o.log.error('a GPU did not come back from passthrough; it is published unhealthy until nvidia-smi lists it again', { pciAddress: a, reason });
      this.state = setStranded(this.state, a, reason);
    }
    await this.o.checkpoint.save(this.state);
  }

  /**
   * After a restart, every configured GPU goes where it belongs: a pool GPU to
   * vfio-pci, a switchable GPU no claim holds back to nvidia, a stranded one
   * tried again. Returns problems for the log; a pool GPU in use waits.
   */
  private async reconcilePassthrough(): Promise<string[]> {
    const pt = this.o.passthrough;
    if (!pt) return [];
    const held = new Set(Object.values(this.state.claims).flatMap((c) => c.intended.flatMap((d) => (d.vfio ? [d.vfio.address] : []))));
    const problems: string[] = [];
    for (const { fn, mode } of await pt.gpus()) {
      if (held.has(fn.address)) continue;
      try {
        if (mode === 'pool' && fn.driver !== VFIO_DRIVER) await this.bindPool(fn.address);
        else if (mode === 'switchable' && (fn.driver !== NVIDIA_DRIVER || this.state.stranded?.[fn.address] !== undefined)) {
          const group = await checkIommuGroup(pt.sysfs, fn);
          const companions = group.ok ? group.functions.filter((f) => f.address !== fn.address && f.driver === VFIO_DRIVER) : [];
          await pt.sysfs.moveTo(fn.address, NVIDIA_DRIVER);
          for (const c of companions) await pt.sysfs.moveTo(c.address, null);
          this.o.log.info('returned a GPU no claim holds from vfio-pci to nvidia', { pciAddress: fn.address });
          await this.checkReturned([fn.address]);
        }
      } catch (err) {
        problems.push(`GPU ${fn.address} (${mode} passthrough): ${errorMessage(err)}`);
      }
    }
    return problems;
  }

  /** Binds a pool GPU and its companions to vfio-pci, when nothing uses it. */
  private async bindPool(address: string): Promise<void> {
    const pt = this.o.passthrough;
    if (!pt) return;
    const fn = await pt.sysfs.fn(address);
    if (!fn) return;
    if (!(await pt.sysfs.vfioLoaded())) throw new Error('the vfio-pci module is not loaded, so the pool GPU stays where it is');
    const group = await checkIommuGroup(pt.sysfs, fn);
    if (!group.ok) throw new Error(group.reason);
    if (fn.driver === NVIDIA_DRIVER) {
      const uuid = this.o.inventory.current?.discovery.gpus.find((g) => g.pciBusId === address)?.uuid ?? (await this.o.backend.discover()).gpus.find((g) => g.pciBusId === address)?.uuid;
      const users = (await this.o.backend.computeProcesses()).filter((p) => p.gpuUuid === uuid);
      if (users.length > 0) throw new Error(`it is in use by ${users.length} process(es) on the nvidia driver; it joins the pool once they exit and the node plugin restarts`);
    }
    for (const f of group.functions) await pt.sysfs.moveTo(f.address, VFIO_DRIVER);
    this.o.log.info('bound a pool GPU to vfio-pci', { pciAddress: address, functions: group.functions.map((f) => f.address) });
  }

  /** The inventory saw a stranded GPU again: it is healthy, and forgotten as stranded. */
  async clearStranded(addresses: readonly string[]): Promise<void> {
    if (addresses.length === 0) return;
    for (const a of addresses) this.state = setStranded(this.state, a, undefined);
    await this.o.checkpoint.save(this.state);
    this.o.log.info('GPUs that had not come back from passthrough are listed by nvidia-smi again', { pciAddresses: addresses });
  }

  /**
   * Sets a GPU up for sharing: its MPS daemon running (started by the first
   * sharer), or its time slice set. Returns the CDI edits and what the claim
   * status shows.
   */
  private async shareGpu(ref: ClaimRef, gpu: GpuInfo, sharing: SharingPlan, deviceName: string, migUuid?: string): Promise<{ mps?: CdiMps; status: Record<string, unknown> }> {
    const label = claimLabel(ref);
    const limits = { ...(sharing.memoryMiB !== undefined ? { memoryMiB: sharing.memoryMiB } : {}), ...(sharing.computePercent !== undefined ? { computePercent: sharing.computePercent } : {}) };
    if (sharing.strategy === 'TimeSlicing') {
      const slice = sharing.timeSlice ?? 0;
      try {
        await this.o.backend.setTimeSlice(gpu.index, slice);
      } catch (err) {
        throw new ClaimError(PREPARE_REASON.SharingFailed, `claim ${label}: cannot set time slice ${slice} on ${gpuDeviceName(gpu.minor)} for device ${deviceName}: ${errorMessage(err)}`);
      }
      return { status: { strategy: 'TimeSlicing', timeSlice: slice, memoryIsolation: false, ...limits } };
    }
    if (!this.o.mps) throw new ClaimError(PREPARE_REASON.SharingFailed, `claim ${label}: device ${deviceName} asks for MPS, but this node plugin runs without an MPS control program (--mps-control)`);
    let dirs;
    try {
      // A MIG instance gets a daemon of its own (CUDA_VISIBLE_DEVICES names the instance).
      dirs = await this.o.mps.ensure(migUuid ?? gpu.uuid);
    } catch (err) {
      const where = migUuid === undefined ? gpuDeviceName(gpu.minor) : `MIG device ${migUuid}`;
      throw new ClaimError(PREPARE_REASON.SharingFailed, `claim ${label}: cannot start MPS on ${where} for device ${deviceName}: ${errorMessage(err)}`);
    }
    crashPoint('after-mps-start');
    const onHost = (p: string): string | undefined => {
      const h = this.o.hostMpsRoot && this.o.mps ? posix.join(this.o.hostMpsRoot, posix.relative(this.o.mps.root, p)) : undefined;
      return h !== p ? h : undefined;
    };
    const hostPipe = onHost(dirs.pipe);
    const hostLog = onHost(dirs.log);
    const mps: CdiMps = {
      pipeDirectory: dirs.pipe,
      logDirectory: dirs.log,
      ...(hostPipe !== undefined ? { hostPipeDirectory: hostPipe } : {}),
      ...(hostLog !== undefined ? { hostLogDirectory: hostLog } : {}),
      ...(sharing.memoryMiB !== undefined ? { memoryLimitMiB: sharing.memoryMiB } : {}),
      ...(sharing.computePercent !== undefined ? { activeThreadPercentage: sharing.computePercent } : {}),
    };
    return { mps, status: { strategy: 'MPS', pipeDirectory: dirs.pipe, ...limits } };
  }

  /**
   * Undoes a GPU's sharing when the claim leaving was its last sharer: stops the
   * MPS daemon, or puts the time slice back to the default. Returns problems.
   */
  private async releaseSharing(releases: readonly SharingRelease[]): Promise<string[]> {
    const problems: string[] = [];
    for (const r of releases) {
      try {
        if (r.strategy === 'MPS') await this.o.mps?.stop(r.gpuUuid);
        else await this.o.backend.setTimeSlice(this.currentIndex(r.gpuUuid, r.gpuIndex), 0);
      } catch (err) {
        problems.push(`cannot ${r.strategy === 'MPS' ? 'stop the MPS daemon of' : 'reset the time slice of'} GPU ${r.gpuUuid}: ${errorMessage(err)}`);
      }
    }
    return problems;
  }

  /** Every MIG UUID we know on a GPU, so the backend can spot the new one with a single `-L`. */
  private knownMigUuids(gpu: GpuInfo): string[] {
    const known = new Set<string>();
    const snap = this.o.inventory.current?.discovery.gpus.find((g) => g.uuid === gpu.uuid);
    for (const m of snap?.migDevices ?? []) if (m.uuid !== undefined) known.add(m.uuid);
    for (const m of ownedMigInstances(this.state)) if (m.gpuUuid === gpu.uuid && m.confirmed) known.add(m.migUuid);
    return [...known];
  }

  /**
   * Dynamic MIG (docs/devices.md): a partition on a GPU whose MIG mode is off
   * switches it on first; a whole GPU whose mode is on switches it off (the
   * counters guarantee no partition of it is allocated, the checkpoint that
   * none of ours is prepared).
   */
  private async ensureMigMode(ref: ClaimRef, cached: GpuInfo, enabled: boolean, deviceName: string): Promise<void> {
    const gpu = this.o.inventory.current?.discovery.gpus.find((g) => g.uuid === cached.uuid) ?? cached;
    const current = gpu.migMode.current;
    if (current === 'N/A' || current === (enabled ? 'Enabled' : 'Disabled')) return;
    const want = enabled ? 'Enabled' : 'Disabled';
    const label = claimLabel(ref);
    if (!this.o.dynamicMig || migToggleNeedsReset(gpu.architecture)) {
      throw new ClaimError(
        PREPARE_REASON.MigModeSwitchFailed,
        `claim ${label}: device ${deviceName} needs MIG mode ${want} on ${gpuDeviceName(gpu.minor)}, but it is ${current} and ${gpu.architecture ?? 'this GPU'} cannot switch without a reset; an administrator must change it`,
      );
    }
    let mode;
    try {
      mode = await this.o.backend.setMigMode(gpu.index, enabled);
    } catch (err) {
      throw new ClaimError(
        PREPARE_REASON.MigModeSwitchFailed,
        `claim ${label}: cannot switch MIG mode ${enabled ? 'on' : 'off'} on ${gpuDeviceName(gpu.minor)} for device ${deviceName}: ${errorMessage(err)}`,
      );
    }
    if (mode.current !== want) {
      throw new ClaimError(
        PREPARE_REASON.MigModeSwitchFailed,
        `claim ${label}: asked for MIG mode ${want} on ${gpuDeviceName(gpu.minor)}, nvidia-smi reports ${mode.current} (pending ${mode.pending})`,
      );
    }
    this.o.log.info('switched MIG mode for a claim', { claim: label, gpu: gpu.index, mode: want });
    this.o.inventory.migModeChanged(gpu.uuid, mode.current);
  }

  private async loadMigMinors(): Promise<void> {
    if (this.migMinors) return;
    let text: string;
    try {
      text = await readFile(this.o.migMinorsPath, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the MIG capability table ${this.o.migMinorsPath} (is the NVIDIA driver loaded with MIG support?): ${errorMessage(err)}`);
    }
    // The table is fixed for a loaded driver: read it once.
    this.migMinors = parseMigMinors(text);
  }

  private capPaths(gpu: GpuInfo, gi: number, ci: number): readonly string[] {
    if (!this.migMinors) throw new Error('the MIG capability table was not loaded');
    return migCapDevicePaths(this.migMinors, gpu.minor, gi, ci);
  }

  /**
   * The GPU's index now, found by its UUID: indexes can shift (a GPU falling off
   * the bus renumbers the rest), and a destroy aimed by a stale index would hit
   * another GPU's instance. Falls back to the recorded index when undiscovered.
   */
  private currentIndex(gpuUuid: string, recorded: number): number {
    return this.o.inventory.current?.discovery.gpus.find((g) => g.uuid === gpuUuid)?.index ?? recorded;
  }

  /**
   * Undoes a claim that did not complete: destroys the instances it recorded,
   * deletes its CDI spec and forgets it. Returns a problem, or undefined when
   * everything was undone (the claim is then gone from the checkpoint).
   */
  private async rollBack(uid: string): Promise<string | undefined> {
    const claim = this.state.claims[uid];
    if (!claim) return undefined;
    // Sharing first: an MPS daemon of a MIG instance holds the instance open.
    const problems: string[] = await this.releaseSharing(sharingReleases(this.state, uid));
    problems.push(...(await this.returnVfio(uid)));
    for (const m of claim.migCreated) {
      try {
        await this.o.backend.destroyMigDevice({ gpuIndex: this.currentIndex(m.gpuUuid, m.gpuIndex), gpuInstanceId: m.gpuInstanceId, computeInstanceId: m.computeInstanceId });
        this.state = forgetMigInstance(this.state, uid, m.gpuUuid, m.gpuInstanceId);
      } catch (err) {
        problems.push(`destroy GPU instance ${m.gpuInstanceId} on GPU ${m.gpuIndex}: ${errorMessage(err)}`);
      }
    }
    try {
      if (problems.length === 0) {
        await this.o.cdi.remove(uid);
        this.state = removeClaim(this.state, uid);
      }
      await this.o.checkpoint.save(this.state);
    } catch (err) {
      problems.push(errorMessage(err));
    }
    return problems.length > 0 ? problems.join('; ') : undefined;
  }

  private async unprepareOne(ref: ClaimRef): Promise<UnprepareResult> {
    const label = claimLabel(ref);
    const claim = this.state.claims[ref.uid];
    try {
      if (!claim) {
        // Unknown: never prepared here, or already unprepared. A stray spec is still removed,
        // and so is a failed prepare's entry in the claim status.
        await this.o.cdi.remove(ref.uid);
        this.o.status?.unprepared(ref);
        return {};
      }
      // Sharing first: an MPS daemon of a MIG instance holds the instance open.
      const problems: string[] = await this.releaseSharing(sharingReleases(this.state, ref.uid));
      problems.push(...(await this.returnVfio(ref.uid)));
      for (const m of claim.migCreated) {
        try {
          await this.o.backend.destroyMigDevice({ gpuIndex: this.currentIndex(m.gpuUuid, m.gpuIndex), gpuInstanceId: m.gpuInstanceId, computeInstanceId: m.computeInstanceId });
          this.state = forgetMigInstance(this.state, ref.uid, m.gpuUuid, m.gpuInstanceId);
        } catch (err) {
          problems.push(`cannot destroy MIG device ${m.deviceName} (GPU ${m.gpuIndex} GPU instance ${m.gpuInstanceId}): ${errorMessage(err)}`);
        }
      }
      if (problems.length > 0) {
        // Keep the claim with what is left, so a retried unprepare (or a restart) finishes it.
        await this.o.checkpoint.save(this.state);
        return { error: `claim ${label}: ${problems.join('; ')}` };
      }
      await this.o.cdi.remove(ref.uid);
      this.state = removeClaim(this.state, ref.uid);
      await this.o.checkpoint.save(this.state);
    } catch (err) {
      return { error: `claim ${label}: ${errorMessage(err)}` };
    }
    this.o.status?.unprepared(ref);
    return {};
  }
}
