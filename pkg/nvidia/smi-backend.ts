// GpuBackend over the nvidia-smi binary: merges --query-gpu, -q -x, topo -m,
// -L and the mig listings into typed values, and creates/destroys MIG devices.
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { pciePlacementOf } from './pcie.js';
import { logger } from '../log/logger.js';
import type { ComputeProcess, CreateMigRequest, DestroyMigRequest, Discovery, GpuBackend } from './backend.js';
import { NvidiaSmiError, checkSmallInt } from './errors.js';
import { DEFAULT_EXEC_OPTIONS, type SmiExecOptions, type SmiInvoke, type SmiResult, invokeSmi, runSmi } from './exec.js';
import { parseQueryGpu, queryGpuArgs, type QueryGpuRow } from './parse-csv.js';
import { type LostGpu, findLostGpus, parseList, withoutLostGpuLines } from './parse-list.js';
import { parseComputeInstances, parseCreateOutput, parseDestroyOutput, parseGpuInstances, parsePlacements, parseProfiles, saysNothingToList } from './parse-mig.js';
import { nvlinkPeers, parseTopology } from './parse-topo.js';
import { type XmlGpu, type XmlLog, parseQueryXml } from './parse-xml.js';
import type { ComputeInstance, CreatedMigDevice, GpuHealth, GpuInfo, GpuInstance, ListedGpu, MigDeviceInfo, MigModeState, MigProfile, TopologyRow } from './types.js';

export interface NvidiaSmiBackendOptions extends Partial<Omit<SmiExecOptions, 'path'>> {
  /** Path of nvidia-smi; default "nvidia-smi" from PATH. */
  readonly path?: string;
  /** Root of sysfs, for the PCIe root complex of each GPU; default "/sys". */
  readonly sysfsRoot?: string;
  /** Calls this in process instead of running a program (benchmarks over simulated fleets). */
  readonly invoke?: SmiInvoke;
}

const log = logger('nvidia-smi');

/**
 * Memory slices of each GPU-instance profile ID on boards with 8 memory slices
 * (A100, H100, H200, B200; REFERENCE section 6). Not the A30's (4 slices), so
 * callers pass the size from the GPU's own profile table (placementSize).
 */
const MEMORY_SLICES_BY_PROFILE_ID: ReadonlyMap<number, number> = new Map([
  [19, 1],
  [20, 1],
  [15, 2],
  [14, 2],
  [9, 4],
  [5, 4],
  [0, 8],
]);

// Listing commands exit 6 (not found) when MIG is off or no instance exists.
const LIST_OK = [6];

