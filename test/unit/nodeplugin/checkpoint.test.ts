// The checkpoint: pure state transitions, canonical checksum, and the store's
// handling of missing, corrupt and pre-reboot files.
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CheckpointState,
  type IntendedDevice,
  type MigInstanceRecord,
  CheckpointCorruptError,
  CHECKPOINT_VERSION,
  CHECKPOINT_WRITER,
  CheckpointStore,
  canonicalJson,
  completePrepare,
  decodeCheckpoint,
  decodeCheckpointFile,
  emptyCheckpoint,
  encodeCheckpoint,
  forgetMigInstance,
  halfPreparedClaims,
  ownedMigInstances,
  preparedDevices,
  recordMigCreated,
  removeClaim,
  startPrepare,
} from '../../../pkg/nodeplugin/checkpoint.js';
import { claim, tempDir } from '../kubeletplugin/fakes.js';

const BOOT_A = '6a0b0a55-1111-4c2d-9e6f-000000000001';
const BOOT_B = '6a0b0a55-1111-4c2d-9e6f-000000000002';

const intendedMig: IntendedDevice = {
  request: 'gpu/small',
  poolName: 'node-a',
  deviceName: 'gpu-0-mig-3g-40gb-4',
  type: 'mig',
  gpuIndex: 0,
  gpuUuid: 'GPU-0',
  mig: { profile: '3g.40gb', profileId: 9, placement: { start: 4, size: 4 } },
};

const created: MigInstanceRecord = {
  deviceName: 'gpu-0-mig-3g-40gb-4',
  gpuIndex: 0,
  gpuUuid: 'GPU-0',
  gpuInstanceId: 2,
  computeInstanceId: 0,
  migUuid: 'MIG-abc',
  profile: '3g.40gb',
  profileId: 9,
  placement: { start: 4, size: 4 },
  confirmed: true,
};

const device = { requestNames: ['gpu'], poolName: 'node-a', deviceName: 'gpu-0-mig-3g-40gb-4', cdiDeviceIds: ['k8s.gpu.cascade.dev/gpu=uid-a-gpu-0-mig-3g-40gb-4'] };

function preparedState(): CheckpointState {
  let s = emptyCheckpoint(BOOT_A);
  s = startPrepare(s, claim('a'), [intendedMig]);
  s = recordMigCreated(s, 'uid-a', created);
  return completePrepare(s, 'uid-a', { devices: [device] });
}

