// The node plugin's view of the GPUs: discovery, MIG listing, MIG creation and
// destruction, health. nvidia-smi is one implementation; tests drive it
// against the simulator in hack/fake-nvidia-smi.
import type { LostGpu } from './parse-list.js';
import type { ComputeInstance, CreatedMigDevice, GpuHealth, GpuInfo, GpuInstance, MigModeState, MigProfile } from './types.js';

/** Everything discovery learned about the node's GPUs at one moment. */
export interface Discovery {
  readonly driverVersion: string;
  readonly cudaVersion: string | undefined;
  /** Reachable GPUs, ordered by index. */
  readonly gpus: readonly GpuInfo[];
  /** GPU-instance profiles with placements, for GPUs whose MIG mode is currently Enabled. */
  readonly migProfiles: readonly MigProfile[];
  readonly gpuInstances: readonly GpuInstance[];
  readonly computeInstances: readonly ComputeInstance[];
  /** GPUs nvidia-smi reported but could not reach ("GPU is lost", exit code 15). */
  readonly lost: readonly LostGpu[];
}

export interface CreateMigRequest {
  readonly gpuIndex: number;
  /** GPU-instance profile ID, e.g. 9 for 3g.40gb. */
  readonly profileId: number;
  /** First memory slice; the instance is created exactly there or not at all. */
  readonly placementStart: number;
  /**
   * Memory slices of the profile on this GPU, as its `mig -lgip`/`-lgipp` say
   * (2 for profile 14 on an H100, 1 on an A30). Without it the backend looks
   * the instance up after creating it.
   */
  readonly placementSize?: number;
  /**
   * MIG UUIDs the caller already knows on this GPU. When given, the new
   * device's UUID is the one `-L` lists that is not among them (one call
   * instead of three on the prepare hot path); when that is ambiguous the
   * backend falls back to the full lookup.
   */
  readonly knownMigUuids?: readonly string[];
  /**
   * Called as soon as nvidia-smi reports a GPU instance created (compute
   * instance undefined when only the GPU instance was), before any other
   * command can fail, so the caller can record what now exists and roll it
   * back whatever happens next. The backend waits for it.
   */
  readonly onCreated?: (ids: { readonly gpuInstanceId: number; readonly computeInstanceId: number | undefined }) => Promise<void>;
}

export interface DestroyMigRequest {
  readonly gpuIndex: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
}

export interface GpuBackend {
  discover(): Promise<Discovery>;
  /** Profiles and placements of MIG-enabled GPUs (all of them, or one). */
  listMigProfiles(gpuIndex?: number): Promise<MigProfile[]>;
  listGpuInstances(gpuIndex?: number): Promise<GpuInstance[]>;
  listComputeInstances(gpuIndex?: number): Promise<ComputeInstance[]>;
  /**
   * Creates a GPU instance at the exact placement and one compute instance
   * spanning it; returns their IDs and the MIG device UUID. If the compute
   * instance cannot be created the GPU instance is destroyed again.
   */
  createMigDevice(request: CreateMigRequest): Promise<CreatedMigDevice>;
  /**
   * Destroys the compute instance, then the GPU instance. Instances already
   * gone count as destroyed, so a retried unprepare succeeds.
   */
  destroyMigDevice(request: DestroyMigRequest): Promise<void>;
  /**
   * Asks for MIG mode on or off and returns the mode nvidia-smi then reports.
   * On Ampere the change stays pending until a GPU reset (current unchanged);
   * Hopper and newer switch at once. Fails while GPU instances exist.
   */
  setMigMode(gpuIndex: number, enabled: boolean): Promise<MigModeState>;
  /**
   * Sets the GPU's compute time slice (`nvidia-smi compute-policy
   * --set-timeslice`): 0 default, 1 short, 2 medium, 3 long.
   */
  setTimeSlice(gpuIndex: number, slice: 0 | 1 | 2 | 3): Promise<void>;
  /** Health of every GPU nvidia-smi reports or could not reach. */
  health(): Promise<GpuHealth[]>;
  /** Compute processes running on the GPUs nvidia-smi reaches (before a GPU is taken from its driver). */
  computeProcesses(): Promise<ComputeProcess[]>;
}

/** A process using a GPU, as `--query-compute-apps` lists it. */
export interface ComputeProcess {
  readonly pid: number;
  readonly name: string;
  readonly gpuUuid: string;
}
