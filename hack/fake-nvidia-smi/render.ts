// Output of the simulator in nvidia-smi's formats (the real captures are the
// reference): -L, --query-gpu CSV, -q -x, topo -m and the mig tables.
import { type CatalogProfile, migCapable } from '../../pkg/nvidia/catalog.js';
import type { ResolvedConfig, ResolvedGpu } from './config.js';
import { type FakeGpuInstance, freeInstances, profileById } from './mig.js';
import type { FakeGpuState } from './state.js';

/** One GPU as the renderers see it. */
export interface GpuView {
  readonly gpu: ResolvedGpu;
  readonly state: FakeGpuState;
  readonly eccErrors: number;
}

/** MIG devices of a GPU in the driver's order (by GPU instance, then compute instance). */
export function migDevicesOf(view: GpuView): { gi: FakeGpuInstance; ci: FakeGpuInstance['computeInstances'][number]; profile: CatalogProfile; index: number }[] {
  const out: { gi: FakeGpuInstance; ci: FakeGpuInstance['computeInstances'][number]; profile: CatalogProfile; index: number }[] = [];
  const gis = [...view.state.gpuInstances].sort((a, b) => a.id - b.id);
  for (const gi of gis) {
    const profile = profileById(view.gpu.model, gi.profileId);
    if (!profile) continue;
    for (const ci of [...gi.computeInstances].sort((a, b) => a.id - b.id)) {
      out.push({ gi, ci, profile, index: out.length });
    }
  }
  return out;
}

// ---- -L ----

export function renderList(views: readonly GpuView[]): string {
  const lines: string[] = [];
  for (const v of views) {
    lines.push(`GPU ${v.gpu.index}: ${v.gpu.model.productName} (UUID: ${v.gpu.uuid})`);
    for (const d of migDevicesOf(v)) {
      // "Device" starts at column 18, the index is right-aligned to width 2.
      lines.push(`  MIG ${d.profile.name.padEnd(11)} Device ${String(d.index).padStart(2)}: (UUID: ${d.ci.uuid})`);
    }
  }
  return lines.join('\n') + '\n';
}

// ---- --query-gpu ----

interface FieldSpec {
  readonly unit?: string;
  readonly value: (v: GpuView, c: ResolvedConfig) => string;
}

const usedMiB = (v: GpuView): number => (v.state.migCurrent === 'Enabled' ? 59 : 0);
const reservedMiB = (v: GpuView): number => Math.round(v.gpu.model.memoryMiB * 0.0059);

export const QUERY_FIELDS: Readonly<Record<string, FieldSpec>> = {
  timestamp: { value: () => formatTimestamp(new Date()) },
  driver_version: { value: (_v, c) => c.driverVersion },
  count: { value: (_v, c) => String(c.gpus.length) },
  name: { value: (v) => v.gpu.model.productName },
  serial: { value: (v) => String(1650000000001 + v.gpu.index) },
  uuid: { value: (v) => v.gpu.uuid },
  'pci.bus_id': { value: (v) => v.gpu.pciBusId },
  'pci.domain': { value: (v) => `0x${v.gpu.pciBusId.slice(4, 8)}` },
  'pci.bus': { value: (v) => `0x${v.gpu.pciBusId.slice(9, 11)}` },
  'pci.device': { value: (v) => `0x${v.gpu.pciBusId.slice(12, 14)}` },
  'pci.device_id': { value: (v) => `0x${v.gpu.model.pciDeviceId}` },
  index: { value: (v) => String(v.gpu.index) },
  persistence_mode: { value: () => 'Enabled' },
  pstate: { value: () => 'P0' },
  'memory.total': { unit: 'MiB', value: (v) => String(v.gpu.model.memoryMiB) },
  'memory.reserved': { unit: 'MiB', value: (v) => String(reservedMiB(v)) },
  'memory.used': { unit: 'MiB', value: (v) => String(usedMiB(v)) },
  'memory.free': { unit: 'MiB', value: (v) => String(v.gpu.model.memoryMiB - reservedMiB(v) - usedMiB(v)) },
  compute_mode: { value: () => 'Default' },
  compute_cap: { value: (v) => v.gpu.model.computeCapability },
  'utilization.gpu': { unit: '%', value: (v) => (v.state.migCurrent === 'Enabled' ? '[N/A]' : '0') },
  'utilization.memory': { unit: '%', value: (v) => (v.state.migCurrent === 'Enabled' ? '[N/A]' : '0') },
  'ecc.mode.current': { value: () => 'Enabled' },
  'ecc.mode.pending': { value: () => 'Enabled' },
  'ecc.errors.uncorrected.volatile.total': { value: (v) => String(v.eccErrors) },
  'temperature.gpu': { value: (v) => String(33 + v.gpu.index) },
  'power.draw': { unit: 'W', value: () => '71.15' },
  'mig.mode.current': { value: (v) => (migCapable(v.gpu.model) ? v.state.migCurrent : '[N/A]') },
  'mig.mode.pending': { value: (v) => (migCapable(v.gpu.model) ? v.state.migPending : '[N/A]') },
};

function formatTimestamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function renderQueryGpu(views: readonly GpuView[], config: ResolvedConfig, fields: readonly string[], header: boolean, units: boolean): string {
  const lines: string[] = [];
  if (header) {
    lines.push(fields.map((f) => (QUERY_FIELDS[f]?.unit ? `${f} [${QUERY_FIELDS[f]?.unit}]` : f)).join(', '));
  }
  for (const v of views) {
    lines.push(
      fields
        .map((f) => {
          const spec = QUERY_FIELDS[f];
          if (!spec) return '[N/A]';
          const value = spec.value(v, config);
          return units && spec.unit && !value.startsWith('[') ? `${value} ${spec.unit}` : value;
        })
        .join(', '),
    );
  }
  return lines.join('\n') + '\n';
}

// ---- -q -x ----

/** [name, text or children, attributes, text on its own line (as "None" in mig_devices)]. */
type X = readonly [string, string | readonly X[], string?, 'block'?];

function renderXml(node: X, depth: number, out: string[]): void {
  const [name, content, attrs, block] = node;
  const pad = '\t'.repeat(depth);
  const open = attrs ? `<${name} ${attrs}>` : `<${name}>`;
  if (typeof content === 'string') {
    if (block) out.push(`${pad}${open}`, `${pad}\t${content}`, `${pad}</${name}>`);
    else out.push(`${pad}${open}${content}</${name}>`);
    return;
  }
  out.push(`${pad}${open}`);
  for (const child of content) renderXml(child, depth + 1, out);
  out.push(`${pad}</${name}>`);
}

function migDevicesXml(v: GpuView): X {
  const devices = migDevicesOf(v);
  if (devices.length === 0) return ['mig_devices', 'None', undefined, 'block'];
  return [
    'mig_devices',
    devices.map((d): X => [
      'mig_device',
      [
        ['index', String(d.index)],
        ['gpu_instance_id', String(d.gi.id)],
        ['compute_instance_id', String(d.ci.id)],
        [
          'device_attributes',
          [
            [
              'shared',
              [
                ['multiprocessor_count', String(d.profile.multiprocessors)],
                ['copy_engine_count', String(d.profile.engines.copyEngines)],
                ['encoder_count', String(d.profile.engines.encoders)],
                ['decoder_count', String(d.profile.engines.decoders)],
                ['ofa_count', String(d.profile.engines.ofaEngines)],
                ['jpg_count', String(d.profile.engines.jpegEngines)],
              ],
            ],
          ],
        ],
        ['ecc_error_count', [['volatile_count', [['sram_uncorrectable', '0']]]]],
        [
          'fb_memory_usage',
          [
            ['total', `${d.profile.memoryMiB} MiB`],
            ['reserved', '0 MiB'],
            ['used', '9 MiB'],
            ['free', `${d.profile.memoryMiB - 9} MiB`],
          ],
        ],
        [
          'bar1_memory_usage',
          [
            ['total', `${Math.round(d.profile.memoryMiB * 0.61)} MiB`],
            ['used', '0 MiB'],
            ['free', `${Math.round(d.profile.memoryMiB * 0.61)} MiB`],
          ],
        ],
      ],
    ]),
  ];
}

