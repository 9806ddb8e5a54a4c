// Pure planning of a prepare: from a ResourceClaim and the node's current
// inventory to the exact devices to hand out, every value checked before it
// can reach an nvidia-smi command line.
import { unhealthyTaintKey } from '../inventory/health.js';
import { ATTR, MIG_MEMORY_SLICES, gpuDeviceName, migDeviceName, qualify } from '../api/devicemodel.js';
import type { Device, ResourceClaim } from '../api/resource.js';
import type { DesiredSlice } from '../inventory/types.js';
import type { CheckpointState, IntendedDevice } from '../kubeletplugin/checkpoint.js';
import { checkConfigForDevice, resolveDeviceConfig, type GpuConfig } from '../kubeletplugin/config.js';
import { type ClaimRef, claimLabel } from '../kubeletplugin/preparer.js';
import type { Discovery } from '../nvidia/backend.js';
import type { GpuInfo, Placement } from '../nvidia/types.js';

/** What prepare validates against: the last discovery and the devices published from it. */
export interface InventorySnapshot {
  readonly discovery: Discovery;
  readonly devices: ReadonlyMap<string, Device>;
}

export function inventorySnapshot(discovery: Discovery, slices: readonly DesiredSlice[]): InventorySnapshot {
  const devices = new Map<string, Device>();
  for (const s of slices) for (const d of s.spec.devices ?? []) devices.set(d.name, d);
  return { discovery, devices };
}

interface PlannedBase {
  /** The allocation result's request, "req" or "req/sub". */
  readonly request: string;
  readonly poolName: string;
  readonly deviceName: string;
  readonly gpu: GpuInfo;
  readonly config: GpuConfig;
}

export interface PlannedGpu extends PlannedBase {
  readonly kind: 'gpu';
}

export interface PlannedMig extends PlannedBase {
  readonly kind: 'mig';
  readonly profile: string;
  readonly profileId: number;
  readonly placement: Placement;
}

/** A MIG instance that existed before Cascade, handed out as it stands. */
export interface PlannedPreexistingMig extends PlannedBase {
  readonly kind: 'preexisting-mig';
  readonly profile: string;
  readonly profileId: number;
  readonly placement: Placement;
  readonly uuid: string;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
}

export type PlannedDevice = PlannedGpu | PlannedMig | PlannedPreexistingMig;

export type ClaimPlan = { readonly ok: true; readonly devices: readonly PlannedDevice[] } | { readonly ok: false; readonly error: string };

