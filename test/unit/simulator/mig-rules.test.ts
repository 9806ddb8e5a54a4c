// The simulator's MIG rules against REFERENCE section 6: placements, maximum
// counts, instance IDs, and the real refusals with their exit codes.
import { parseGpuInstances, parsePlacements, parseProfiles } from '../../../pkg/nvidia/parse-mig.js';
import { oneGpu, sim } from './sim.js';

// REFERENCE section 6, written out independently of the catalog.
const PLACEMENTS: ReadonlyArray<[string, number, number[], number, number]> = [
  // [kind, profile ID, starts, size, max instances]
  ['1g', 19, [0, 1, 2, 3, 4, 5, 6], 1, 7],
  ['1g double memory', 15, [0, 2, 4, 6], 2, 4],
  ['2g', 14, [0, 2, 4], 2, 3],
  ['3g', 9, [0, 4], 4, 2],
  ['4g', 5, [0], 4, 1],
  ['7g', 0, [0], 8, 1],
];

const NAMES: ReadonlyArray<[string, string[]]> = [
  ['A100-SXM4-40GB', ['1g.5gb', '1g.10gb', '2g.10gb', '3g.20gb', '4g.20gb', '7g.40gb']],
  ['A100-SXM4-80GB', ['1g.10gb', '1g.20gb', '2g.20gb', '3g.40gb', '4g.40gb', '7g.80gb']],
  ['H100-80GB', ['1g.10gb', '1g.20gb', '2g.20gb', '3g.40gb', '4g.40gb', '7g.80gb']],
  ['H200-141GB', ['1g.18gb', '1g.35gb', '2g.35gb', '3g.71gb', '4g.71gb', '7g.141gb']],
  ['B200', ['1g.23gb', '1g.45gb', '2g.45gb', '3g.90gb', '4g.90gb', '7g.180gb']],
];

describe.each(NAMES.map(([model, names]) => [model, names] as const))('simulated %s', (model, names) => {
  it('lists the board profile names with IDs 19, 20, 15, 14, 9, 5, 0', () => {
    const profiles = parseProfiles(sim(oneGpu(model)).call('mig', '-lgip').stdout);
    expect(profiles.map((p) => [p.id, p.name])).toEqual([
      [19, names[0]],
      [20, `${names[0]}+me`],
      [15, names[1]],
      [14, names[2]],
      [9, names[3]],
      [5, names[4]],
      [0, names[5]],
    ]);
  });

  it.each(PLACEMENTS)('lists the %s placements of REFERENCE section 6', (_kind, id, starts, size) => {
    const lines = parsePlacements(sim(oneGpu(model)).call('mig', '-lgipp').stdout);
    expect(lines.find((l) => l.profileId === id)?.placements).toEqual(starts.map((start) => ({ start, size })));
  });

  it.each(PLACEMENTS)('creates a %s instance at every listed start on an empty GPU and nowhere else', (_kind, id, starts) => {
    for (let start = 0; start < 8; start++) {
      const s = sim(oneGpu(model));
      const r = s.call('mig', '-i', '0', '-cgi', `${id}:${start}`, '-C');
      if (starts.includes(start)) {
        expect({ start, exitCode: r.exitCode }).toEqual({ start, exitCode: 0 });
      } else {
        expect({ start, exitCode: r.exitCode, stderr: r.stderr }).toEqual({
          start,
          exitCode: 2,
          stderr: `Unable to create a GPU instance on GPU  0 using profile ${id}: Invalid Argument\nFailed to create GPU instances: Invalid Argument\n`,
        });
      }
    }
  });

  it.each(PLACEMENTS)('allows at most the REFERENCE count of %s instances, then says Insufficient Resources', (_kind, id, _starts, _size, max) => {
    const s = sim(oneGpu(model));
    for (let i = 0; i < max; i++) expect(s.call('mig', '-i', '0', '-cgi', String(id), '-C').exitCode).toBe(0);
    const r = s.call('mig', '-i', '0', '-cgi', String(id), '-C');
    expect(r.exitCode).toBe(255);
    expect(r.stderr).toBe(`Unable to create a GPU instance on GPU  0 using profile ${id}: Insufficient Resources\nFailed to create GPU instances: Insufficient Resources\n`);
  });

  it('allows only one 1g+me instance (it owns the only OFA unit)', () => {
    const s = sim(oneGpu(model));
    expect(s.call('mig', '-cgi', '20:0', '-C').exitCode).toBe(0);
    expect(s.call('mig', '-cgi', '20:1', '-C').stderr).toContain('Insufficient Resources');
    expect(s.call('mig', '-cgi', '19:1', '-C').exitCode).toBe(0);
  });
});

