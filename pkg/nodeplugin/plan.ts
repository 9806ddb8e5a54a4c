// Pure planning of a prepare: from a ResourceClaim and the node's current
// inventory to the exact devices to hand out, every value checked before it
// can reach an nvidia-smi command line.
import { unhealthyTaintKey } from '../inventory/health.js';
import { ATTR, CAPACITY, MIG_MEMORY_SLICES, gpuDeviceName, migDeviceName, qualify, sharedDeviceName, vfioDeviceName } from '../api/devicemodel.js';
import { Quantity } from '../cel/quantity.js';
import { type Device, type DeviceAllocationConfiguration, type DeviceRequestAllocationResult, type ResourceClaim, STANDARD_ATTRIBUTES } from '../api/resource.js';
import type { DesiredSlice, PassthroughGpu } from '../inventory/types.js';
import { isPciAddress } from './vfio.js';
import type { CheckpointState, IntendedDevice, IntendedSharing } from './checkpoint.js';
import { checkConfigForDevice, resolveDeviceConfig, sharingFor, type GpuConfig } from './gpu-config.js';
import { type ClaimRef, claimLabel } from '../kubeletplugin/preparer.js';
import type { Discovery } from '../nvidia/backend.js';
import type { GpuInfo, Placement } from '../nvidia/types.js';

/** What prepare validates against: the last discovery and the devices published from it. */
export interface InventorySnapshot {
  readonly discovery: Discovery;
  readonly devices: ReadonlyMap<string, Device>;
  /** Passthrough GPUs by PCI address, as sysfs showed them. */
  readonly passthrough: ReadonlyMap<string, PassthroughGpu>;
}

export function inventorySnapshot(discovery: Discovery, slices: readonly DesiredSlice[], passthrough: readonly PassthroughGpu[] = []): InventorySnapshot {
  const devices = new Map<string, Device>();
  for (const s of slices) for (const d of s.spec.devices ?? []) devices.set(d.name, d);
  return { discovery, devices, passthrough: new Map(passthrough.map((p) => [p.address, p])) };
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
  /** MPS for the claim's containers on this instance, when its config asks. */
  readonly sharing?: SharingPlan;
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
  readonly sharing?: SharingPlan;
}

/** A whole GPU (kind gpu) or a shared GPU (kind shared) set up for MPS or time-slicing. */
export interface SharingPlan {
  readonly strategy: 'MPS' | 'TimeSlicing';
  readonly timeSlice?: 0 | 1 | 2 | 3;
  /** MPS limits from the allocation's consumedCapacity (shared GPUs only). */
  readonly memoryMiB?: number;
  readonly computePercent?: number;
}

/** A share of a GPU that allows multiple allocations. */
export interface PlannedShared extends PlannedBase {
  readonly kind: 'shared';
  readonly shareId: string;
  readonly sharing: SharingPlan;
}

/** A GPU passed through to a VM: bound to vfio-pci with the rest of its IOMMU group. */
export interface PlannedVfio {
  readonly kind: 'vfio';
  readonly request: string;
  readonly poolName: string;
  readonly deviceName: string;
  readonly config: GpuConfig;
  readonly address: string;
  readonly mode: 'pool' | 'switchable';
  /** nvidia-smi's view while the GPU is still bound to the nvidia driver. */
  readonly gpu: GpuInfo | undefined;
}

export type PlannedDevice = (PlannedGpu & { readonly sharing?: SharingPlan }) | PlannedShared | PlannedMig | PlannedPreexistingMig | PlannedVfio;

export type ClaimPlan = { readonly ok: true; readonly devices: readonly PlannedDevice[] } | { readonly ok: false; readonly error: string };

/** Something another claim (or an earlier device of this claim) already holds on a GPU. */
export interface Occupancy {
  readonly owner: string;
  readonly gpuUuid: string;
  readonly deviceName: string;
  /**
   * "whole": the whole GPU; "named": a pre-existing MIG device, which only its
   * own name can clash with (the inventory hides partitions overlapping it);
   * "shared": a share of the GPU, which other shares do not clash with.
   */
  readonly placement: Placement | 'whole' | 'named' | 'shared';
  /** How a whole or shared GPU is shared, when it is. */
  readonly sharing?: SharingPlan;
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
      const placement = d.type === 'gpu' || d.type === 'vfio' ? 'whole' : d.type === 'shared' ? 'shared' : (d.mig?.placement ?? 'named');
      out.push({ owner, gpuUuid: d.gpuUuid, deviceName: d.deviceName, placement, ...(d.sharing ? { sharing: sharingOf(d.sharing) } : {}) });
    }
  }
  return out;
}

