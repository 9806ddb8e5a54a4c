// Inputs and outputs of the inventory: what discovery found on one node and
// the ResourceSlices the node plugin wants the API server to hold.
import type { DeviceTaint, ResourceSliceSpec } from '../api/resource.js';
import type { Discovery } from '../nvidia/backend.js';

/** A MIG GPU instance Cascade created (from the node plugin's checkpoint). */
export interface OwnedInstance {
  readonly parentUUID: string;
  readonly gpuInstanceId: number;
}

export interface InventoryOptions {
  /**
   * Publish partitions of MIG-disabled GPUs and whole MIG-enabled GPUs when the
   * mode can change without a reset (Hopper and newer); the node plugin then
   * switches the mode at prepare time. Default true. When false, every GPU is
   * published as its current mode allows, like Ampere.
   */
  readonly dynamicMig?: boolean;
  /**
   * Publish each GPU a second time as a shared device (consumable memory and
   * compute, docs/devices.md "Shared GPUs"); false publishes none. Default on.
   */
  readonly sharing?: SharingOptions | false;
}

/** How shared GPUs are published: the request policies a platform engineer tunes per node. */
export interface SharingOptions {
  /** Memory is handed out in multiples of this (a quantity; default 1Gi). */
  readonly memoryStep?: string;
  /** Percent of compute a claim gets when it does not ask (default 10). */
  readonly computeDefault?: number;
  /** Compute is handed out in multiples of this many percent (default 1). */
  readonly computeStep?: number;
}

export const DEFAULT_SHARING: Required<SharingOptions> = { memoryStep: '1Gi', computeDefault: 10, computeStep: 1 };

export interface InventoryInput {
  readonly nodeName: string;
  readonly driverName: string;
  readonly discovery: Discovery;
  /** MIG instances we created; every other instance is pre-existing and published as such. */
  readonly ownedInstances?: readonly OwnedInstance[];
  /** Taints per GPU UUID, applied to the GPU and every partition of it. */
  readonly taints?: Readonly<Record<string, readonly DeviceTaint[]>>;
  readonly options?: InventoryOptions;
  /** GPUs this node may pass through to VMs (docs/devices.md "Passthrough"). */
  readonly passthrough?: readonly PassthroughGpu[];
}

/** A GPU the node's configuration allows for passthrough, as sysfs shows it now. */
export interface PassthroughGpu {
  /** PCI address, "0000:1b:00.0". */
  readonly address: string;
  /** "pool": bound to vfio-pci from start-up, never used by containers; "switchable": bound for a VM claim, returned after. */
  readonly mode: 'pool' | 'switchable';
  /** The driver bound now; undefined when none is. */
  readonly driver: string | undefined;
  readonly iommuGroup: number | undefined;
  readonly numaNode: number | undefined;
  readonly pcieRoot: string | undefined;
  readonly pcieSwitch: string | undefined;
  /** From nvidia-smi while the GPU is bound to it, else from the catalog by PCI device ID. */
  readonly productName: string;
  readonly memoryMiB: number | undefined;
  /** Why it cannot be passed through now (published as a taint), e.g. vfio-pci not loaded. */
  readonly unavailable?: { readonly short: string; readonly reason: string };
  /** Set when the GPU did not come back to the nvidia driver after a VM: published unhealthy. */
  readonly stranded?: string;
}

/** A slice as the publisher takes it: the name and the spec without the pool generation. */
export interface DesiredSlice {
  readonly name: string;
  readonly spec: Omit<ResourceSliceSpec, 'pool'> & { readonly pool: { readonly name: string; readonly resourceSliceCount: number } };
}