/** Something another claim (or an earlier device of this claim) already holds on a GPU. */
export interface Occupancy {
  readonly owner: string;
  readonly gpuUuid: string;
  readonly deviceName: string;
  /**
   * "whole": the whole GPU; "named": a pre-existing MIG device, which only its
   * own name can clash with (the inventory hides partitions overlapping it).
   */
  readonly placement: Placement | 'whole' | 'named';
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const REQUEST_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$/;
const PROFILE_NAME = /^[1-7]g\.[0-9]+gb(\+me)?$/;

function overlaps(a: Placement, b: Placement): boolean {
  return a.start < b.start + b.size && b.start < a.start + a.size;
}

export function describePlacement(p: Placement): string {
  return `${p.start}:${p.size}`;
}

/** What every claim in the checkpoint except `exceptUid` holds, from what it intended. */
export function occupancyFromCheckpoint(state: CheckpointState, exceptUid: string): Occupancy[] {
  const out: Occupancy[] = [];
  for (const c of Object.values(state.claims)) {
    if (c.uid === exceptUid) continue;
    const owner = `claim ${c.namespace}/${c.name}`;
    for (const d of c.intended) {
      // Pre-existing MIG devices are checkpointed without `mig`: nothing to create.
      const placement = d.type === 'gpu' ? 'whole' : (d.mig?.placement ?? 'named');
      out.push({ owner, gpuUuid: d.gpuUuid, deviceName: d.deviceName, placement });
    }
  }
  return out;
}

function clashes(a: Occupancy['placement'], b: Occupancy['placement']): boolean {
  if (a === 'named' || b === 'named') return a === 'whole' || b === 'whole';
  if (a === 'whole' || b === 'whole') return true;
  return overlaps(a, b);
}

function describeHeld(p: Occupancy['placement']): string {
  return p === 'whole' ? 'the whole GPU' : p === 'named' ? 'a pre-existing MIG device' : `placement ${describePlacement(p)}`;
}

function conflict(device: string, gpu: GpuInfo, placement: Occupancy['placement'], held: readonly Occupancy[]): string | undefined {
  for (const o of held) {
    if (o.gpuUuid !== gpu.uuid) continue;
    if (o.deviceName === device) return `device ${device} is already prepared for ${o.owner}`;
    if (clashes(placement, o.placement)) {
      return `device ${device} needs ${describeHeld(placement)} on ${gpuDeviceName(gpu.minor)}, which overlaps ${o.deviceName} (${describeHeld(o.placement)}) held by ${o.owner}`;
    }
  }
  return undefined;
}

function intAttr(device: Device, driver: string, name: string): number | undefined {
  const v = device.attributes?.[qualify(driver, name)]?.int;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

function strAttr(device: Device, driver: string, name: string): string | undefined {
  const v = device.attributes?.[qualify(driver, name)]?.string;
  return typeof v === 'string' ? v : undefined;
}

/**
 * Decides what prepare will do for one claim, or why it cannot. Pure: the
 * claim as read from the API, the inventory the node last published and what
 * other claims hold are its only inputs.
 */
export function planClaim(input: {
  readonly driver: string;
  readonly nodeName: string;
  readonly ref: ClaimRef;
  readonly claim: ResourceClaim;
  readonly inventory: InventorySnapshot;
  readonly held: readonly Occupancy[];
}): ClaimPlan {
  const { driver, nodeName, ref, claim, inventory } = input;
  const label = claimLabel(ref);
  const fail = (error: string): ClaimPlan => ({ ok: false, error: `claim ${label}: ${error}` });
  if (claim.metadata.uid !== ref.uid) {
    return fail(`the API server has a different claim under this name (UID ${claim.metadata.uid ?? 'none'}); the kubelet's claim was deleted and recreated`);
  }
  if (claim.metadata.deletionTimestamp) return fail('the claim is being deleted');
  const allocation = claim.status?.allocation;
  if (!allocation) return fail('the claim is not allocated');
  const results = (allocation.devices?.results ?? []).filter((r) => r.driver === driver && r.pool === nodeName);
  if (results.length === 0) return fail(`the allocation has no device of driver ${driver} in pool ${nodeName}`);

  const held: Occupancy[] = [...input.held];
  const devices: PlannedDevice[] = [];
  for (const r of results) {
    if (!DNS_LABEL.test(r.device)) return fail(`allocated device name ${JSON.stringify(r.device)} is not a DNS label`);
    if (!REQUEST_NAME.test(r.request)) return fail(`allocated request name ${JSON.stringify(r.request)} is not valid`);
    if (r.adminAccess) return fail(`device ${r.device}: adminAccess is not supported by ${driver}`);
    const device = inventory.devices.get(r.device);
    if (!device) return fail(`device ${r.device} is not in the inventory this node publishes; the allocation is stale or names another node's device`);
    // A tainted device was allocated before it failed; setting it up now would hand the pod a broken GPU.
    const broken = device.taints?.find((t) => t.key === unhealthyTaintKey(driver));
    if (broken) return fail(`device ${r.device} is unhealthy (${broken.value ?? 'unhealthy'}); it is published with taint ${broken.key} and is not prepared for new pods`);
    const configured = resolveDeviceConfig(driver, allocation.devices?.config, r);
    if (!configured.ok) return fail(configured.error);
    const type = strAttr(device, driver, ATTR.type);
    const base = { request: r.request, poolName: r.pool, deviceName: r.device, config: configured.config };
    if (type === 'gpu') {
      const uuid = strAttr(device, driver, ATTR.uuid);
      const gpu = inventory.discovery.gpus.find((g) => g.uuid === uuid);
      if (!gpu || gpuDeviceName(gpu.minor) !== r.device) return fail(`device ${r.device} does not match any GPU nvidia-smi reports`);
      const problem = conflict(r.device, gpu, 'whole', held);
      if (problem) return fail(problem);
      devices.push({ kind: 'gpu', ...base, gpu });
      held.push({ owner: 'another request of this claim', gpuUuid: gpu.uuid, deviceName: r.device, placement: 'whole' });
      continue;
    }
    if (type !== 'mig') return fail(`device ${r.device} has type ${JSON.stringify(type)}; expected "gpu" or "mig"`);
    const parentUuid = strAttr(device, driver, ATTR.parentUUID);
    const profile = strAttr(device, driver, ATTR.profile);
    const profileId = intAttr(device, driver, ATTR.profileID);
    const start = intAttr(device, driver, ATTR.placementStart);
    const size = intAttr(device, driver, ATTR.placementSize);
    const gpu = inventory.discovery.gpus.find((g) => g.uuid === parentUuid);
    if (!gpu) return fail(`the parent GPU ${parentUuid ?? '(none)'} of device ${r.device} is not reported by nvidia-smi`);
    if (profile === undefined || !PROFILE_NAME.test(profile)) return fail(`device ${r.device} has MIG profile ${JSON.stringify(profile)}, which is not a profile name`);
    if (profileId === undefined || profileId < 0 || profileId > 63) return fail(`device ${r.device} has MIG profile ID ${String(profileId)} outside 0-63`);
    if (start === undefined || size === undefined || start < 0 || size < 1 || start + size > MIG_MEMORY_SLICES) {
      return fail(`device ${r.device} has placement ${String(start)}:${String(size)} outside the ${MIG_MEMORY_SLICES} memory slices`);
    }
    if (migDeviceName(gpu.minor, profile, start) !== r.device) return fail(`device ${r.device} does not match its own profile and placement attributes`);
    const configProblem = checkConfigForDevice(configured.config, 'mig', r.device);
    if (configProblem) return fail(configProblem);
    const placement = { start, size };
    const preexisting = device.attributes?.[qualify(driver, ATTR.preexisting)]?.bool === true;
    const problem = conflict(r.device, gpu, preexisting ? 'named' : placement, held);
    if (problem) return fail(problem);
    held.push({ owner: 'another request of this claim', gpuUuid: gpu.uuid, deviceName: r.device, placement: preexisting ? 'named' : placement });
    if (preexisting) {
      const uuid = strAttr(device, driver, ATTR.uuid);
      const gi = inventory.discovery.gpuInstances.find((i) => i.gpuIndex === gpu.index && i.profileId === profileId && i.placement.start === start);
      const ci = gi && inventory.discovery.computeInstances.find((c) => c.gpuIndex === gpu.index && c.gpuInstanceId === gi.instanceId);
      if (uuid === undefined || !gi || !ci) return fail(`the pre-existing MIG device ${r.device} is no longer there`);
      devices.push({ kind: 'preexisting-mig', ...base, gpu, profile, profileId, placement, uuid, gpuInstanceId: gi.instanceId, computeInstanceId: ci.instanceId });
      continue;
    }
    devices.push({ kind: 'mig', ...base, gpu, profile, profileId, placement });
  }
  return { ok: true, devices };
}

/** The checkpoint's record of a plan, written before anything changes on the GPU. */
export function intendedDevices(devices: readonly PlannedDevice[]): IntendedDevice[] {
  return devices.map((d): IntendedDevice => {
    const common = { request: d.request, poolName: d.poolName, deviceName: d.deviceName, gpuIndex: d.gpu.index, gpuUuid: d.gpu.uuid };
    if (d.kind === 'gpu') return { ...common, type: 'gpu' };
    // A pre-existing instance is not ours to create or destroy: no `mig` intent.
    if (d.kind === 'preexisting-mig') return { ...common, type: 'mig' };
    return { ...common, type: 'mig', mig: { profile: d.profile, profileId: d.profileId, placement: d.placement } };
  });
}
