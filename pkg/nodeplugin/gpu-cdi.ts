// The GPU driver's CDI container edits: what gives a container a whole GPU, a
// MIG instance or a share through MPS. The generic spec assembly (names,
// versions, rendering) is pkg/kubeletplugin/cdi.ts.
//
// - Spec-level edits hold what every device of the claim needs: /dev/nvidiactl,
//   /dev/nvidia-uvm, /dev/nvidia-uvm-tools and NVIDIA_VISIBLE_DEVICES=void, so
//   that a legacy nvidia-container-runtime hook (which reads that variable, and
//   CUDA images set it to "all") never injects GPUs the claim did not get.
// - Device-level edits: the GPU's node /dev/nvidia<minor> (for MIG: the
//   parent's node plus the GI and CI capability nodes
//   /dev/nvidia-caps/nvidia-cap<N>, N read from
//   /proc/driver/nvidia-caps/mig-minors), and variables naming the device's
//   UUID that are unique per device so several devices in one container do not
//   overwrite each other: CASCADE_<DEVICE>_UUID (e.g. CASCADE_GPU_0_UUID).
// Driver libraries (libcuda, nvidia-smi) are not mounted by these specs; a
// caller that needs them passes them as commonEdits.
import { posix } from 'node:path';
import { type CdiContainerEdits, type CdiDeviceNode, type CdiMount, type CdiSpec, buildCdiSpec, mergeEdits } from '../kubeletplugin/cdi.js';

export const MIG_MINORS_PATH = '/proc/driver/nvidia-caps/mig-minors';
export const MIG_CAP_DEVICE_DIR = '/dev/nvidia-caps';

/** A whole GPU handed to a claim. */
export interface FullGpuDevice {
  readonly type: 'gpu';
  /** The DRA device name, e.g. "gpu-0". */
  readonly deviceName: string;
  readonly uuid: string;
  /** /dev/nvidia<minor>. */
  readonly minor: number;
  /** Set when the GPU is shared through MPS: the daemon's pipe directory and the claim's limits. */
  readonly mps?: CdiMps;
}

/** What a container needs to be an MPS client with its share's limits. */
export interface CdiMps {
  /** CUDA_MPS_PIPE_DIRECTORY, bind-mounted at the same path. */
  readonly pipeDirectory: string;
  /** Host path of the pipe directory when the plugin sees the host under another root. */
  readonly hostPipeDirectory?: string;
  /** CUDA_MPS_LOG_DIRECTORY, mounted read-only (the daemon's log, for debugging from inside). */
  readonly logDirectory?: string;
  readonly hostLogDirectory?: string;
  /** CUDA_MPS_PINNED_DEVICE_MEM_LIMIT for the container's one GPU (ordinal 0), in MiB. */
  readonly memoryLimitMiB?: number;
  /** CUDA_MPS_ACTIVE_THREAD_PERCENTAGE. */
  readonly activeThreadPercentage?: number;
}

/** A MIG instance created for a claim. */
export interface MigDevice {
  readonly type: 'mig';
  /** The DRA device name, e.g. "gpu-0-mig-3g-40gb-4". */
  readonly deviceName: string;
  /** The MIG device UUID ("MIG-..."). */
  readonly uuid: string;
  readonly parentUuid: string;
  readonly parentMinor: number;
  /** Capability device nodes of the GPU instance and compute instance (see migCapDevicePaths). */
  readonly capDevicePaths: readonly string[];
  /** Set when the instance is shared among the claim's containers through MPS. */
  readonly mps?: CdiMps;
}

/** A GPU bound to vfio-pci for a VM: the VFIO container node and its IOMMU group's node. */
export interface VfioDevice {
  readonly type: 'vfio';
  /** The DRA device name, e.g. "vfio-0000-1b-00-0". */
  readonly deviceName: string;
  /** "0000:1b:00.0". */
  readonly address: string;
  readonly iommuGroup: number;
  /** The DRA device-metadata file (KEP-5304) to mount read-only, where KubeVirt reads the PCI address. */
  readonly metadata?: { readonly hostPath: string; readonly containerPath: string };
}

export type CdiGpuDevice = FullGpuDevice | MigDevice | VfioDevice;

/** The environment variable carrying a passthrough device's PCI address: CASCADE_<DEVICE>_PCI_ADDRESS. */
export function pciAddressEnvName(deviceName: string): string {
  return `CASCADE_${deviceName.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_PCI_ADDRESS`;
}

export interface ClaimCdiInput {
  readonly driver: string;
  readonly claimUid: string;
  readonly devices: readonly CdiGpuDevice[];
  /**
   * Where the host's /dev lives when the driver is installed in a container
   * (e.g. "/run/nvidia/driver"); device nodes keep their /dev path inside the
   * container. Default: "/" (host path = container path, hostPath omitted).
   */
  readonly hostRoot?: string;
  /** Extra spec-level edits, e.g. driver library mounts. */
  readonly commonEdits?: CdiContainerEdits;
}

/** The environment variable carrying a device's UUID: CASCADE_<DEVICE>_UUID. */
export function uuidEnvName(deviceName: string): string {
  return `CASCADE_${deviceName.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_UUID`;
}

