// Pure CDI (Container Device Interface) spec generation for prepared claims: one
// spec per claim, one CDI device per allocated GPU or MIG device. No file I/O
// here; cdi-writer.ts puts the result on disk.
//
// Conventions (CDI spec and the DRA drivers that use it):
// - kind "k8s.<driver>/gpu"; device names "<claimUID>-<device>"; qualified IDs
//   "k8s.<driver>/gpu=<claimUID>-<device>".
// - spec file "k8s.<driver>-gpu_<claimUID>.json": the CDI library's name for a
//   transient spec of vendor "k8s.<driver>", class "gpu", transient ID = claim UID.
// - cdiVersion is the lowest version that has every field the spec uses (the
//   CDI producer library does the same), so runtimes with an older CDI library
//   still load it; our specs need 0.5.0 (deviceNodes.hostPath, and device names
//   starting with a digit, which claim UIDs often do).
// - Container edits: the device nodes are what give a container the device.
//   Spec-level edits hold what every device of the claim needs: /dev/nvidiactl,
//   /dev/nvidia-uvm, /dev/nvidia-uvm-tools and NVIDIA_VISIBLE_DEVICES=void, so
//   that a legacy nvidia-container-runtime hook (which reads that variable, and
//   CUDA images set it to "all") never injects GPUs the claim did not get.
//   Device-level edits: the GPU's node /dev/nvidia<minor> (for MIG: the
//   parent's node plus the GI and CI capability nodes
//   /dev/nvidia-caps/nvidia-cap<N>, N read from
//   /proc/driver/nvidia-caps/mig-minors), and variables naming the device's
//   UUID that are unique per device so several devices in one container do not
//   overwrite each other: CASCADE_<DEVICE>_UUID (e.g. CASCADE_GPU_0_UUID).
// Driver libraries (libcuda, nvidia-smi) are not mounted by these specs; a
// caller that needs them passes them as commonEdits.
import { posix } from 'node:path';

export const CDI_CLASS = 'gpu';
export const CDI_MIN_VERSION = '0.5.0';
export const MIG_MINORS_PATH = '/proc/driver/nvidia-caps/mig-minors';
export const MIG_CAP_DEVICE_DIR = '/dev/nvidia-caps';

export interface CdiDeviceNode {
  readonly path: string;
  readonly hostPath?: string;
  readonly type?: string;
  readonly major?: number;
  readonly minor?: number;
  readonly fileMode?: number;
  readonly permissions?: string;
  readonly uid?: number;
  readonly gid?: number;
}

export interface CdiMount {
  readonly hostPath: string;
  readonly containerPath: string;
  readonly type?: string;
  readonly options?: readonly string[];
}

export interface CdiHook {
  readonly hookName: string;
  readonly path: string;
  readonly args?: readonly string[];
  readonly env?: readonly string[];
  readonly timeout?: number;
}

export interface CdiContainerEdits {
  readonly env?: readonly string[];
  readonly deviceNodes?: readonly CdiDeviceNode[];
  readonly mounts?: readonly CdiMount[];
  readonly hooks?: readonly CdiHook[];
  readonly additionalGids?: readonly number[];
}

export interface CdiDevice {
  readonly name: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly containerEdits: CdiContainerEdits;
}

export interface CdiSpec {
  readonly cdiVersion: string;
  readonly kind: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly devices: readonly CdiDevice[];
  readonly containerEdits?: CdiContainerEdits;
}

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

export type CdiGpuDevice = FullGpuDevice | MigDevice;

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

/** CDI vendor of a driver: "k8s.<driver>". */
export function cdiVendor(driver: string): string {
  return `k8s.${driver}`;
}

/** CDI kind of a driver: "k8s.<driver>/gpu". */
export function cdiKind(driver: string): string {
  return `${cdiVendor(driver)}/${CDI_CLASS}`;
}

/** CDI device name of one device of a claim: "<claimUID>-<device>". */
export function cdiDeviceName(claimUid: string, deviceName: string): string {
  return `${claimUid}-${deviceName}`;
}

/** Fully qualified CDI device ID, as returned to the kubelet. */
export function cdiDeviceId(driver: string, claimUid: string, deviceName: string): string {
  return `${cdiKind(driver)}=${cdiDeviceName(claimUid, deviceName)}`;
}

/** File name of a claim's spec (the CDI library's transient spec name). */
/** Kubernetes UIDs are UUIDs; anything else from the kubelet never becomes a file name. */
const CLAIM_UID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function cdiSpecFileName(driver: string, claimUid: string): string {
  if (!CLAIM_UID.test(claimUid)) throw new Error(`claim UID ${JSON.stringify(claimUid.slice(0, 80))} is not a UUID`);
  return `${cdiVendor(driver)}-${CDI_CLASS}_${claimUid}.json`;
}

