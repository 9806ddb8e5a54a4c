// The simulator's command interpreter: one nvidia-smi invocation against the
// config and the state (which it mutates), with real messages and exit codes.
// Pure apart from the state object, so tests can drive it in-process.
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { type ResolvedConfig, type ResolvedGpu, sysfsAddress } from './config.js';
import { computeProfileId, findProfile, firstFreePlacement, gpuInstanceId, placementRefusal } from './mig.js';
import { type GpuView, QUERY_FIELDS, renderComputeInstances, renderGpuInstances, renderList, renderPlacements, renderProfiles, renderQueryGpu, renderQueryXml, renderTopology } from './render.js';
import { type FakeState, migUuid } from './state.js';
import { migCapable, migToggleNeedsReset } from '../../pkg/nvidia/catalog.js';

export interface CallResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
  /** Whether the state changed and must be written back. */
  readonly changed: boolean;
}

export const EXIT = { ok: 0, badArgument: 2, notSupported: 3, noPermission: 4, notFound: 6, driverNotLoaded: 9, gpuLost: 15, other: 255 } as const;

export const MESSAGES = {
  invalidArguments: "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.",
  noMig: 'No MIG-enabled devices found.',
  noDevices: 'No devices were found',
  driverNotLoaded: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
  garbage: '\u0000\u0007@@ NVSMI \ufffd\ufffd 0xdeadbeef <<<\nGPU ?: ??? (UUID: ???)\n',
} as const;

function result(stdout: string, exitCode = 0, stderr = '', changed = false): CallResult {
  return { stdout, stderr, exitCode, changed };
}

function fail(message: string, exitCode: number, stdout = '', changed = false): CallResult {
  return { stdout, stderr: message.endsWith('\n') ? message : `${message}\n`, exitCode, changed };
}

/** The words nvidia-smi uses for a GPU that fell off the bus. */
export function lostLine(gpu: ResolvedGpu): string {
  return `Unable to determine the device handle for GPU${gpu.pciBusId.slice(4)}: GPU is lost.  Reboot the system to recover this GPU`;
}

const pad2 = (n: number): string => String(n).padStart(2);

class Args {
  private readonly rest: string[];

  constructor(args: readonly string[]) {
    this.rest = [...args];
  }

  /** Removes a flag (any of its spellings); true when it was there. */
  flag(...names: string[]): boolean {
    const i = this.rest.findIndex((a) => names.includes(a));
    if (i < 0) return false;
    this.rest.splice(i, 1);
    return true;
  }

  /** Removes "-x V", "--x V" or "--x=V" and returns V. */
  option(...names: string[]): string | undefined {
    for (let i = 0; i < this.rest.length; i++) {
      const a = this.rest[i] ?? '';
      for (const n of names) {
        if (a === n) {
          const v = this.rest[i + 1];
          this.rest.splice(i, 2);
          return v ?? '';
        }
        if (n.startsWith('--') && a.startsWith(`${n}=`)) {
          this.rest.splice(i, 1);
          return a.slice(n.length + 1);
        }
      }
    }
    return undefined;
  }

  get leftover(): readonly string[] {
    return this.rest;
  }
}

interface Context {
  readonly config: ResolvedConfig;
  readonly state: FakeState;
}

function view(ctx: Context, gpu: ResolvedGpu): GpuView {
  const state = ctx.state.gpus[gpu.index];
  if (!state) throw new Error(`simulator state has no GPU ${gpu.index}; delete the state directory after changing the config`);
  return { gpu, state, eccErrors: ctx.state.faults.eccErrors?.[String(gpu.index)] ?? 0 };
}

/** Parses "-i 0", "-i 0,2" or "-i GPU-uuid"; undefined selects every GPU. */
function selectGpus(ctx: Context, selector: string | undefined): ResolvedGpu[] | undefined {
  if (selector === undefined) return [...ctx.config.gpus];
  const picked: ResolvedGpu[] = [];
  for (const part of selector.split(',')) {
    const p = part.trim();
    const gpu = /^\d+$/.test(p) ? ctx.config.gpus[Number(p)] : ctx.config.gpus.find((g) => g.uuid === p || g.pciBusId.toLowerCase() === p.toLowerCase());
    if (!gpu) return undefined;
    picked.push(gpu);
  }
  return picked;
}

