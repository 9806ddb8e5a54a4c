// Typed values that nvidia-smi output is parsed into once, at the boundary;
// everything past the parsers (backend, inventory, simulator tests) uses these.

/** MIG mode as nvidia-smi reports it; "N/A" means the GPU has no MIG support. */
export type MigMode = 'Enabled' | 'Disabled' | 'N/A';

export interface MigModeState {
  readonly current: MigMode;
  readonly pending: MigMode;
}

/** Engine counts of a MIG profile or instance (the "Shared" engines of a MIG device). */
export interface EngineCounts {
  readonly copyEngines: number;
  readonly decoders: number;
  readonly encoders: number;
  readonly jpegEngines: number;
  readonly ofaEngines: number;
}

/** A MIG placement: the first memory slice and how many slices it spans. */
export interface Placement {
  readonly start: number;
  readonly size: number;
}

/** One MIG device (a compute instance inside a GPU instance) as `-q -x` and `-L` show it. */
export interface MigDeviceInfo {
  /** MIG device index within its GPU ("Device  0" in `-L`). */
  readonly index: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  /** MIG UUID; undefined when `-L` was not consulted. */
  readonly uuid: string | undefined;
  /** Profile name without the "MIG " prefix, e.g. "3g.40gb"; undefined when unknown. */
  readonly profile: string | undefined;
  readonly multiprocessors: number | undefined;
  readonly engines: EngineCounts | undefined;
  readonly memoryMiB: number | undefined;
}

/** A physical GPU, merged from `--query-gpu`, `-q -x` and `topo -m`. */
export interface GpuInfo {
  readonly index: number;
  readonly minor: number;
  readonly uuid: string;
  readonly productName: string;
  readonly brand: string | undefined;
  readonly architecture: string | undefined;
  /** "9.0"; undefined when nvidia-smi cannot tell. */
  readonly computeCapability: string | undefined;
  readonly driverVersion: string;
  /** CUDA driver API version, "13.0". */
  readonly cudaVersion: string | undefined;
  /** Normalised extended BDF, lower case, 4-digit domain: "0000:06:00.0". */
  readonly pciBusId: string;
  /** PCIe root complex, "pci0000:00", when sysfs could tell. */
  readonly pcieRoot: string | undefined;
  /** Upstream port of the PCIe switch the GPU sits under, "0000:16:00.0", when sysfs could tell. */
  readonly pcieSwitch: string | undefined;
  readonly memoryMiB: number;
  readonly migMode: MigModeState;
  readonly numaNode: number | undefined;
  /** Indexes of GPUs reachable over NVLink (an `NV<n>` cell in `topo -m`). */
  readonly nvlinkPeers: readonly number[];
  readonly migDevices: readonly MigDeviceInfo[];
  /** Volatile uncorrectable ECC errors since the driver loaded; undefined when not reported. */
  readonly uncorrectableEccErrors: number | undefined;
}

/** A GPU-instance profile of one GPU, from `mig -lgip` plus `mig -lgipp`. */
export interface MigProfile {
  readonly gpuIndex: number;
  /** GPU-instance profile ID (the number given to `-cgi`). */
  readonly id: number;
  /** Name without the "MIG " prefix: "1g.10gb", "1g.10gb+me". */
  readonly name: string;
  readonly memoryMiB: number;
  /** Compute slices, from the "<n>g" prefix of the name. */
  readonly computeSlices: number;
  /** Memory slices, from the placement size. */
  readonly memorySlices: number;
  readonly multiprocessors: number;
  readonly engines: EngineCounts;
  readonly p2p: boolean;
  readonly instancesFree: number;
  readonly instancesTotal: number;
  readonly placements: readonly Placement[];
}

/** One row of `mig -lgip` (no placements yet). */
export type MigProfileRow = Omit<MigProfile, 'placements' | 'memorySlices'>;

/** One line of `mig -lgipp`. */
export interface ProfilePlacements {
  readonly gpuIndex: number;
  readonly profileId: number;
  readonly placements: readonly Placement[];
}

/** One row of `mig -lgi`. */
export interface GpuInstance {
  readonly gpuIndex: number;
  readonly profile: string;
  readonly profileId: number;
  readonly instanceId: number;
  readonly placement: Placement;
}

/** One row of `mig -lci`. */
export interface ComputeInstance {
  readonly gpuIndex: number;
  readonly gpuInstanceId: number;
  readonly profile: string;
  readonly profileId: number;
  readonly instanceId: number;
  /** In compute slices of the GPU instance. */
  readonly placement: Placement;
}

/** One GPU line of `-L` with the MIG lines under it. */
export interface ListedGpu {
  readonly index: number;
  readonly name: string;
  readonly uuid: string;
  readonly migDevices: readonly ListedMigDevice[];
}

export interface ListedMigDevice {
  readonly index: number;
  readonly profile: string;
  readonly uuid: string;
  /** Pre-R470 UUIDs ("MIG-GPU-<uuid>/<gi>/<ci>") carry the instance IDs. */
  readonly gpuInstanceId: number | undefined;
  readonly computeInstanceId: number | undefined;
}

/** One row of `topo -m` for a GPU. */
export interface TopologyRow {
  readonly gpuIndex: number;
  /** Link kind to each other GPU by index: "NV18", "PIX", "SYS", ... */
  readonly links: ReadonlyMap<number, string>;
  readonly cpuAffinity: string | undefined;
  readonly numaNode: number | undefined;
}

/** The result of creating a GPU instance and its compute instance. */
export interface CreatedMigDevice {
  readonly gpuIndex: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly profile: string;
  readonly profileId: number;
  readonly placement: Placement;
  readonly uuid: string;
}

/** Health of one GPU as the backend sees it. */
export interface GpuHealth {
  readonly uuid: string | undefined;
  readonly pciBusId: string;
  readonly healthy: boolean;
  /** Why the GPU is unhealthy; a sentence. */
  readonly reason: string | undefined;
}
