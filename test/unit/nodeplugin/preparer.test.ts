// The preparer against an in-memory GPU backend: roll-back of a half-prepared
// claim, start-up recovery after a crash, reboots, refused destroys, and
// dynamic MIG mode, with real checkpoint and CDI files in a temp directory.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CdiSpecWriter } from '../../../pkg/kubeletplugin/cdi-writer.js';
import { CheckpointStore, emptyCheckpoint, startPrepare } from '../../../pkg/nodeplugin/checkpoint.js';
import { logger } from '../../../pkg/log/logger.js';
import { type InventorySnapshot, intendedDevices, planClaim } from '../../../pkg/nodeplugin/plan.js';
import { PublishedInventory } from '../../../pkg/nodeplugin/published-inventory.js';
import type { MigMode } from '../../../pkg/nvidia/types.js';
import { NodePreparer } from '../../../pkg/nodeplugin/preparer.js';
import { NvidiaSmiError } from '../../../pkg/nvidia/errors.js';
import type { Discovery } from '../../../pkg/nvidia/backend.js';
import { migMinorsTable } from '../../../hack/fake-nvidia-smi/testing.js';
import { discovery, gpu, h100x8 } from '../inventory/nodes.js';
import { DRIVER, FakeBackend, MemoryClaims, NODE, claim, refOf, snapshotOf } from './fakes.js';

