// The nvidia-smi parsers against the real captures and against the traps of
// REFERENCE section 6, plus garbage that must fail naming command and line.
import { NvidiaSmiParseError } from '../../../pkg/nvidia/errors.js';
import { parseQueryCsv, parseQueryGpu } from '../../../pkg/nvidia/parse-csv.js';
import { findLostGpus, parseList } from '../../../pkg/nvidia/parse-list.js';
import { parseComputeInstances, parseCreateOutput, parseDestroyOutput, parseGpuInstances, parsePlacements, parseProfiles } from '../../../pkg/nvidia/parse-mig.js';
import { nvlinkPeers, parseTopology } from '../../../pkg/nvidia/parse-topo.js';
import { parseQueryXml } from '../../../pkg/nvidia/parse-xml.js';
import { CAPTURES, captureOutput, ownFixture, realCapture, splitCapture } from './fixtures.js';

describe('parseQueryXml on the real captures', () => {
  it('reads the A100 capture as one 40960 MiB Ampere GPU with MIG disabled', () => {
    const log = parseQueryXml(realCapture(CAPTURES.a100));
    expect(log.driverVersion).toBe('570.148.08');
    expect(log.cudaVersion).toBe('12.8');
    expect(log.attachedGpus).toBe(1);
    expect(log.gpus).toHaveLength(1);
    const gpu = log.gpus[0]!;
    expect(gpu).toMatchObject({
      pciBusId: '0000:06:00.0',
      productName: 'NVIDIA A100-SXM4-40GB',
      brand: 'NVIDIA',
      architecture: 'Ampere',
      uuid: 'GPU-00000000-0000-0000-0000-000000000000',
      minor: 0,
      memoryMiB: 40960,
      migMode: { current: 'Disabled', pending: 'Disabled' },
      migDevices: [],
      uncorrectableEccErrors: 0,
      recoveryAction: 'None',
    });
  });

  it('reads the 8x H100 capture (DTD v13) as eight 81559 MiB Hopper GPUs with minors 0..7', () => {
    const log = parseQueryXml(realCapture(CAPTURES.h100x8));
    expect(log.driverVersion).toBe('580.105.08');
    expect(log.cudaVersion).toBe('13.0');
    expect(log.gpus).toHaveLength(8);
    expect(log.gpus.map((g) => g.memoryMiB)).toEqual(Array(8).fill(81559));
    expect(log.gpus.map((g) => g.minor)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(log.gpus.map((g) => g.pciBusId)).toEqual(['0000:53:00.0', '0000:64:00.0', '0000:75:00.0', '0000:86:00.0', '0000:97:00.0', '0000:a8:00.0', '0000:b9:00.0', '0000:ca:00.0']);
    expect(new Set(log.gpus.map((g) => g.uuid)).size).toBe(8);
    expect(log.gpus.every((g) => g.architecture === 'Hopper' && g.migMode.current === 'Disabled')).toBe(true);
  });

  it('reads the MIG devices of the derived H100 MIG document with their instance IDs and sizes', () => {
    const gpu = parseQueryXml(ownFixture('q-x__h100-80gb-hbm3-mig__derived.xml')).gpus[0]!;
    expect(gpu.migMode).toEqual({ current: 'Enabled', pending: 'Enabled' });
    expect(gpu.migDevices.map((d) => [d.index, d.gpuInstanceId, d.computeInstanceId, d.multiprocessors, d.memoryMiB])).toEqual([
      [0, 2, 0, 60, 40448],
      [1, 3, 0, 32, 20096],
      [2, 9, 0, 16, 9984],
      [3, 10, 0, 16, 9984],
    ]);
    expect(gpu.migDevices[0]!.engines).toEqual({ copyEngines: 3, decoders: 3, encoders: 0, jpegEngines: 3, ofaEngines: 0 });
  });
});

describe('the multi-command H100 MIG capture', () => {
  const capture = realCapture(CAPTURES.h100Mig);

  it('splits into sections keyed by the command that produced them', () => {
    const commands = splitCapture(capture).map((s) => s.command);
    expect(commands).toEqual(expect.arrayContaining(['nvidia-smi -L', 'nvidia-smi topo -m', 'nvidia-smi -q']));
  });

  it('lists one GPU with four MIG devices and their profiles from -L', () => {
    const gpus = parseList(captureOutput(capture, 'nvidia-smi -L'));
    expect(gpus).toHaveLength(1);
    expect(gpus[0]).toMatchObject({ index: 0, name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-00000000-0000-0000-0000-000000000000' });
    expect(gpus[0]!.migDevices.map((m) => [m.index, m.profile, m.uuid])).toEqual([
      [0, '3g.40gb', 'MIG-00000000-0000-0000-0000-000000000000'],
      [1, '2g.20gb', 'MIG-00000001-0000-0000-0000-000000000001'],
      [2, '1g.10gb', 'MIG-00000002-0000-0000-0000-000000000002'],
      [3, '1g.10gb', 'MIG-00000003-0000-0000-0000-000000000003'],
    ]);
    // R470+ UUIDs do not carry the instance IDs.
    expect(gpus[0]!.migDevices.every((m) => m.gpuInstanceId === undefined)).toBe(true);
  });

  it('reads topo -m despite the ANSI header and the empty cell before GPU NUMA ID', () => {
    const rows = parseTopology(captureOutput(capture, 'nvidia-smi topo -m'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ gpuIndex: 0, numaNode: 0, cpuAffinity: '0-19' });
    expect(nvlinkPeers(rows[0]!)).toEqual([]);
  });

  it('reads the --query-gpu section (header and units) with MIG enabled and the whole memory', () => {
    const section = splitCapture(capture).find((s) => s.command.startsWith('nvidia-smi --query-gpu=') && s.title.startsWith('idle'))!;
    const fields = /--query-gpu=([^ ]+)/.exec(section.command)![1]!.split(',');
    const [row] = parseQueryCsv(section.output, fields);
    expect(row).toMatchObject({
      index: '0',
      name: 'NVIDIA H100 80GB HBM3',
      'pci.bus_id': '00000000:00:09.0',
      'memory.total': '81559 MiB',
      'mig.mode.current': 'Enabled',
      'mig.mode.pending': 'Enabled',
      compute_cap: '9.0',
      driver_version: '590.48.01',
    });
    // "[N/A]", "[Requested functionality has been deprecated]" and bare "N/A" all read as missing.
    expect(row!['vgpu_driver_capability.heterogenous_multivGPU']).toBeUndefined();
    expect(row!.display_mode).toBeUndefined();
    expect(row!['fabric.health.summary']).toBeUndefined();
  });
});

describe('parseQueryGpu', () => {
  const good = '0, GPU-aaaa, NVIDIA H100 80GB HBM3, 00000000:53:00.0, 81559, Enabled, Disabled, 580.105.08, 9.0\n';

  it('reads one row per GPU with a normalised bus ID', () => {
    expect(parseQueryGpu(good)).toEqual([
      {
        index: 0,
        uuid: 'GPU-aaaa',
        name: 'NVIDIA H100 80GB HBM3',
        pciBusId: '0000:53:00.0',
        memoryMiB: 81559,
        migCurrent: 'Enabled',
        migPending: 'Disabled',
        driverVersion: '580.105.08',
        computeCapability: '9.0',
      },
    ]);
  });

  it.each([
    ['[N/A]', '[N/A]'],
    ['[Not Supported]', '[Not Supported]'],
    ['bare N/A', 'N/A'],
    ['an empty cell', ''],
    ['[Insufficient Permissions]', '[Insufficient Permissions]'],
    ['[Unknown Error]', '[Unknown Error]'],
  ])('treats %s in the MIG and compute capability columns as absent', (_name, missing) => {
    const [row] = parseQueryGpu(`1, GPU-bbbb, Tesla V100-SXM2-16GB, 00000000:06:00.0, 16160, ${missing}, ${missing}, 470.57.02, ${missing}\n`);
    expect(row).toMatchObject({ migCurrent: 'N/A', migPending: 'N/A', computeCapability: undefined });
  });

  it.each([
    ['a row with too few columns', '0, GPU-aaaa, NVIDIA H100\n', 1, 'expected 9 comma-separated values'],
    ['a non-numeric index', 'x, GPU-aaaa, NVIDIA H100 80GB HBM3, 00000000:53:00.0, 81559, Enabled, Disabled, 580.105.08, 9.0\n', 1, 'index'],
    ['a missing memory size', `${good}2, GPU-cccc, NVIDIA H100 80GB HBM3, 00000000:64:00.0, [N/A], Enabled, Disabled, 580.105.08, 9.0\n`, 2, 'memory.total is missing'],
    ['a strange MIG mode', '0, GPU-aaaa, NVIDIA H100 80GB HBM3, 00000000:53:00.0, 81559, Maybe, Disabled, 580.105.08, 9.0\n', 1, 'MIG mode'],
    ['a bus ID that is not one', '0, GPU-aaaa, NVIDIA H100 80GB HBM3, bus-6, 81559, Enabled, Disabled, 580.105.08, 9.0\n', 1, 'pci.bus_id'],
  ])('rejects %s, naming the command and the line', (_name, text, line, reason) => {
    expect(() => parseQueryGpu(text)).toThrow(NvidiaSmiParseError);
    try {
      parseQueryGpu(text);
    } catch (err) {
      const e = err as NvidiaSmiParseError;
      expect(e.command).toContain('nvidia-smi --query-gpu=index,uuid');
      expect(e.lineNumber).toBe(line);
      expect(e.message).toContain(reason);
      expect(e.message).toContain(`line ${line}`);
    }
  });
});

describe('parseQueryXml traps', () => {
  const wrap = (gpu: string): string =>
    `<?xml version="1.0" ?>\n<nvidia_smi_log>\n\t<driver_version>470.57.02</driver_version>\n\t<cuda_version>11.4</cuda_version>\n\t<attached_gpus>1</attached_gpus>\n${gpu}</nvidia_smi_log>\n`;
  const gpu = (extra: string): string =>
    `\t<gpu id="00000000:3B:00.0">\n\t\t<product_name>Tesla V100-SXM2-16GB</product_name>\n\t\t<uuid>GPU-v100</uuid>\n\t\t<minor_number>3</minor_number>\n\t\t<pci><pci_bus_id>00000000:3B:00.0</pci_bus_id></pci>\n\t\t<fb_memory_usage><total>16160 MiB</total></fb_memory_usage>\n${extra}\t</gpu>\n`;

  it('reads an older GPU without product_architecture or mig_mode as MIG N/A', () => {
    const g = parseQueryXml(wrap(gpu(''))).gpus[0]!;
    expect(g).toMatchObject({ architecture: undefined, brand: undefined, migMode: { current: 'N/A', pending: 'N/A' }, minor: 3, pciBusId: '0000:3b:00.0' });
  });

  it('sums the R470-era double_bit ECC counter as uncorrectable errors', () => {
    const g = parseQueryXml(wrap(gpu('\t\t<ecc_errors><volatile><single_bit><total>5</total></single_bit><double_bit><total>2</total></double_bit></volatile></ecc_errors>\n'))).gpus[0]!;
    expect(g.uncorrectableEccErrors).toBe(2);
  });

  it('sums DRAM and SRAM uncorrectable counters of the newer DTDs', () => {
    const g = parseQueryXml(
      wrap(
        gpu(
          '\t\t<ecc_errors><volatile><sram_uncorrectable_parity>1</sram_uncorrectable_parity><sram_uncorrectable_secded>0</sram_uncorrectable_secded><dram_uncorrectable>3</dram_uncorrectable></volatile></ecc_errors>\n',
        ),
      ),
    ).gpus[0]!;
    expect(g.uncorrectableEccErrors).toBe(4);
  });

  it('rejects a GPU whose minor number is N/A, naming the line of the GPU', () => {
    const text = wrap(gpu('').replace('<minor_number>3</minor_number>', '<minor_number>N/A</minor_number>'));
    expect(() => parseQueryXml(text)).toThrow(/nvidia-smi -q -x" at line 6 .*minor_number "N\/A"/);
  });

  it('rejects truncated XML with the line where it breaks', () => {
    const text = realCapture(CAPTURES.a100).split('\n').slice(0, 40).join('\n');
    expect(() => parseQueryXml(text)).toThrow(/cannot read output of "nvidia-smi -q -x" at line \d+.*not well-formed XML/);
  });

  it('rejects a document without the nvidia_smi_log root', () => {
    expect(() => parseQueryXml('<?xml version="1.0" ?>\n<log></log>\n')).toThrow(/no <nvidia_smi_log> root element/);
  });
});

describe('parseList', () => {
  it('reads pre-R470 names without the NVIDIA prefix and instance IDs from the legacy MIG UUIDs', () => {
    const gpus = parseList(ownFixture('list__a100-pre-r470.txt'));
    expect(gpus.map((g) => g.name)).toEqual(['A100-SXM4-40GB', 'A100-SXM4-40GB']);
    expect(gpus[0]!.migDevices.map((m) => [m.profile, m.gpuInstanceId, m.computeInstanceId])).toEqual([
      ['3g.20gb', 1, 0],
      ['1g.5gb', 13, 0],
    ]);
    expect(gpus[1]!.migDevices).toEqual([]);
  });

  it('finds the GPUs that fell off the bus', () => {
    const text = 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)\nUnable to determine the device handle for GPU0000:CA:00.0: GPU is lost.  Reboot the system to recover this GPU\n';
    expect(findLostGpus(text)).toEqual([{ pciBusId: '0000:ca:00.0', message: 'GPU is lost.  Reboot the system to recover this GPU' }]);
  });

  it.each([
    ['a MIG line before any GPU', '  MIG 1g.10gb     Device  0: (UUID: MIG-x)\n', 1, 'MIG device listed before any GPU'],
    ['a line of garbage', 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)\n\u0000\u0001garbage\n', 2, 'neither a GPU line nor a MIG device line'],
  ])('rejects %s, naming the line', (_name, text, line, reason) => {
    expect(() => parseList(text)).toThrow(new RegExp(`"nvidia-smi -L" at line ${line} .*${reason}`));
  });
});

describe('parseTopology', () => {
  it('finds NVLink peers and NUMA nodes on an 8x H100 NVSwitch board', () => {
    const rows = parseTopology(ownFixture('topo-m__8x-h100-nvswitch.txt'));
    expect(rows.map((r) => r.gpuIndex)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(rows.map((r) => r.numaNode)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(nvlinkPeers(rows[3]!)).toEqual([0, 1, 2, 4, 5, 6, 7]);
    expect(rows[0]!.links.get(4)).toBe('NV18');
  });

  it('finds NVLink pairs on a PCIe board whose driver has no GPU NUMA ID column', () => {
    const rows = parseTopology(ownFixture('topo-m__4x-pcie-nvlink-pairs.txt'));
    expect(rows.map((r) => nvlinkPeers(r))).toEqual([[1], [0], [3], [2]]);
    expect(rows.map((r) => r.numaNode)).toEqual([0, 0, 1, 1]);
  });

  it('keeps the NUMA node of a GPU whose CPU Affinity cell is empty, instead of reading it as the CPU list', () => {
    // The 8x H100 board as a VM without CPU pinning reports it: the CPU Affinity cell is empty.
    const text = ownFixture('topo-m__8x-h100-nvswitch.txt').replace(/\t0-55,112-167\t|\t56-111,168-223\t/g, '\t\t');
    const rows = parseTopology(text);
    expect(rows.map((r) => r.cpuAffinity)).toEqual(Array.from({ length: 8 }, () => undefined));
    expect(rows.map((r) => r.numaNode)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it.each([
    ['output without a header', 'something else\n', 1, 'no header row'],
    ['an unknown link kind', '\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\nGPU0\t X \tWAT\t0-1\t0\n', 2, 'link "WAT" to GPU1'],
    ['a NUMA node that is not a number', '\tGPU0\tCPU Affinity\tNUMA Affinity\nGPU0\t X \t0-1\tzero\n', 2, 'NUMA affinity'],
  ])('rejects %s, naming the line', (_name, text, line, reason) => {
    expect(() => parseTopology(text)).toThrow(new RegExp(`"nvidia-smi topo -m" at line ${line} .*${reason}`));
  });
});

describe('parseProfiles (mig -lgip)', () => {
  it('reads every H100 profile with memory in MiB, slices and engines', () => {
    const profiles = parseProfiles(ownFixture('mig-lgip__h100-80gb.txt'));
    expect(profiles.map((p) => [p.id, p.name, p.memoryMiB, p.computeSlices, p.multiprocessors, p.instancesFree, p.instancesTotal])).toEqual([
      [19, '1g.10gb', 9984, 1, 16, 0, 7],
      [20, '1g.10gb+me', 9984, 1, 16, 0, 1],
      [15, '1g.20gb', 20096, 1, 26, 0, 4],
      [14, '2g.20gb', 20096, 2, 32, 0, 3],
      [9, '3g.40gb', 40448, 3, 60, 0, 2],
      [5, '4g.40gb', 40448, 4, 64, 0, 1],
      [0, '7g.80gb', 80896, 7, 132, 0, 1],
    ]);
    expect(profiles[6]!.engines).toEqual({ copyEngines: 8, decoders: 7, encoders: 0, jpegEngines: 7, ofaEngines: 1 });
  });

  it('reads the narrower box of an R470 driver with two GPUs', () => {
    const profiles = parseProfiles(ownFixture('mig-lgip__2x-a100-40gb-r470.txt'));
    expect(profiles.map((p) => `${p.gpuIndex}:${p.name}:${p.memoryMiB}`)).toEqual([
      '0:1g.5gb:4864',
      '0:1g.5gb+me:4864',
      '0:2g.10gb:9856',
      '0:3g.20gb:19968',
      '0:4g.20gb:19968',
      '0:7g.40gb:40192',
      '1:1g.5gb:4864',
      '1:7g.40gb:40192',
    ]);
  });

  it('reads "No MIG-enabled devices found." as no profiles', () => {
    expect(parseProfiles('No MIG-enabled devices found.\n')).toEqual([]);
  });

  it.each([
    [
      'a profile row without its engine line',
      ownFixture('mig-lgip__h100-80gb.txt')
        .split('\n')
        .filter((_l, i) => i !== 6)
        .join('\n'),
      'expected the CE/JPEG/OFA line',
    ],
    ['a row with a broken memory column', ownFixture('mig-lgip__h100-80gb.txt').replace('9.75       No     16', 'lots       No     16'), 'not a GPU instance profile row'],
    ['a table without its rule', '+----+\n| GPU instance profiles: |\n', 'no "|===|" rule'],
  ])('rejects %s', (_name, text, reason) => {
    expect(() => parseProfiles(text)).toThrow(new RegExp(`"nvidia-smi mig -lgip".*${reason}`));
  });
});

describe('parsePlacements (mig -lgipp)', () => {
  it('reads plural "Placements:" and singular "Placement :" lines', () => {
    const p = parsePlacements(ownFixture('mig-lgipp__h100-80gb.txt'));
    expect(p.map((x) => [x.profileId, x.placements.map((pl) => `${pl.start}:${pl.size}`).join(' ')])).toEqual([
      [19, '0:1 1:1 2:1 3:1 4:1 5:1 6:1'],
      [20, '0:1 1:1 2:1 3:1 4:1 5:1 6:1'],
      [15, '0:2 2:2 4:2 6:2'],
      [14, '0:2 2:2 4:2'],
      [9, '0:4 4:4'],
      [5, '0:4'],
      [0, '0:8'],
    ]);
  });

  it('reads tabs instead of spaces', () => {
    expect(parsePlacements('GPU\t0 Profile ID\t9 Placements:\t{0,4}:4\n')[0]!.placements).toEqual([
      { start: 0, size: 4 },
      { start: 4, size: 4 },
    ]);
  });

  it('rejects a line that is not a placement line, naming it', () => {
    expect(() => parsePlacements('GPU  0 Profile ID 9 Placements: {0,4}:4\nGPU 0 Profile ID nine\n')).toThrow(/"nvidia-smi mig -lgipp" at line 2 \("GPU 0 Profile ID nine"\)/);
  });
});

describe('parseGpuInstances and parseComputeInstances', () => {
  it('reads the GPU instances that match the MIG capture', () => {
    expect(parseGpuInstances(ownFixture('mig-lgi__h100-80gb.txt')).map((g) => [g.profile, g.profileId, g.instanceId, g.placement.start, g.placement.size])).toEqual([
      ['3g.40gb', 9, 2, 4, 4],
      ['2g.20gb', 14, 3, 0, 2],
      ['1g.10gb', 19, 9, 2, 1],
      ['1g.10gb', 19, 10, 3, 1],
    ]);
  });

  it('reads the compute instances with their CI profile IDs', () => {
    expect(parseComputeInstances(ownFixture('mig-lci__h100-80gb.txt')).map((c) => [c.gpuInstanceId, c.profile, c.profileId, c.instanceId, c.placement.size])).toEqual([
      [2, '3g.40gb', 2, 0, 3],
      [3, '2g.20gb', 1, 0, 2],
      [9, '1g.10gb', 0, 0, 1],
      [10, '1g.10gb', 0, 0, 1],
    ]);
  });

  it.each([
    ['No GPU instances found: Not Found', parseGpuInstances],
    ['No compute instances found: Not Found', parseComputeInstances],
  ])('reads "%s" as an empty list', (text, parse) => {
    expect(parse(`${text}\n`)).toEqual([]);
  });

  it('rejects a garbled instance row, naming the line', () => {
    const text = ownFixture('mig-lgi__h100-80gb.txt').replace('4:4', '4-4');
    expect(() => parseGpuInstances(text)).toThrow(/"nvidia-smi mig -lgi" at line 6 .*not a GPU instance row/);
  });
});

describe('create and destroy output', () => {
  it('reads the GPU and compute instance IDs of a creation', () => {
    const out =
      'Successfully created GPU instance ID  2 on GPU  0 using profile MIG 3g.20gb (ID  9)\n' +
      'Successfully created compute instance ID  0 on GPU  0 GPU instance ID  2 using profile MIG 3g.20gb (ID  2)\n';
    expect(parseCreateOutput(out)).toEqual({ gpuIndex: 0, gpuInstanceId: 2, profile: '3g.20gb', profileId: 9, computeInstanceId: 0, computeProfileId: 2 });
  });

  it('reports a creation without a compute instance as such', () => {
    expect(parseCreateOutput('Successfully created GPU instance ID 13 on GPU  1 using profile MIG 1g.5gb (ID 19)\n').computeInstanceId).toBeUndefined();
  });

  it('rejects a compute instance line that belongs to another GPU instance', () => {
    const out =
      'Successfully created GPU instance ID  2 on GPU  0 using profile MIG 3g.20gb (ID  9)\n' +
      'Successfully created compute instance ID  0 on GPU  0 GPU instance ID  5 using profile MIG 3g.20gb (ID  2)\n';
    expect(() => parseCreateOutput(out)).toThrow(/line 2 .*does not belong/);
  });

  it('reads destroy lines for compute and GPU instances', () => {
    expect(parseDestroyOutput('Successfully destroyed compute instance ID  0 from GPU  0 GPU instance ID  2\nSuccessfully destroyed GPU instance ID  2 from GPU  0\n')).toEqual([
      { kind: 'compute', gpuIndex: 0, gpuInstanceId: 2, computeInstanceId: 0 },
      { kind: 'gpu', gpuIndex: 0, gpuInstanceId: 2, computeInstanceId: undefined },
    ]);
  });

  it('rejects an error line where a success line was expected', () => {
    expect(() => parseDestroyOutput('Unable to destroy GPU instance ID  2 from GPU  0: In use by another client\n', 'nvidia-smi mig -dgi -gi 2')).toThrow(
      /"nvidia-smi mig -dgi -gi 2" at line 1 .*not a "Successfully destroyed" line/,
    );
  });
});