function isLost(ctx: Context, gpu: ResolvedGpu): boolean {
  return ctx.state.faults.lostGpus?.includes(gpu.index) ?? false;
}

/** Renders the reachable GPUs; lost ones add their line to stderr and make the exit code 15. */
function perGpu(ctx: Context, gpus: readonly ResolvedGpu[], render: (views: GpuView[]) => string): CallResult {
  const lost = gpus.filter((g) => isLost(ctx, g));
  const views = gpus.filter((g) => !isLost(ctx, g)).map((g) => view(ctx, g));
  const stdout = views.length > 0 ? render(views) : '';
  if (lost.length === 0) return result(stdout);
  return result(stdout, EXIT.gpuLost, lost.map(lostLine).join('\n') + '\n');
}

/** Whether the GPU's PCI function is bound to the nvidia driver in the simulated sysfs (always, without one). */
function boundToNvidia(config: ResolvedConfig, gpu: ResolvedGpu): boolean {
  if (config.sysfsRoot === undefined) return true;
  try {
    return path.basename(readlinkSync(path.join(config.sysfsRoot, 'bus', 'pci', 'devices', sysfsAddress(gpu.pciBusId), 'driver'))) === 'nvidia';
  } catch {
    return false;
  }
}

/**
 * Interprets one invocation. Faults other than lost GPUs are applied by the
 * caller. GPUs not bound to the nvidia driver are not there for nvidia-smi:
 * the rest are numbered 0.. without them, as the driver enumerates them.
 */
export function handleCall(argv: readonly string[], config: ResolvedConfig, state: FakeState): CallResult {
  const visible = config.gpus.filter((g) => boundToNvidia(config, g));
  if (visible.length === config.gpus.length) return handleVisible(argv, config, state);
  if (visible.length === 0) return fail(MESSAGES.noDevices, EXIT.notFound);
  const view: FakeState = { ...state, gpus: visible.map((g) => state.gpus[g.index] as FakeState['gpus'][number]) };
  const outcome = handleVisible(argv, { ...config, gpus: visible.map((g, index) => ({ ...g, index })) }, view);
  state.serial = view.serial;
  state.faults = view.faults;
  return outcome;
}