function gpuXml(v: GpuView, config: ResolvedConfig): X {
  const g = v.gpu;
  const m = g.model;
  const bus = g.pciBusId;
  const mig = v.state.migCurrent === 'Enabled';
  const reserved = reservedMiB(v);
  const used = usedMiB(v);
  const na = 'N/A';
  return [
    'gpu',
    [
      ['product_name', m.productName],
      ['product_brand', m.brand],
      ['product_architecture', m.architecture],
      ['display_mode', 'Requested functionality has been deprecated'],
      ['display_attached', 'No'],
      ['display_active', 'Disabled'],
      ['persistence_mode', 'Enabled'],
      ['addressing_mode', 'HMM'],
      [
        'mig_mode',
        [
          ['current_mig', migCapable(m) ? v.state.migCurrent : na],
          ['pending_mig', migCapable(m) ? v.state.migPending : na],
        ],
      ],
      migDevicesXml(v),
      ['accounting_mode', 'Disabled'],
      ['accounting_mode_buffer_size', '4000'],
      [
        'driver_model',
        [
          ['current_dm', na],
          ['pending_dm', na],
        ],
      ],
      ['serial', String(1650000000001 + g.index)],
      ['uuid', g.uuid],
      ['pdi', `0x${(g.index + 1).toString(16).padStart(16, '0')}`],
      ['minor_number', String(g.minor)],
      ['vbios_version', '96.00.99.00.01'],
      ['multigpu_board', 'No'],
      ['board_id', `0x${bus.slice(9, 11)}00`],
      ['gpu_part_number', `${m.pciDeviceId.slice(0, 4)}-885-A1`],
      ['gpu_fru_part_number', na],
      [
        'inforom_version',
        [
          ['img_version', 'G520.0200.00.05'],
          ['oem_object', '2.1'],
          ['ecc_object', '7.16'],
          ['pwr_object', na],
        ],
      ],
      ['c2c_mode', 'Disabled'],
      ['gpu_recovery_action', v.eccErrors > 0 ? 'Reset' : 'None'],
      ['gsp_firmware_version', config.driverVersion],
      [
        'pci',
        [
          ['pci_bus', bus.slice(9, 11)],
          ['pci_device', bus.slice(12, 14)],
          ['pci_domain', bus.slice(4, 8)],
          ['pci_base_class', '3'],
          ['pci_sub_class', '2'],
          ['pci_device_id', m.pciDeviceId],
          ['pci_bus_id', bus],
          ['pci_sub_system_id', `16C1${m.pciDeviceId.slice(4)}`],
        ],
      ],
      ['fan_speed', na],
      ['performance_state', 'P0'],
      ['sparse_operation_mode', 'Disabled'],
      [
        'fb_memory_usage',
        [
          ['total', `${m.memoryMiB} MiB`],
          ['reserved', `${reserved} MiB`],
          ['used', `${used} MiB`],
          ['free', `${m.memoryMiB - reserved - used} MiB`],
        ],
      ],
      [
        'bar1_memory_usage',
        [
          ['total', '131072 MiB'],
          ['used', '1 MiB'],
          ['free', '131071 MiB'],
        ],
      ],
      ['compute_mode', 'Default'],
      [
        'utilization',
        [
          ['gpu_util', mig ? na : '0 %'],
          ['memory_util', mig ? na : '0 %'],
          ['encoder_util', mig ? na : '0 %'],
          ['decoder_util', mig ? na : '0 %'],
          ['jpeg_util', mig ? na : '0 %'],
          ['ofa_util', mig ? na : '0 %'],
        ],
      ],
      [
        'ecc_mode',
        [
          ['current_ecc', 'Enabled'],
          ['pending_ecc', 'Enabled'],
        ],
      ],
      [
        'ecc_errors',
        [
          [
            'volatile',
            [
              ['sram_correctable', '0'],
              ['sram_uncorrectable_parity', '0'],
              ['sram_uncorrectable_secded', '0'],
              ['dram_correctable', '0'],
              ['dram_uncorrectable', String(v.eccErrors)],
            ],
          ],
          [
            'aggregate',
            [
              ['sram_correctable', '0'],
              ['sram_uncorrectable_parity', '0'],
              ['sram_uncorrectable_secded', '0'],
              ['dram_correctable', '0'],
              ['dram_uncorrectable', String(v.eccErrors)],
              ['sram_threshold_exceeded', 'No'],
            ],
          ],
        ],
      ],
      [
        'temperature',
        [
          ['gpu_temp', `${33 + g.index} C`],
          ['memory_temp', `${36 + g.index} C`],
        ],
      ],
      [
        'clocks',
        [
          ['graphics_clock', '345 MHz'],
          ['sm_clock', '345 MHz'],
          ['mem_clock', '2619 MHz'],
          ['video_clock', '765 MHz'],
        ],
      ],
      ['processes', []],
      ['accounted_processes', []],
      ['capabilities', [['egm', 'disabled']]],
    ],
    `id="${bus}"`,
  ];
}

