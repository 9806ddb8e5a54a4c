// Configuration of the nvidia-smi simulator: the fleet of one node (GPU model
// per index, MIG mode, NVLink groups, NUMA nodes, driver) read from JSON.
import { readFileSync } from 'node:fs';
import { GPU_MODELS, type GpuModel, findModel, migCapable } from '../../pkg/nvidia/catalog.js';

/** A MIG instance that exists when the simulator first starts (one "we did not create"). */
export interface InitialMigInstance {
  /** Profile name ("3g.40gb") or GPU-instance profile ID. */
  readonly profile: string | number;
  readonly start: number;
  /** Create the compute instance too (default true). */
  readonly computeInstance?: boolean;
}

export interface FakeGpuConfig {
  /** Built-in model key: "A100-SXM4-40GB", "A100-SXM4-80GB", "H100-80GB", "H200-141GB", "B200". */
  readonly model: string;
  /** Current (and pending) MIG mode; default Disabled. */
  readonly migMode?: 'Enabled' | 'Disabled';
  readonly numaNode?: number;
  /** Defaults: "GPU-<index padded>-..." and a bus ID derived from the index. */
  readonly uuid?: string;
  readonly pciBusId?: string;
  readonly minor?: number;
  readonly migInstances?: readonly InitialMigInstance[];
}

/** Faults a test can inject; kept in the state so they can change between calls. */
export interface Faults {
  /** Every call sleeps this long before answering. */
  readonly slowMs?: number;
  /**
   * The next `count` calls (default 1) fail with this exit code and message,
   * after `skip` calls (default 0) went through, e.g. skip 1 to fail the
   * command that follows a `mig -cgi`.
   */
  readonly failNext?: { readonly exitCode: number; readonly message: string; readonly count?: number; readonly skip?: number };
  /** The next `count` calls print unreadable output and exit 0. */
  readonly garbageNext?: number;
  /** GPU indexes that fell off the bus (exit code 15). */
  readonly lostGpus?: readonly number[];
  /** Volatile uncorrectable ECC errors per GPU index. */
  readonly eccErrors?: Readonly<Record<string, number>>;
  /** The kernel module is gone: every call exits 9. */
  readonly driverNotLoaded?: boolean;
  /** GPU instances with a process attached ("<gpu>:<gi>"): destroying them is refused. */
  readonly busyInstances?: readonly string[];
  /** Compute processes per GPU UUID, listed by --query-compute-apps. */
  readonly processes?: Readonly<Record<string, readonly FakeProcess[]>>;
}

export interface FakeProcess {
  readonly pid: number;
  readonly name: string;
  readonly usedMiB: number;
}

export interface FakeConfig {
  readonly driverVersion?: string;
  readonly cudaVersion?: string;
  readonly gpus: readonly FakeGpuConfig[];
  /** Groups of GPU indexes that are all NVLink-connected to each other. */
  readonly nvlinkGroups?: ReadonlyArray<readonly number[]>;
  /** The number shown in "NV<n>" cells; default 18 (H100 SXM). */
  readonly nvlinkCount?: number;
  readonly faults?: Faults;
  /**
   * A simulated sysfs tree (hack/fake-sysfs): when set, a GPU whose driver link
   * there does not name "nvidia" is invisible, as it is to the real nvidia-smi
   * once it is bound to vfio-pci, and the rest are numbered without it.
   */
  readonly sysfsRoot?: string;
}

/** A GPU with its model and every default filled in. */
export interface ResolvedGpu {
  readonly index: number;
  readonly model: GpuModel;
  readonly uuid: string;
  /** nvidia-smi's form: "00000000:1B:00.0". */
  readonly pciBusId: string;
  readonly minor: number;
  readonly numaNode: number | undefined;
  readonly migMode: 'Enabled' | 'Disabled';
  readonly migInstances: readonly InitialMigInstance[];
}

export interface ResolvedConfig {
  readonly driverVersion: string;
  readonly cudaVersion: string;
  readonly gpus: readonly ResolvedGpu[];
  readonly nvlinkGroups: ReadonlyArray<readonly number[]>;
  readonly nvlinkCount: number;
  readonly faults: Faults;
  readonly sysfsRoot: string | undefined;
}

/** nvidia-smi's "00000000:1B:00.0" as sysfs names it: "0000:1b:00.0". */
export function sysfsAddress(pciBusId: string): string {
  return pciBusId.slice(4).toLowerCase();
}

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, '0');
}

/** Checks a parsed config and fills in defaults; throws with the path of a bad field. */
export function resolveConfig(raw: unknown): ResolvedConfig {
  if (typeof raw !== 'object' || raw === null) throw new Error('config: expected a JSON object');
  const c = raw as Partial<FakeConfig>;
  if (!Array.isArray(c.gpus)) throw new Error('config.gpus: expected an array of GPUs');
  const gpus = c.gpus.map((g: FakeGpuConfig, index: number): ResolvedGpu => {
    const model = typeof g?.model === 'string' ? findModel(g.model) : undefined;
    if (!model) {
      throw new Error(`config.gpus[${index}].model: ${JSON.stringify(g?.model)} is not one of ${GPU_MODELS.map((m) => m.key).join(', ')}`);
    }
    if (g.migMode !== undefined && g.migMode !== 'Enabled' && g.migMode !== 'Disabled') {
      throw new Error(`config.gpus[${index}].migMode: expected "Enabled" or "Disabled"`);
    }
    if (!migCapable(model) && (g.migMode === 'Enabled' || (g.migInstances ?? []).length > 0)) {
      throw new Error(`config.gpus[${index}]: ${model.key} has no MIG; leave out migMode and migInstances`);
    }
    return {
      index,
      model,
      uuid: g.uuid ?? `GPU-${hex(index, 8).toLowerCase()}-cafe-4000-8000-${hex(index * 7919 + 1, 12).toLowerCase()}`,
      pciBusId: g.pciBusId ?? `00000000:${hex(0x18 + index * 0x11, 2)}:00.0`,
      minor: g.minor ?? index,
      numaNode: g.numaNode,
      migMode: g.migMode ?? 'Disabled',
      migInstances: g.migInstances ?? [],
    };
  });
  const groups = c.nvlinkGroups ?? [];
  for (const [i, group] of groups.entries()) {
    for (const member of group) {
      if (!Number.isInteger(member) || member < 0 || member >= gpus.length) {
        throw new Error(`config.nvlinkGroups[${i}]: ${String(member)} is not a GPU index`);
      }
    }
  }
  return {
    driverVersion: c.driverVersion ?? '580.105.08',
    cudaVersion: c.cudaVersion ?? '13.0',
    gpus,
    nvlinkGroups: groups,
    nvlinkCount: c.nvlinkCount ?? 18,
    faults: c.faults ?? {},
    sysfsRoot: typeof c.sysfsRoot === 'string' ? c.sysfsRoot : undefined,
  };
}

export function loadConfig(path: string): ResolvedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err: unknown) {
    throw new Error(`cannot read simulator config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return resolveConfig(JSON.parse(text) as unknown);
}
