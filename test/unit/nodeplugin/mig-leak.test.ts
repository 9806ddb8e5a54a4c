// A MIG instance whose creation succeeded but whose next step failed is rolled
// back, never leaked: the real nvidia-smi backend over the simulator, with the
// command after `mig -cgi` failing, and the preparer's real checkpoint.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CdiSpecWriter } from '../../../pkg/kubeletplugin/cdi-writer.js';
import { CheckpointStore } from '../../../pkg/nodeplugin/checkpoint.js';
import { logger } from '../../../pkg/log/logger.js';
import { NodePreparer } from '../../../pkg/nodeplugin/preparer.js';
import { NvidiaSmiBackend } from '../../../pkg/nvidia/smi-backend.js';
import { FLEETS, type FakeNvidiaSmi, createFakeNvidiaSmi, fakeNvidiaSmiBuilt } from '../../../hack/fake-nvidia-smi/testing.js';
import { DRIVER, MemoryClaims, NODE, claim, published, refOf, snapshotOf } from './fakes.js';

let dir: string;
let fake: FakeNvidiaSmi;
beforeAll(() => {
  if (!fakeNvidiaSmiBuilt()) throw new Error('the simulator is not built: run "npm run build" first');
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cascade-leak-'));
});
afterEach(async () => {
  fake.cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function preparerOver(backend: NvidiaSmiBackend, claims: MemoryClaims): Promise<NodePreparer> {
  const d = await backend.discover();
  const p = new NodePreparer({
    driver: DRIVER,
    nodeName: NODE,
    backend,
    claims,
    status: undefined,
    cdi: new CdiSpecWriter(DRIVER, join(dir, 'cdi')),
    checkpoint: new CheckpointStore({ path: join(dir, 'checkpoint.json'), readBootId: async () => 'boot-1' }),
    inventory: published(snapshotOf(d)),
    migMinorsPath: fake.migMinorsPath,
    dynamicMig: true,
    log: logger('test'),
  });
  await p.load();
  expect(await p.recover(d)).toBeDefined();
  return p;
}

describe('a failure right after mig -cgi', () => {
  it.each([
    ['the MIG UUID lookup is refused', { exitCode: 4, message: 'Insufficient Permissions' }],
    ['a GPU falls off the bus during the lookup', { exitCode: 15, message: 'Unable to determine the device handle: GPU is lost. Reboot the system to recover this GPU' }],
  ])('when %s, the instance is destroyed, the claim gets an error, and the retry creates it afresh', async (_name, fault) => {
    fake = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
    const backend = new NvidiaSmiBackend({ path: fake.path, env: fake.env, timeoutMs: 20_000, sysfsRoot: fake.dir });
    const claims = new MemoryClaims();
    const c = claims.put(claim(1, ['gpu-0-mig-3g-20gb-4']));
    const preparer = await preparerOver(backend, claims);

    fake.setFaults({ failNext: { ...fault, skip: 1 } });
    const first = (await preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(first && 'error' in first ? first.error : first).toMatch(/^claim ns\/c1/);
    // Nothing is left on the GPU and nothing in the checkpoint.
    expect(fake.readState().gpus[0]?.gpuInstances ?? []).toEqual([]);
    expect(preparer.checkpointState.claims).toEqual({});

    // The retry (what the kubelet does next) creates its own instance and owns it.
    const second = (await preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(second && 'devices' in second ? second.devices.map((d) => d.deviceName) : second).toEqual(['gpu-0-mig-3g-20gb-4']);
    expect((fake.readState().gpus[0]?.gpuInstances ?? []).length).toBe(1);

    // Unprepare removes it: no leak at the end either.
    expect((await preparer.unprepare([refOf(c)])).get(c.metadata.uid ?? '')).toEqual({});
    expect(fake.readState().gpus[0]?.gpuInstances ?? []).toEqual([]);
  });

  it('keeps a created instance recorded when even its destroy fails, and removes it on the next attempt', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100('Enabled'));
    const backend = new NvidiaSmiBackend({ path: fake.path, env: fake.env, timeoutMs: 20_000, sysfsRoot: fake.dir });
    const claims = new MemoryClaims();
    const c = claims.put(claim(1, ['gpu-0-mig-3g-20gb-4']));
    const preparer = await preparerOver(backend, claims);

    // -cgi works; the lookup, and the destroys that try to undo it, all fail.
    fake.setFaults({ failNext: { exitCode: 4, message: 'Insufficient Permissions', skip: 1, count: 10 } });
    const first = (await preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(first && 'error' in first ? first.error : first).toMatch(/rolling back also failed/);
    const recorded = preparer.checkpointState.claims[c.metadata.uid ?? '']?.migCreated ?? [];
    expect(recorded.map((m) => [m.gpuInstanceId, m.placement.start])).toEqual([[2, 4]]);
    expect((fake.readState().gpus[0]?.gpuInstances ?? []).length).toBe(1);

    fake.setFaults({});
    const second = (await preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(second && 'devices' in second).toBe(true);
    expect((fake.readState().gpus[0]?.gpuInstances ?? []).length).toBe(1);
    expect((await preparer.unprepare([refOf(c)])).get(c.metadata.uid ?? '')).toEqual({});
    expect(fake.readState().gpus[0]?.gpuInstances ?? []).toEqual([]);
  });
});