export function renderQueryXml(views: readonly GpuView[], config: ResolvedConfig): string {
  const out = ['<?xml version="1.0" ?>', '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v13.dtd">', '<nvidia_smi_log>'];
  out.push(`\t<timestamp>${new Date().toUTCString().replace(/,/g, '')}</timestamp>`);
  out.push(`\t<driver_version>${config.driverVersion}</driver_version>`);
  out.push(`\t<cuda_version>${config.cudaVersion}</cuda_version>`);
  out.push(`\t<attached_gpus>${config.gpus.length}</attached_gpus>`);
  for (const v of views) renderXml(gpuXml(v, config), 1, out);
  out.push('', '</nvidia_smi_log>');
  return out.join('\n') + '\n';
}

// ---- topo -m ----

export function renderTopology(views: readonly GpuView[], config: ResolvedConfig): string {
  const n = views.length;
  const linked = (a: number, b: number): boolean => config.nvlinkGroups.some((g) => g.includes(a) && g.includes(b));
  const cpusPerNode = 56;
  const header = '\t\u001b[4m' + [...views.map((v) => `GPU${v.gpu.index}`), 'CPU Affinity', 'NUMA Affinity', 'GPU NUMA ID'].join('\t') + '\u001b[0m';
  const rows = views.map((v) => {
    const cells = views.map((w) => {
      if (w.gpu.index === v.gpu.index) return ' X ';
      if (linked(v.gpu.index, w.gpu.index)) return `NV${config.nvlinkCount}`;
      return v.gpu.numaNode !== undefined && v.gpu.numaNode === w.gpu.numaNode ? 'NODE' : 'SYS';
    });
    const numa = v.gpu.numaNode;
    const cpus = numa === undefined ? `0-${cpusPerNode * 2 - 1}` : `${numa * cpusPerNode}-${numa * cpusPerNode + cpusPerNode - 1}`;
    // R590 prints an empty cell before "GPU NUMA ID".
    return [`GPU${v.gpu.index}`, ...cells, cpus, numa === undefined ? 'N/A' : String(numa), '', 'N/A'].join('\t');
  });
  const legend = [
    '',
    'Legend:',
    '',
    '  X    = Self',
    '  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)',
    '  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node',
    '  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)',
    '  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)',
    '  PIX  = Connection traversing at most a single PCIe bridge',
    '  NV#  = Connection traversing a bonded set of # NVLinks',
    '',
  ];
  return [header, ...rows, ...legend].join('\n') + (n > 0 ? '\n' : '');
}

// ---- mig tables ----

function gib(mib: number): string {
  // nvidia-smi truncates to two decimals.
  return (Math.floor((mib / 1024) * 100 + 1e-9) / 100).toFixed(2);
}

