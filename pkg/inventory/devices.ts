// Devices of one GPU: the whole GPU, its MIG partitions (every profile x
// placement) and pre-existing MIG instances, with one shared counter set per
// GPU so the API server's allocator itself keeps overlapping devices apart.
import { createHash } from 'node:crypto';
import { ATTR, CAPACITY, COUNTER, counterSetName, gpuDeviceName, migDeviceName, qualify, sharedDeviceName, vfioDeviceName, vfioUnavailableTaintKey } from '../api/devicemodel.js';
import { type Counter, type CounterSet, type Device, type DeviceAttribute, type DeviceCapacity, type DeviceTaint, LIMITS, STANDARD_ATTRIBUTES } from '../api/resource.js';
import { Quantity } from '../cel/quantity.js';
import { catalogProfiles, findModel, migToggleNeedsReset } from '../nvidia/catalog.js';
import { migGeometry } from '../nvidia/geometry.js';
import type { Discovery } from '../nvidia/backend.js';
import type { ComputeInstance, GpuInfo, GpuInstance, MigProfile, Placement } from '../nvidia/types.js';
import { DEFAULT_SHARING, type InventoryOptions, type OwnedInstance, type PassthroughGpu, type SharingOptions } from './types.js';
import { unhealthyTaint } from './health.js';

/** How a GPU is published, decided from its MIG mode and architecture (docs/devices.md). */
export interface GpuPlan {
  readonly gpu: GpuInfo;
  readonly publishWhole: boolean;
  readonly profiles: readonly MigProfile[];
  /** Pre-existing instances we did not create (published or only blocking). */
  readonly foreign: readonly ForeignInstance[];
}

export interface ForeignInstance {
  readonly gi: GpuInstance;
  readonly profile: MigProfile | undefined;
  /** MIG UUID when the instance has exactly one compute instance spanning it. */
  readonly uuid: string | undefined;
}

/** The devices and counter set of one GPU. */
export interface GpuDevices {
  readonly minor: number;
  readonly devices: readonly Device[];
  readonly counterSet: CounterSet | undefined;
}

/** "580.105.08" -> "580.105.8", "9.0" -> "9.0.0": semver without leading zeros. */
export function toSemver(version: string | undefined): string | undefined {
  if (version === undefined) return undefined;
  const parts = version.trim().split('.');
  if (parts.length === 0 || parts.length > 3 || !parts.every((p) => /^\d+$/.test(p))) return undefined;
  while (parts.length < 3) parts.push('0');
  return parts.map((p) => String(Number(p))).join('.');
}

function str(value: string): DeviceAttribute {
  return { string: value.length > LIMITS.attributeStringLength ? value.slice(0, LIMITS.attributeStringLength) : value };
}