describe('simulated placement conflicts on an H100', () => {
  it.each([
    ['a 4g over a 3g at 0', ['9:0'], '5:0'],
    ['a 7g next to a 1g', ['19:6'], '0:0'],
    ['a 2g over a 1g double memory', ['15:2'], '14:2'],
    ['a 1g on the memory of a 3g at 4', ['9:4'], '19:5'],
    ['a 1g when 4g and 3g already use all seven compute slices', ['5:0', '9:4'], '19:6'],
    ['a 3g at 4 when 1g double memory instances cover slices 4-7', ['15:4', '15:6'], '9:4'],
  ])('refuses %s with Insufficient Resources', (_name, existing, wanted) => {
    const s = sim(oneGpu('H100-80GB'));
    for (const e of existing) expect(s.call('mig', '-i', '0', '-cgi', e, '-C').exitCode).toBe(0);
    const r = s.call('mig', '-i', '0', '-cgi', wanted, '-C');
    expect(r.exitCode).toBe(255);
    expect(r.stderr).toMatch(/: Insufficient Resources\nFailed to create GPU instances: Insufficient Resources\n$/);
  });

  it.each([
    ['4g + 3g', ['5:0', '9:4']],
    ['3g + 2g + 1g + 1g as in the MIG capture', ['9:4', '14:0', '19:2', '19:3']],
    ['seven 1g', ['19:0', '19:1', '19:2', '19:3', '19:4', '19:5', '19:6']],
    ['three 2g and a 1g', ['14:0', '14:2', '14:4', '19:6']],
    ['four 1g double memory', ['15:0', '15:2', '15:4', '15:6']],
  ])('accepts the valid layout %s', (_name, layout) => {
    const s = sim(oneGpu('H100-80GB'));
    for (const l of layout) expect(s.call('mig', '-i', '0', '-cgi', l, '-C').exitCode).toBe(0);
  });

  it('numbers GPU instances by placement as the driver does (the capture has 3g=2, 2g=3, 1g=9 and 10)', () => {
    const s = sim(oneGpu('H100-80GB'));
    const out = ['9:4', '14:0', '19:2', '19:3'].map((p) => s.call('mig', '-i', '0', '-cgi', p, '-C').stdout);
    expect(out[0]).toBe(
      'Successfully created GPU instance ID  2 on GPU  0 using profile MIG 3g.40gb (ID  9)\n' +
        'Successfully created compute instance ID  0 on GPU  0 GPU instance ID  2 using profile MIG 3g.40gb (ID  2)\n',
    );
    expect(parseGpuInstances(s.call('mig', '-lgi').stdout).map((g) => [g.instanceId, g.profile, g.placement.start])).toEqual([
      [2, '3g.40gb', 4],
      [3, '2g.20gb', 0],
      [9, '1g.10gb', 2],
      [10, '1g.10gb', 3],
    ]);
  });

  it('accepts a profile by name and picks the first free placement without a start', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.call('mig', '-cgi', '19:0', '-C');
    expect(s.call('mig', '-cgi', '3g.40gb', '-C').stdout).toContain('GPU instance ID  2 ');
  });

  it('refuses an unknown profile with Not Found and exit code 6', () => {
    const r = sim(oneGpu('H100-80GB')).call('mig', '-i', '0', '-cgi', '42', '-C');
    expect([r.exitCode, r.stderr]).toEqual([6, 'Unable to create a GPU instance on GPU  0 using profile 42: Not Found\nFailed to create GPU instances: Not Found\n']);
  });
});

describe('simulated destruction', () => {
  it('refuses to destroy a GPU instance with a compute instance: In use by another client', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.call('mig', '-i', '0', '-cgi', '9:0', '-C');
    const r = s.call('mig', '-i', '0', '-dgi', '-gi', '1');
    expect([r.exitCode, r.stderr]).toEqual([255, 'Unable to destroy GPU instance ID  1 from GPU  0: In use by another client\nFailed to destroy GPU instances: In use by another client\n']);
  });

  it('destroys the compute instance and then the GPU instance', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.call('mig', '-i', '0', '-cgi', '9:0', '-C');
    expect(s.call('mig', '-i', '0', '-dci', '-ci', '0', '-gi', '1').stdout).toBe('Successfully destroyed compute instance ID  0 from GPU  0 GPU instance ID  1\n');
    expect(s.call('mig', '-i', '0', '-dgi', '-gi', '1').stdout).toBe('Successfully destroyed GPU instance ID  1 from GPU  0\n');
    expect(s.call('mig', '-lgi')).toMatchObject({ stdout: 'No GPU instances found: Not Found\n', exitCode: 6 });
    expect(s.call('mig', '-lci')).toMatchObject({ stdout: 'No compute instances found: Not Found\n', exitCode: 6 });
  });

  it('says Not Found with exit code 6 for an instance that does not exist', () => {
    const s = sim(oneGpu('H100-80GB'));
    expect(s.call('mig', '-i', '0', '-dgi', '-gi', '7')).toMatchObject({
      exitCode: 6,
      stderr: 'Unable to destroy GPU instance ID  7 from GPU  0: Not Found\nFailed to destroy GPU instances: Not Found\n',
    });
    expect(s.call('mig', '-i', '0', '-dci', '-ci', '0', '-gi', '7').stderr).toContain('Unable to destroy compute instance ID  0 from GPU  0 GPU instance ID  7: Not Found');
  });

  it('refuses to destroy a compute instance a process is attached to', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.call('mig', '-i', '0', '-cgi', '19:0', '-C');
    s.state.faults = { busyInstances: ['0:7'] };
    expect(s.call('mig', '-i', '0', '-dci', '-ci', '0', '-gi', '7')).toMatchObject({ exitCode: 255, stderr: expect.stringContaining('In use by another client') as string });
  });
});

