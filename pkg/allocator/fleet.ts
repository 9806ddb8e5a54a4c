// Synthetic fleets in Cascade's device model (whole GPUs, dynamic MIG placements
// with shared counters, NVLink domains), for examples, tests and the benchmark.
import type { Device, DeviceClass, DeviceCounterConsumption, ResourceSlice } from '../api/resource.js';
import { DEFAULT_DRIVER_NAME, LIMITS, RESOURCE_API_VERSION, STANDARD_ATTRIBUTES } from '../api/resource.js';
import { ATTR, CAPACITY, COUNTER, MIG_COMPUTE_SLICES, MIG_MEMORY_SLICES, counterSetName, gpuDeviceName, migDeviceName } from '../api/devicemodel.js';
import type { NodeFacts } from './types.js';

/** mulberry32: a small seeded PRNG, so synthetic fleets and claim streams repeat exactly. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface MigProfile {
  readonly name: string;
  readonly id: number;
  readonly compute: number;
  readonly memorySlices: number;
  readonly multiprocessors: number;
  readonly memoryGi: number;
  readonly starts: readonly number[];
}

export interface GpuModel {
  readonly product: string;
  readonly architecture: string;
  readonly computeCapability: string;
  readonly memoryGi: number;
  readonly multiprocessors: number;
  /** MIG profiles offered as dynamic placements; empty for a GPU used whole only. */
  readonly profiles: readonly MigProfile[];
}

// Placements per REFERENCE section 6 (start:size in memory slices).
function profiles(memGi: number, sm: number): MigProfile[] {
  const slice = memGi / 8;
  const per = Math.floor(sm / 8);
  return [
    { name: `1g.${slice}gb`, id: 19, compute: 1, memorySlices: 1, multiprocessors: per, memoryGi: slice, starts: [0, 1, 2, 3, 4, 5, 6] },
    { name: `1g.${slice * 2}gb`, id: 15, compute: 1, memorySlices: 2, multiprocessors: per, memoryGi: slice * 2, starts: [0, 2, 4, 6] },
    { name: `2g.${slice * 2}gb`, id: 14, compute: 2, memorySlices: 2, multiprocessors: per * 2, memoryGi: slice * 2, starts: [0, 2, 4] },
    { name: `3g.${slice * 4}gb`, id: 9, compute: 3, memorySlices: 4, multiprocessors: per * 3 + 6, memoryGi: slice * 4, starts: [0, 4] },
    { name: `4g.${slice * 4}gb`, id: 5, compute: 4, memorySlices: 4, multiprocessors: per * 4, memoryGi: slice * 4, starts: [0] },
    { name: `7g.${memGi}gb`, id: 0, compute: 7, memorySlices: 8, multiprocessors: sm - 2, memoryGi: memGi, starts: [0] },
  ];
}

export const GPU_MODELS = {
  'h100': { product: 'NVIDIA H100 80GB HBM3', architecture: 'Hopper', computeCapability: '9.0.0', memoryGi: 80, multiprocessors: 132, profiles: [] },
  'h100-mig': { product: 'NVIDIA H100 80GB HBM3', architecture: 'Hopper', computeCapability: '9.0.0', memoryGi: 80, multiprocessors: 132, profiles: profiles(80, 132) },
  'a100': { product: 'NVIDIA A100-SXM4-80GB', architecture: 'Ampere', computeCapability: '8.0.0', memoryGi: 80, multiprocessors: 108, profiles: [] },
  'a100-mig': { product: 'NVIDIA A100-SXM4-80GB', architecture: 'Ampere', computeCapability: '8.0.0', memoryGi: 80, multiprocessors: 108, profiles: profiles(80, 108) },
  'h200': { product: 'NVIDIA H200', architecture: 'Hopper', computeCapability: '9.0.0', memoryGi: 141, multiprocessors: 132, profiles: [] },
} as const satisfies Record<string, GpuModel>;

export type GpuKind = keyof typeof GPU_MODELS;

export interface FleetNode {
  readonly name: string;
  readonly kind: GpuKind;
  readonly gpus: number;
  /** GPUs per NVLink domain (default: all GPUs of the node in one domain). */
  readonly gpusPerNvlinkDomain?: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly cpu?: string;
  readonly memory?: string;
}

const DRIVER_VERSION = '580.105.8';

