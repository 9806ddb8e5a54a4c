// The built-in board table: lookups by the names nvidia-smi prints (with and
// without the pre-R470 "NVIDIA " prefix) and which boards switch MIG without a reset.
import { GPU_MODELS, catalogProfiles, findModel, migToggleNeedsReset } from '../../../pkg/nvidia/catalog.js';
import { migGeometry } from '../../../pkg/nvidia/geometry.js';

describe('findModel', () => {
  it.each([
    ['NVIDIA A100-SXM4-40GB', 'A100-SXM4-40GB'],
    ['A100-SXM4-40GB', 'A100-SXM4-40GB'],
    ['NVIDIA H100 80GB HBM3', 'H100-80GB'],
    ['H100 80GB HBM3', 'H100-80GB'],
    ['h100-80gb', 'H100-80GB'],
    ['NVIDIA H200', 'H200-141GB'],
    ['NVIDIA B200', 'B200'],
    ['NVIDIA GB200', 'GB200'],
    ['NVIDIA H100 PCIe', 'H100-PCIE'],
    ['NVIDIA H100 NVL', 'H100-NVL'],
    ['NVIDIA H200 NVL', 'H200-NVL'],
    ['NVIDIA GH200 480GB', 'GH200-96GB'],
    ['NVIDIA GH200 144G HBM3e', 'GH200-144GB'],
    ['NVIDIA A30', 'A30'],
  ])('finds %s as %s', (name, key) => {
    expect(findModel(name)?.key).toBe(key);
  });

  it('finds nothing for a board it does not know', () => {
    expect(findModel('Tesla V100-SXM2-16GB')).toBeUndefined();
  });
});

describe('migToggleNeedsReset', () => {
  it.each([
    ['Ampere', true],
    ['Hopper', false],
    ['Blackwell', false],
    [undefined, true],
    ['Volta', true],
  ])('says %s needs a reset: %s', (arch, needs) => {
    expect(migToggleNeedsReset(arch)).toBe(needs);
  });
});

describe('catalog profiles', () => {
  it.each(GPU_MODELS.map((m) => [m.key, m] as const))('fit %s: every profile memory is a multiple of 32 MiB below the board memory', (_key, model) => {
    for (const p of catalogProfiles(model, 0)) {
      expect({ profile: p.name, aligned: p.memoryMiB % 32 === 0, fits: p.memoryMiB <= model.memoryMiB }).toEqual({ profile: p.name, aligned: true, fits: true });
      expect(p.placements.every((pl) => pl.size === p.memorySlices && pl.start + pl.size <= 8)).toBe(true);
    }
  });

  it.each(GPU_MODELS.filter((m) => m.migProfiles.length > 0).map((m) => [m.key, m] as const))('fit %s: no profile has more memory than its share of the board', (_key, model) => {
    const slices = migGeometry(model.migProfiles).memorySlices;
    for (const p of model.migProfiles) {
      expect({ profile: p.name, withinShare: p.memoryMiB <= (model.memoryMiB * p.memorySlices) / slices }).toEqual({ profile: p.name, withinShare: true });
    }
  });

  it('say where their values come from, and which are estimates', () => {
    for (const m of GPU_MODELS) {
      expect(m.provenance.length).toBeGreaterThan(0);
      for (const name of m.estimated ?? []) expect(m.migProfiles.map((p) => p.name)).toContain(name);
    }
  });
});

// Values pinned per board, each test naming its source.
const sizes = (key: string): Record<string, [number, number]> => {
  const m = findModel(key);
  if (!m) throw new Error(`no ${key} in the catalog`);
  return Object.fromEntries(m.migProfiles.map((p) => [p.name, [p.memoryMiB, p.multiprocessors]]));
};

describe('board values from real captures', () => {
  it('H200 (capture, driver 570): MIG devices of 16384, 33280 and 71424 MiB; -lgip 140.00 GiB for 7g.141gb', () => {
    expect(sizes('H200-141GB')).toMatchObject({ '1g.18gb': [16384, 16], '1g.35gb': [33280, 26], '2g.35gb': [33280, 32], '3g.71gb': [71424, 60], '4g.71gb': [71424, 64], '7g.141gb': [143360, 132] });
  });

  it('H100 NVL (capture, driver 560): MIG devices of 11008, 22144 and 47488 MiB', () => {
    expect(sizes('H100-NVL')).toMatchObject({ '1g.12gb': [11008, 16], '1g.24gb': [22144, 26], '3g.47gb': [47488, 60], '7g.94gb': [95360, 132] });
  });

  it('H100 PCIe (capture, driver 525): 1g.10gb of 9856 MiB and 114 SMs in 7g.80gb', () => {
    expect(sizes('H100-PCIE')).toMatchObject({ '1g.10gb': [9856, 14], '2g.20gb': [19968, 30], '3g.40gb': [40192, 46], '4g.40gb': [40192, 62], '7g.80gb': [80896, 114] });
  });

  it('GH200 96GB (capture): -lgip 11.00/23.00/46.50/93.00 GiB', () => {
    expect(sizes('GH200-96GB')).toMatchObject({ '1g.12gb': [11264, 16], '2g.24gb': [23552, 32], '3g.48gb': [47616, 60], '7g.96gb': [95232, 132] });
  });

  it('B200 (capture): 1g of 20992 MiB with 18 SMs, 2g of 45312 MiB with 36 SMs, 148 SMs on the board', () => {
    expect(sizes('B200')).toMatchObject({ '1g.23gb': [20992, 18], '1g.45gb': [45312, 30], '2g.45gb': [45312, 36] });
    expect(findModel('B200')?.multiprocessors).toBe(148);
  });

  it('GB200 (capture): -lgip 22.00 GiB for 1g.23gb, 45.50 for 1g.47gb and 2g.47gb', () => {
    expect(sizes('GB200')).toMatchObject({ '1g.23gb': [22528, 18], '1g.47gb': [46592, 32], '2g.47gb': [46592, 38] });
  });

  it('A30 (capture, driver 535): four memory and four compute slices, its own profile IDs and placements', () => {
    const a30 = findModel('NVIDIA A30');
    if (!a30) throw new Error('no A30 in the catalog');
    expect(migGeometry(a30.migProfiles)).toEqual({ memorySlices: 4, computeSlices: 4 });
    expect(a30.migProfiles.map((p) => [p.name, p.id, p.memoryMiB, p.placementStarts])).toEqual([
      ['1g.6gb', 14, 5952, [0, 1, 2, 3]],
      ['1g.6gb+me', 21, 5952, [0, 1, 2, 3]],
      ['2g.12gb', 5, 11968, [0, 2]],
      ['2g.12gb+me', 6, 11968, [0, 2]],
      ['4g.24gb', 0, 24000, [0]],
    ]);
  });
});

describe('B200 engines (NVIDIA MIG user guide table, and captures where they differ)', () => {
  it('gives each profile the copy engines of NVIDIA table, 2/2/2/3/6/8/16, except 2g, which captures show with 4', () => {
    const b200 = findModel('NVIDIA B200');
    if (!b200) throw new Error('no B200 in the catalog');
    const ce = Object.fromEntries(b200.migProfiles.map((p) => [p.name, p.engines.copyEngines]));
    expect(ce).toEqual({ '1g.23gb': 2, '1g.23gb+me': 2, '1g.45gb': 2, '2g.45gb': 4, '3g.90gb': 6, '4g.90gb': 8, '7g.180gb': 16 });
  });
});