function sharingOf(s: IntendedSharing): SharingPlan {
  const slice = s.timeSlice;
  return {
    strategy: s.strategy,
    ...(slice === 0 || slice === 1 || slice === 2 || slice === 3 ? { timeSlice: slice } : {}),
    ...(s.memoryMiB !== undefined ? { memoryMiB: s.memoryMiB } : {}),
    ...(s.computePercent !== undefined ? { computePercent: s.computePercent } : {}),
  };
}

function clashes(a: Occupancy['placement'], b: Occupancy['placement']): boolean {
  if (a === 'shared' && b === 'shared') return false;
  if (a === 'shared' || b === 'shared') return true;
  if (a === 'named' || b === 'named') return a === 'whole' || b === 'whole';
  if (a === 'whole' || b === 'whole') return true;
  return overlaps(a, b);
}

function describeHeld(p: Occupancy['placement']): string {
  return p === 'whole' ? 'the whole GPU' : p === 'named' ? 'a pre-existing MIG device' : p === 'shared' ? 'a share of the GPU' : `placement ${describePlacement(p)}`;
}

function conflict(device: string, gpu: GpuInfo, placement: Occupancy['placement'], held: readonly Occupancy[], sharing?: SharingPlan): string | undefined {
  for (const o of held) {
    if (o.gpuUuid !== gpu.uuid) continue;
    if (placement === 'shared' && o.placement === 'shared') {
      // Shares of one GPU must agree on how it is shared: one MPS daemon, or one time slice.
      const mine = sharing;
      const theirs = o.sharing;
      if (mine && theirs && (mine.strategy !== theirs.strategy || (mine.strategy === 'TimeSlicing' && mine.timeSlice !== theirs.timeSlice))) {
        return `shared GPU ${device} is shared through ${describeSharing(theirs)} by ${o.owner}; this claim asks for ${describeSharing(mine)}, and a GPU is shared one way at a time`;
      }
      continue;
    }
    if (o.deviceName === device) return `device ${device} is already prepared for ${o.owner}`;
    if (clashes(placement, o.placement)) {
      return `device ${device} needs ${describeHeld(placement)} on ${gpuDeviceName(gpu.minor)}, which overlaps ${o.deviceName} (${describeHeld(o.placement)}) held by ${o.owner}`;
    }
  }
  return undefined;
}

function describeSharing(s: SharingPlan): string {
  return s.strategy === 'MPS' ? 'MPS' : `time-slicing (time slice ${s.timeSlice ?? 0})`;
}

const TIME_SLICES = { Default: 0, Short: 1, Medium: 2, Long: 3 } as const;
const MIG_UUID = /^MIG-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/;
const SHARE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MIB = 1024n * 1024n;

/**
 * What a shared GPU's allocation gave the claim, from consumedCapacity: the
 * memory limit in whole MiB (rounded down, so the limit never exceeds the
 * share) and the compute percentage, each checked before it reaches a
 * command line or an environment variable.
 */
function shareLimits(driver: string, consumed: Readonly<Record<string, string>> | undefined, device: string): { memoryMiB: number; computePercent: number } | string {
  const memText = consumed?.[qualify(driver, CAPACITY.memory)];
  const computeText = consumed?.[qualify(driver, CAPACITY.compute)];
  if (memText === undefined || computeText === undefined)
    return `the allocation of shared GPU ${device} does not say how much memory and compute it consumed (consumedCapacity); it was not made by a 1.36 allocator`;
  const mem = Quantity.tryParse(memText);
  const compute = Quantity.tryParse(computeText);
  if (mem === undefined || mem.sign() <= 0) return `shared GPU ${device}: consumed memory ${JSON.stringify(memText)} is not a positive quantity`;
  if (compute === undefined || !compute.isInteger() || compute.asInteger() < 1n || compute.asInteger() > 100n)
    return `shared GPU ${device}: consumed compute ${JSON.stringify(computeText)} is not a whole percent from 1 to 100`;
  const bytes = mem.nanos / 1_000_000_000n;
  const mib = bytes / MIB;
  if (mib < 1n || mib > 16n * 1024n * 1024n) return `shared GPU ${device}: consumed memory ${memText} is outside 1Mi-16Ti`;
  return { memoryMiB: Number(mib), computePercent: Number(compute.asInteger()) };
}