/** Builds an object with sorted keys, so equal inventories serialise identically. */
function sorted<T>(entries: ReadonlyArray<readonly [string, T | undefined]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function overlaps(a: Placement, b: Placement): boolean {
  return a.start < b.start + b.size && b.start < a.start + a.size;
}

/**
 * NVLink domains: connected groups of NVLinked GPUs, named after the node and
 * the lowest minor in the group; GPUs without NVLink get none.
 */
export function nvlinkDomains(nodeName: string, gpus: readonly GpuInfo[]): Map<string, string> {
  const byIndex = new Map(gpus.map((g) => [g.index, g]));
  const domains = new Map<string, string>();
  const seen = new Set<number>();
  for (const g of [...gpus].sort((a, b) => a.minor - b.minor)) {
    if (seen.has(g.index) || g.nvlinkPeers.length === 0) continue;
    const group: GpuInfo[] = [];
    const queue = [g.index];
    while (queue.length > 0) {
      const i = queue.pop() as number;
      const gpu = byIndex.get(i);
      if (seen.has(i) || !gpu) continue;
      seen.add(i);
      group.push(gpu);
      queue.push(...gpu.nvlinkPeers);
    }
    const lowest = Math.min(...group.map((m) => m.minor));
    let name = `${nodeName}-nvlink-${lowest}`;
    if (name.length > LIMITS.attributeStringLength) {
      const hash = createHash('sha256').update(nodeName).digest('hex').slice(0, 10);
      name = `${nodeName.slice(0, LIMITS.attributeStringLength - 24)}-${hash}-nvlink-${lowest}`;
    }
    for (const m of group) domains.set(m.uuid, name);
  }
  return domains;
}

/** Decides what to publish for each GPU; see docs/devices.md "MIG mode". */
export function planGpus(discovery: Discovery, owned: readonly OwnedInstance[], options: InventoryOptions): GpuPlan[] {
  const dynamic = options.dynamicMig ?? true;
  return discovery.gpus.map((gpu): GpuPlan => {
    const current = gpu.migMode.current;
    if (current === 'N/A') return { gpu, publishWhole: true, profiles: [], foreign: [] };
    const noReset = !migToggleNeedsReset(gpu.architecture) && dynamic;
    const listed = discovery.migProfiles.filter((p) => p.gpuIndex === gpu.index);
    const model = findModel(gpu.productName);
    const known = listed.length > 0 ? listed : model ? catalogProfiles(model, gpu.index) : [];
    const publishPartitions = current === 'Enabled' || noReset;
    const profiles = publishPartitions ? known : [];
    const instances = discovery.gpuInstances.filter((i) => i.gpuIndex === gpu.index);
    const foreign = instances
      .filter((i) => !owned.some((o) => o.parentUUID === gpu.uuid && o.gpuInstanceId === i.instanceId))
      .map((gi): ForeignInstance => ({ gi, profile: known.find((p) => p.id === gi.profileId), uuid: soleMigUuid(gpu, gi, discovery.computeInstances) }));
    // A whole GPU needs MIG off: possible now, or at prepare time without a reset, and only
    // when no instance we did not create occupies it.
    const publishWhole = (current === 'Disabled' || noReset) && foreign.length === 0;
    return { gpu, publishWhole, profiles, foreign };
  });
}

/**
 * Sentences for the log: which GPUs' MIG profiles are Cascade's catalog
 * knowledge rather than what the board itself reports (nvidia-smi lists
 * profiles only while MIG is on), and which MIG-capable boards get no
 * partitions because the catalog does not know them.
 */
export function profileNotes(discovery: Discovery, options: InventoryOptions): string[] {
  const notes: string[] = [];
  const seen = new Set<string>();
  for (const plan of planGpus(discovery, [], options)) {
    const g = plan.gpu;
    if (g.migMode.current === 'N/A' || discovery.migProfiles.some((p) => p.gpuIndex === g.index)) continue;
    const model = findModel(g.productName);
    const publishes = g.migMode.current === 'Enabled' || (!migToggleNeedsReset(g.architecture) && (options.dynamicMig ?? true));
    if (!publishes) continue;
    const key = `${g.productName}/${model ? 'known' : 'unknown'}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (!model) {
      notes.push(`${g.productName} is MIG-capable but not in Cascade's catalog, so its partitions are published only once MIG is on and nvidia-smi lists its profiles`);
      continue;
    }
    const estimated = model.estimated?.length ? `; estimated, not measured: ${model.estimated.join(', ')}` : '';
    notes.push(`MIG is off on ${g.productName}, so its partitions are published from Cascade's catalog (${model.provenance})${estimated}; the board's own sizes are used once MIG is on`);
  }
  return notes;
}

/** The MIG UUID of an instance with exactly one compute instance that spans all of it. */
function soleMigUuid(gpu: GpuInfo, gi: GpuInstance, computeInstances: readonly ComputeInstance[]): string | undefined {
  const cis = computeInstances.filter((c) => c.gpuIndex === gpu.index && c.gpuInstanceId === gi.instanceId);
  const only = cis[0];
  if (cis.length !== 1 || !only || only.profile !== gi.profile) return undefined;
  return gpu.migDevices.find((d) => d.gpuInstanceId === gi.instanceId && d.computeInstanceId === only.instanceId)?.uuid;
}

type CounterValues = Record<string, number>;

function consumption(p: MigProfile, placement: Placement): CounterValues {
  const c: CounterValues = {};
  for (let s = placement.start; s < placement.start + placement.size; s++) c[COUNTER.memorySlice(s)] = 1;
  c[COUNTER.computeSlices] = p.computeSlices;
  c[COUNTER.multiprocessors] = p.multiprocessors;
  c[COUNTER.copyEngines] = p.engines.copyEngines;
  c[COUNTER.decoders] = p.engines.decoders;
  c[COUNTER.encoders] = p.engines.encoders;
  c[COUNTER.jpegEngines] = p.engines.jpegEngines;
  c[COUNTER.ofaEngines] = p.engines.ofaEngines;
  return c;
}