function boxed(title: string, headerLines: readonly string[], rows: readonly (readonly string[])[], width: number): string {
  const rule = `+${'-'.repeat(width)}+`;
  const line = (s: string): string => `|${s.padEnd(width)}|`;
  const out = [rule, line(` ${title}`), ...headerLines.map(line), `|${'='.repeat(width)}|`];
  for (const r of rows) {
    out.push(...r.map(line), rule);
  }
  return out.join('\n') + '\n';
}

export function renderProfiles(views: readonly GpuView[]): string {
  // The name column widens with the longest "MIG <name>" (the box width varies by board).
  const nameWidth = Math.max(14, ...views.flatMap((v) => v.gpu.model.migProfiles.map((p) => p.name.length + 4)));
  const idEnd = 7 + nameWidth + 6;
  const rows: string[][] = [];
  for (const v of views) {
    for (const p of v.gpu.model.migProfiles) {
      const free = freeInstances(v.gpu.model, v.state.gpuInstances, p);
      const first =
        `${String(v.gpu.index).padStart(4)}  ${`MIG ${p.name}`.padEnd(nameWidth)}${String(p.id).padStart(6)}` +
        `     ${`${free}/${p.maxInstances}`.padEnd(11)}${gib(p.memoryMiB).padEnd(11)}${'No'.padEnd(7)}` +
        `${String(p.multiprocessors).padEnd(7)}${String(p.engines.decoders).padEnd(6)}${String(p.engines.encoders)}`;
      const smColumn = first.length - 14;
      const second = ' '.repeat(smColumn) + String(p.engines.copyEngines).padStart(2).padEnd(7) + String(p.engines.jpegEngines).padEnd(6) + String(p.engines.ofaEngines);
      rows.push([first, second]);
    }
  }
  const header = [`${' GPU   Name'.padEnd(idEnd - 3)}ID    Instances   Memory     P2P    SM    DEC   ENC`, `${' '.repeat(idEnd + 3)}Free/Total   GiB              CE    JPEG  OFA`];
  return boxed('GPU instance profiles:', header, rows, idEnd + 50);
}

export function renderPlacements(views: readonly GpuView[]): string {
  const lines: string[] = [];
  for (const v of views) {
    for (const p of v.gpu.model.migProfiles) {
      const word = p.placementStarts.length === 1 ? 'Placement :' : 'Placements:';
      lines.push(`GPU ${String(v.gpu.index).padStart(2)} Profile ID ${String(p.id).padStart(2)} ${word} {${p.placementStarts.join(',')}}:${p.memorySlices}`);
    }
  }
  return lines.join('\n') + '\n';
}

export function renderGpuInstances(views: readonly GpuView[]): string {
  const rows: string[][] = [];
  for (const v of views) {
    for (const gi of [...v.state.gpuInstances].sort((a, b) => a.id - b.id)) {
      const p = profileById(v.gpu.model, gi.profileId);
      if (!p) continue;
      rows.push([`${String(v.gpu.index).padStart(4)}  ${`MIG ${p.name}`.padEnd(16)}${String(p.id).padStart(6)}${String(gi.id).padStart(9)}          ${`${gi.start}:${p.memorySlices}`}`]);
    }
  }
  return boxed('GPU instances:', [' GPU   Name             Profile  Instance   Placement', '                          ID       ID       Start:Size'], rows, 55);
}

export function renderComputeInstances(views: readonly GpuView[]): string {
  const rows: string[][] = [];
  for (const v of views) {
    for (const gi of [...v.state.gpuInstances].sort((a, b) => a.id - b.id)) {
      const p = profileById(v.gpu.model, gi.profileId);
      if (!p) continue;
      for (const ci of gi.computeInstances) {
        rows.push([
          `${String(v.gpu.index).padStart(4)}${String(gi.id).padStart(7)}       ${`MIG ${p.name}`.padEnd(16)}${String(ci.profileId).padStart(6)}${String(ci.id).padStart(10)}          0:${ci.size}`,
        ]);
      }
    }
  }
  return boxed(
    'Compute instances:',
    [' GPU     GPU       Name             Profile   Instance   Placement', '       Instance                       ID        ID       Start:Size', '         ID'],
    rows,
    68,
  );
}
