// Parser for `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`
// (it also reads the header/units variant, which the captures use).
import { NvidiaSmiParseError } from './errors.js';
import { isMissing, normalizePciBusId, present, readInt, readMiB, splitLines } from './parse-common.js';
import type { MigMode } from './types.js';

/** The fields the backend asks for, in this order. */
export const QUERY_GPU_FIELDS = ['index', 'uuid', 'name', 'pci.bus_id', 'memory.total', 'mig.mode.current', 'mig.mode.pending', 'driver_version', 'compute_cap'] as const;

export type QueryGpuField = (typeof QUERY_GPU_FIELDS)[number];

/** The command line for the field list, as nvidia-smi takes it. */
export function queryGpuArgs(fields: readonly string[] = QUERY_GPU_FIELDS): string[] {
  return [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'];
}

/**
 * Splits CSV output into one record per GPU, keyed by field name; a missing
 * value ("[N/A]", "N/A", "[Not Supported]", empty, ...) becomes undefined.
 */
export function parseQueryCsv(text: string, fields: readonly string[], command = 'nvidia-smi --query-gpu'): ReadonlyArray<Readonly<Record<string, string | undefined>>> {
  const rows: Record<string, string | undefined>[] = [];
  const lines = splitLines(text);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const cells = line.split(', ');
    // A header (format=csv without noheader) names the fields, perhaps with units.
    if (i === 0 && cells.length === fields.length && cells.every((c, j) => c.replace(/\s*\[[^\]]*\]$/, '') === fields[j])) {
      return;
    }
    if (cells.length !== fields.length) {
      throw new NvidiaSmiParseError(command, i + 1, line, `expected ${fields.length} comma-separated values, found ${cells.length}`);
    }
    const row: Record<string, string | undefined> = {};
    fields.forEach((f, j) => {
      const cell = cells[j];
      row[f] = isMissing(cell) ? undefined : cell?.trim();
    });
    rows.push(row);
  });
  return rows;
}

/** One GPU as `--query-gpu` with QUERY_GPU_FIELDS describes it. */
export interface QueryGpuRow {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  readonly pciBusId: string;
  readonly memoryMiB: number;
  readonly migCurrent: MigMode;
  readonly migPending: MigMode;
  readonly driverVersion: string;
  readonly computeCapability: string | undefined;
}

function readMigMode(command: string, n: number, line: string, value: string | undefined): MigMode {
  if (value === undefined) return 'N/A';
  if (value === 'Enabled' || value === 'Disabled') return value;
  throw new NvidiaSmiParseError(command, n, line, `MIG mode ${JSON.stringify(value)} is neither Enabled, Disabled nor N/A`);
}

/** Parses the output of `queryGpuArgs()` into typed rows. */
export function parseQueryGpu(text: string, command = `nvidia-smi ${queryGpuArgs().join(' ')}`): QueryGpuRow[] {
  const records = parseQueryCsv(text, QUERY_GPU_FIELDS, command);
  const lines = splitLines(text).filter((l) => l.trim() !== '');
  const offset = lines.length - records.length; // 1 when a header line was skipped
  return records.map((r, i) => {
    const n = i + 1 + offset;
    const line = lines[i + offset] ?? '';
    const need = (field: QueryGpuField): string => {
      const v = r[field];
      if (v === undefined) throw new NvidiaSmiParseError(command, n, line, `${field} is missing`);
      return v;
    };
    const busId = normalizePciBusId(need('pci.bus_id'));
    if (busId === undefined) throw new NvidiaSmiParseError(command, n, line, `pci.bus_id ${JSON.stringify(r['pci.bus_id'])} is not a PCI address`);
    const cc = present(r.compute_cap);
    if (cc !== undefined && !/^\d+\.\d+$/.test(cc)) {
      throw new NvidiaSmiParseError(command, n, line, `compute_cap ${JSON.stringify(cc)} is not <major>.<minor>`);
    }
    return {
      index: readInt(command, n, line, need('index'), 'index'),
      uuid: need('uuid'),
      name: need('name'),
      pciBusId: busId,
      memoryMiB: readMiB(command, n, line, need('memory.total'), 'memory.total'),
      migCurrent: readMigMode(command, n, line, r['mig.mode.current']),
      migPending: readMigMode(command, n, line, r['mig.mode.pending']),
      driverVersion: need('driver_version'),
      computeCapability: cc,
    };
  });
}