/**
 * Totals of the counter set. Memory slices and compute slices are the real
 * geometry; for SMs and engines the total is the most any valid layout uses
 * (found by enumerating layouts), so they never refuse a layout the hardware
 * accepts, while the whole GPU, which consumes every total, still excludes all.
 */
export function counterTotals(profiles: readonly MigProfile[]): CounterValues {
  // The enumeration is exponential in the number of placements and every GPU of
  // a board has the same table: remember the answer per table.
  const key = JSON.stringify(profiles.map((p) => [p.id, p.computeSlices, p.memorySlices, p.instancesTotal, p.multiprocessors, p.engines, p.placements]));
  const known = totalsCache.get(key);
  if (known) return { ...known };
  const totals = enumerateTotals(profiles);
  if (totalsCache.size > 64) totalsCache.clear();
  totalsCache.set(key, totals);
  return { ...totals };
}

const totalsCache = new Map<string, CounterValues>();

function enumerateTotals(profiles: readonly MigProfile[]): CounterValues {
  const totals: CounterValues = {};
  const geometry = migGeometry(profiles.map((p) => ({ computeSlices: p.computeSlices, memorySlices: p.memorySlices, placementStarts: p.placements.map((pl) => pl.start) })));
  for (let s = 0; s < geometry.memorySlices; s++) totals[COUNTER.memorySlice(s)] = 1;
  totals[COUNTER.computeSlices] = geometry.computeSlices;
  const engineKeys = [COUNTER.multiprocessors, COUNTER.copyEngines, COUNTER.decoders, COUNTER.encoders, COUNTER.jpegEngines, COUNTER.ofaEngines];
  for (const k of engineKeys) totals[k] = 0;
  const items = profiles.flatMap((p) => p.placements.map((pl) => ({ p, pl, use: consumption(p, pl) })));
  const counts = new Map<number, number>();
  const sum: CounterValues = Object.fromEntries(engineKeys.map((k) => [k, 0]));
  const chosen: Placement[] = [];
  let compute = 0;
  const visit = (from: number): void => {
    for (const k of engineKeys) totals[k] = Math.max(totals[k] ?? 0, sum[k] ?? 0);
    for (let i = from; i < items.length; i++) {
      const it = items[i];
      if (!it) continue;
      if (compute + it.p.computeSlices > geometry.computeSlices) continue;
      if ((counts.get(it.p.id) ?? 0) >= it.p.instancesTotal) continue;
      if (chosen.some((c) => overlaps(c, it.pl))) continue;
      chosen.push(it.pl);
      compute += it.p.computeSlices;
      counts.set(it.p.id, (counts.get(it.p.id) ?? 0) + 1);
      for (const k of engineKeys) sum[k] = (sum[k] ?? 0) + (it.use[k] ?? 0);
      visit(i + 1);
      for (const k of engineKeys) sum[k] = (sum[k] ?? 0) - (it.use[k] ?? 0);
      counts.set(it.p.id, (counts.get(it.p.id) ?? 0) - 1);
      compute -= it.p.computeSlices;
      chosen.pop();
    }
  };
  visit(0);
  return totals;
}

function counters(values: CounterValues, omitZero: boolean): Record<string, Counter> {
  return sorted(Object.entries(values).map(([k, v]) => [k, omitZero && v === 0 ? undefined : { value: String(v) }] as const));
}

interface Common {
  readonly driver: string;
  readonly gpu: GpuInfo;
  readonly nvlinkDomain: string | undefined;
  readonly taints: readonly DeviceTaint[];
}

/** Attributes a GPU and its partitions share. */
function sharedAttributes(c: Common): ReadonlyArray<readonly [string, DeviceAttribute | undefined]> {
  const q = (n: string): string => qualify(c.driver, n);
  const g = c.gpu;
  const semver = (v: string | undefined): DeviceAttribute | undefined => {
    const s = toSemver(v);
    return s === undefined ? undefined : { version: s };
  };
  return [
    [q(ATTR.productName), str(g.productName)],
    [q(ATTR.brand), g.brand === undefined ? undefined : str(g.brand)],
    [q(ATTR.architecture), g.architecture === undefined ? undefined : str(g.architecture)],
    [q(ATTR.cudaComputeCapability), semver(g.computeCapability)],
    [q(ATTR.driverVersion), semver(g.driverVersion)],
    [q(ATTR.cudaDriverVersion), semver(g.cudaVersion)],
    [STANDARD_ATTRIBUTES.pcieRoot, g.pcieRoot === undefined ? undefined : str(g.pcieRoot)],
    [STANDARD_ATTRIBUTES.numaNode, g.numaNode === undefined ? undefined : { int: g.numaNode }],
    [q(ATTR.numaNode), g.numaNode === undefined ? undefined : { int: g.numaNode }],
    [q(ATTR.pcieSwitch), g.pcieSwitch === undefined ? undefined : str(g.pcieSwitch)],
  ];
}