function handleVisible(argv: readonly string[], config: ResolvedConfig, state: FakeState): CallResult {
  const ctx: Context = { config, state };
  if (state.faults.driverNotLoaded) return result(`${MESSAGES.driverNotLoaded}\n`, EXIT.driverNotLoaded);
  if (argv[0] === 'mig') return handleMig(ctx, new Args(argv.slice(1)));
  if (argv[0] === 'topo') return handleTopo(ctx, new Args(argv.slice(1)));
  if (argv[0] === 'compute-policy') return handleComputePolicy(ctx, new Args(argv.slice(1)));
  const args = new Args(argv);
  if (args.flag('-h', '--help')) return result('NVIDIA System Management Interface -- simulated by Cascade\n');
  const selector = args.option('-i', '--id');
  const gpus = selectGpus(ctx, selector);
  if (!gpus) return fail(MESSAGES.noDevices, EXIT.notFound);

  if (args.flag('-L', '--list-gpus')) {
    if (args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    return perGpu(ctx, gpus, renderList);
  }
  const query = args.option('--query-gpu');
  if (query !== undefined) {
    const format = (args.option('--format') ?? '').split(',').map((f) => f.trim());
    if (!format.includes('csv') || args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    const fields = query.split(',').map((f) => f.trim());
    const unknown = fields.find((f) => !(f in QUERY_FIELDS));
    if (unknown !== undefined) return fail(`Field "${unknown}" is not a valid field to query.`, EXIT.badArgument);
    return perGpu(ctx, gpus, (views) => renderQueryGpu(views, config, fields, !format.includes('noheader'), !format.includes('nounits')));
  }
  const apps = args.option('--query-compute-apps');
  if (apps !== undefined) {
    const format = (args.option('--format') ?? '').split(',').map((f) => f.trim());
    if (!format.includes('csv') || args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    return queryComputeApps(ctx, gpus, apps, !format.includes('noheader'), !format.includes('nounits'));
  }
  if (args.flag('-q', '--query')) {
    if (!args.flag('-x', '--xml-format') || args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    return perGpu(ctx, gpus, (views) => renderQueryXml(views, config));
  }
  const mig = args.option('-mig', '--multi-instance-gpu');
  if (mig !== undefined) return setMigMode(ctx, gpus, mig);
  if (args.flag('-r', '--gpu-reset')) return resetGpus(ctx, selector === undefined ? undefined : gpus);
  return fail(MESSAGES.invalidArguments, EXIT.badArgument);
}

/**
 * `--query-compute-apps=<fields> --format=csv[,noheader][,nounits]`: one row
 * per compute process, nothing (or the header) when none runs. Field names and
 * the header wording follow NVIDIA's `nvidia-smi --help-query-compute-apps`
 * (catalog knowledge, not a capture).
 */
function queryComputeApps(ctx: Context, gpus: readonly ResolvedGpu[], query: string, header: boolean, units: boolean): CallResult {
  const fields = query.split(',').map((f) => f.trim());
  const headers: Record<string, string> = {
    pid: 'pid',
    process_name: 'process_name',
    gpu_uuid: 'gpu_uuid',
    gpu_bus_id: 'gpu_bus_id',
    used_memory: units ? 'used_gpu_memory [MiB]' : 'used_gpu_memory',
  };
  const unknown = fields.find((f) => !(f in headers));
  if (unknown !== undefined) return fail(`Field "${unknown}" is not a valid field to query.`, EXIT.badArgument);
  const rows: string[] = header ? [fields.map((f) => headers[f]).join(', ')] : [];
  for (const gpu of gpus) {
    if (isLost(ctx, gpu)) continue;
    for (const p of ctx.state.faults.processes?.[gpu.uuid] ?? []) {
      const value: Record<string, string> = { pid: String(p.pid), process_name: p.name, gpu_uuid: gpu.uuid, gpu_bus_id: gpu.pciBusId, used_memory: units ? `${p.usedMiB} MiB` : String(p.usedMiB) };
      rows.push(fields.map((f) => value[f]).join(', '));
    }
  }
  return result(rows.length > 0 ? `${rows.join('\n')}\n` : '');
}

/**
 * `nvidia-smi compute-policy [-i ID] --set-timeslice=N` (0 default, 1 short,
 * 2 medium, 3 long) and `-l`. The wording of the answers is catalog knowledge
 * from NVIDIA's documentation, not a capture; Cascade reads only exit codes.
 */
function handleComputePolicy(ctx: Context, args: Args): CallResult {
  const gpus = selectGpus(ctx, args.option('-i', '--id'));
  if (!gpus) return fail(MESSAGES.noDevices, EXIT.notFound);
  const lost = gpus.find((g) => isLost(ctx, g));
  if (lost) return fail(lostLine(lost), EXIT.gpuLost);
  const set = args.option('--set-timeslice');
  if (set !== undefined) {
    if (args.leftover.length > 0 || !/^[0-3]$/.test(set)) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    const out: string[] = [];
    for (const gpu of gpus) {
      view(ctx, gpu).state.timeslice = Number(set);
      out.push(`Set timeslice to ${set} for GPU ${gpu.pciBusId}`);
    }
    out.push('All done.');
    return result(out.join('\n') + '\n', EXIT.ok, '', true);
  }
  if (args.flag('-l', '--list')) {
    if (args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    return result(gpus.map((g) => `GPU ${g.index}: timeslice ${view(ctx, g).state.timeslice ?? 0}`).join('\n') + '\n');
  }
  return fail(MESSAGES.invalidArguments, EXIT.badArgument);
}

function handleTopo(ctx: Context, args: Args): CallResult {
  if (!args.flag('-m', '--matrix') || args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
  return perGpu(ctx, ctx.config.gpus, (views) => renderTopology(views, ctx.config));
}

function setMigMode(ctx: Context, gpus: readonly ResolvedGpu[], value: string): CallResult {
  const enable = value === '1' || value.toUpperCase() === 'ENABLED';
  if (!enable && value !== '0' && value.toUpperCase() !== 'DISABLED') return fail(MESSAGES.invalidArguments, EXIT.badArgument);
  const out: string[] = [];
  let changed = false;
  for (const gpu of gpus) {
    if (isLost(ctx, gpu)) return fail(lostLine(gpu), EXIT.gpuLost, out.join('\n'), changed);
    const s = view(ctx, gpu).state;
    const bus = gpu.pciBusId;
    if (!migCapable(gpu.model)) {
      // What nvidia-smi says for a board without MIG (catalog knowledge, not a capture).
      return fail(`Unable to ${enable ? 'enable' : 'disable'} MIG Mode for GPU ${bus}: Not Supported`, EXIT.notSupported, out.join('\n'), changed);
    }
    if (!enable && s.gpuInstances.length > 0) {
      return fail(`Unable to disable MIG Mode for GPU ${bus}: In use by another client`, EXIT.other, out.join('\n'), changed);
    }
    const mode = enable ? 'Enabled' : 'Disabled';
    s.migPending = mode;
    changed = true;
    if (migToggleNeedsReset(gpu.model.architecture)) {
      // Ampere keeps the new mode pending until the GPU is reset.
      out.push(
        `Warning: MIG mode is in pending ${enable ? 'enable' : 'disable'} state for GPU ${bus}:In use by another client`,
        `${bus} is currently being used by one or more other processes (e.g. CUDA application or a monitoring application such as another instance of nvidia-smi). Please first kill all processes using the device and retry the command or reboot the system to make MIG mode effective.`,
      );
    } else {
      s.migCurrent = mode;
      out.push(`${enable ? 'Enabled' : 'Disabled'} MIG Mode for GPU ${bus}`);
    }
  }
  out.push('All done.');
  return result(out.join('\n') + '\n', EXIT.ok, '', changed);
}

function resetGpus(ctx: Context, gpus: readonly ResolvedGpu[] | undefined): CallResult {
  if (!gpus) return fail('GPU Reset requires a GPU to be specified with -i', EXIT.badArgument);
  const out: string[] = [];
  for (const gpu of gpus) {
    const s = view(ctx, gpu).state;
    if (s.gpuInstances.length > 0 && s.migPending === 'Disabled') {
      return fail(`Unable to reset GPU ${gpu.pciBusId}: In use by another client`, EXIT.other, out.join('\n'));
    }
    s.migCurrent = s.migPending;
    out.push(`GPU ${gpu.pciBusId} was successfully reset.`);
  }
  out.push('All done.');
  return result(out.join('\n') + '\n', EXIT.ok, '', true);
}

function parseIds(value: string | undefined): number[] | undefined | 'bad' {
  if (value === undefined) return undefined;
  const ids = value.split(',').map((s) => s.trim());
  return ids.every((s) => /^\d+$/.test(s)) ? ids.map(Number) : 'bad';
}

function handleMig(ctx: Context, args: Args): CallResult {
  const gpus = selectGpus(ctx, args.option('-i', '--id'));
  if (!gpus) return fail(MESSAGES.noDevices, EXIT.notFound);
  const giIds = parseIds(args.option('-gi', '--gpu-instance-id'));
  const ciIds = parseIds(args.option('-ci', '--compute-instance-id'));
  if (giIds === 'bad' || ciIds === 'bad') return fail(MESSAGES.invalidArguments, EXIT.badArgument);
  const lost = gpus.find((g) => isLost(ctx, g));
  if (lost) return fail(lostLine(lost), EXIT.gpuLost);
  const enabled = gpus.filter((g) => view(ctx, g).state.migCurrent === 'Enabled');

  const listing = (render: (views: GpuView[]) => string, empty?: string): CallResult => {
    if (args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    if (enabled.length === 0) return result(`${MESSAGES.noMig}\n`, EXIT.notFound);
    const views = enabled.map((g) => view(ctx, g));
    if (empty !== undefined && views.every((v) => v.state.gpuInstances.length === 0)) return result(`${empty}\n`, EXIT.notFound);
    return result(render(views));
  };

  if (args.flag('-lgipp', '--list-gpu-instance-possible-placements')) return listing(renderPlacements);
  if (args.flag('-lgip', '--list-gpu-instance-profiles')) return listing(renderProfiles);
  if (args.flag('-lgi', '--list-gpu-instances')) return listing(renderGpuInstances, 'No GPU instances found: Not Found');
  if (args.flag('-lci', '--list-compute-instances')) {
    return listing(renderComputeInstances, 'No compute instances found: Not Found');
  }
  const create = args.option('-cgi', '--create-gpu-instance');
  if (create !== undefined) {
    const withCi = args.flag('-C', '--default-compute-instance');
    if (args.leftover.length > 0 || create === '') return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    if (enabled.length === 0) return result(`${MESSAGES.noMig}\n`, EXIT.notFound);
    return createInstances(ctx, enabled, create, withCi);
  }
  if (args.flag('-dci', '--destroy-compute-instance')) {
    if (args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    if (enabled.length === 0) return result(`${MESSAGES.noMig}\n`, EXIT.notFound);
    return destroyComputeInstances(ctx, enabled, giIds, ciIds);
  }
  if (args.flag('-dgi', '--destroy-gpu-instance')) {
    if (args.leftover.length > 0) return fail(MESSAGES.invalidArguments, EXIT.badArgument);
    if (enabled.length === 0) return result(`${MESSAGES.noMig}\n`, EXIT.notFound);
    return destroyGpuInstances(ctx, enabled, giIds);
  }
  return fail(MESSAGES.invalidArguments, EXIT.badArgument);
}

const REFUSAL_EXIT: Readonly<Record<string, number>> = {
  'Insufficient Resources': EXIT.other,
  'Invalid Argument': EXIT.badArgument,
  'Not Found': EXIT.notFound,
};

function createInstances(ctx: Context, gpus: readonly ResolvedGpu[], specs: string, withCi: boolean): CallResult {
  const out: string[] = [];
  let changed = false;
  for (const gpu of gpus) {
    const s = view(ctx, gpu).state;
    for (const spec of specs.split(',')) {
      const [profileRef = '', startText] = spec.trim().split(':');
      const profile = findProfile(gpu.model, profileRef);
      let refusal: string | undefined;
      let start: number | undefined;
      if (!profile) {
        refusal = 'Not Found';
      } else if (startText !== undefined) {
        start = /^\d+$/.test(startText) ? Number(startText) : -1;
        refusal = placementRefusal(gpu.model, s.gpuInstances, profile, start);
      } else {
        start = firstFreePlacement(gpu.model, s.gpuInstances, profile);
        if (start === undefined) refusal = 'Insufficient Resources';
      }
      if (refusal !== undefined || !profile || start === undefined) {
        const reason = refusal ?? 'Unknown Error';
        const stderr = `Unable to create a GPU instance on GPU ${pad2(gpu.index)} using profile ${profileRef}: ${reason}\nFailed to create GPU instances: ${reason}\n`;
        return { stdout: out.length > 0 ? out.join('\n') + '\n' : '', stderr, exitCode: REFUSAL_EXIT[reason] ?? EXIT.other, changed };
      }
      const id = gpuInstanceId(gpu.model, profile.memorySlices, start);
      const gi = { id, profileId: profile.id, start, computeInstances: [] as { id: number; profileId: number; size: number; uuid: string }[] };
      s.gpuInstances.push(gi);
      changed = true;
      out.push(`Successfully created GPU instance ID ${pad2(id)} on GPU ${pad2(gpu.index)} using profile MIG ${profile.name} (ID ${pad2(profile.id)})`);
      if (withCi) {
        const ciProfile = computeProfileId(profile.computeSlices);
        ctx.state.serial += 1;
        gi.computeInstances.push({ id: 0, profileId: ciProfile, size: profile.computeSlices, uuid: migUuid(gpu.uuid, id, 0, ctx.state.serial) });
        out.push(`Successfully created compute instance ID ${pad2(0)} on GPU ${pad2(gpu.index)} GPU instance ID ${pad2(id)} using profile MIG ${profile.name} (ID ${pad2(ciProfile)})`);
      }
    }
  }
  return result(out.join('\n') + '\n', EXIT.ok, '', changed);
}

function isBusy(ctx: Context, gpu: ResolvedGpu, gi: number): boolean {
  return ctx.state.faults.busyInstances?.includes(`${gpu.index}:${gi}`) ?? false;
}

function destroyComputeInstances(ctx: Context, gpus: readonly ResolvedGpu[], giIds: number[] | undefined, ciIds: number[] | undefined): CallResult {
  const out: string[] = [];
  let changed = false;
  let done = 0;
  for (const gpu of gpus) {
    const s = view(ctx, gpu).state;
    const targets = giIds ?? s.gpuInstances.map((g) => g.id);
    for (const giId of targets) {
      const gi = s.gpuInstances.find((g) => g.id === giId);
      const wanted = ciIds ?? gi?.computeInstances.map((c) => c.id) ?? [0];
      for (const ciId of wanted) {
        const ci = gi?.computeInstances.find((c) => c.id === ciId);
        const failure = !gi || !ci ? 'Not Found' : isBusy(ctx, gpu, giId) ? 'In use by another client' : undefined;
        if (failure || !gi) {
          const reason = failure ?? 'Not Found';
          const stderr = `Unable to destroy compute instance ID ${pad2(ciId)} from GPU ${pad2(gpu.index)} GPU instance ID ${pad2(giId)}: ${reason}\nFailed to destroy compute instances: ${reason}\n`;
          return { stdout: out.length > 0 ? out.join('\n') + '\n' : '', stderr, exitCode: reason === 'Not Found' ? EXIT.notFound : EXIT.other, changed };
        }
        gi.computeInstances = gi.computeInstances.filter((c) => c.id !== ciId);
        changed = true;
        done++;
        out.push(`Successfully destroyed compute instance ID ${pad2(ciId)} from GPU ${pad2(gpu.index)} GPU instance ID ${pad2(giId)}`);
      }
    }
  }
  if (done === 0) return fail('Failed to destroy compute instances: Not Found', EXIT.notFound);
  return result(out.join('\n') + '\n', EXIT.ok, '', changed);
}

function destroyGpuInstances(ctx: Context, gpus: readonly ResolvedGpu[], giIds: number[] | undefined): CallResult {
  const out: string[] = [];
  let changed = false;
  let done = 0;
  for (const gpu of gpus) {
    const s = view(ctx, gpu).state;
    for (const giId of giIds ?? s.gpuInstances.map((g) => g.id)) {
      const gi = s.gpuInstances.find((g) => g.id === giId);
      const reason = !gi ? 'Not Found' : gi.computeInstances.length > 0 || isBusy(ctx, gpu, giId) ? 'In use by another client' : undefined;
      if (reason) {
        const stderr = `Unable to destroy GPU instance ID ${pad2(giId)} from GPU ${pad2(gpu.index)}: ${reason}\nFailed to destroy GPU instances: ${reason}\n`;
        return { stdout: out.length > 0 ? out.join('\n') + '\n' : '', stderr, exitCode: reason === 'Not Found' ? EXIT.notFound : EXIT.other, changed };
      }
      s.gpuInstances = s.gpuInstances.filter((g) => g.id !== giId);
      changed = true;
      done++;
      out.push(`Successfully destroyed GPU instance ID ${pad2(giId)} from GPU ${pad2(gpu.index)}`);
    }
  }
  if (done === 0) return fail('Failed to destroy GPU instances: Not Found', EXIT.notFound);
  return result(out.join('\n') + '\n', EXIT.ok, '', changed);
}

/**
 * One invocation with the one-shot faults applied first: "fail the next
 * call(s)" and "garbage on the next call(s)" are consumed here.
 */
export function simulate(argv: readonly string[], config: ResolvedConfig, state: FakeState): CallResult {
  const f = state.faults;
  if (f.failNext && (f.failNext.skip ?? 0) > 0) {
    state.faults = { ...f, failNext: { ...f.failNext, skip: (f.failNext.skip ?? 0) - 1 } };
    // The countdown is state too: the call goes through and the state is saved.
    return { ...handleCall(argv, config, state), changed: true };
  }
  if (f.failNext) {
    const count = f.failNext.count ?? 1;
    const { exitCode, message } = f.failNext;
    state.faults = count > 1 ? { ...f, failNext: { ...f.failNext, count: count - 1 } } : { ...f, failNext: undefined };
    return fail(message, exitCode, '', true);
  }
  if (f.garbageNext !== undefined && f.garbageNext > 0) {
    state.faults = { ...f, garbageNext: f.garbageNext - 1 };
    return result(MESSAGES.garbage, EXIT.ok, '', true);
  }
  return handleCall(argv, config, state);
}