function uuid(node: string, minor: number, suffix = ''): string {
  // Deterministic, UUID-shaped identifiers so examples stay stable.
  let h = 2166136261;
  for (const ch of `${node}/${minor}/${suffix}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const hex = (h.toString(16).padStart(8, '0') + minor.toString(16).padStart(4, '0')).padEnd(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function counters(model: GpuModel, slices: readonly number[], compute: number, sm: number, set: string): DeviceCounterConsumption {
  const c: Record<string, { value: string }> = {};
  for (const s of slices) c[COUNTER.memorySlice(s)] = { value: '1' };
  c[COUNTER.computeSlices] = { value: String(compute) };
  c[COUNTER.multiprocessors] = { value: String(Math.min(sm, model.multiprocessors)) };
  return { counterSet: set, counters: c };
}

/** The devices and counter sets one node publishes. */
export function nodeDevices(node: FleetNode, driver = DEFAULT_DRIVER_NAME): { devices: Device[]; counterSets: { name: string; counters: Record<string, { value: string }> }[] } {
  const model: GpuModel = GPU_MODELS[node.kind];
  const perDomain = node.gpusPerNvlinkDomain ?? node.gpus;
  const devices: Device[] = [];
  const counterSets: { name: string; counters: Record<string, { value: string }> }[] = [];
  const q = (n: string): string => `${driver}/${n}`;
  for (let minor = 0; minor < node.gpus; minor++) {
    const gpuUuid = `GPU-${uuid(node.name, minor)}`;
    const domain = `${node.name}-nvl-${Math.floor(minor / perDomain)}`;
    const numa = minor < node.gpus / 2 ? 0 : 1;
    const set = counterSetName(minor);
    const common = {
      [q(ATTR.productName)]: { string: model.product },
      [q(ATTR.architecture)]: { string: model.architecture },
      [q(ATTR.cudaComputeCapability)]: { version: model.computeCapability },
      [q(ATTR.driverVersion)]: { version: DRIVER_VERSION },
      [q(ATTR.nvlinkDomain)]: { string: domain },
      [STANDARD_ATTRIBUTES.numaNode]: { int: numa },
      [STANDARD_ATTRIBUTES.pcieRoot]: { string: `pci0000:${(minor * 16).toString(16).padStart(2, '0')}` },
    };
    const mig = model.profiles.length > 0;
    const whole: Device = {
      name: gpuDeviceName(minor),
      attributes: {
        [q(ATTR.type)]: { string: 'gpu' },
        [q(ATTR.uuid)]: { string: gpuUuid },
        [q(ATTR.index)]: { int: minor },
        [q(ATTR.minor)]: { int: minor },
        [q(ATTR.memory)]: { int: model.memoryGi * 1024 },
        [q(ATTR.migCapable)]: { bool: mig },
        [q(ATTR.migMode)]: { string: mig ? 'Enabled' : 'Disabled' },
        ...common,
      },
      capacity: { [q(CAPACITY.memory)]: { value: `${model.memoryGi}Gi` }, [q(CAPACITY.multiprocessors)]: { value: String(model.multiprocessors) } },
    };
    if (mig) {
      const all = Array.from({ length: MIG_MEMORY_SLICES }, (_, i) => i);
      whole.consumesCounters = [counters(model, all, MIG_COMPUTE_SLICES, model.multiprocessors, set)];
      const sc: Record<string, { value: string }> = {};
      for (const s of all) sc[COUNTER.memorySlice(s)] = { value: '1' };
      sc[COUNTER.computeSlices] = { value: String(MIG_COMPUTE_SLICES) };
      sc[COUNTER.multiprocessors] = { value: String(model.multiprocessors) };
      counterSets.push({ name: set, counters: sc });
    }
    devices.push(whole);
    for (const p of model.profiles) {
      for (const start of p.starts) {
        const slices = Array.from({ length: p.memorySlices }, (_, i) => start + i);
        devices.push({
          name: migDeviceName(minor, p.name, start),
          attributes: {
            [q(ATTR.type)]: { string: 'mig' },
            [q(ATTR.profile)]: { string: p.name },
            [q(ATTR.profileID)]: { int: p.id },
            [q(ATTR.parentUUID)]: { string: gpuUuid },
            [q(ATTR.parentMinor)]: { int: minor },
            [q(ATTR.placementStart)]: { int: start },
            [q(ATTR.placementSize)]: { int: p.memorySlices },
            [q(ATTR.memory)]: { int: p.memoryGi * 1024 },
            ...common,
          },
          capacity: { [q(CAPACITY.memory)]: { value: `${p.memoryGi}Gi` }, [q(CAPACITY.multiprocessors)]: { value: String(p.multiprocessors) } },
          consumesCounters: [counters(model, slices, p.compute, p.multiprocessors, set)],
        });
      }
    }
  }
  return { devices, counterSets };
}

/** ResourceSlices of one node's pool: one slice of counter sets, then devices in chunks the API allows. */
export function nodeSlices(node: FleetNode, driver = DEFAULT_DRIVER_NAME, generation = 1): ResourceSlice[] {
  const { devices, counterSets } = nodeDevices(node, driver);
  const chunk = counterSets.length > 0 ? LIMITS.devicesPerSliceWithTaintsOrCounters : LIMITS.devicesPerSlice;
  const specs: { devices?: Device[]; sharedCounters?: typeof counterSets }[] = [];
  for (let i = 0; i < counterSets.length; i += LIMITS.sharedCountersPerSlice) specs.push({ sharedCounters: counterSets.slice(i, i + LIMITS.sharedCountersPerSlice) });
  for (let i = 0; i < devices.length; i += chunk) specs.push({ devices: devices.slice(i, i + chunk) });
  return specs.map((s, i) => ({
    apiVersion: RESOURCE_API_VERSION,
    kind: 'ResourceSlice',
    metadata: { name: `${node.name}-${driver}-${i}` },
    spec: { driver, pool: { name: node.name, generation, resourceSliceCount: specs.length }, nodeName: node.name, ...s },
  }));
}

export function nodeFacts(node: FleetNode): NodeFacts {
  return {
    name: node.name,
    labels: { 'kubernetes.io/hostname': node.name, 'nvidia.com/gpu.product': GPU_MODELS[node.kind].product.replace(/ /g, '-'), ...(node.labels ?? {}) },
    free: { cpu: node.cpu ?? '96', memory: node.memory ?? '1Ti' },
  };
}

/** The two DeviceClasses Cascade installs. */
export function cascadeClasses(driver = DEFAULT_DRIVER_NAME): DeviceClass[] {
  const cls = (type: 'gpu' | 'mig'): DeviceClass => ({
    apiVersion: RESOURCE_API_VERSION,
    kind: 'DeviceClass',
    metadata: { name: `${type}.${driver}` },
    spec: { selectors: [{ cel: { expression: `device.driver == "${driver}" && device.attributes["${driver}"].type == "${type}"` } }] },
  });
  return [cls('gpu'), cls('mig')];
}
