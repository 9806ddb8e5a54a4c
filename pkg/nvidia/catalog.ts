// Built-in knowledge of the boards Cascade knows: their MIG profiles with IDs,
// sizes, engines and placements (REFERENCE section 6). The simulator renders
// them; the inventory uses them for GPUs whose MIG mode is off (nvidia-smi
// lists profiles only for MIG-enabled GPUs).
import type { EngineCounts, MigProfile, Placement } from './types.js';

export interface CatalogProfile {
  readonly id: number;
  /** "3g.40gb", "1g.10gb+me". */
  readonly name: string;
  readonly memoryMiB: number;
  readonly computeSlices: number;
  readonly memorySlices: number;
  readonly multiprocessors: number;
  readonly engines: EngineCounts;
  readonly maxInstances: number;
  readonly placementStarts: readonly number[];
}

export interface GpuModel {
  /** Key used in simulator configs: "A100-SXM4-40GB", "H100-80GB", ... */
  readonly key: string;
  /** Product name as R470+ drivers print it. */
  readonly productName: string;
  readonly brand: string;
  readonly architecture: string;
  readonly computeCapability: string;
  readonly memoryMiB: number;
  readonly multiprocessors: number;
  /** PCI device ID and subsystem ID, as `-q -x` prints them. */
  readonly pciDeviceId: string;
  readonly migProfiles: readonly CatalogProfile[];
}

const ENGINES_NONE: EngineCounts = { copyEngines: 0, decoders: 0, encoders: 0, jpegEngines: 0, ofaEngines: 0 };

function engines(ce: number, dec: number, jpeg: number, ofa: number, enc = 0): EngineCounts {
  return { ...ENGINES_NONE, copyEngines: ce, decoders: dec, jpegEngines: jpeg, ofaEngines: ofa, encoders: enc };
}

interface Sizes {
  readonly names: readonly [string, string, string, string, string, string];
  /** MiB of 1g, 1g double memory, 2g, 3g, 4g, 7g. */
  readonly memory: readonly [number, number, number, number, number, number];
  /** Multiprocessors of 1g, 1g double memory, 2g, 3g, 4g, 7g. */
  readonly sms: readonly [number, number, number, number, number, number];
  /** Engines of 1g, 1g+me, 1g double, 2g, 3g, 4g, 7g. */
  readonly engines: readonly [EngineCounts, EngineCounts, EngineCounts, EngineCounts, EngineCounts, EngineCounts, EngineCounts];
}

/**
 * The geometry is the same on A100, H100, H200 and B200: 8 memory slices, 7
 * compute slices, fixed placements per profile; only names and sizes differ.
 */
function profiles(s: Sizes): CatalogProfile[] {
  const [n1, n1d, n2, n3, n4, n7] = s.names;
  const [m1, m1d, m2, m3, m4, m7] = s.memory;
  const [s1, s1d, s2, s3, s4, s7] = s.sms;
  const [e1, e1me, e1d, e2, e3, e4, e7] = s.engines;
  const one = [0, 1, 2, 3, 4, 5, 6];
  return [
    { id: 19, name: n1, memoryMiB: m1, computeSlices: 1, memorySlices: 1, multiprocessors: s1, engines: e1, maxInstances: 7, placementStarts: one },
    { id: 20, name: `${n1}+me`, memoryMiB: m1, computeSlices: 1, memorySlices: 1, multiprocessors: s1, engines: e1me, maxInstances: 1, placementStarts: one },
    { id: 15, name: n1d, memoryMiB: m1d, computeSlices: 1, memorySlices: 2, multiprocessors: s1d, engines: e1d, maxInstances: 4, placementStarts: [0, 2, 4, 6] },
    { id: 14, name: n2, memoryMiB: m2, computeSlices: 2, memorySlices: 2, multiprocessors: s2, engines: e2, maxInstances: 3, placementStarts: [0, 2, 4] },
    { id: 9, name: n3, memoryMiB: m3, computeSlices: 3, memorySlices: 4, multiprocessors: s3, engines: e3, maxInstances: 2, placementStarts: [0, 4] },
    { id: 5, name: n4, memoryMiB: m4, computeSlices: 4, memorySlices: 4, multiprocessors: s4, engines: e4, maxInstances: 1, placementStarts: [0] },
    { id: 0, name: n7, memoryMiB: m7, computeSlices: 7, memorySlices: 8, multiprocessors: s7, engines: e7, maxInstances: 1, placementStarts: [0] },
  ];
}

