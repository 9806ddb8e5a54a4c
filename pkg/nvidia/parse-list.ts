// Parser for `nvidia-smi -L`: GPU lines, the MIG device lines indented under
// them (R470+ and pre-R470 forms), and the "GPU is lost" lines of a broken GPU.
import { NvidiaSmiParseError } from './errors.js';
import { normalizePciBusId, splitLines } from './parse-common.js';
import type { ListedGpu, ListedMigDevice } from './types.js';

const COMMAND = 'nvidia-smi -L';

const GPU_LINE = /^GPU\s+(\d+):\s+(.+?)\s+\(UUID:\s+(GPU-[0-9A-Za-z-]+)\)\s*$/;
// "  MIG 3g.40gb     Device  0: (UUID: MIG-...)"; pre-R470: "MIG-GPU-<uuid>/<gi>/<ci>".
const MIG_LINE = /^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s+\(UUID:\s+(MIG-[^)\s]+)\)\s*$/;
const LEGACY_MIG_UUID = /^MIG-GPU-[0-9A-Za-z-]+\/(\d+)\/(\d+)$/;

/** A GPU nvidia-smi could not reach, with its own words. */
export interface LostGpu {
  readonly pciBusId: string | undefined;
  readonly message: string;
}

// "Unable to determine the device handle for GPU0000:CA:00.0: GPU is lost.  Reboot ..."
const LOST_LINE = /^Unable to determine the device handle for (?:gpu|GPU)\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*:\s*(.+)$/;

/** Lines in any output that report a GPU nvidia-smi could not reach. */
export function findLostGpus(output: string): LostGpu[] {
  const lost: LostGpu[] = [];
  for (const line of splitLines(output)) {
    const m = LOST_LINE.exec(line.trim());
    if (m?.[1] && m[2]) lost.push({ pciBusId: normalizePciBusId(m[1]), message: m[2].trim() });
  }
  return lost;
}

/** Removes "Unable to determine the device handle" lines so the rest can be parsed. */
export function withoutLostGpuLines(output: string): string {
  return splitLines(output)
    .filter((l) => !LOST_LINE.test(l.trim()))
    .join('\n');
}

/** Parses `nvidia-smi -L`. */
export function parseList(text: string): ListedGpu[] {
  const gpus: { index: number; name: string; uuid: string; migDevices: ListedMigDevice[] }[] = [];
  splitLines(text).forEach((line, i) => {
    if (line.trim() === '') return;
    const g = GPU_LINE.exec(line);
    if (g?.[1] && g[2] && g[3]) {
      gpus.push({ index: Number(g[1]), name: g[2], uuid: g[3], migDevices: [] });
      return;
    }
    const m = MIG_LINE.exec(line);
    if (m?.[1] && m[2] && m[3]) {
      const parent = gpus[gpus.length - 1];
      if (!parent) throw new NvidiaSmiParseError(COMMAND, i + 1, line, 'MIG device listed before any GPU');
      const legacy = LEGACY_MIG_UUID.exec(m[3]);
      parent.migDevices.push({
        index: Number(m[2]),
        profile: m[1],
        uuid: m[3],
        gpuInstanceId: legacy?.[1] ? Number(legacy[1]) : undefined,
        computeInstanceId: legacy?.[2] ? Number(legacy[2]) : undefined,
      });
      return;
    }
    throw new NvidiaSmiParseError(COMMAND, i + 1, line, 'neither a GPU line nor a MIG device line');
  });
  return gpus;
}