describe('simulated MIG mode', () => {
  it('answers every mig command on a MIG-disabled GPU with "No MIG-enabled devices found." and exit code 6', () => {
    const s = sim(oneGpu('A100-SXM4-40GB', 'Disabled'));
    for (const args of [['-lgip'], ['-lgipp'], ['-lgi'], ['-lci'], ['-cgi', '9', '-C']]) {
      expect(s.call('mig', ...args)).toMatchObject({ stdout: 'No MIG-enabled devices found.\n', exitCode: 6 });
    }
  });

  it('keeps an Ampere GPU pending until it is reset', () => {
    const s = sim(oneGpu('A100-SXM4-40GB', 'Disabled'));
    const r = s.call('-i', '0', '-mig', '1');
    expect(r.stdout).toMatch(/^Warning: MIG mode is in pending enable state for GPU 00000000:18:00.0/);
    expect(r.stdout).toMatch(/All done\.\n$/);
    expect(s.state.gpus[0]).toMatchObject({ migCurrent: 'Disabled', migPending: 'Enabled' });
    expect(s.call('-r', '-i', '0').exitCode).toBe(0);
    expect(s.state.gpus[0]).toMatchObject({ migCurrent: 'Enabled', migPending: 'Enabled' });
  });

  it('switches a Hopper GPU at once', () => {
    const s = sim(oneGpu('H100-80GB', 'Disabled'));
    expect(s.call('-i', '0', '-mig', '1').stdout).toBe('Enabled MIG Mode for GPU 00000000:18:00.0\nAll done.\n');
    expect(s.state.gpus[0]).toMatchObject({ migCurrent: 'Enabled', migPending: 'Enabled' });
  });

  it('refuses to disable MIG while GPU instances exist', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.call('mig', '-cgi', '19:0', '-C');
    expect(s.call('-i', '0', '-mig', '0')).toMatchObject({ exitCode: 255, stderr: 'Unable to disable MIG Mode for GPU 00000000:18:00.0: In use by another client\n' });
  });
});

describe('simulated faults', () => {
  it('fails exactly the next call with the injected exit code and message', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.state.faults = { failNext: { exitCode: 4, message: 'Insufficient Permissions' } };
    expect(s.call('-L')).toMatchObject({ exitCode: 4, stderr: 'Insufficient Permissions\n' });
    expect(s.call('-L').exitCode).toBe(0);
  });

  it('prints garbage on the next call and then recovers', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.state.faults = { garbageNext: 1 };
    expect(s.call('-L').stdout).toContain('0xdeadbeef');
    expect(s.call('-L').stdout).toMatch(/^GPU 0: NVIDIA H100 80GB HBM3/);
  });

  it('reports a lost GPU with exit code 15 while listing the others', () => {
    const s = sim({ gpus: [{ model: 'H100-80GB' }, { model: 'H100-80GB' }] });
    s.state.faults = { lostGpus: [1] };
    const r = s.call('-L');
    expect(r.exitCode).toBe(15);
    expect(r.stdout).toMatch(/^GPU 0: /);
    expect(r.stdout).not.toContain('GPU 1:');
    expect(r.stderr).toBe('Unable to determine the device handle for GPU0000:29:00.0: GPU is lost.  Reboot the system to recover this GPU\n');
  });

  it('exits 9 with the real message when the driver is not loaded', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.state.faults = { driverNotLoaded: true };
    expect(s.call('-L')).toMatchObject({ exitCode: 9, stdout: expect.stringContaining("couldn't communicate with the NVIDIA driver") as string });
  });

  it('shows injected uncorrectable ECC errors in -q -x and --query-gpu', () => {
    const s = sim(oneGpu('H100-80GB'));
    s.state.faults = { eccErrors: { '0': 3 } };
    expect(s.call('-q', '-x').stdout).toContain('<dram_uncorrectable>3</dram_uncorrectable>');
    expect(s.call('--query-gpu=ecc.errors.uncorrected.volatile.total', '--format=csv,noheader').stdout).toBe('3\n');
  });

  it('rejects unknown arguments and query fields like nvidia-smi', () => {
    const s = sim(oneGpu('H100-80GB'));
    expect(s.call('--bogus')).toMatchObject({ exitCode: 2, stderr: "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n" });
    expect(s.call('--query-gpu=index,bogus', '--format=csv')).toMatchObject({ exitCode: 2, stderr: 'Field "bogus" is not a valid field to query.\n' });
    expect(s.call('-L', '-i', '5')).toMatchObject({ exitCode: 6, stderr: 'No devices were found\n' });
  });
});
