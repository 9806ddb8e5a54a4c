// The node plugin's configuration: command-line flags and environment parsed
// once into a typed, validated value.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import path from 'node:path';
import { DEFAULT_DRIVER_NAME } from '../api/resource.js';
import { sharingOptions } from '../inventory/devices.js';
import type { SharingOptions } from '../inventory/types.js';
import { type PassthroughConfig, checkPassthroughConfig, parseGpuSelection } from './passthrough.js';

export interface NodePluginConfig {
  /** Path of nvidia-smi (or the simulator). */
  readonly nvidiaSmiPath: string;
  readonly nvidiaSmiTimeoutMs: number;
  readonly nodeName: string;
  readonly driverName: string;
  /** Print the ResourceSlices that would be published and exit. */
  readonly dryRun: boolean;
  /** Undefined: in-cluster configuration. */
  readonly kubeconfig: string | undefined;
  readonly pluginsDir: string;
  readonly registryDir: string;
  readonly cdiRoot: string;
  /** Checkpoints and other node-local state; default <plugins-dir>/<driver-name>. */
  readonly stateDir: string;
  /** Let Hopper-and-newer GPUs switch MIG mode at prepare time (docs/devices.md). */
  readonly dynamicMig: boolean;
  /** HTTP port for /healthz and /readyz; undefined: no HTTP server. 0 picks a free port. */
  readonly healthPort: number | undefined;
  /** Address the health server listens on. */
  readonly healthHost: string;
  /** How often the GPUs are rediscovered and the slices republished. */
  readonly pollIntervalMs: number;
  /** How often GPU health (lost GPUs, ECC errors) is checked. */
  readonly healthIntervalMs: number;
  /** The driver's table of MIG capability device minors. */
  readonly migMinorsPath: string;
  /** The NVIDIA driver root as this process sees it (where its libraries are looked up). */
  readonly driverRoot: string;
  /** The same directory on the host, for the CDI mounts the container runtime resolves. */
  readonly hostDriverRoot: string;
  /** A checkpoint that cannot be read: refuse to start ("fail"), or move it aside and start with no claims. */
  readonly onCorruptCheckpoint: 'fail' | 'start-empty';
  /** How GPUs are published for sharing (false: not at all). */
  readonly sharing: SharingOptions | false;
  /** nvidia-cuda-mps-control, which runs the MPS daemons of shared GPUs. */
  readonly mpsControlPath: string;
  /** Where the MPS daemons' pipe and log directories live (default <state-dir>/mps). */
  readonly mpsRoot: string;
  /** Root of sysfs (PCI functions, IOMMU groups, driver binding). */
  readonly sysfsRoot: string;
  /** Root of the device nodes (/dev/vfio). */
  readonly devRoot: string;
  /** Which GPUs may be passed through to VMs, and how (docs/devices.md "Passthrough"). */
  readonly passthrough: PassthroughConfig;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function dnsSubdomain(what: string): (value: string) => string {
  return (value) => {
    if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
      throw new InvalidArgumentError(`${what} must be a DNS subdomain (lower-case letters, digits, "-" and "."), got ${JSON.stringify(value)}`);
    }
    return value;
  };
}

