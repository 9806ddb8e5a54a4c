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
}

export interface InventoryInput {
  readonly nodeName: string;
  readonly driverName: string;
  readonly discovery: Discovery;
  /** MIG instances we created; every other instance is pre-existing and published as such. */
  readonly ownedInstances?: readonly OwnedInstance[];
  /** Taints per GPU UUID, applied to the GPU and every partition of it. */
  readonly taints?: Readonly<Record<string, readonly DeviceTaint[]>>;
  readonly options?: InventoryOptions;
}

/** A slice as the publisher takes it: the name and the spec without the pool generation. */
export interface DesiredSlice {
  readonly name: string;
  readonly spec: Omit<ResourceSliceSpec, 'pool'> & { readonly pool: { readonly name: string; readonly resourceSliceCount: number } };
}