interface Rig {
  readonly backend: FakeBackend;
  readonly claims: MemoryClaims;
  readonly cdi: CdiSpecWriter;
  readonly store: CheckpointStore;
  readonly modeChanges: string[];
  preparer: NodePreparer;
  inventory: InventorySnapshot;
  bootId: string;
  /** A new preparer over the same files and GPUs, as after a restart. */
  restart(): Promise<NodePreparer>;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cascade-np-'));
  await writeFile(join(dir, 'mig-minors'), migMinorsTable(8));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rig(d: Discovery = h100x8('Enabled')): Promise<Rig> {
  const backend = new FakeBackend(d);
  const claims = new MemoryClaims();
  const cdi = new CdiSpecWriter(DRIVER, join(dir, 'cdi'));
  const r: Rig = {
    backend,
    claims,
    cdi,
    store: new CheckpointStore({ path: join(dir, 'state', 'checkpoint.json'), readBootId: async () => r.bootId }),
    modeChanges: [],
    preparer: undefined as unknown as NodePreparer,
    inventory: snapshotOf(d),
    bootId: 'boot-1',
    restart: async () => {
      r.preparer = new NodePreparer({
        driver: DRIVER,
        nodeName: NODE,
        backend,
        claims,
        status: undefined,
        cdi,
        checkpoint: r.store,
        inventory: new (class extends PublishedInventory {
          override get current(): InventorySnapshot {
            return r.inventory;
          }
          override migModeChanged(uuid: string, mode: MigMode): void {
            r.modeChanges.push(`${uuid} ${mode}`);
          }
        })(),
        migMinorsPath: join(dir, 'mig-minors'),
        dynamicMig: true,
        log: logger('test'),
      });
      await r.preparer.load();
      return r.preparer;
    },
  };
  await r.restart();
  return r;
}

describe('the node preparer', () => {
  it('refuses to prepare until start-up recovery has run', async () => {
    const r = await rig();
    const c = r.claims.put(claim(1, ['gpu-0']));
    const res = (await r.preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(res).toEqual({ reason: 'NotReady', error: expect.stringMatching(/not ready: start-up recovery has not run yet/) });
  });

  it('destroys what a claim created when a later device of it fails, and writes no CDI spec', async () => {
    const r = await rig();
    await r.preparer.recover(await r.backend.discover());
    const c = r.claims.put(claim(1, ['gpu-0-mig-1g-10gb-0', 'gpu-1-mig-3g-40gb-4']));
    r.backend.createFailures = [undefined, new NvidiaSmiError('nvidia-smi mig -i 1 -cgi 9:4 -C', 'insufficient-resources', 255, 'Insufficient Resources')];
    const res = (await r.preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(res).toEqual({
      reason: 'MigCreateFailed',
      error: expect.stringMatching(/cannot create MIG 3g\.40gb at placement 4:4 on gpu-1 \(GPU 1\) for device gpu-1-mig-3g-40gb-4: .*Insufficient Resources/),
    });
    expect(r.backend.gpuInstances).toEqual([]);
    expect(r.backend.calls).toContain('destroy 0 1');
    expect(existsSync(r.cdi.pathFor(c.metadata.uid ?? ''))).toBe(false);
    expect(r.preparer.checkpointState.claims).toEqual({});
  });

  it("tells the backend the partition's size from the GPU's own profile table, not a fixed map (an A30 has 4 memory slices, not 8)", async () => {
    const r = await rig();
    await r.preparer.recover(await r.backend.discover());
    const c = r.claims.put(claim(1, ['gpu-1-mig-3g-40gb-4', 'gpu-2-mig-2g-20gb-2']));
    const res = (await r.preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(res && 'devices' in res).toBe(true);
    expect(r.backend.requestedSizes).toEqual([4, 2]);
  });

  it('after a crash, destroys the instance a half-prepared claim created but never recorded, and nothing else', async () => {
    const r = await rig();
    const c = r.claims.put(claim(1, ['gpu-2-mig-2g-20gb-2']));
    // The crash: checkpoint says PrepareStarted, the instance exists, no record of it.
    const p = planClaim({ driver: DRIVER, nodeName: NODE, ref: refOf(c), claim: c, inventory: r.inventory, held: [] });
    if (!p.ok) throw new Error(p.error);
    await r.store.save(startPrepare(emptyCheckpoint('boot-1'), refOf(c), intendedDevices(p.devices)));
    await r.backend.createMigDevice({ gpuIndex: 2, profileId: 14, placementStart: 2 });
    const foreignSameGpu = r.backend.addForeign(2, 19, 6, 1);
    const foreignOtherGpu = r.backend.addForeign(3, 14, 2, 2);
    await r.cdi.write('00000000-0000-4000-8000-00000000dead', { cdiVersion: '0.5.0', kind: `k8s.${DRIVER}/gpu`, devices: [{ name: 'x', containerEdits: { env: ['A=1'] } }] });

    const restarted = await r.restart();
    expect(restarted.ownedInstances(await r.backend.discover())).toHaveLength(1);
    const report = await restarted.recover(await r.backend.discover());
    expect(report).toMatchObject({ rolledBack: [expect.stringContaining('ns/c1')], destroyed: ['GPU 2 GPU instance 1'], orphanCdiSpecs: ['00000000-0000-4000-8000-00000000dead'] });
    expect(r.backend.gpuInstances.map((g) => `${g.gpuIndex}:${g.instanceId}`).sort()).toEqual([`2:${foreignSameGpu}`, `3:${foreignOtherGpu}`]);
    // The kubelet's retry prepares from scratch.
    const res = (await restarted.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(res && 'devices' in res ? res.devices.map((d) => d.deviceName) : res).toEqual(['gpu-2-mig-2g-20gb-2']);
  });

  it('forgets the claims of a previous boot without touching the GPUs', async () => {
    const r = await rig();
    await r.preparer.recover(await r.backend.discover());
    const c = r.claims.put(claim(1, ['gpu-0-mig-7g-80gb-0']));
    await r.preparer.prepare([refOf(c)]);
    expect(r.backend.gpuInstances).toHaveLength(1);
    r.bootId = 'boot-2';
    const restarted = await r.restart();
    expect(restarted.checkpointState.claims).toEqual({});
    await restarted.recover(await r.backend.discover());
    expect(r.backend.calls.filter((x) => x.startsWith('destroy'))).toEqual([]);
  });

  it('keeps a claim whose instance cannot be destroyed, and finishes the unprepare when retried', async () => {
    const r = await rig();
    await r.preparer.recover(await r.backend.discover());
    const c = r.claims.put(claim(1, ['gpu-4-mig-1g-10gb-5']));
    const ref = refOf(c);
    await r.preparer.prepare([ref]);
    const gi = r.backend.gpuInstances[0]?.instanceId ?? -1;
    r.backend.busy.add(`4:${gi}`);
    const refused = (await r.preparer.unprepare([ref])).get(ref.uid);
    expect(refused?.error).toMatch(/cannot destroy MIG device gpu-4-mig-1g-10gb-5 \(GPU 4 GPU instance \d+\): .*In use by another client/);
    expect(Object.keys(r.preparer.checkpointState.claims)).toEqual([ref.uid]);
    expect(existsSync(r.cdi.pathFor(ref.uid))).toBe(true);
    r.backend.busy.clear();
    expect((await r.preparer.unprepare([ref])).get(ref.uid)).toEqual({});
    expect(r.backend.gpuInstances).toEqual([]);
    expect(existsSync(r.cdi.pathFor(ref.uid))).toBe(false);
  });

  it('switches MIG on before the first partition of a Hopper GPU whose MIG mode is off', async () => {
    const d = h100x8('Disabled');
    const r = await rig({ ...d, migProfiles: h100x8('Enabled').migProfiles });
    r.inventory = snapshotOf(d);
    await r.preparer.recover(await r.backend.discover());
    const c = r.claims.put(claim(1, ['gpu-6-mig-3g-40gb-0']));
    const res = (await r.preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(res && 'error' in res ? res.error : '').toBe('');
    expect(r.backend.calls.filter((x) => !x.startsWith('discover'))).toEqual(['mig-mode 6 1', 'create 6 9:0']);
    expect(r.modeChanges).toEqual([`${d.gpus[6]?.uuid ?? ''} Enabled`]);
  });

  it('refuses a partition on an Ampere GPU whose MIG mode is off: switching needs a reset', async () => {
    const ampere = discovery([gpu(0, { model: 'A100-SXM4-40GB', mig: 'Enabled' })]);
    const r = await rig(ampere);
    await r.preparer.recover(await r.backend.discover());
    const off = { ...ampere, gpus: ampere.gpus.map((g) => ({ ...g, migMode: { current: 'Disabled' as const, pending: 'Disabled' as const } })) };
    // Published while MIG was on; an administrator turned it off since.
    r.inventory = { ...snapshotOf(ampere), discovery: off };
    const c = r.claims.put(claim(1, ['gpu-0-mig-3g-20gb-4']));
    const res = (await r.preparer.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(res).toEqual({ reason: 'MigModeSwitchFailed', error: expect.stringMatching(/needs MIG mode Enabled on gpu-0, but it is Disabled and Ampere cannot switch without a reset/) });
    expect(r.backend.calls.filter((x) => !x.startsWith('discover'))).toEqual([]);
  });
});