/** "30s", "500ms", "2m" or a bare number of seconds, in milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(value.trim());
  const amount = m?.[1] === undefined ? NaN : Number(m[1]);
  if (!m || !Number.isSafeInteger(amount) || amount <= 0) {
    throw new InvalidArgumentError(`expected a duration such as 30s, 500ms or 2m, got ${JSON.stringify(value)}`);
  }
  const unit = m[2] ?? 's';
  return unit === 'ms' ? amount : unit === 's' ? amount * 1000 : amount * 60_000;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port number 0-65535, got ${JSON.stringify(value)}`);
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

interface RawOptions {
  nvidiaSmi?: string;
  nvidiaSmiTimeout: number;
  nodeName?: string;
  driverName: string;
  dryRun: boolean;
  kubeconfig?: string;
  pluginsDir: string;
  registryDir: string;
  cdiRoot: string;
  stateDir?: string;
  dynamicMig: boolean;
  healthPort?: number;
  healthHost: string;
  pollInterval: number;
  healthInterval: number;
  migMinors?: string;
  driverRoot: string;
  hostDriverRoot: string;
  onCorruptCheckpoint: 'fail' | 'start-empty';
  sharedGpus: boolean;
  sharedMemoryStep: string;
  sharedComputeStep: number;
  sharedComputeDefault: number;
  mpsControl?: string;
  mpsRoot?: string;
  sysfsRoot: string;
  devRoot: string;
  passthroughPool: string;
  passthroughSwitchable: string;
}

/** The flag set; exported so the help text can be tested and printed. */
export function nodePluginCommand(env: NodeJS.ProcessEnv = process.env): Command {
  return (
    new Command('cascade-node-plugin')
      .description('Cascade node plugin: discovers NVIDIA GPUs and publishes them as ResourceSlices')
      .addOption(new Option('--nvidia-smi <path>', 'path of nvidia-smi (default: $NVIDIA_SMI, else nvidia-smi from PATH)'))
      .addOption(new Option('--nvidia-smi-timeout <ms>', 'limit for one nvidia-smi call').argParser(positiveInt).default(30_000))
      .addOption(new Option('--node-name <name>', 'this node (default: $NODE_NAME)').argParser(dnsSubdomain('--node-name')))
      .addOption(new Option('--driver-name <name>', 'DRA driver name').argParser(dnsSubdomain('--driver-name')).default(DEFAULT_DRIVER_NAME))
      .addOption(new Option('--dry-run', 'print the ResourceSlices that would be published as JSON and exit').default(false))
      .addOption(new Option('--kubeconfig <path>', 'kubeconfig (default: $KUBECONFIG, else in-cluster)'))
      .addOption(new Option('--plugins-dir <dir>', 'kubelet plugins directory').default('/var/lib/kubelet/plugins'))
      .addOption(new Option('--registry-dir <dir>', 'kubelet plugin registration directory').default('/var/lib/kubelet/plugins_registry'))
      .addOption(new Option('--cdi-root <dir>', 'directory for CDI specs').default('/var/run/cdi'))
      .addOption(new Option('--state-dir <dir>', 'node-local state (default: <plugins-dir>/<driver-name>)'))
      .addOption(new Option('--no-dynamic-mig', 'never switch MIG mode; publish each GPU as its current mode allows'))
      .addOption(new Option('--health-port <port>', 'serve /healthz and /readyz on this port (0: any free port; default: off)').argParser(port))
      .addOption(new Option('--health-host <address>', 'address for the health server').default('0.0.0.0'))
      .addOption(new Option('--poll-interval <duration>', 'rediscover the GPUs and republish this often').argParser(parseDuration).default(60_000, '60s'))
      .addOption(new Option('--health-interval <duration>', 'check GPU health this often').argParser(parseDuration).default(10_000, '10s'))
      .addOption(new Option('--driver-root <dir>', "the NVIDIA driver's root as this process sees it (libraries and nvidia-smi for containers)").default('/'))
      .addOption(new Option('--host-driver-root <dir>', 'the same directory on the host (/ for a host-installed driver, /run/nvidia/driver with the GPU operator)').default('/'))
      .addOption(new Option('--mig-minors <path>', "the driver's MIG capability minor table (default: $NVIDIA_MIG_MINORS, else /proc/driver/nvidia-caps/mig-minors)"))
      .addOption(
        new Option('--on-corrupt-checkpoint <action>', 'when the checkpoint cannot be read: fail (refuse to start), or start-empty (move it aside, start with no prepared claims)')
          .choices(['fail', 'start-empty'])
          .default('fail'),
      )
      .addOption(new Option('--no-shared-gpus', 'do not publish GPUs for sharing (shared.gpu.cascade.dev)'))
      .addOption(new Option('--shared-memory-step <quantity>', 'shared GPUs hand out memory in multiples of this').default('1Gi'))
      .addOption(new Option('--shared-compute-step <percent>', 'shared GPUs hand out compute in multiples of this many percent').argParser(positiveInt).default(1))
      .addOption(new Option('--shared-compute-default <percent>', 'compute a shared-GPU claim gets when it does not ask').argParser(positiveInt).default(10))
      .addOption(new Option('--mps-control <path>', 'nvidia-cuda-mps-control (default: $NVIDIA_MPS_CONTROL, else from PATH)'))
      .addOption(new Option('--mps-root <dir>', "MPS daemons' pipe and log directories (default: <state-dir>/mps)"))
      .addOption(new Option('--sysfs-root <dir>', 'root of sysfs (PCI functions, IOMMU groups, driver binding)').default('/sys'))
      .addOption(new Option('--dev-root <dir>', 'root of the device nodes (/dev/vfio)').default('/dev'))
      .addOption(new Option('--passthrough-pool <gpus>', 'GPUs (PCI addresses, or all) bound to vfio-pci from start-up for VMs only (vfio.gpu.cascade.dev)').default('none'))
      .addOption(new Option('--passthrough-switchable <gpus>', 'GPUs (PCI addresses, or all) bound to vfio-pci only while a VM claim holds them').default('none'))
      .allowExcessArguments(false)
      .exitOverride()
      // Errors come back as exceptions with a message; help goes to stdout as usual.
      .configureOutput({ writeErr: () => undefined })
      .addHelpText('after', `\nEnvironment: NODE_NAME (now ${JSON.stringify(env.NODE_NAME ?? '')}), NVIDIA_SMI, KUBECONFIG, NVIDIA_MIG_MINORS, NVIDIA_MPS_CONTROL`)
  );
}

