// Cascade's device model: the names of the attributes, capacities and counters
// the node plugin publishes and the allocator reads. Attribute and capacity
// names are qualified with the driver name as their domain
// (e.g. "gpu.cascade.dev/productName"); see docs/devices.md.

/** Attribute names in the driver's domain. */
export const ATTR = {
  /** "gpu" for a whole GPU, "mig" for a MIG partition, "shared" for a GPU shared by several claims, "vfio" for a GPU passed through to a VM. */
  type: 'type',
  uuid: 'uuid',
  /** GPU index as nvidia-smi numbers it. */
  index: 'index',
  /** /dev/nvidia<minor>. */
  minor: 'minor',
  productName: 'productName',
  brand: 'brand',
  architecture: 'architecture',
  /** version, e.g. "9.0.0" */
  cudaComputeCapability: 'cudaComputeCapability',
  /** version, e.g. "580.105.8" */
  driverVersion: 'driverVersion',
  /** version, e.g. "13.0.0" */
  cudaDriverVersion: 'cudaDriverVersion',
  /** MIG profile name, e.g. "3g.40gb". */
  profile: 'profile',
  /** MIG GPU-instance profile ID, e.g. 9. */
  profileID: 'profileID',
  /** UUID of the parent GPU of a MIG partition. */
  parentUUID: 'parentUUID',
  /** Minor number of the parent GPU (for grouping partitions by GPU). */
  parentMinor: 'parentMinor',
  /** First memory slice of a MIG placement. */
  placementStart: 'placementStart',
  /** Number of memory slices of a MIG placement. */
  placementSize: 'placementSize',
  /** Memory in MiB as an int, for simple comparisons. */
  memory: 'memory',
  /** Whether the GPU supports MIG. */
  migCapable: 'migCapable',
  /** "Enabled" | "Disabled" | "N/A": the GPU's current MIG mode. */
  migMode: 'migMode',
  /** NVLink domain: GPUs that share it are all NVLink-connected. Use with matchAttribute. */
  nvlinkDomain: 'nvlinkDomain',
  /** True for a MIG instance that existed before Cascade (not created by us). */
  preexisting: 'preexisting',
  /** Of a passthrough device: the IOMMU group its functions are in. */
  iommuGroup: 'iommuGroup',
  /** Of a passthrough device: whether the GPU is bound to vfio-pci right now. */
  vfioBound: 'vfioBound',
  /** Of a passthrough device: "pool" (always bound to vfio-pci) or "switchable" (bound for a VM claim, returned after). */
  passthroughMode: 'passthroughMode',
  /**
   * The GPU's NUMA node, as resource.kubernetes.io/numaNode also carries it: that
   * standard name is not final before Kubernetes 1.37, so Cascade publishes both.
   */
  numaNode: 'numaNode',
  /** Upstream port of the PCIe switch the GPU sits under ("0000:16:00.0"): NICs under the same switch are PIX to it. */
  pcieSwitch: 'pcieSwitch',
} as const;

/** Capacity names in the driver's domain. */
export const CAPACITY = {
  memory: 'memory',
  /** Of a shared GPU: percent of its compute (MPS active threads), 100 in all. */
  compute: 'compute',
  multiprocessors: 'multiprocessors',
  copyEngines: 'copyEngines',
  decoders: 'decoders',
  encoders: 'encoders',
  jpegEngines: 'jpegEngines',
  ofaEngines: 'ofaEngines',
} as const;

/** Counter names in each GPU's shared counter set. */
export const COUNTER = {
  /** memory-slice-0 .. memory-slice-7, value 1 each. */
  memorySlice: (i: number): string => `memory-slice-${i}`,
  computeSlices: 'compute-slices',
  multiprocessors: 'multiprocessors',
  copyEngines: 'copy-engines',
  decoders: 'decoders',
  encoders: 'encoders',
  jpegEngines: 'jpeg-engines',
  ofaEngines: 'ofa-engines',
  /** The one counter of a GPU without MIG partitions: whole or shared, one mode at a time. */
  gpu: 'gpu',
} as const;

export const MIG_MEMORY_SLICES = 8;
export const MIG_COMPUTE_SLICES = 7;

export type DeviceType = 'gpu' | 'mig' | 'shared' | 'vfio';

/** Qualified attribute or capacity name for a driver: "<driver>/<name>". */
export function qualify(driver: string, name: string): string {
  return `${driver}/${name}`;
}

/** Device name of a whole GPU. */
export function gpuDeviceName(minor: number): string {
  return `gpu-${minor}`;
}

/** Device name of a GPU published for sharing (allowMultipleAllocations). */
export function sharedDeviceName(minor: number): string {
  return `gpu-${minor}-shared`;
}

/** Device name of a GPU published for passthrough: "vfio-0000-1b-00-0", after its PCI address. */
export function vfioDeviceName(pciAddress: string): string {
  return `vfio-${pciAddress.toLowerCase().replace(/[:.]/g, '-')}`;
}

/** Taint key of a passthrough device that cannot be passed through on this node now. */
export function vfioUnavailableTaintKey(driver: string): string {
  return `${driver}/vfio-unavailable`;
}

/** Name of the shared counter set of one GPU. */
export function counterSetName(minor: number): string {
  return `gpu-${minor}-counters`;
}

/**
 * Device name of a MIG partition: "gpu-<minor>-mig-<profile>-<start>", the
 * profile made a DNS label ("3g.40gb" -> "3g-40gb", "1g.10gb+me" -> "1g-10gb-me").
 */
export function migDeviceName(parentMinor: number, profile: string, placementStart: number): string {
  const label = profile
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `gpu-${parentMinor}-mig-${label}-${placementStart}`;
}

/** Node label Cascade's node plugin sets: the NVLink domains on a node are named after it. */
export const NODE_LABEL_PREFIX = 'cascade.dev/';
