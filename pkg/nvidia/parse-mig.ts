// Parsers for `nvidia-smi mig` output: the profile table (-lgip), placements
// (-lgipp), instance tables (-lgi, -lci) and the create/destroy result lines.
import { NvidiaSmiParseError } from './errors.js';
import { computeSlicesOf, readInt, splitLines } from './parse-common.js';
import type { ComputeInstance, GpuInstance, MigProfileRow, Placement, ProfilePlacements } from './types.js';

const NO_MIG = /^No MIG-enabled devices found\.?$/;
const NO_GI = /^No GPU instances found(: Not Found)?\.?$/;
const NO_CI = /^No compute instances found(: Not Found)?\.?$/;

/**
 * Walks a box table: lines up to the "|===|" rule are the header; after it,
 * every line is a "+---+" separator or a data line handed to `row`.
 */
function readBoxTable(command: string, text: string, empty: RegExp, row: (line: string, n: number) => void): void {
  const lines = splitLines(text);
  const nonBlank = lines.map((l, i) => [l, i] as const).filter(([l]) => l.trim() !== '');
  if (nonBlank.length === 0) throw new NvidiaSmiParseError(command, 0, '', 'empty output');
  if (nonBlank.length === 1 && empty.test((nonBlank[0]?.[0] ?? '').trim())) return;
  let inBody = false;
  for (const [line, i] of nonBlank) {
    const t = line.replace(/\t/g, ' ').trimEnd();
    if (!inBody) {
      if (/^\|=+\|$/.test(t)) inBody = true;
      else if (!/^[+|]/.test(t)) throw new NvidiaSmiParseError(command, i + 1, line, 'expected a table line');
      continue;
    }
    if (/^\+-+\+$/.test(t)) continue;
    row(t, i + 1);
  }
  if (!inBody) throw new NvidiaSmiParseError(command, nonBlank.length, nonBlank[nonBlank.length - 1]?.[0] ?? '', 'table has no "|===|" rule');
}