describe('checkpoint state transitions', () => {
  it('take a claim from PrepareStarted with its intent to PrepareCompleted with its instances and CDI IDs', () => {
    let s = startPrepare(emptyCheckpoint(BOOT_A), claim('a'), [intendedMig]);
    expect(s.claims['uid-a']).toMatchObject({ state: 'PrepareStarted', intended: [intendedMig], migCreated: [] });
    expect(halfPreparedClaims(s).map((c) => c.uid)).toEqual(['uid-a']);
    s = recordMigCreated(s, 'uid-a', created);
    s = completePrepare(s, 'uid-a', { devices: [device] });
    expect(s.claims['uid-a']).toEqual({
      state: 'PrepareCompleted',
      uid: 'uid-a',
      namespace: 'default',
      name: 'a',
      intended: [intendedMig],
      migCreated: [created],
      devices: [device],
      cdiDeviceIds: device.cdiDeviceIds,
      preparedBy: CHECKPOINT_WRITER,
      preparedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(halfPreparedClaims(s)).toEqual([]);
  });

  it('never mutate the state they are given', () => {
    const before = emptyCheckpoint(BOOT_A);
    const frozen = JSON.stringify(before);
    startPrepare(before, claim('a'), []);
    expect(JSON.stringify(before)).toBe(frozen);
  });

  it('replay the devices of a completed claim, and of no other', () => {
    const s = preparedState();
    expect(preparedDevices(s, 'uid-a')).toEqual([device]);
    expect(preparedDevices(startPrepare(s, claim('b'), []), 'uid-b')).toBeUndefined();
    expect(preparedDevices(s, 'unknown')).toBeUndefined();
  });

  it('refuse to restart a completed claim', () => {
    expect(() => startPrepare(preparedState(), claim('a'), [])).toThrow('already prepared');
  });

  it('keep the instances of a half-prepared claim when it is started again', () => {
    let s = startPrepare(emptyCheckpoint(BOOT_A), claim('a'), [intendedMig]);
    s = recordMigCreated(s, 'uid-a', created);
    s = startPrepare(s, claim('a'), [intendedMig]);
    expect(s.claims['uid-a']?.migCreated).toEqual([created]);
  });

  it('list every owned MIG instance with its claim, and forget destroyed ones', () => {
    const s = preparedState();
    expect(ownedMigInstances(s)).toEqual([{ ...created, claimUid: 'uid-a' }]);
    expect(ownedMigInstances(forgetMigInstance(s, 'uid-a', 'GPU-0', 2))).toEqual([]);
  });

  it('remove claims, and treat an unknown claim as already removed', () => {
    const s = preparedState();
    expect(removeClaim(s, 'uid-a').claims).toEqual({});
    expect(removeClaim(s, 'nope')).toBe(s);
  });
});

describe('checkpoint versions', () => {
  // Written by the node plugin as it was before checkpoint version 2 (test/fixtures/checkpoint/README.md).
  const v1 = readFileSync(join(process.cwd(), 'test/fixtures/checkpoint/v1.json'), 'utf8');

  it('converts a version-1 checkpoint written by the previous release instead of calling it corrupt', () => {
    const decoded = decodeCheckpointFile(v1);
    expect(decoded.convertedFrom).toBe(1);
    const prepared = decoded.state.claims['0b7d5c1e-9f3a-4c2d-8e6f-1a2b3c4d5e6f'];
    expect(prepared?.state).toBe('PrepareCompleted');
    expect(prepared?.migCreated).toEqual([expect.objectContaining({ gpuInstanceId: 2, migUuid: 'MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', confirmed: true })]);
    expect(decoded.state.claims['9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4']?.state).toBe('PrepareStarted');
    expect(decoded.state.writtenBy).toBe('cascade-node-plugin (checkpoint v1)');
  });

  it('converts a version-2 checkpoint of the release before passthrough, with nothing taken or stranded', () => {
    const v2 = readFileSync(join(process.cwd(), 'test/fixtures/checkpoint/v2.json'), 'utf8');
    const decoded = decodeCheckpointFile(v2);
    expect(decoded.convertedFrom).toBe(2);
    expect(decoded.state.stranded).toEqual({});
    expect(Object.values(decoded.state.claims).map((c) => [c.state, c.vfioTaken ?? []])).toEqual([
      ['PrepareCompleted', []],
      ['PrepareStarted', []],
    ]);
    expect(decoded.state.writtenBy).toBe('cascade-node-plugin (checkpoint v2)');
  });

  it('converts a version-3 checkpoint of the release before provenance, naming that release as the one that prepared the claim', () => {
    const v3 = readFileSync(join(process.cwd(), 'test/fixtures/checkpoint/v3.json'), 'utf8');
    const decoded = decodeCheckpointFile(v3);
    expect(decoded.convertedFrom).toBe(3);
    expect(Object.values(decoded.state.claims).map((c) => [c.state, c.state === 'PrepareCompleted' ? c.preparedBy : '-', c.state === 'PrepareCompleted' ? (c.preparedAt ?? 'unknown') : '-'])).toEqual([
      ['PrepareCompleted', 'cascade-node-plugin (checkpoint v3)', 'unknown'],
      ['PrepareStarted', '-', '-'],
    ]);
  });

  it('writes a converted checkpoint back in the current version when the store loads it', async () => {
    const { dir, cleanup } = await tempDir('cascade-ckpt-v1-');
    try {
      const path = join(dir, 'plugin', 'checkpoint.json');
      await mkdir(join(dir, 'plugin'), { recursive: true });
      await writeFile(path, v1);
      const store = new CheckpointStore({ path, readBootId: async () => '8c1f4d9e-3a55-4e1b-9d0e-6c2f1b7a0d11' });
      const outcome = await store.load();
      expect(outcome).toMatchObject({ kind: 'loaded', convertedFrom: 1 });
      const rewritten = JSON.parse(await readFile(path, 'utf8')) as { version: number; payload: { writtenBy: string } };
      expect(rewritten.version).toBe(CHECKPOINT_VERSION);
      expect(rewritten.payload.writtenBy).toBe(CHECKPOINT_WRITER);
      expect(decodeCheckpointFile(await readFile(path, 'utf8')).convertedFrom).toBeUndefined();
    } finally {
      await cleanup();
    }
  });
});

describe('checkpoint encoding', () => {
  it('round-trips through its file text', () => {
    const s = preparedState();
    expect(decodeCheckpoint(encodeCheckpoint(s))).toEqual(s);
  });

  it('hashes a canonical form, so key order does not change the checksum', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined, e: null }] })).toBe('{"a":[{"d":2,"e":null}],"b":1}');
  });

  it.each<[string, (text: string) => string, RegExp]>([
    ['a changed value', (t) => t.replace('"MIG-abc"', '"MIG-xyz"'), /checksum mismatch/],
    ['a truncated file', (t) => t.slice(0, t.length / 2), /not valid JSON/],
    ['a version newer than this code', (t) => t.replace('"version": 4', '"version": 7'), /version 7 was written by a newer Cascade than this one \(which reads up to 4\)/],
    ['a version that is no number', (t) => t.replace('"version": 4', '"version": "4"'), /version "4" is not a checkpoint version/],
    ['a missing checksum', (t) => t.replace(/"checksum": "[^"]*",/, ''), /checksum is missing/],
  ])('detects %s', (_name, damage, message) => {
    const text = damage(encodeCheckpoint(preparedState()));
    expect(() => decodeCheckpoint(text)).toThrow(CheckpointCorruptError);
    expect(() => decodeCheckpoint(text)).toThrow(message);
  });
});

