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
  /**
   * Where the values come from, for the log line that says which values are
   * catalog knowledge: real captures of the board, NVIDIA's MIG user guide
   * table, or an estimate where neither was available.
   */
  readonly provenance: string;
  /** Profiles whose sizes are estimates, not captured or tabled. */
  readonly estimated?: readonly string[];
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
const AMPERE_ENGINES = [engines(1, 0, 0, 0), engines(1, 1, 1, 1), engines(1, 1, 0, 0), engines(2, 1, 0, 0), engines(3, 2, 0, 0), engines(4, 2, 0, 0), engines(7, 5, 1, 1)] as const;

// Hopper and Blackwell: one decoder and JPEG unit per compute slice, one OFA.
const HOPPER_ENGINES = [engines(1, 1, 1, 0), engines(1, 1, 1, 1), engines(1, 1, 1, 0), engines(2, 2, 2, 0), engines(3, 3, 3, 0), engines(4, 4, 4, 0), engines(8, 7, 7, 1)] as const;

// Blackwell (B200, GB200): more copy engines per profile than Hopper. NVIDIA's
// MIG table gives 2/2/2/3/6/8/16; captures of B200 and GB200 boards show 2 for
// the 1g profiles and 4 (not 3) for 2g, so 2g follows the captures and 3g, 4g
// and 7g the table. Decoders, JPEG and OFA units are as on Hopper.
const BLACKWELL_ENGINES = [engines(2, 1, 1, 0), engines(2, 1, 1, 1), engines(2, 1, 1, 0), engines(4, 2, 2, 0), engines(6, 3, 3, 0), engines(8, 4, 4, 0), engines(16, 7, 7, 1)] as const;

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
    provenance: "profile names and placements from NVIDIA's MIG user guide; board totals from a capture (test/fixtures/nvidia-smi/captures)",
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
    provenance: "profile names and placements from NVIDIA's MIG user guide; sizes as A100 boards report them",
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
    provenance: 'a capture of an H100 80GB HBM3 board with MIG on (test/fixtures/nvidia-smi/captures)',
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
    // Captures (driver 570): MIG devices report 16384, 33280 and 71424 MiB for
    // 1g.18gb, 2g.35gb and 3g.71gb; `mig -lgip` prints 16.00, 32.50 and 140.00
    // GiB for 1g.18gb, 2g.35gb and 7g.141gb. A profile's MiB is its -lgip GiB x
    // 1024, so 1g.35gb is 2g.35gb's 33280 and 4g.71gb is 3g.71gb's 71424.
    migProfiles: profiles({
      names: ['1g.18gb', '1g.35gb', '2g.35gb', '3g.71gb', '4g.71gb', '7g.141gb'],
      memory: [16384, 33280, 33280, 71424, 71424, 143360],
      sms: [16, 26, 32, 60, 64, 132],
      engines: HOPPER_ENGINES,
    }),
    provenance: 'captures of H200 boards (mig -lgip, MIG device memory)',
  },
  {
    key: 'H200-NVL',
    productName: 'NVIDIA H200 NVL',
    brand: 'NVIDIA',
    architecture: 'Hopper',
    computeCapability: '9.0',
    memoryMiB: 143771,
    multiprocessors: 132,
    pciDeviceId: '233B10DE',
    // Same profile names as the H200 SXM (NVIDIA's vGPU documentation); no
    // `mig -lgip` capture of an NVL board was found, so the sizes are the SXM's.
    migProfiles: profiles({
      names: ['1g.18gb', '1g.35gb', '2g.35gb', '3g.71gb', '4g.71gb', '7g.141gb'],
      memory: [16384, 33280, 33280, 71424, 71424, 143360],
      sms: [16, 26, 32, 60, 64, 132],
      engines: HOPPER_ENGINES,
    }),
    provenance: 'board totals from a capture; profiles assumed equal to the H200 SXM',
    estimated: ['1g.18gb', '1g.18gb+me', '1g.35gb', '2g.35gb', '3g.71gb', '4g.71gb', '7g.141gb'],
  },
  {
    key: 'H100-PCIE',
    productName: 'NVIDIA H100 PCIe',
    brand: 'NVIDIA',
    architecture: 'Hopper',
    computeCapability: '9.0',
    memoryMiB: 81559,
    multiprocessors: 114,
    pciDeviceId: '233110DE',
    // Capture (driver 525): -lgip 9.62/19.50/39.25/79.00 GiB (9856 MiB for a
    // 1g.10gb MIG device); fewer SMs than the SXM board: 14/14/30/46/62/114.
    migProfiles: profiles({
      names: ['1g.10gb', '1g.20gb', '2g.20gb', '3g.40gb', '4g.40gb', '7g.80gb'],
      memory: [9856, 19968, 19968, 40192, 40192, 80896],
      sms: [14, 14, 30, 46, 62, 114],
      engines: HOPPER_ENGINES,
    }),
    provenance: 'a capture of an H100 PCIe board (mig -lgip, -lgipp)',
  },
  {
    key: 'H100-NVL',
    productName: 'NVIDIA H100 NVL',
    brand: 'NVIDIA',
    architecture: 'Hopper',
    computeCapability: '9.0',
    memoryMiB: 95830,
    multiprocessors: 132,
    pciDeviceId: '232110DE',
    // Capture (driver 560): -lgip 10.75/21.62/46.38/93.12 GiB; MIG devices
    // report 11008, 22144 and 47488 MiB. Older drivers (550) print slightly less.
    migProfiles: profiles({
      names: ['1g.12gb', '1g.24gb', '2g.24gb', '3g.47gb', '4g.47gb', '7g.94gb'],
      memory: [11008, 22144, 22144, 47488, 47488, 95360],
      sms: [16, 26, 32, 60, 64, 132],
      engines: HOPPER_ENGINES,
    }),
    provenance: 'captures of H100 NVL boards (mig -lgip, MIG device memory)',
  },
  {
    key: 'GH200-96GB',
    productName: 'NVIDIA GH200 480GB',
    brand: 'NVIDIA',
    architecture: 'Hopper',
    computeCapability: '9.0',
    memoryMiB: 97871,
    multiprocessors: 132,
    pciDeviceId: '234210DE',
    // Capture: -lgip 11.00/23.00/46.50/93.00 GiB.
    migProfiles: profiles({
      names: ['1g.12gb', '1g.24gb', '2g.24gb', '3g.48gb', '4g.48gb', '7g.96gb'],
      memory: [11264, 23552, 23552, 47616, 47616, 95232],
      sms: [16, 26, 32, 60, 64, 132],
      engines: HOPPER_ENGINES,
    }),
    provenance: 'a capture of a GH200 96GB board (mig -lgip)',
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
    // Captures (B200 boards, 2025 drivers): MIG devices of 20992 MiB (1g, 18
    // SMs) and 45312 MiB (2g, 36 SMs); -lgip 20.50 GiB for 1g.23gb, 44.25 for
    // 1g.45gb (30 SMs) and 2g.45gb; 148 SMs on the board. The 3g, 4g and 7g rows
    // were not found: twice and four times the 2g size, and the SMs by the
    // Hopper pattern, are estimates.
    migProfiles: profiles({
      names: ['1g.23gb', '1g.45gb', '2g.45gb', '3g.90gb', '4g.90gb', '7g.180gb'],
      memory: [20992, 45312, 45312, 90624, 90624, 181248],
      sms: [18, 30, 36, 54, 72, 148],
      engines: BLACKWELL_ENGINES,
    }),
    provenance: "captures of B200 boards for 1g and 2g; profile names, counts and engines from NVIDIA's MIG user guide",
    estimated: ['3g.90gb', '4g.90gb', '7g.180gb'],
  },
  {
    key: 'GB200',
    productName: 'NVIDIA GB200',
    brand: 'NVIDIA',
    architecture: 'Blackwell',
    computeCapability: '10.0',
    memoryMiB: 189471,
    multiprocessors: 152,
    pciDeviceId: '294110DE',
    // Captures (production boards, 2025): -lgip 22.00 GiB for 1g.23gb (18 SMs),
    // 45.50 for 1g.47gb (32 SMs) and 2g.47gb (38 SMs); board memory from -q -x.
    // 3g, 4g and 7g rows were not found (estimated as for the B200); 152 SMs
    // is what published benchmarks report, not a capture.
    migProfiles: profiles({
      names: ['1g.23gb', '1g.47gb', '2g.47gb', '3g.93gb', '4g.93gb', '7g.186gb'],
      memory: [22528, 46592, 46592, 93184, 93184, 186368],
      sms: [18, 32, 38, 57, 76, 152],
      engines: BLACKWELL_ENGINES,
    }),
    provenance: 'captures of GB200 boards for 1g and 2g and the board memory',
    estimated: ['3g.93gb', '4g.93gb', '7g.186gb'],
  },
  {
    key: 'GH200-144GB',
    productName: 'NVIDIA GH200 144G HBM3e',
    brand: 'NVIDIA',
    architecture: 'Hopper',
    computeCapability: '9.0',
    memoryMiB: 146831,
    multiprocessors: 132,
    pciDeviceId: '234810DE',
    // Captures: -lgip 17.50 GiB for 1g.18gb (16 SMs), 35.25 for 1g.36gb (26)
    // and 2g.36gb (32). 3g, 4g and 7g rows were not found: estimates.
    migProfiles: profiles({
      names: ['1g.18gb', '1g.36gb', '2g.36gb', '3g.72gb', '4g.72gb', '7g.144gb'],
      memory: [17920, 36096, 36096, 72192, 72192, 144384],
      sms: [16, 26, 32, 60, 64, 132],
      engines: HOPPER_ENGINES,
    }),
    provenance: 'captures of GH200 144GB boards for 1g and 2g and the board memory',
    estimated: ['3g.72gb', '4g.72gb', '7g.144gb'],
  },
  {
    key: 'A30',
    productName: 'NVIDIA A30',
    brand: 'NVIDIA',
    architecture: 'Ampere',
    computeCapability: '8.0',
    memoryMiB: 24576,
    multiprocessors: 56,
    pciDeviceId: '20B710DE',
    // Four memory and four compute slices, its own profile IDs (capture, driver
    // 535: mig -lgip and -lgipp; MIG devices of 5952 and 11968 MiB). The 1g
    // profiles have one decoder there, where NVIDIA's table says none.
    migProfiles: [
      { id: 14, name: '1g.6gb', memoryMiB: 5952, computeSlices: 1, memorySlices: 1, multiprocessors: 14, engines: engines(1, 1, 0, 0), maxInstances: 4, placementStarts: [0, 1, 2, 3] },
      { id: 21, name: '1g.6gb+me', memoryMiB: 5952, computeSlices: 1, memorySlices: 1, multiprocessors: 14, engines: engines(1, 1, 1, 1), maxInstances: 1, placementStarts: [0, 1, 2, 3] },
      { id: 5, name: '2g.12gb', memoryMiB: 11968, computeSlices: 2, memorySlices: 2, multiprocessors: 28, engines: engines(2, 2, 0, 0), maxInstances: 2, placementStarts: [0, 2] },
      { id: 6, name: '2g.12gb+me', memoryMiB: 11968, computeSlices: 2, memorySlices: 2, multiprocessors: 28, engines: engines(2, 2, 1, 1), maxInstances: 1, placementStarts: [0, 2] },
      { id: 0, name: '4g.24gb', memoryMiB: 24000, computeSlices: 4, memorySlices: 4, multiprocessors: 56, engines: engines(4, 4, 1, 1), maxInstances: 1, placementStarts: [0] },
    ],
    provenance: 'a capture of an A30 board (mig -lgip, -lgipp, MIG device memory)',
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
    provenance: "NVIDIA's product specifications (no MIG)",
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
    provenance: "NVIDIA's product specifications (no MIG)",
  },
];

/** Whether a board has MIG at all (nvidia-smi reports its MIG mode as N/A otherwise). */
export function migCapable(model: GpuModel): boolean {
  return model.migProfiles.length > 0;
}

/** Pre-R470 drivers print names without the "NVIDIA " prefix; compare without it. */
function bareName(name: string): string {
  return name
    .replace(/^NVIDIA\s+/i, '')
    .trim()
    .toLowerCase();
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