// Ampere: one JPEG and one OFA unit, both only in 7g and +me profiles.
const AMPERE_ENGINES = [
  engines(1, 0, 0, 0),
  engines(1, 1, 1, 1),
  engines(1, 1, 0, 0),
  engines(2, 1, 0, 0),
  engines(3, 2, 0, 0),
  engines(4, 2, 0, 0),
  engines(7, 5, 1, 1),
] as const;

// Hopper and Blackwell: one decoder and JPEG unit per compute slice, one OFA.
const HOPPER_ENGINES = [
  engines(1, 1, 1, 0),
  engines(1, 1, 1, 1),
  engines(1, 1, 1, 0),
  engines(2, 2, 2, 0),
  engines(3, 3, 3, 0),
  engines(4, 4, 4, 0),
  engines(8, 7, 7, 1),
] as const;

// Blackwell (B200): NVIDIA's MIG table gives more copy engines per profile than
// Hopper (2/2/2/3/6/8/16); decoders, JPEG and OFA units are as on Hopper.
// Catalog knowledge from NVIDIA's MIG user guide, not from a capture.
const BLACKWELL_ENGINES = [
  engines(2, 1, 1, 0),
  engines(2, 1, 1, 1),
  engines(2, 1, 1, 0),
  engines(3, 2, 2, 0),
  engines(6, 3, 3, 0),
  engines(8, 4, 4, 0),
  engines(16, 7, 7, 1),
] as const;