function sharingPlan(config: GpuConfig, type: 'gpu' | 'mig' | 'shared'): SharingPlan | undefined {
  const s = sharingFor(config, type);
  if (s.strategy === 'Exclusive') return undefined;
  if (s.strategy === 'MPS') return { strategy: 'MPS' };
  return { strategy: 'TimeSlicing', timeSlice: TIME_SLICES[s.timeSlicing.interval] };
}

function intAttr(device: Device, driver: string, name: string): number | undefined {
  const v = device.attributes?.[qualify(driver, name)]?.int;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

function strAttr(device: Device, driver: string, name: string): string | undefined {
  const v = device.attributes?.[qualify(driver, name)]?.string;
  return typeof v === 'string' ? v : undefined;
}

/** What planning one device needs: the driver, the inventory, and what is held so far. */
interface DeviceContext {
  readonly driver: string;
  readonly inventory: InventorySnapshot;
  readonly held: Occupancy[];
}

type Result = DeviceRequestAllocationResult;
/** The common part of every planned device. */
type Base = Pick<PlannedDevice, 'request' | 'poolName' | 'deviceName' | 'config'>;

/** A whole GPU; an error sentence when it cannot be. */
function planWhole(ctx: DeviceContext, r: Result, device: Device, base: Base): PlannedDevice | string {
  const gpu = ctx.inventory.discovery.gpus.find((g) => g.uuid === strAttr(device, ctx.driver, ATTR.uuid));
  if (!gpu || gpuDeviceName(gpu.minor) !== r.device) return `device ${r.device} does not match any GPU nvidia-smi reports`;
  const problem = conflict(r.device, gpu, 'whole', ctx.held);
  if (problem) return problem;
  const sharing = sharingPlan(base.config, 'gpu');
  ctx.held.push({ owner: 'another request of this claim', gpuUuid: gpu.uuid, deviceName: r.device, placement: 'whole' });
  return { kind: 'gpu', ...base, gpu, ...(sharing ? { sharing } : {}) };
}

/** A share of a GPU, with the limits its consumed capacity gives. */
function planShared(ctx: DeviceContext, r: Result, device: Device, base: Base): PlannedDevice | string {
  const gpu = ctx.inventory.discovery.gpus.find((g) => g.uuid === strAttr(device, ctx.driver, ATTR.uuid));
  if (!gpu || sharedDeviceName(gpu.minor) !== r.device) return `device ${r.device} does not match any GPU nvidia-smi reports`;
  if (r.shareID === undefined || !SHARE_ID.test(r.shareID)) return `shared GPU ${r.device} was allocated without a valid share ID`;
  const configProblem = checkConfigForDevice(base.config, 'shared', r.device);
  if (configProblem) return configProblem;
  const limits = shareLimits(ctx.driver, r.consumedCapacity, r.device);
  if (typeof limits === 'string') return limits;
  const how = sharingPlan(base.config, 'shared') ?? { strategy: 'MPS' };
  // Time-slicing records the share too (for status and debugging); only MPS enforces it.
  const sharing: SharingPlan = { ...how, ...limits };
  const problem = conflict(r.device, gpu, 'shared', ctx.held, sharing);
  if (problem) return problem;
  ctx.held.push({ owner: 'another request of this claim', gpuUuid: gpu.uuid, deviceName: r.device, placement: 'shared', sharing });
  return { kind: 'shared', ...base, gpu, shareId: r.shareID, sharing };
}

/** A MIG partition: one to create at its placement, or a pre-existing instance to hand over. */
function planMig(ctx: DeviceContext, r: Result, device: Device, base: Base): PlannedDevice | string {
  const { driver, inventory } = ctx;
  const parentUuid = strAttr(device, driver, ATTR.parentUUID);
  const profile = strAttr(device, driver, ATTR.profile);
  const profileId = intAttr(device, driver, ATTR.profileID);
  const start = intAttr(device, driver, ATTR.placementStart);
  const size = intAttr(device, driver, ATTR.placementSize);
  const gpu = inventory.discovery.gpus.find((g) => g.uuid === parentUuid);
  if (!gpu) return `the parent GPU ${parentUuid ?? '(none)'} of device ${r.device} is not reported by nvidia-smi`;
  if (profile === undefined || !PROFILE_NAME.test(profile)) return `device ${r.device} has MIG profile ${JSON.stringify(profile)}, which is not a profile name`;
  if (profileId === undefined || profileId < 0 || profileId > 63) return `device ${r.device} has MIG profile ID ${String(profileId)} outside 0-63`;
  if (start === undefined || size === undefined || start < 0 || size < 1 || start + size > MIG_MEMORY_SLICES) {
    return `device ${r.device} has placement ${String(start)}:${String(size)} outside the ${MIG_MEMORY_SLICES} memory slices`;
  }
  if (migDeviceName(gpu.minor, profile, start) !== r.device) return `device ${r.device} does not match its own profile and placement attributes`;
  const configProblem = checkConfigForDevice(base.config, 'mig', r.device);
  if (configProblem) return configProblem;
  const placement = { start, size };
  const migSharing = sharingPlan(base.config, 'mig');
  const shareMig = migSharing ? { sharing: migSharing } : {};
  const preexisting = device.attributes?.[qualify(driver, ATTR.preexisting)]?.bool === true;
  const problem = conflict(r.device, gpu, preexisting ? 'named' : placement, ctx.held);
  if (problem) return problem;
  ctx.held.push({ owner: 'another request of this claim', gpuUuid: gpu.uuid, deviceName: r.device, placement: preexisting ? 'named' : placement });
  if (!preexisting) return { kind: 'mig', ...base, gpu, profile, profileId, placement, ...shareMig };
  const uuid = strAttr(device, driver, ATTR.uuid);
  const gi = inventory.discovery.gpuInstances.find((i) => i.gpuIndex === gpu.index && i.profileId === profileId && i.placement.start === start);
  const ci = gi && inventory.discovery.computeInstances.find((c) => c.gpuIndex === gpu.index && c.gpuInstanceId === gi.instanceId);
  if (uuid === undefined || !gi || !ci) return `the pre-existing MIG device ${r.device} is no longer there`;
  if (migSharing && !MIG_UUID.test(uuid)) return `the pre-existing MIG device ${r.device} has UUID ${JSON.stringify(uuid.slice(0, 80))}, which cannot name an MPS daemon`;
  return { kind: 'preexisting-mig', ...base, gpu, profile, profileId, placement, uuid, gpuInstanceId: gi.instanceId, computeInstanceId: ci.instanceId, ...shareMig };
}

/** The key a passthrough GPU is held under: its UUID while nvidia-smi sees it, else its PCI address. */
export function vfioHoldKey(gpu: GpuInfo | undefined, address: string): string {
  return gpu?.uuid ?? `pci-${address}`;
}

/** A GPU for a VM: the passthrough device must name a configured GPU this node sees in sysfs. */
function planVfio(ctx: DeviceContext, r: Result, device: Device, base: Base): PlannedDevice | string {
  const address = device.attributes?.[STANDARD_ATTRIBUTES.pciBusID]?.string;
  if (address === undefined || !isPciAddress(address) || vfioDeviceName(address) !== r.device) return `device ${r.device} does not name a PCI address this node publishes`;
  const p = ctx.inventory.passthrough.get(address);
  if (!p) return `device ${r.device} (${address}) is not a GPU this node is configured to pass through`;
  if (p.unavailable) return `device ${r.device} (${address}) cannot be passed through: ${p.unavailable.reason}`;
  if (base.config.sharing !== undefined && base.config.sharing.strategy !== 'Exclusive')
    return `device ${r.device} is a passthrough GPU, which a VM uses whole; its config asks for ${base.config.sharing.strategy}`;
  const gpu = ctx.inventory.discovery.gpus.find((g) => g.pciBusId === address);
  const key = vfioHoldKey(gpu, address);
  for (const o of ctx.held) {
    if (o.deviceName === r.device) return `device ${r.device} is already prepared for ${o.owner}`;
    if (o.gpuUuid === key) return `device ${r.device} needs the whole GPU ${address}, which ${o.deviceName} held by ${o.owner} uses`;
  }
  ctx.held.push({ owner: 'another request of this claim', gpuUuid: key, deviceName: r.device, placement: 'whole' });
  return { kind: 'vfio', ...base, address, mode: p.mode, gpu };
}

/** One allocated device: checked against the inventory and its config, then planned by its type. */
function planDevice(ctx: DeviceContext, r: Result, config: readonly DeviceAllocationConfiguration[] | undefined): PlannedDevice | string {
  const { driver, inventory } = ctx;
  if (!DNS_LABEL.test(r.device)) return `allocated device name ${JSON.stringify(r.device)} is not a DNS label`;
  if (!REQUEST_NAME.test(r.request)) return `allocated request name ${JSON.stringify(r.request)} is not valid`;
  if (r.adminAccess) return `device ${r.device}: adminAccess is not supported by ${driver}`;
  const device = inventory.devices.get(r.device);
  if (!device) return `device ${r.device} is not in the inventory this node publishes; the allocation is stale or names another node's device`;
  // A tainted device was allocated before it failed; setting it up now would hand the pod a broken GPU.
  const broken = device.taints?.find((t) => t.key === unhealthyTaintKey(driver));
  if (broken) return `device ${r.device} is unhealthy (${broken.value ?? 'unhealthy'}); it is published with taint ${broken.key} and is not prepared for new pods`;
  const configured = resolveDeviceConfig(driver, config, r);
  if (!configured.ok) return configured.error;
  const type = strAttr(device, driver, ATTR.type);
  const base: Base = { request: r.request, poolName: r.pool, deviceName: r.device, config: configured.config };
  if (type === 'gpu') return planWhole(ctx, r, device, base);
  if (type === 'shared') return planShared(ctx, r, device, base);
  if (type === 'mig') return planMig(ctx, r, device, base);
  if (type === 'vfio') return planVfio(ctx, r, device, base);
  return `device ${r.device} has type ${JSON.stringify(type)}; expected "gpu", "shared", "mig" or "vfio"`;
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
  const ctx: DeviceContext = { driver, inventory, held: [...input.held] };
  const devices: PlannedDevice[] = [];
  for (const r of results) {
    const planned = planDevice(ctx, r, allocation.devices?.config);
    if (typeof planned === 'string') return fail(planned);
    devices.push(planned);
  }
  return { ok: true, devices };
}

function intendedSharing(s: SharingPlan): IntendedSharing {
  return {
    strategy: s.strategy,
    ...(s.timeSlice !== undefined ? { timeSlice: s.timeSlice } : {}),
    ...(s.memoryMiB !== undefined ? { memoryMiB: s.memoryMiB } : {}),
    ...(s.computePercent !== undefined ? { computePercent: s.computePercent } : {}),
  };
}

/** The checkpoint's record of a plan, written before anything changes on the GPU. */
export function intendedDevices(devices: readonly PlannedDevice[]): IntendedDevice[] {
  return devices.map((d): IntendedDevice => {
    if (d.kind === 'vfio') {
      const held = { request: d.request, poolName: d.poolName, deviceName: d.deviceName, gpuIndex: d.gpu?.index ?? -1, gpuUuid: vfioHoldKey(d.gpu, d.address) };
      return { ...held, type: 'vfio', vfio: { address: d.address, mode: d.mode } };
    }
    const common = { request: d.request, poolName: d.poolName, deviceName: d.deviceName, gpuIndex: d.gpu.index, gpuUuid: d.gpu.uuid };
    if (d.kind === 'gpu') return { ...common, type: 'gpu', ...(d.sharing ? { sharing: intendedSharing(d.sharing) } : {}) };
    if (d.kind === 'shared') return { ...common, type: 'shared', shareId: d.shareId, sharing: intendedSharing(d.sharing) };
    // A pre-existing instance is not ours to create or destroy: no `mig` intent.
    if (d.kind === 'preexisting-mig') return { ...common, type: 'mig', ...(d.sharing ? { sharing: { ...intendedSharing(d.sharing), deviceUuid: d.uuid } } : {}) };
    return { ...common, type: 'mig', mig: { profile: d.profile, profileId: d.profileId, placement: d.placement }, ...(d.sharing ? { sharing: intendedSharing(d.sharing) } : {}) };
  });
}
