// The built-in board table: lookups by the names nvidia-smi prints (with and
// without the pre-R470 "NVIDIA " prefix) and which boards switch MIG without a reset.
import { GPU_MODELS, catalogProfiles, findModel, migToggleNeedsReset } from '../../../pkg/nvidia/catalog.js';

describe('findModel', () => {
  it.each([
    ['NVIDIA A100-SXM4-40GB', 'A100-SXM4-40GB'],
    ['A100-SXM4-40GB', 'A100-SXM4-40GB'],
    ['NVIDIA H100 80GB HBM3', 'H100-80GB'],
    ['H100 80GB HBM3', 'H100-80GB'],
    ['h100-80gb', 'H100-80GB'],
    ['NVIDIA H200', 'H200-141GB'],
    ['NVIDIA B200', 'B200'],
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
});

describe('B200 engines (NVIDIA MIG user guide table, not a capture)', () => {
  it('gives each profile the copy engines of NVIDIA table: 2/2/2/3/6/8/16', () => {
    const b200 = findModel('NVIDIA B200');
    if (!b200) throw new Error('no B200 in the catalog');
    const ce = Object.fromEntries(b200.migProfiles.map((p) => [p.name, p.engines.copyEngines]));
    expect(ce).toEqual({ '1g.23gb': 2, '1g.23gb+me': 2, '1g.45gb': 2, '2g.45gb': 3, '3g.90gb': 6, '4g.90gb': 8, '7g.180gb': 16 });
  });
});