/** What names one GPU, for its whole and its shared form alike. */
function gpuIdentity(c: Common): ReadonlyArray<readonly [string, DeviceAttribute | undefined]> {
  const q = (n: string): string => qualify(c.driver, n);
  const g = c.gpu;
  return [
    [q(ATTR.uuid), str(g.uuid)],
    [q(ATTR.index), { int: g.index }],
    [q(ATTR.minor), { int: g.minor }],
    [q(ATTR.memory), { int: g.memoryMiB }],
    [q(ATTR.nvlinkDomain), c.nvlinkDomain === undefined ? undefined : str(c.nvlinkDomain)],
    [STANDARD_ATTRIBUTES.pciBusID, str(g.pciBusId)],
  ];
}

function withTaints(device: Device, taints: readonly DeviceTaint[]): Device {
  return taints.length === 0 ? device : { ...device, taints: taints.map((t) => ({ ...t })) };
}

function wholeGpu(c: Common, counterSet: CounterSet | undefined, multiprocessors: number | undefined): Device {
  const q = (n: string): string => qualify(c.driver, n);
  const g = c.gpu;
  const device: Device = {
    name: gpuDeviceName(g.minor),
    attributes: sorted([...sharedAttributes(c), ...gpuIdentity(c), [q(ATTR.type), str('gpu')], [q(ATTR.migCapable), { bool: g.migMode.current !== 'N/A' }], [q(ATTR.migMode), str(g.migMode.current)]]),
    capacity: sorted<DeviceCapacity>([
      [q(CAPACITY.memory), { value: `${g.memoryMiB}Mi` }],
      [q(CAPACITY.multiprocessors), multiprocessors === undefined ? undefined : { value: String(multiprocessors) }],
    ]),
  };
  const withCounters = counterSet ? { ...device, consumesCounters: [{ counterSet: counterSet.name, counters: { ...counterSet.counters } }] } : device;
  return withTaints(withCounters, c.taints);
}

/**
 * The GPU published for sharing: several claims each take some of its memory
 * and compute (consumable capacity). It consumes the same counters as the whole
 * GPU, so the GPU is whole, partitioned or shared, one mode at a time.
 */
function sharedGpu(c: Common, consumes: CounterSet, sharing: Required<SharingOptions>): Device[] {
  const q = (n: string): string => qualify(c.driver, n);
  const g = c.gpu;
  const computeStep = String(sharing.computeStep);
  // A claim that does not say how much memory it needs gets all of it, in whole steps.
  const memory = Quantity.parse(`${g.memoryMiB}Mi`);
  const step = Quantity.parse(sharing.memoryStep);
  const allSteps = Quantity.fromNanos((memory.nanos / step.nanos) * step.nanos);
  // The API wants room for at least one step above the minimum.
  if (memory.nanos < 2n * step.nanos) return [];
  const device: Device = {
    name: sharedDeviceName(g.minor),
    attributes: sorted([...sharedAttributes(c), ...gpuIdentity(c), [q(ATTR.type), str('shared')]]),
    capacity: sorted<DeviceCapacity>([
      [q(CAPACITY.memory), { value: `${g.memoryMiB}Mi`, requestPolicy: { default: allSteps.toString(), validRange: { min: sharing.memoryStep, step: sharing.memoryStep } } }],
      [q(CAPACITY.compute), { value: '100', requestPolicy: { default: String(sharing.computeDefault), validRange: { min: computeStep, max: '100', step: computeStep } } }],
    ]),
    allowMultipleAllocations: true,
    consumesCounters: [{ counterSet: consumes.name, counters: { ...consumes.counters } }],
  };
  return [withTaints(device, c.taints)];
}