/** Serialises MIG changes: concurrent -cgi calls on one GPU race in the driver. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

export class NvidiaSmiBackend implements GpuBackend {
  private readonly exec: SmiExecOptions;
  private readonly sysfsRoot: string;
  private readonly mutations = new Mutex();
  private readonly invoke: SmiInvoke | undefined;

  constructor(options: NvidiaSmiBackendOptions = {}) {
    this.invoke = options.invoke;
    this.exec = {
      path: options.path ?? 'nvidia-smi',
      timeoutMs: options.timeoutMs ?? DEFAULT_EXEC_OPTIONS.timeoutMs,
      maxBufferBytes: options.maxBufferBytes ?? DEFAULT_EXEC_OPTIONS.maxBufferBytes,
      ...(options.env ? { env: options.env } : {}),
    };
    this.sysfsRoot = options.sysfsRoot ?? '/sys';
  }

  private run(args: readonly string[], ok: readonly number[] = []): Promise<SmiResult> {
    const invoke = this.invoke;
    if (invoke !== undefined) return Promise.resolve().then(() => invokeSmi(invoke, args, ok));
    return runSmi(this.exec, args, ok);
  }

  /** Runs a command that may report lost GPUs (exit 15) alongside the reachable ones. */
  private async runTolerant(args: readonly string[], alsoOk: readonly number[] = []): Promise<{ result: SmiResult; lost: LostGpu[] }> {
    const result = await this.run(args, [15, ...alsoOk]);
    const lost = result.exitCode === 15 ? findLostGpus(`${result.stdout}\n${result.stderr}`) : [];
    if (result.exitCode === 15 && lost.length === 0) {
      throw new NvidiaSmiError(result.command, 'gpu-lost', 15, 'a GPU fell off the bus, but nvidia-smi did not say which');
    }
    return { result: { ...result, stdout: withoutLostGpuLines(result.stdout) }, lost };
  }

  async discover(): Promise<Discovery> {
    const { result: csv, lost } = await this.runTolerant(queryGpuArgs(), [6]);
    // Exit 6 with "No devices were found": the driver is loaded and no GPU is bound to it
    // (every one handed to vfio-pci, say). An empty node, not a failure.
    if (csv.exitCode === 6) {
      if (!/No devices were found/.test(`${csv.stdout}\n${csv.stderr}`)) throw new NvidiaSmiError(csv.command, 'not-found', 6, csv.stderr.trim() || csv.stdout.trim());
      return { driverVersion: '', cudaVersion: undefined, gpus: [], migProfiles: [], gpuInstances: [], computeInstances: [], lost: [] };
    }
    const rows = parseQueryGpu(csv.stdout, csv.command);
    const { result: xmlResult } = await this.runTolerant(['-q', '-x']);
    const xml = parseQueryXml(xmlResult.stdout);
    const topology = await this.topology();

    const enabled = rows.filter((r) => r.migCurrent === 'Enabled').map((r) => r.index);
    // With a GPU lost, a mig listing over all GPUs fails (exit 15): ask each reachable one.
    const each = async <T>(list: (gpuIndex?: number) => Promise<T[]>): Promise<T[]> => {
      if (lost.length === 0) return list();
      const out: T[] = [];
      for (const i of enabled) out.push(...(await list(i)));
      return out;
    };
    const [migProfiles, gpuInstances, computeInstances, listed] =
      enabled.length > 0 ? await Promise.all([each((i) => this.listMigProfiles(i)), each((i) => this.listGpuInstances(i)), each((i) => this.listComputeInstances(i)), this.list()]) : [[], [], [], []];

    const gpus = await Promise.all(rows.map((row) => this.mergeGpu(row, xml, topology, listed)));
    return {
      driverVersion: xml.driverVersion,
      cudaVersion: xml.cudaVersion,
      gpus: gpus.sort((a, b) => a.index - b.index),
      migProfiles,
      gpuInstances,
      computeInstances,
      lost,
    };
  }

  private async topology(): Promise<TopologyRow[]> {
    try {
      const { result } = await this.runTolerant(['topo', '-m']);
      return parseTopology(result.stdout);
    } catch (err: unknown) {
      // NUMA and NVLink are attributes, not the inventory itself: publish without them.
      if (err instanceof NvidiaSmiError && err.kind !== 'driver-not-loaded' && err.kind !== 'timeout') {
        log.warn('topology unavailable; publishing without NUMA and NVLink attributes', { error: err.message });
        return [];
      }
      throw err;
    }
  }

  private async list(): Promise<ListedGpu[]> {
    const { result } = await this.runTolerant(['-L']);
    return parseList(result.stdout);
  }

  private async mergeGpu(row: QueryGpuRow, xml: XmlLog, topology: readonly TopologyRow[], listed: readonly ListedGpu[]): Promise<GpuInfo> {
    const x: XmlGpu | undefined = xml.gpus.find((g) => g.uuid === row.uuid) ?? xml.gpus.find((g) => g.pciBusId === row.pciBusId);
    if (!x) {
      throw new NvidiaSmiError('nvidia-smi -q -x', 'other', undefined, `GPU ${row.index} (${row.uuid}) from --query-gpu is missing in -q -x`);
    }
    const topo = topology.find((t) => t.gpuIndex === row.index);
    const l = listed.find((g) => g.uuid === row.uuid);
    const migDevices = x.migDevices.map((d): MigDeviceInfo => {
      const fromList = l?.migDevices.find((m) => m.index === d.index);
      return { ...d, uuid: fromList?.uuid, profile: fromList?.profile };
    });
    return {
      index: row.index,
      minor: x.minor,
      uuid: row.uuid,
      productName: row.name,
      brand: x.brand,
      architecture: x.architecture,
      computeCapability: row.computeCapability,
      driverVersion: row.driverVersion,
      cudaVersion: xml.cudaVersion,
      pciBusId: row.pciBusId,
      ...(await this.pcie(row.pciBusId)),
      memoryMiB: row.memoryMiB,
      migMode: { current: row.migCurrent, pending: row.migPending },
      numaNode: topo?.numaNode,
      nvlinkPeers: topo ? nvlinkPeers(topo) : [],
      migDevices,
      uncorrectableEccErrors: x.uncorrectableEccErrors,
    };
  }

  /** The root complex and PCIe switch from the sysfs path of the device; undefined off Linux or in tests without sysfs. */
  private async pcie(busId: string): Promise<{ pcieRoot: string | undefined; pcieSwitch: string | undefined }> {
    try {
      const at = pciePlacementOf(await realpath(path.join(this.sysfsRoot, 'bus', 'pci', 'devices', busId)));
      return { pcieRoot: at.root, pcieSwitch: at.pcieSwitch };
    } catch {
      return { pcieRoot: undefined, pcieSwitch: undefined };
    }
  }

  async listMigProfiles(gpuIndex?: number): Promise<MigProfile[]> {
    const sel = this.select(gpuIndex);
    const lgip = await this.run(['mig', ...sel, '-lgip'], LIST_OK);
    const lgipp = await this.run(['mig', ...sel, '-lgipp'], LIST_OK);
    if (saysNothingToList(lgip.stdout)) return [];
    const rows = parseProfiles(lgip.stdout, lgip.command);
    const placements = parsePlacements(lgipp.stdout, lgipp.command);
    return rows.map((r): MigProfile => {
      const p = placements.find((x) => x.gpuIndex === r.gpuIndex && x.profileId === r.id);
      if (!p || p.placements.length === 0) {
        throw new NvidiaSmiError(lgipp.command, 'other', undefined, `no placements listed for profile ${r.id} (${r.name}) on GPU ${r.gpuIndex}`);
      }
      return { ...r, placements: p.placements, memorySlices: p.placements[0]?.size ?? 0 };
    });
  }

  async listGpuInstances(gpuIndex?: number): Promise<GpuInstance[]> {
    const r = await this.run(['mig', ...this.select(gpuIndex), '-lgi'], LIST_OK);
    return saysNothingToList(r.stdout) ? [] : parseGpuInstances(r.stdout, r.command);
  }

  async listComputeInstances(gpuIndex?: number): Promise<ComputeInstance[]> {
    const r = await this.run(['mig', ...this.select(gpuIndex), '-lci'], LIST_OK);
    return saysNothingToList(r.stdout) ? [] : parseComputeInstances(r.stdout, r.command);
  }

  private select(gpuIndex: number | undefined): string[] {
    return gpuIndex === undefined ? [] : ['-i', String(checkSmallInt('GPU index', gpuIndex, 63))];
  }

  async createMigDevice(request: CreateMigRequest): Promise<CreatedMigDevice> {
    const gpu = checkSmallInt('GPU index', request.gpuIndex, 63);
    const profile = checkSmallInt('MIG profile ID', request.profileId, 63);
    const start = checkSmallInt('placement start', request.placementStart, 7);
    return this.mutations.run(async () => {
      const args = ['mig', '-i', String(gpu), '-cgi', `${profile}:${start}`, '-C'];
      let created;
      try {
        const r = await this.run(args);
        created = parseCreateOutput(r.stdout, r.command);
      } catch (err: unknown) {
        await this.cleanUpHalfCreated(gpu, err, request.onCreated);
        throw err;
      }
      await request.onCreated?.({ gpuInstanceId: created.gpuInstanceId, computeInstanceId: created.computeInstanceId });
      if (created.computeInstanceId === undefined) {
        await this.destroyGpuInstance(gpu, created.gpuInstanceId);
        throw new NvidiaSmiError(args.join(' '), 'other', 0, `GPU instance ${created.gpuInstanceId} was created without a compute instance; destroyed it again`);
      }
      if (request.knownMigUuids !== undefined) {
        // "-cgi <id>:<start>" creates exactly at start or fails, so the placement
        // needs no re-listing; only the UUID is unknown.
        // The caller's size comes from this GPU's own profile table; the fixed map only
        // holds for boards with 8 memory slices (A100, H100, H200, B200), not an A30.
        const size = request.placementSize ?? MEMORY_SLICES_BY_PROFILE_ID.get(created.profileId);
        const uuid = size === undefined ? undefined : await this.newMigUuid(gpu, created.profile, request.knownMigUuids);
        if (uuid !== undefined && size !== undefined) {
          return {
            gpuIndex: gpu,
            gpuInstanceId: created.gpuInstanceId,
            computeInstanceId: created.computeInstanceId,
            profile: created.profile,
            profileId: created.profileId,
            placement: { start, size },
            uuid,
          };
        }
      }
      const instance = (await this.listGpuInstances(gpu)).find((g) => g.instanceId === created.gpuInstanceId);
      if (!instance || instance.placement.start !== start) {
        await this.destroyBoth(gpu, created.gpuInstanceId, created.computeInstanceId);
        throw new NvidiaSmiError(
          args.join(' '),
          'other',
          0,
          `GPU instance ${created.gpuInstanceId} is not at placement start ${start} (found ${instance ? String(instance.placement.start) : 'nothing'}); destroyed it again`,
        );
      }
      const uuid = await this.migUuid(gpu, created.gpuInstanceId, created.computeInstanceId);
      return {
        gpuIndex: gpu,
        gpuInstanceId: created.gpuInstanceId,
        computeInstanceId: created.computeInstanceId,
        profile: created.profile,
        profileId: created.profileId,
        placement: instance.placement,
        uuid,
      };
    });
  }

  /** A failed `-cgi ... -C` may still have created the GPU instance; remove it. */
  private async cleanUpHalfCreated(gpu: number, err: unknown, onCreated: CreateMigRequest['onCreated']): Promise<void> {
    if (!(err instanceof NvidiaSmiError)) return;
    const m = /Successfully created GPU instance ID\s+(\d+)/.exec(err.output);
    if (!m?.[1]) return;
    // Recorded first: if the destroy below fails too, the caller still knows to remove it.
    await onCreated?.({ gpuInstanceId: Number(m[1]), computeInstanceId: undefined });
    await this.destroyGpuInstance(gpu, Number(m[1])).catch((cleanup: unknown) => {
      log.error('could not remove a half-created GPU instance', { gpu, gpuInstanceId: m[1], error: String(cleanup) });
    });
  }

  /** The one MIG device of `profile` on the GPU that is not in `known`, or undefined when not exactly one. */
  private async newMigUuid(gpu: number, profile: string, known: readonly string[]): Promise<string | undefined> {
    const { result } = await this.runTolerant(['-L', '-i', String(gpu)]);
    const listed = parseList(result.stdout).find((g) => g.index === gpu);
    const seen = new Set(known);
    const fresh = (listed?.migDevices ?? []).filter((m) => m.profile === profile && !seen.has(m.uuid));
    return fresh.length === 1 ? fresh[0]?.uuid : undefined;
  }

  private async migUuid(gpu: number, gi: number, ci: number): Promise<string> {
    const { result } = await this.runTolerant(['-q', '-x', '-i', String(gpu)]);
    const xml = parseQueryXml(result.stdout);
    const device = xml.gpus[0]?.migDevices.find((d) => d.gpuInstanceId === gi && d.computeInstanceId === ci);
    const listed = (await this.list()).find((g) => g.index === gpu);
    const fromList = listed?.migDevices.find((m) => (device !== undefined && m.index === device.index) || (m.gpuInstanceId === gi && m.computeInstanceId === ci));
    if (!fromList) {
      throw new NvidiaSmiError('nvidia-smi -L', 'other', 0, `no MIG device listed for GPU ${gpu} GPU instance ${gi} compute instance ${ci}`);
    }
    return fromList.uuid;
  }

  async destroyMigDevice(request: DestroyMigRequest): Promise<void> {
    const gpu = checkSmallInt('GPU index', request.gpuIndex, 63);
    const gi = checkSmallInt('GPU instance ID', request.gpuInstanceId, 63);
    const ci = checkSmallInt('compute instance ID', request.computeInstanceId, 63);
    return this.mutations.run(() => this.destroyBoth(gpu, gi, ci));
  }

  private async destroyBoth(gpu: number, gi: number, ci: number): Promise<void> {
    try {
      const r = await this.run(['mig', '-i', String(gpu), '-dci', '-ci', String(ci), '-gi', String(gi)]);
      parseDestroyOutput(r.stdout, r.command);
    } catch (err: unknown) {
      if (!(err instanceof NvidiaSmiError && err.kind === 'not-found')) throw err;
    }
    await this.destroyGpuInstance(gpu, gi);
  }

  private async destroyGpuInstance(gpu: number, gi: number): Promise<void> {
    try {
      const r = await this.run(['mig', '-i', String(gpu), '-dgi', '-gi', String(gi)]);
      parseDestroyOutput(r.stdout, r.command);
    } catch (err: unknown) {
      if (!(err instanceof NvidiaSmiError && err.kind === 'not-found')) throw err;
    }
  }

  async setMigMode(gpuIndex: number, enabled: boolean): Promise<MigModeState> {
    const gpu = checkSmallInt('GPU index', gpuIndex, 63);
    return this.mutations.run(async () => {
      // A pending change prints a warning and still ends "All done.": re-read the mode.
      await this.run(['-i', String(gpu), '-mig', enabled ? '1' : '0']);
      const r = await this.run(['-i', String(gpu), ...queryGpuArgs()]);
      const row = parseQueryGpu(r.stdout, r.command)[0];
      if (!row) throw new NvidiaSmiError(r.command, 'other', 0, `GPU ${gpu} is not listed`);
      return { current: row.migCurrent, pending: row.migPending };
    });
  }

  async setTimeSlice(gpuIndex: number, slice: 0 | 1 | 2 | 3): Promise<void> {
    const gpu = checkSmallInt('GPU index', gpuIndex, 63);
    const value = checkSmallInt('time slice', slice, 3);
    await this.mutations.run(async () => {
      await this.run(['compute-policy', '-i', String(gpu), `--set-timeslice=${value}`]);
    });
  }

  async computeProcesses(): Promise<ComputeProcess[]> {
    const r = await this.run(['--query-compute-apps=pid,process_name,gpu_uuid', '--format=csv,noheader'], [6]);
    if (r.exitCode === 6) return [];
    const out: ComputeProcess[] = [];
    for (const [i, line] of r.stdout.split('\n').entries()) {
      if (line.trim() === '' || /No running processes found/i.test(line)) continue;
      const parts = line.split(',').map((p) => p.trim());
      const pid = Number(parts[0]);
      const uuid = parts[parts.length - 1] ?? '';
      if (parts.length < 3 || !Number.isSafeInteger(pid) || !/^GPU-[0-9a-fA-F-]+$/.test(uuid)) {
        throw new NvidiaSmiError(r.command, 'other', 0, `line ${i + 1} is not "pid, process_name, gpu_uuid": ${JSON.stringify(line.slice(0, 120))}`);
      }
      out.push({ pid, name: parts.slice(1, -1).join(','), gpuUuid: uuid });
    }
    return out;
  }

  async health(): Promise<GpuHealth[]> {
    const { result, lost } = await this.runTolerant(['-q', '-x']);
    const out: GpuHealth[] = lost.map((l) => ({
      uuid: undefined,
      pciBusId: l.pciBusId ?? 'unknown',
      healthy: false,
      reason: `nvidia-smi cannot reach the GPU: ${l.message}`,
    }));
    let xml: XmlLog;
    try {
      xml = parseQueryXml(result.stdout);
    } catch (err: unknown) {
      if (lost.length > 0) return out; // output cut short by the lost GPU
      throw err;
    }
    for (const g of xml.gpus) {
      let reason: string | undefined;
      if (g.uncorrectableEccErrors !== undefined && g.uncorrectableEccErrors > 0) {
        reason = `${g.uncorrectableEccErrors} uncorrectable ECC error(s) since the driver loaded`;
      } else if (g.recoveryAction !== undefined && g.recoveryAction !== 'None') {
        reason = `nvidia-smi asks for recovery action ${g.recoveryAction}`;
      }
      out.push({ uuid: g.uuid, pciBusId: g.pciBusId, healthy: reason === undefined, reason });
    }
    return out;
  }
}