describe('the checkpoint store', () => {
  let dir = '';
  let cleanup: () => Promise<void> = async () => undefined;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('cascade-ckpt-'));
  });
  afterEach(() => cleanup());

  const store = (options: { bootId?: string; onCorrupt?: 'fail' | 'start-empty' } = {}): CheckpointStore =>
    new CheckpointStore({
      path: join(dir, 'plugin', 'checkpoint.json'),
      readBootId: async () => options.bootId ?? BOOT_A,
      ...(options.onCorrupt ? { onCorrupt: options.onCorrupt } : {}),
    });

  it('starts empty when there is no file', async () => {
    expect(await store().load()).toEqual({ kind: 'missing', state: emptyCheckpoint(BOOT_A) });
  });

  it('saves atomically as a 0600 file in a 0700 directory and loads it back', async () => {
    const s = preparedState();
    await store().save(s);
    expect(await store().load()).toEqual({ kind: 'loaded', state: s });
    expect((await stat(join(dir, 'plugin', 'checkpoint.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'plugin'))).mode & 0o777).toBe(0o700);
    expect(await readdir(join(dir, 'plugin'))).toEqual(['checkpoint.json']);
  });

  it('discards the state after a reboot and returns what it discarded', async () => {
    const s = preparedState();
    await store().save(s);
    expect(await store({ bootId: BOOT_B }).load()).toEqual({ kind: 'rebooted', state: emptyCheckpoint(BOOT_B), previous: s });
  });

  it('refuses to start from a corrupt file by default, keeping it and a .corrupt copy', async () => {
    await store().save(preparedState());
    const path = join(dir, 'plugin', 'checkpoint.json');
    const damaged = (await readFile(path, 'utf8')).replace('"MIG-abc"', '"MIG-xyz"');
    await writeFile(path, damaged);
    await expect(store().load()).rejects.toThrow(/checkpoint .*checkpoint.json is corrupt: checksum mismatch.*A copy was saved as .*checkpoint.json.corrupt.*--on-corrupt-checkpoint=start-empty/);
    expect(await readFile(path, 'utf8')).toBe(damaged);
    expect(await readFile(`${path}.corrupt`, 'utf8')).toBe(damaged);
  });

  it('starts empty from a corrupt file only when told to, moving it aside', async () => {
    const path = join(dir, 'plugin', 'checkpoint.json');
    await store().save(preparedState());
    await writeFile(path, '{"version": 1, "checks');
    const outcome = await store({ onCorrupt: 'start-empty' }).load();
    expect(outcome).toMatchObject({ kind: 'corrupt-discarded', state: emptyCheckpoint(BOOT_A), corruptCopy: `${path}.corrupt` });
    expect(await readdir(join(dir, 'plugin'))).toEqual(['checkpoint.json.corrupt']);
  });
});