// "|   0  MIG 1g.10gb       19     7/7        9.75       No     16     1     0   |"
const LGIP_ROW = /^\|\s*(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\/(\d+)\s+(\d+(?:\.\d+)?)\s+(Yes|No|N\/A)\s+(\d+)\s+(\d+)\s+(\d+)\s*\|$/;
// "|                                                             1     1     0   |"
const LGIP_CONT = /^\|\s+(\d+)\s+(\d+)\s+(\d+)\s*\|$/;

/**
 * -lgip prints memory in GiB with two decimals; MIG memory sizes are whole
 * multiples of 32 MiB, which recovers the exact MiB the instances report.
 */
function gibToMiB(gib: string): number {
  return Math.round((Number(gib) * 1024) / 32) * 32;
}

/** Parses `nvidia-smi mig -lgip`. */
export function parseProfiles(text: string, command = 'nvidia-smi mig -lgip'): MigProfileRow[] {
  const out: MigProfileRow[] = [];
  let pending: { m: RegExpExecArray; line: string; n: number } | undefined;
  readBoxTable(command, text, NO_MIG, (line, n) => {
    if (pending) {
      const c = LGIP_CONT.exec(line);
      if (!c) throw new NvidiaSmiParseError(command, n, line, 'expected the CE/JPEG/OFA line of the profile above');
      const m = pending.m;
      const name = m[2] ?? '';
      const computeSlices = computeSlicesOf(name);
      if (computeSlices === undefined) throw new NvidiaSmiParseError(command, pending.n, pending.line, `profile name ${JSON.stringify(name)} has no <n>g compute size`);
      out.push({
        gpuIndex: Number(m[1]),
        name,
        id: Number(m[3]),
        instancesFree: Number(m[4]),
        instancesTotal: Number(m[5]),
        memoryMiB: gibToMiB(m[6] ?? '0'),
        p2p: m[7] === 'Yes',
        multiprocessors: Number(m[8]),
        computeSlices,
        engines: {
          decoders: Number(m[9]),
          encoders: Number(m[10]),
          copyEngines: Number(c[1]),
          jpegEngines: Number(c[2]),
          ofaEngines: Number(c[3]),
        },
      });
      pending = undefined;
      return;
    }
    const m = LGIP_ROW.exec(line);
    if (!m) throw new NvidiaSmiParseError(command, n, line, 'not a GPU instance profile row');
    pending = { m, line, n };
  });
  if (pending) throw new NvidiaSmiParseError(command, pending.n, pending.line, 'profile row without its CE/JPEG/OFA line');
  return out;
}

// "GPU  0 Profile ID 15 Placements: {0,2,4,6}:2" and "GPU  0 Profile ID  0 Placement : {0}:8"
const LGIPP_LINE = /^GPU\s+(\d+)\s+Profile ID\s+(\d+)\s+Placements?\s*:\s*\{([\d,\s]*)\}:(\d+)\s*$/;

/** Parses `nvidia-smi mig -lgipp`. */
export function parsePlacements(text: string, command = 'nvidia-smi mig -lgipp'): ProfilePlacements[] {
  const out: ProfilePlacements[] = [];
  const lines = splitLines(text);
  for (const [i, line] of lines.entries()) {
    const t = line.trim();
    if (t === '') continue;
    if (NO_MIG.test(t)) {
      if (out.length === 0 && lines.every((l, j) => j === i || l.trim() === '')) return [];
      throw new NvidiaSmiParseError(command, i + 1, line, 'unexpected "No MIG-enabled devices found" among placements');
    }
    const m = LGIPP_LINE.exec(t);
    if (!m) throw new NvidiaSmiParseError(command, i + 1, line, 'not a "GPU <n> Profile ID <id> Placements: {...}:<size>" line');
    const size = readInt(command, i + 1, line, m[4] ?? '', 'placement size');
    const starts = (m[3] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => readInt(command, i + 1, line, s, 'placement start'));
    out.push({
      gpuIndex: Number(m[1]),
      profileId: Number(m[2]),
      placements: starts.map((start): Placement => ({ start, size })),
    });
  }
  return out;
}

// "|   0  MIG 3g.40gb          9        2          0:4     |"
const LGI_ROW = /^\|\s*(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|$/;

/** Parses `nvidia-smi mig -lgi`. */
export function parseGpuInstances(text: string, command = 'nvidia-smi mig -lgi'): GpuInstance[] {
  const out: GpuInstance[] = [];
  readBoxTable(command, text, NO_GI, (line, n) => {
    const m = LGI_ROW.exec(line);
    if (!m) throw new NvidiaSmiParseError(command, n, line, 'not a GPU instance row');
    out.push({
      gpuIndex: Number(m[1]),
      profile: m[2] ?? '',
      profileId: Number(m[3]),
      instanceId: Number(m[4]),
      placement: { start: Number(m[5]), size: Number(m[6]) },
    });
  });
  return out;
}

// "|   0      2       MIG 3g.40gb          2         0          0:3     |"
const LCI_ROW = /^\|\s*(\d+)\s+(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|$/;

/** Parses `nvidia-smi mig -lci`. */
export function parseComputeInstances(text: string, command = 'nvidia-smi mig -lci'): ComputeInstance[] {
  const out: ComputeInstance[] = [];
  readBoxTable(command, text, NO_CI, (line, n) => {
    const m = LCI_ROW.exec(line);
    if (!m) throw new NvidiaSmiParseError(command, n, line, 'not a compute instance row');
    out.push({
      gpuIndex: Number(m[1]),
      gpuInstanceId: Number(m[2]),
      profile: m[3] ?? '',
      profileId: Number(m[4]),
      instanceId: Number(m[5]),
      placement: { start: Number(m[6]), size: Number(m[7]) },
    });
  });
  return out;
}

/** True when output only says MIG is off everywhere (or no instance exists). */
export function saysNothingToList(text: string): boolean {
  const t = text.trim();
  return NO_MIG.test(t) || NO_GI.test(t) || NO_CI.test(t);
}

export interface CreatedInstances {
  readonly gpuIndex: number;
  readonly gpuInstanceId: number;
  readonly profile: string;
  readonly profileId: number;
  readonly computeInstanceId: number | undefined;
  readonly computeProfileId: number | undefined;
}

const CREATED_GI = /^Successfully created GPU instance ID\s+(\d+) on GPU\s+(\d+) using profile MIG (\S+) \(ID\s+(\d+)\)$/;
const CREATED_CI = /^Successfully created compute instance ID\s+(\d+) on GPU\s+(\d+) GPU instance ID\s+(\d+) using profile MIG (\S+) \(ID\s+(\d+)\)$/;

/** Parses the output of `mig -i <gpu> -cgi <profile>[:<start>] -C`. */
export function parseCreateOutput(text: string, command = 'nvidia-smi mig -cgi'): CreatedInstances {
  let gi: { gpu: number; id: number; profile: string; profileId: number } | undefined;
  let ci: { id: number; profileId: number } | undefined;
  const lines = splitLines(text);
  for (const [i, line] of lines.entries()) {
    const t = line.trim();
    if (t === '') continue;
    const g = CREATED_GI.exec(t);
    if (g) {
      if (gi) throw new NvidiaSmiParseError(command, i + 1, line, 'more than one GPU instance created; expected exactly one');
      gi = { id: Number(g[1]), gpu: Number(g[2]), profile: g[3] ?? '', profileId: Number(g[4]) };
      continue;
    }
    const c = CREATED_CI.exec(t);
    if (c) {
      if (!gi || Number(c[3]) !== gi.id || Number(c[2]) !== gi.gpu) {
        throw new NvidiaSmiParseError(command, i + 1, line, 'compute instance does not belong to the GPU instance just created');
      }
      ci = { id: Number(c[1]), profileId: Number(c[5]) };
      continue;
    }
    throw new NvidiaSmiParseError(command, i + 1, line, 'not a "Successfully created" line');
  }
  if (!gi) throw new NvidiaSmiParseError(command, 0, '', 'no "Successfully created GPU instance" line');
  return {
    gpuIndex: gi.gpu,
    gpuInstanceId: gi.id,
    profile: gi.profile,
    profileId: gi.profileId,
    computeInstanceId: ci?.id,
    computeProfileId: ci?.profileId,
  };
}

const DESTROYED_CI = /^Successfully destroyed compute instance ID\s+(\d+) from GPU\s+(\d+) GPU instance ID\s+(\d+)$/;
const DESTROYED_GI = /^Successfully destroyed GPU instance ID\s+(\d+) from GPU\s+(\d+)$/;

export interface DestroyedInstance {
  readonly kind: 'compute' | 'gpu';
  readonly gpuIndex: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number | undefined;
}

/** Parses the output of `mig -dci` or `mig -dgi`. */
export function parseDestroyOutput(text: string, command = 'nvidia-smi mig -dgi'): DestroyedInstance[] {
  const out: DestroyedInstance[] = [];
  for (const [i, line] of splitLines(text).entries()) {
    const t = line.trim();
    if (t === '') continue;
    const c = DESTROYED_CI.exec(t);
    if (c) {
      out.push({ kind: 'compute', computeInstanceId: Number(c[1]), gpuIndex: Number(c[2]), gpuInstanceId: Number(c[3]) });
      continue;
    }
    const g = DESTROYED_GI.exec(t);
    if (g) {
      out.push({ kind: 'gpu', gpuInstanceId: Number(g[1]), gpuIndex: Number(g[2]), computeInstanceId: undefined });
      continue;
    }
    throw new NvidiaSmiParseError(command, i + 1, line, 'not a "Successfully destroyed" line');
  }
  if (out.length === 0) throw new NvidiaSmiParseError(command, 0, '', 'no "Successfully destroyed" line');
  return out;
}