/** Thrown for --help: the help was printed and the process should exit 0. */
export class HelpShown extends Error {
  override readonly name = 'HelpShown';
}

/**
 * Parses argv (without the node and script paths) and the environment.
 * Throws an Error whose message a person can act on.
 */
export function parseNodePluginConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): NodePluginConfig {
  const command = nodePluginCommand(env);
  try {
    command.parse([...argv], { from: 'user' });
  } catch (err: unknown) {
    if (err instanceof CommanderError && err.exitCode === 0) throw new HelpShown(err.message);
    const message = err instanceof Error ? err.message.replace(/^error: /, '') : String(err);
    throw new Error(message);
  }
  const o = command.opts<RawOptions>();
  const nodeName = o.nodeName ?? env.NODE_NAME;
  if (nodeName === undefined || nodeName === '') {
    throw new Error('the node name is unknown: pass --node-name or set NODE_NAME (the downward API spec.nodeName)');
  }
  dnsSubdomain('NODE_NAME')(nodeName);
  const sharing: SharingOptions | false = o.sharedGpus ? { memoryStep: o.sharedMemoryStep, computeStep: o.sharedComputeStep, computeDefault: o.sharedComputeDefault } : false;
  // Refuse a bad setting now, not at the first publication.
  sharingOptions({ sharing });
  const stateDir = o.stateDir ?? path.join(o.pluginsDir, o.driverName);
  let passthrough: PassthroughConfig;
  try {
    passthrough = { pool: parseGpuSelection(o.passthroughPool), switchable: parseGpuSelection(o.passthroughSwitchable) };
    checkPassthroughConfig(passthrough);
  } catch (err) {
    throw new Error(`passthrough: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    nvidiaSmiPath: o.nvidiaSmi ?? env.NVIDIA_SMI ?? 'nvidia-smi',
    nvidiaSmiTimeoutMs: o.nvidiaSmiTimeout,
    nodeName,
    driverName: o.driverName,
    dryRun: o.dryRun,
    kubeconfig: o.kubeconfig ?? env.KUBECONFIG,
    pluginsDir: o.pluginsDir,
    registryDir: o.registryDir,
    cdiRoot: o.cdiRoot,
    stateDir,
    dynamicMig: o.dynamicMig,
    healthPort: o.healthPort,
    healthHost: o.healthHost,
    pollIntervalMs: o.pollInterval,
    healthIntervalMs: o.healthInterval,
    migMinorsPath: o.migMinors ?? env.NVIDIA_MIG_MINORS ?? '/proc/driver/nvidia-caps/mig-minors',
    driverRoot: o.driverRoot,
    hostDriverRoot: o.hostDriverRoot,
    onCorruptCheckpoint: o.onCorruptCheckpoint,
    sharing,
    mpsControlPath: o.mpsControl ?? env.NVIDIA_MPS_CONTROL ?? 'nvidia-cuda-mps-control',
    mpsRoot: o.mpsRoot ?? path.join(stateDir, 'mps'),
    sysfsRoot: o.sysfsRoot,
    devRoot: o.devRoot,
    passthrough,
  };
}