export const GPU_MODELS: readonly GpuModel[] = [
  {
    key: 'A100-SXM4-40GB',
    productName: 'NVIDIA A100-SXM4-40GB',
    brand: 'NVIDIA',
    architecture: 'Ampere',
    computeCapability: '8.0',
    memoryMiB: 40960,
    multiprocessors: 108,
    pciDeviceId: '20B010DE',
    migProfiles: profiles({
      names: ['1g.5gb', '1g.10gb', '2g.10gb', '3g.20gb', '4g.20gb', '7g.40gb'],
      memory: [4864, 9856, 9856, 19968, 19968, 40192],
      sms: [14, 14, 28, 42, 56, 98],
      engines: AMPERE_ENGINES,
    }),
  },
  {
    key: 'A100-SXM4-80GB',
    productName: 'NVIDIA A100-SXM4-80GB',
    brand: 'NVIDIA',
    architecture: 'Ampere',
    computeCapability: '8.0',
    memoryMiB: 81920,
    multiprocessors: 108,
    pciDeviceId: '20B210DE',
    migProfiles: profiles({
      names: ['1g.10gb', '1g.20gb', '2g.20gb', '3g.40gb', '4g.40gb', '7g.80gb'],
      memory: [9728, 19968, 19968, 40192, 40192, 80384],
      sms: [14, 14, 28, 42, 56, 98],
      engines: AMPERE_ENGINES,
    }),
  },
  {
    key: 'H100-80GB',
    productName: 'NVIDIA H100 80GB HBM3',
    brand: 'NVIDIA',
    architecture: 'Hopper',
    computeCapability: '9.0',
    memoryMiB: 81559,
    multiprocessors: 132,
    pciDeviceId: '233010DE',
    migProfiles: profiles({
      names: ['1g.10gb', '1g.20gb', '2g.20gb', '3g.40gb', '4g.40gb', '7g.80gb'],
      memory: [9984, 20096, 20096, 40448, 40448, 80896],
      sms: [16, 26, 32, 60, 64, 132],
      engines: HOPPER_ENGINES,
    }),
  },
  {
    key: 'H200-141GB',
    productName: 'NVIDIA H200',
    brand: 'NVIDIA',
    architecture: 'Hopper',
    computeCapability: '9.0',
    memoryMiB: 143771,
    multiprocessors: 132,
    pciDeviceId: '233510DE',
    migProfiles: profiles({
      names: ['1g.18gb', '1g.35gb', '2g.35gb', '3g.71gb', '4g.71gb', '7g.141gb'],
      memory: [16896, 33792, 33792, 69376, 69376, 140544],
      sms: [16, 26, 32, 60, 64, 132],
      engines: HOPPER_ENGINES,
    }),
  },
  {
    key: 'B200',
    productName: 'NVIDIA B200',
    brand: 'NVIDIA',
    architecture: 'Blackwell',
    computeCapability: '10.0',
    memoryMiB: 183359,
    multiprocessors: 148,
    pciDeviceId: '290110DE',
    migProfiles: profiles({
      names: ['1g.23gb', '1g.45gb', '2g.45gb', '3g.90gb', '4g.90gb', '7g.180gb'],
      memory: [23040, 45824, 45824, 92416, 92416, 182272],
      sms: [18, 18, 36, 54, 72, 144],
      engines: BLACKWELL_ENGINES,
    }),
  },
  // Boards without MIG. Their values are catalog knowledge (NVIDIA's product
  // specifications and what nvidia-smi is known to print for them), not captures.
  {
    key: 'L40S',
    productName: 'NVIDIA L40S',
    brand: 'NVIDIA',
    architecture: 'Ada Lovelace',
    computeCapability: '8.9',
    memoryMiB: 46068,
    multiprocessors: 142,
    pciDeviceId: '26B910DE',
    migProfiles: [],
  },
  {
    key: 'T4',
    productName: 'Tesla T4',
    brand: 'NVIDIA',
    architecture: 'Turing',
    computeCapability: '7.5',
    memoryMiB: 15360,
    multiprocessors: 40,
    pciDeviceId: '1EB810DE',
    migProfiles: [],
  },
];

/** Whether a board has MIG at all (nvidia-smi reports its MIG mode as N/A otherwise). */
export function migCapable(model: GpuModel): boolean {
  return model.migProfiles.length > 0;
}

/** Pre-R470 drivers print names without the "NVIDIA " prefix; compare without it. */
function bareName(name: string): string {
  return name.replace(/^NVIDIA\s+/i, '').trim().toLowerCase();
}

/** The built-in model for a product name as nvidia-smi prints it, or by simulator key. */
export function findModel(nameOrKey: string): GpuModel | undefined {
  const wanted = bareName(nameOrKey);
  return GPU_MODELS.find((m) => m.key.toLowerCase() === wanted || bareName(m.productName) === wanted);
}

/** Profiles of a catalog model as the backend would list them for GPU `gpuIndex`. */
export function catalogProfiles(model: GpuModel, gpuIndex: number): MigProfile[] {
  return model.migProfiles.map((p) => ({
    gpuIndex,
    id: p.id,
    name: p.name,
    memoryMiB: p.memoryMiB,
    computeSlices: p.computeSlices,
    memorySlices: p.memorySlices,
    multiprocessors: p.multiprocessors,
    engines: p.engines,
    p2p: false,
    instancesFree: p.maxInstances,
    instancesTotal: p.maxInstances,
    placements: p.placementStarts.map((start): Placement => ({ start, size: p.memorySlices })),
  }));
}

/**
 * Whether switching MIG mode needs a GPU reset. Ampere persists the mode in the
 * InfoROM and applies it only after a reset; Hopper and later switch at once.
 * Unknown architectures are treated as needing a reset, the safe answer.
 */
export function migToggleNeedsReset(architecture: string | undefined): boolean {
  return !(architecture !== undefined && /^(Hopper|Blackwell|Rubin)/i.test(architecture));
}
