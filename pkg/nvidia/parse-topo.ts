// Parser for `nvidia-smi topo -m`: the GPU rows of the tab-separated matrix,
// giving NVLink peers and NUMA affinity per GPU.
import { NvidiaSmiParseError } from './errors.js';
import { readInt, splitLines, stripAnsi } from './parse-common.js';
import type { TopologyRow } from './types.js';

const COMMAND = 'nvidia-smi topo -m';
const LINK = /^(X|NV\d+|PIX|PXB|PHB|NODE|SYS|SOC|N\/A)$/;

/**
 * Parses `topo -m`. The header carries ANSI codes. The trailing columns are
 * read by position from the end of the matrix, empty cells included: a GPU
 * without CPU affinity has an empty "CPU Affinity" cell, and skipping empty
 * cells would read its NUMA node as the CPU list. Rows may also have an extra
 * empty cell before "GPU NUMA ID" (seen on R590); it comes after the two
 * columns read here.
 */
export function parseTopology(text: string): TopologyRow[] {
  const lines = splitLines(text);
  const headerIndex = lines.findIndex((l) => /\bCPU Affinity\b/.test(stripAnsi(l)));
  if (headerIndex < 0) {
    const first = lines.findIndex((l) => l.trim() !== '');
    throw new NvidiaSmiParseError(COMMAND, first + 1, lines[first] ?? '', 'no header row with a "CPU Affinity" column');
  }
  const header = stripAnsi(lines[headerIndex] ?? '')
    .split('\t')
    .map((c) => c.trim());
  // The first header cell is the empty corner; device columns follow until the affinity columns.
  const deviceColumns: string[] = [];
  for (const cell of header.slice(1)) {
    if (/^(GPU|NIC|mlx|NVS)\w*$/.test(cell)) deviceColumns.push(cell);
    else break;
  }
  const trailing = header.slice(1 + deviceColumns.length);
  const numaColumn = trailing.indexOf('NUMA Affinity');
  const cpuColumn = trailing.indexOf('CPU Affinity');

  const rows: TopologyRow[] = [];
  for (let i = headerIndex + 1; i < lines.length; i++) {
    const line = stripAnsi(lines[i] ?? '');
    if (line.trim() === '') break; // the legend follows a blank line
    const cells = line.split('\t').map((c) => c.trim());
    const label = cells[0] ?? '';
    if (!/^GPU\d+$/.test(label)) {
      if (/^(NIC|mlx|NVS)\w*$/.test(label)) continue;
      throw new NvidiaSmiParseError(COMMAND, i + 1, lines[i] ?? '', `unexpected row label ${JSON.stringify(label)}`);
    }
    const gpuIndex = readInt(COMMAND, i + 1, lines[i] ?? '', label.slice(3), 'GPU index');
    if (cells.length < 1 + deviceColumns.length) {
      throw new NvidiaSmiParseError(COMMAND, i + 1, lines[i] ?? '', `expected ${deviceColumns.length} matrix cells, found ${cells.length - 1}`);
    }
    const links = new Map<number, string>();
    deviceColumns.forEach((col, j) => {
      const cell = cells[1 + j] ?? '';
      if (!LINK.test(cell)) {
        throw new NvidiaSmiParseError(COMMAND, i + 1, lines[i] ?? '', `link ${JSON.stringify(cell)} to ${col} is not a known connection type`);
      }
      const peer = /^GPU(\d+)$/.exec(col);
      if (peer?.[1] && cell !== 'X') links.set(Number(peer[1]), cell);
    });
    const tail = cells.slice(1 + deviceColumns.length);
    const cpuText = cpuColumn >= 0 ? tail[cpuColumn] : undefined;
    const cpu = cpuText === '' ? undefined : cpuText;
    const numaRaw = numaColumn >= 0 ? tail[numaColumn] : undefined;
    const numaText = numaRaw === '' ? undefined : numaRaw;
    let numaNode: number | undefined;
    // A GPU close to several NUMA nodes ("0-1") has no single node to publish.
    if (numaText !== undefined && numaText !== 'N/A' && !/^\d+([,-]\d+)+$/.test(numaText)) {
      numaNode = readInt(COMMAND, i + 1, lines[i] ?? '', numaText, 'NUMA affinity');
    }
    rows.push({ gpuIndex, links, cpuAffinity: cpu === 'N/A' ? undefined : cpu, numaNode });
  }
  if (rows.length === 0) {
    throw new NvidiaSmiParseError(COMMAND, headerIndex + 1, lines[headerIndex] ?? '', 'no GPU rows under the header');
  }
  return rows;
}

/** GPU indexes connected to the given GPU by NVLink. */
export function nvlinkPeers(row: TopologyRow): number[] {
  return [...row.links.entries()]
    .filter(([, kind]) => /^NV\d+$/.test(kind))
    .map(([peer]) => peer)
    .sort((a, b) => a - b);
}