/** Validated sharing options with defaults filled in; undefined when sharing is off. */
export function sharingOptions(options: InventoryOptions): Required<SharingOptions> | undefined {
  if (options.sharing === false) return undefined;
  const s = { ...DEFAULT_SHARING, ...(options.sharing ?? {}) };
  const stepOk = /^[1-9][0-9]*(Ki|Mi|Gi)?$/.test(s.memoryStep);
  if (!stepOk) throw new Error(`shared GPU memory step ${JSON.stringify(s.memoryStep)} must be a whole number of bytes, Ki, Mi or Gi`);
  if (!Number.isInteger(s.computeStep) || s.computeStep < 1 || 100 % s.computeStep !== 0) throw new Error(`shared GPU compute step ${s.computeStep} must be a whole percent that divides 100`);
  if (!Number.isInteger(s.computeDefault) || s.computeDefault < s.computeStep || s.computeDefault > 100 || s.computeDefault % s.computeStep !== 0) {
    throw new Error(`shared GPU default compute ${s.computeDefault} must be a multiple of the step ${s.computeStep} between ${s.computeStep} and 100`);
  }
  return s;
}

function partition(c: Common, set: CounterSet, p: MigProfile, placement: Placement, foreign: ForeignInstance | undefined): Device {
  const q = (n: string): string => qualify(c.driver, n);
  const g = c.gpu;
  const device: Device = {
    name: migDeviceName(g.minor, p.name, placement.start),
    attributes: sorted([
      ...sharedAttributes(c),
      [q(ATTR.type), str('mig')],
      [q(ATTR.profile), str(p.name)],
      [q(ATTR.profileID), { int: p.id }],
      [q(ATTR.parentUUID), str(g.uuid)],
      [q(ATTR.parentMinor), { int: g.minor }],
      [q(ATTR.placementStart), { int: placement.start }],
      [q(ATTR.placementSize), { int: placement.size }],
      [q(ATTR.memory), { int: p.memoryMiB }],
      [q(ATTR.preexisting), { bool: foreign !== undefined }],
      [q(ATTR.uuid), foreign?.uuid === undefined ? undefined : str(foreign.uuid)],
    ]),
    capacity: sorted<DeviceCapacity>([
      [q(CAPACITY.memory), { value: `${p.memoryMiB}Mi` }],
      [q(CAPACITY.multiprocessors), { value: String(p.multiprocessors) }],
      [q(CAPACITY.copyEngines), { value: String(p.engines.copyEngines) }],
      [q(CAPACITY.decoders), { value: String(p.engines.decoders) }],
      [q(CAPACITY.encoders), { value: String(p.engines.encoders) }],
      [q(CAPACITY.jpegEngines), { value: String(p.engines.jpegEngines) }],
      [q(CAPACITY.ofaEngines), { value: String(p.engines.ofaEngines) }],
    ]),
    consumesCounters: [{ counterSet: set.name, counters: counters(consumption(p, placement), true) }],
  };
  return withTaints(device, c.taints);
}

/**
 * All devices of one GPU, in a fixed order: whole GPU, shared GPU, passthrough
 * device, then partitions by profile ID and start. A switchable passthrough
 * GPU's passthrough device consumes every counter, as the whole GPU does.
 */
