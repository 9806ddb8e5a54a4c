// A real round trip: the nvidia-smi backend runs the simulator executable
// through execFile, discovers the GPUs, creates a MIG device at a placement,
// lists it, destroys it, and maps failures to typed errors.
import { NvidiaSmiError } from '../../../pkg/nvidia/errors.js';
import { NvidiaSmiBackend } from '../../../pkg/nvidia/smi-backend.js';
import { buildDesiredSlices } from '../../../pkg/inventory/index.js';
import { FLEETS, type FakeNvidiaSmi, createFakeNvidiaSmi, fakeNvidiaSmiBuilt } from '../../../hack/fake-nvidia-smi/testing.js';

beforeAll(() => {
  if (!fakeNvidiaSmiBuilt()) throw new Error('the simulator is not built: run "npm run build" (or npx tsc -p tsconfig.build.json) first');
});

function backendFor(fake: FakeNvidiaSmi, timeoutMs = 20_000): NvidiaSmiBackend {
  return new NvidiaSmiBackend({ path: fake.path, env: fake.env, timeoutMs, sysfsRoot: fake.dir });
}

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err: unknown) {
    return err instanceof NvidiaSmiError ? err.kind : `untyped: ${String(err)}`;
  }
}

describe('NvidiaSmiBackend driving the simulator', () => {
  let fake: FakeNvidiaSmi;
  afterEach(() => fake.cleanup());

  it('discovers eight NVLinked H100s with NUMA nodes, versions and compute capability', async () => {
    fake = createFakeNvidiaSmi(FLEETS.h100x8());
    const d = await backendFor(fake).discover();
    expect(d.driverVersion).toBe('580.105.08');
    expect(d.cudaVersion).toBe('13.0');
    expect(d.gpus).toHaveLength(8);
    expect(d.gpus.map((g) => g.numaNode)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(d.gpus[2]).toMatchObject({
      index: 2,
      minor: 2,
      productName: 'NVIDIA H100 80GB HBM3',
      architecture: 'Hopper',
      brand: 'NVIDIA',
      computeCapability: '9.0',
      memoryMiB: 81559,
      migMode: { current: 'Disabled', pending: 'Disabled' },
      nvlinkPeers: [0, 1, 3, 4, 5, 6, 7],
      pcieRoot: undefined,
    });
    expect(d.migProfiles).toEqual([]);
    expect(d.lost).toEqual([]);
  });

  it('discovers boards without MIG (L40S, T4) with MIG mode N/A, publishes them whole and shared, and refuses to switch MIG on', async () => {
    fake = createFakeNvidiaSmi({
      driverVersion: '580.105.08',
      cudaVersion: '13.0',
      gpus: [
        { model: 'L40S', numaNode: 0 },
        { model: 'T4', numaNode: 1 },
      ],
    });
    const backend = backendFor(fake);
    const d = await backend.discover();
    expect(d.gpus.map((g) => [g.productName, g.architecture, g.computeCapability, g.memoryMiB, g.migMode.current])).toEqual([
      ['NVIDIA L40S', 'Ada Lovelace', '8.9', 46068, 'N/A'],
      ['Tesla T4', 'Turing', '7.5', 15360, 'N/A'],
    ]);
    const slices = buildDesiredSlices({ nodeName: 'n', driverName: 'gpu.cascade.dev', discovery: d });
    expect(slices.flatMap((s) => s.spec.devices ?? []).map((dev) => dev.name)).toEqual(['gpu-0', 'gpu-0-shared', 'gpu-1', 'gpu-1-shared']);
    expect(await kindOf(backend.setMigMode(1, true))).toBe('not-supported');
  });

  it('creates a MIG device at an exact placement, lists it and destroys it', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
    const backend = backendFor(fake);
    const created = await backend.createMigDevice({ gpuIndex: 0, profileId: 9, placementStart: 4 });
    expect(created).toMatchObject({ gpuIndex: 0, gpuInstanceId: 2, computeInstanceId: 0, profile: '3g.20gb', profileId: 9, placement: { start: 4, size: 4 } });
    expect(created.uuid).toMatch(/^MIG-[0-9a-f]{8}-/);

    const d = await backend.discover();
    expect(d.gpuInstances.map((g) => [g.instanceId, g.profile, g.placement.start])).toEqual([[2, '3g.20gb', 4]]);
    expect(d.computeInstances.map((c) => [c.gpuInstanceId, c.instanceId])).toEqual([[2, 0]]);
    expect(d.gpus[0]!.migDevices).toEqual([expect.objectContaining({ gpuInstanceId: 2, computeInstanceId: 0, uuid: created.uuid, profile: '3g.20gb', memoryMiB: 19968 })]);
    expect(d.migProfiles.find((p) => p.id === 9)).toMatchObject({
      name: '3g.20gb',
      instancesFree: 1,
      placements: [
        { start: 0, size: 4 },
        { start: 4, size: 4 },
      ],
    });

    await backend.destroyMigDevice({ gpuIndex: 0, gpuInstanceId: 2, computeInstanceId: 0 });
    expect(await backend.listGpuInstances()).toEqual([]);
    // Destroying again finds nothing and still succeeds, so a retried unprepare is harmless.
    await backend.destroyMigDevice({ gpuIndex: 0, gpuInstanceId: 2, computeInstanceId: 0 });
  });

  it('keeps state consistent when creations from separate processes race', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
    const backends = [backendFor(fake), backendFor(fake), backendFor(fake)];
    const results = await Promise.allSettled(backends.map((b, i) => b.createMigDevice({ gpuIndex: 0, profileId: 14, placementStart: i * 2 })));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(
      fake
        .readState()
        .gpus[0]!.gpuInstances.map((g) => g.start)
        .sort(),
    ).toEqual([0, 2, 4]);
  });

  it.each([
    [
      'an overlapping placement',
      'insufficient-resources',
      async (b: NvidiaSmiBackend) => {
        await b.createMigDevice({ gpuIndex: 0, profileId: 9, placementStart: 0 });
        await b.createMigDevice({ gpuIndex: 0, profileId: 5, placementStart: 0 });
      },
    ],
    ['a placement the profile does not have', 'bad-argument', (b: NvidiaSmiBackend) => b.createMigDevice({ gpuIndex: 0, profileId: 9, placementStart: 2 })],
  ])('reports %s as %s', async (_name, kind, act) => {
    fake = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
    expect(await kindOf(act(backendFor(fake)))).toBe(kind);
  });

  it('refuses values that would reach the command line unless they are small non-negative integers', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
    const b = backendFor(fake);
    await expect(b.createMigDevice({ gpuIndex: -1, profileId: 9, placementStart: 0 })).rejects.toThrow(/GPU index must be an integer/);
    await expect(b.createMigDevice({ gpuIndex: 0, profileId: 9.5, placementStart: 0 })).rejects.toThrow(/MIG profile ID must be an integer/);
    await expect(b.createMigDevice({ gpuIndex: 0, profileId: 9, placementStart: 8 })).rejects.toThrow(/placement start must be an integer between 0 and 7/);
    await expect(b.destroyMigDevice({ gpuIndex: 0, gpuInstanceId: Number.NaN, computeInstanceId: 0 })).rejects.toThrow(/GPU instance ID/);
  });

  it.each([
    ['the driver is not loaded', { driverNotLoaded: true }, 'driver-not-loaded'],
    ['the next call fails for lack of permission', { failNext: { exitCode: 4, message: 'Insufficient Permissions' } }, 'no-permission'],
  ])('fails discovery with a typed error when %s', async (_name, faults, kind) => {
    fake = createFakeNvidiaSmi(FLEETS.a100());
    fake.setFaults(faults);
    expect(await kindOf(backendFor(fake).discover())).toBe(kind);
  });

  it('fails discovery naming the command and line when the output is garbage', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100());
    fake.setFaults({ garbageNext: 1 });
    await expect(backendFor(fake).discover()).rejects.toThrow(/cannot read output of "nvidia-smi --query-gpu=index,uuid,.*" at line 1/);
  });

  it('discovers the reachable GPUs and names the lost one', async () => {
    fake = createFakeNvidiaSmi(FLEETS.h100x8());
    fake.setFaults({ lostGpus: [7] });
    const d = await backendFor(fake).discover();
    expect(d.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(d.lost).toEqual([{ pciBusId: expect.stringMatching(/^0000:[0-9a-f]{2}:00\.0$/) as string, message: 'GPU is lost.  Reboot the system to recover this GPU' }]);
  });

  it('still lists the MIG state of the reachable GPUs when one is lost', async () => {
    fake = createFakeNvidiaSmi(FLEETS.h100x8('Enabled'));
    const backend = backendFor(fake);
    await backend.createMigDevice({ gpuIndex: 1, profileId: 9, placementStart: 0 });
    fake.addFaults({ lostGpus: [7] });
    const d = await backend.discover();
    expect(d.gpus).toHaveLength(7);
    expect(new Set(d.migProfiles.map((p) => p.gpuIndex))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6]));
    expect(d.gpuInstances.map((g) => [g.gpuIndex, g.instanceId])).toEqual([[1, 1]]);
    expect(d.lost).toHaveLength(1);
  });

  it('reports a lost GPU and uncorrectable ECC errors as unhealthy', async () => {
    fake = createFakeNvidiaSmi(FLEETS.h100x8());
    fake.setFaults({ lostGpus: [7], eccErrors: { '3': 2 } });
    const health = await backendFor(fake).health();
    const unhealthy = health.filter((h) => !h.healthy).map((h) => h.reason);
    expect(unhealthy).toEqual(['nvidia-smi cannot reach the GPU: GPU is lost.  Reboot the system to recover this GPU', '2 uncorrectable ECC error(s) since the driver loaded']);
    expect(health.filter((h) => h.healthy)).toHaveLength(6);
  });

  it('kills a call that does not answer in time and says so', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100());
    fake.setFaults({ slowMs: 30_000 });
    expect(await kindOf(backendFor(fake, 300).discover())).toBe('timeout');
  });

  it('says the simulator is not executable when the path is wrong', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100());
    expect(await kindOf(new NvidiaSmiBackend({ path: `${fake.dir}/missing` }).discover())).toBe('not-executable');
  });
});

describe('switching MIG mode through the backend', () => {
  let fake: FakeNvidiaSmi;
  afterEach(() => fake.cleanup());

  it('switches a Hopper GPU at once', async () => {
    fake = createFakeNvidiaSmi({ gpus: [{ model: 'H100-80GB' }] });
    expect(await backendFor(fake).setMigMode(0, true)).toEqual({ current: 'Enabled', pending: 'Enabled' });
  });

  it('leaves an Ampere GPU pending until a reset', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100());
    expect(await backendFor(fake).setMigMode(0, true)).toEqual({ current: 'Disabled', pending: 'Enabled' });
  });
});