function hostNode(path: string, hostRoot: string | undefined): CdiDeviceNode {
  if (!hostRoot || hostRoot === '/') return { path };
  return { path, hostPath: posix.join(hostRoot, path) };
}

function deviceEdits(device: CdiGpuDevice, hostRoot: string | undefined): CdiContainerEdits {
  if (device.type === 'vfio') {
    // VFIO nodes belong to the host's kernel, never to a containerised NVIDIA driver root.
    return {
      env: [`${pciAddressEnvName(device.deviceName)}=${device.address}`],
      deviceNodes: [{ path: '/dev/vfio/vfio' }, { path: `/dev/vfio/${device.iommuGroup}` }],
      ...(device.metadata ? { mounts: [{ hostPath: device.metadata.hostPath, containerPath: device.metadata.containerPath, options: ['ro', 'bind'] }] } : {}),
    };
  }
  const envName = uuidEnvName(device.deviceName);
  if (device.type === 'gpu') {
    const edits: CdiContainerEdits = {
      env: [`${envName}=${device.uuid}`],
      deviceNodes: [hostNode(`/dev/nvidia${device.minor}`, hostRoot)],
    };
    return device.mps === undefined ? edits : mergeEdits(edits, mpsEdits(device.mps));
  }
  const edits: CdiContainerEdits = {
    env: [`${envName}=${device.uuid}`, `${envName.replace(/_UUID$/, '_PARENT_UUID')}=${device.parentUuid}`],
    deviceNodes: [hostNode(`/dev/nvidia${device.parentMinor}`, hostRoot), ...device.capDevicePaths.map((p) => hostNode(p, hostRoot))],
  };
  return device.mps === undefined ? edits : mergeEdits(edits, mpsEdits(device.mps));
}

/**
 * An MPS client: the pipe directory (where the daemon's sockets live) mounted
 * and named, and the share's limits, which the CUDA runtime of the client
 * applies. A container reaches one MPS server, so it should use one shared GPU.
 */
function mpsEdits(mps: CdiMps): CdiContainerEdits {
  const env = [`CUDA_MPS_PIPE_DIRECTORY=${mps.pipeDirectory}`];
  if (mps.memoryLimitMiB !== undefined) env.push(`CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=${mps.memoryLimitMiB}M`);
  if (mps.activeThreadPercentage !== undefined) env.push(`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=${mps.activeThreadPercentage}`);
  const mounts: CdiMount[] = [{ hostPath: mps.hostPipeDirectory ?? mps.pipeDirectory, containerPath: mps.pipeDirectory, options: ['rbind', 'rw', 'nosuid', 'nodev'] }];
  if (mps.logDirectory !== undefined) {
    env.push(`CUDA_MPS_LOG_DIRECTORY=${mps.logDirectory}`);
    mounts.push({ hostPath: mps.hostLogDirectory ?? mps.logDirectory, containerPath: mps.logDirectory, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }
  return { env, mounts };
}

/** Device nodes every NVIDIA container needs, whatever device it got. */
export const CONTROL_DEVICE_NODES = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools'] as const;

/** The CDI spec of one claim's GPUs, MIG instances and shares. */
export function buildClaimCdiSpec(input: ClaimCdiInput): CdiSpec {
  // A claim of passthrough GPUs only gets nothing of the NVIDIA driver: its GPUs are not the driver's.
  const nvidia = input.devices.some((d) => d.type !== 'vfio');
  const common = !nvidia
    ? {}
    : mergeEdits(
        {
          env: ['NVIDIA_VISIBLE_DEVICES=void'],
          deviceNodes: CONTROL_DEVICE_NODES.map((p) => hostNode(p, input.hostRoot)),
        },
        input.commonEdits,
      );
  return buildCdiSpec(
    input.driver,
    input.claimUid,
    input.devices.map((d) => ({ deviceName: d.deviceName, edits: deviceEdits(d, input.hostRoot) })),
    common,
  );
}

/**
 * Parses /proc/driver/nvidia-caps/mig-minors ("gpu0/gi1/access 12" lines) into
 * capability name -> minor number.
 */
export function parseMigMinors(text: string): ReadonlyMap<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+)\s+(\d+)\s*$/.exec(line);
    if (m?.[1] && m[2]) out.set(m[1], Number(m[2]));
  }
  return out;
}

/**
 * The capability device nodes guarding one MIG instance: the GPU instance's and
 * the compute instance's access capabilities. gpuMinor is the parent GPU's
 * /dev/nvidia<minor> number, which is what mig-minors calls gpu<N>.
 */
export function migCapDevicePaths(migMinors: ReadonlyMap<string, number>, gpuMinor: number, gpuInstanceId: number, computeInstanceId: number): readonly string[] {
  const names = [`gpu${gpuMinor}/gi${gpuInstanceId}/access`, `gpu${gpuMinor}/gi${gpuInstanceId}/ci${computeInstanceId}/access`];
  return names.map((name) => {
    const minor = migMinors.get(name);
    if (minor === undefined) throw new Error(`MIG capability ${name} not found in ${MIG_MINORS_PATH}`);
    return `${MIG_CAP_DEVICE_DIR}/nvidia-cap${minor}`;
  });
}