export function gpuDevices(
  plan: GpuPlan,
  driver: string,
  nvlinkDomain: string | undefined,
  taints: readonly DeviceTaint[],
  sharing?: Required<SharingOptions>,
  passthrough?: PassthroughGpu,
): GpuDevices {
  const c: Common = { driver, gpu: plan.gpu, nvlinkDomain, taints };
  const model = findModel(plan.gpu.productName);
  const fullSms = model?.multiprocessors;
  const vfio = (set: CounterSet | undefined): Device[] => (passthrough && plan.publishWhole ? [passthroughDevice(driver, passthrough, plan.gpu, set, taints)] : []);
  if (plan.profiles.length === 0) {
    if (!plan.publishWhole) return { minor: plan.gpu.minor, devices: [], counterSet: undefined };
    if (sharing === undefined && !passthrough) return { minor: plan.gpu.minor, devices: [wholeGpu(c, undefined, fullSms)], counterSet: undefined };
    // One counter keeps the whole GPU, its shared form and its passthrough form apart.
    const set: CounterSet = { name: counterSetName(plan.gpu.minor), counters: { [COUNTER.gpu]: { value: '1' } } };
    return { minor: plan.gpu.minor, devices: [wholeGpu(c, set, fullSms), ...(sharing ? sharedGpu(c, set, sharing) : []), ...vfio(set)], counterSet: set };
  }
  const set: CounterSet = { name: counterSetName(plan.gpu.minor), counters: counters(counterTotals(plan.profiles), false) };
  const devices: Device[] = [];
  if (plan.publishWhole) devices.push(wholeGpu(c, set, fullSms));
  if (plan.publishWhole && sharing !== undefined) devices.push(...sharedGpu(c, set, sharing));
  devices.push(...vfio(set));
  const blocked = plan.foreign.map((f) => f.gi.placement);
  const profiles = [...plan.profiles].sort((a, b) => a.id - b.id);
  for (const p of profiles) {
    for (const placement of [...p.placements].sort((a, b) => a.start - b.start)) {
      const foreign = plan.foreign.find((f) => f.gi.profileId === p.id && f.gi.placement.start === placement.start);
      if (foreign) {
        // Published as the instance it is, when it can be handed out as it stands.
        if (foreign.uuid !== undefined) devices.push(partition(c, set, p, placement, foreign));
        continue;
      }
      // The hardware cannot create a partition over an instance we did not create.
      if (blocked.some((b) => overlaps(b, placement))) continue;
      devices.push(partition(c, set, p, placement, undefined));
    }
  }
  return { minor: plan.gpu.minor, devices, counterSet: devices.length > 0 ? set : undefined };
}

/**
 * A GPU published for passthrough (docs/devices.md "Passthrough"): consumed
 * whole by one VM. `gpu` is nvidia-smi's view while the GPU is bound to the
 * nvidia driver; `consumes` the GPU's counter set when it is switchable and
 * can also be used whole, partitioned or shared.
 */
export function passthroughDevice(driver: string, p: PassthroughGpu, gpu: GpuInfo | undefined, consumes: CounterSet | undefined, taints: readonly DeviceTaint[]): Device {
  const q = (n: string): string => qualify(driver, n);
  const memory = gpu?.memoryMiB ?? p.memoryMiB;
  const numa = gpu?.numaNode ?? p.numaNode;
  const root = gpu?.pcieRoot ?? p.pcieRoot;
  const pcieSwitch = gpu?.pcieSwitch ?? p.pcieSwitch;
  const all: DeviceTaint[] = taints.map((t) => ({ ...t }));
  if (p.unavailable) all.push({ key: vfioUnavailableTaintKey(driver), value: p.unavailable.short, effect: 'NoSchedule' });
  if (p.stranded !== undefined && !all.some((t) => t.key === unhealthyTaint(driver, '').key)) all.push(unhealthyTaint(driver, 'did-not-return-to-nvidia'));
  const device: Device = {
    name: vfioDeviceName(p.address),
    attributes: sorted([
      [q(ATTR.type), str('vfio')],
      [q(ATTR.productName), str(gpu?.productName ?? p.productName)],
      [q(ATTR.memory), memory === undefined ? undefined : { int: memory }],
      [q(ATTR.uuid), gpu === undefined ? undefined : str(gpu.uuid)],
      [q(ATTR.iommuGroup), p.iommuGroup === undefined ? undefined : { int: p.iommuGroup }],
      [q(ATTR.vfioBound), { bool: p.driver === 'vfio-pci' }],
      [q(ATTR.passthroughMode), str(p.mode)],
      [STANDARD_ATTRIBUTES.pciBusID, str(p.address)],
      [STANDARD_ATTRIBUTES.numaNode, numa === undefined ? undefined : { int: numa }],
      [q(ATTR.numaNode), numa === undefined ? undefined : { int: numa }],
      [STANDARD_ATTRIBUTES.pcieRoot, root === undefined ? undefined : str(root)],
      [q(ATTR.pcieSwitch), pcieSwitch === undefined ? undefined : str(pcieSwitch)],
    ]),
    capacity: sorted<DeviceCapacity>([[q(CAPACITY.memory), memory === undefined ? undefined : { value: `${memory}Mi` }]]),
  };
  const withCounters = consumes ? { ...device, consumesCounters: [{ counterSet: consumes.name, counters: { ...consumes.counters } }] } : device;
  return all.length === 0 ? withCounters : { ...withCounters, taints: all };
}