const DEVICE_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9_.:-]*[a-zA-Z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Throws unless the driver name makes a valid CDI vendor (a DNS subdomain). */
export function checkCdiVendor(driver: string): void {
  const vendor = cdiVendor(driver);
  if (vendor.length > 253 || !vendor.split('.').every((l) => DNS_LABEL.test(l))) {
    throw new Error(`driver name ${JSON.stringify(driver)} does not make a valid CDI vendor ${JSON.stringify(vendor)}`);
  }
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
    deviceNodes: [
      hostNode(`/dev/nvidia${device.parentMinor}`, hostRoot),
      ...device.capDevicePaths.map((p) => hostNode(p, hostRoot)),
    ],
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

function mergeEdits(a: CdiContainerEdits, b: CdiContainerEdits | undefined): CdiContainerEdits {
  if (!b) return a;
  const out: { -readonly [K in keyof CdiContainerEdits]: CdiContainerEdits[K] } = { ...a };
  if (b.env) out.env = [...(a.env ?? []), ...b.env];
  if (b.deviceNodes) out.deviceNodes = [...(a.deviceNodes ?? []), ...b.deviceNodes];
  if (b.mounts) out.mounts = [...(a.mounts ?? []), ...b.mounts];
  if (b.hooks) out.hooks = [...(a.hooks ?? []), ...b.hooks];
  if (b.additionalGids) out.additionalGids = [...(a.additionalGids ?? []), ...b.additionalGids];
  return out;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function editsNeed(edits: CdiContainerEdits | undefined): string {
  if (!edits) return '0.3.0';
  let v = '0.3.0';
  const raise = (to: string): void => {
    if (compareVersions(to, v) > 0) v = to;
  };
  if (edits.mounts?.some((m) => m.type !== undefined)) raise('0.4.0');
  if (edits.deviceNodes?.some((d) => d.hostPath !== undefined)) raise('0.5.0');
  if (edits.additionalGids && edits.additionalGids.length > 0) raise('0.7.0');
  return v;
}

/** The lowest CDI version that has every field this spec uses. */
export function minimumCdiVersion(spec: Omit<CdiSpec, 'cdiVersion'>): string {
  let v = CDI_MIN_VERSION;
  const candidates = [editsNeed(spec.containerEdits), ...spec.devices.map((d) => editsNeed(d.containerEdits))];
  if (spec.annotations || spec.devices.some((d) => d.annotations)) candidates.push('0.6.0');
  for (const c of candidates) if (compareVersions(c, v) > 0) v = c;
  return v;
}

/**
 * The CDI spec of one claim. Deterministic: the same input always gives the
 * same spec (devices in input order), so a repeated prepare rewrites nothing.
 */
export function buildClaimCdiSpec(input: ClaimCdiInput): CdiSpec {
  checkCdiVendor(input.driver);
  if (input.devices.length === 0) throw new Error(`claim ${input.claimUid}: a CDI spec needs at least one device`);
  const seen = new Set<string>();
  const devices: CdiDevice[] = input.devices.map((device) => {
    const name = cdiDeviceName(input.claimUid, device.deviceName);
    if (!DEVICE_NAME.test(name)) throw new Error(`CDI device name ${JSON.stringify(name)} is not valid`);
    if (seen.has(name)) throw new Error(`claim ${input.claimUid}: device ${device.deviceName} appears twice`);
    seen.add(name);
    return { name, containerEdits: deviceEdits(device, input.hostRoot) };
  });
  const common = mergeEdits(
    {
      env: ['NVIDIA_VISIBLE_DEVICES=void'],
      deviceNodes: CONTROL_DEVICE_NODES.map((p) => hostNode(p, input.hostRoot)),
    },
    input.commonEdits,
  );
  const body = { kind: cdiKind(input.driver), devices, containerEdits: common };
  return { cdiVersion: minimumCdiVersion(body), ...body };
}

/** Stable JSON for a spec file: two-space indent and a final newline. */
export function renderCdiSpec(spec: CdiSpec): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
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
export function migCapDevicePaths(
  migMinors: ReadonlyMap<string, number>,
  gpuMinor: number,
  gpuInstanceId: number,
  computeInstanceId: number,
): readonly string[] {
  const names = [`gpu${gpuMinor}/gi${gpuInstanceId}/access`, `gpu${gpuMinor}/gi${gpuInstanceId}/ci${computeInstanceId}/access`];
  return names.map((name) => {
    const minor = migMinors.get(name);
    if (minor === undefined) throw new Error(`MIG capability ${name} not found in ${MIG_MINORS_PATH}`);
    return `${MIG_CAP_DEVICE_DIR}/nvidia-cap${minor}`;
  });
}
