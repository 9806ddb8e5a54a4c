// CDI spec generation (pure) and the spec writer (files): names, container
// edits, schema validity of every generated spec, atomic idempotent writes.
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { type CdiSpec, cdiDeviceId, cdiSpecFileName, minimumCdiVersion } from '../../../pkg/kubeletplugin/cdi.js';
import { type CdiGpuDevice, buildClaimCdiSpec, migCapDevicePaths, parseMigMinors, uuidEnvName } from '../../../pkg/nodeplugin/gpu-cdi.js';
import { CdiSpecWriter } from '../../../pkg/kubeletplugin/cdi-writer.js';
import { DRIVER, tempDir } from '../kubeletplugin/fakes.js';

const here = dirname(fileURLToPath(import.meta.url));
const schema = JSON.parse(await readFile(join(here, '..', '..', 'fixtures', 'cdi-schema.json'), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

const UID = '0d5c3f1e-7b8a-4c2d-9e6f-123456789abc';
const gpu0: CdiGpuDevice = { type: 'gpu', deviceName: 'gpu-0', uuid: 'GPU-11111111-2222-3333-4444-555555555555', minor: 0 };
const gpu3: CdiGpuDevice = { type: 'gpu', deviceName: 'gpu-3', uuid: 'GPU-33333333-2222-3333-4444-555555555555', minor: 3 };

// mig-minors as a driver with two GPUs publishes it (first lines of each block).
const MIG_MINORS = ['config 1', 'monitor 2', 'gpu0/gi0/access 3', 'gpu0/gi0/ci0/access 4', 'gpu0/gi1/access 12', 'gpu0/gi1/ci0/access 13', 'gpu1/gi2/access 156', 'gpu1/gi2/ci0/access 157', ''].join(
  '\n',
);
const table = parseMigMinors(MIG_MINORS);
const mig: CdiGpuDevice = {
  type: 'mig',
  deviceName: 'gpu-1-mig-3g-40gb-4',
  uuid: 'MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  parentUuid: 'GPU-22222222-2222-3333-4444-555555555555',
  parentMinor: 1,
  capDevicePaths: migCapDevicePaths(table, 1, 2, 0),
};

function schemaErrors(spec: unknown): string {
  return validate(spec) ? '' : JSON.stringify(validate.errors);
}

describe('CDI spec generation', () => {
  it('names the kind, devices, IDs and file after the driver and the claim UID', () => {
    const spec = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu0] });
    expect(spec.kind).toBe('k8s.gpu.cascade.dev/gpu');
    expect(spec.devices.map((d) => d.name)).toEqual([`${UID}-gpu-0`]);
    expect(cdiDeviceId(DRIVER, UID, 'gpu-0')).toBe(`k8s.gpu.cascade.dev/gpu=${UID}-gpu-0`);
    expect(cdiSpecFileName(DRIVER, UID)).toBe(`k8s.gpu.cascade.dev-gpu_${UID}.json`);
  });

  it('gives a full GPU its device node and UUID, and every claim the control nodes', () => {
    const spec = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu3] });
    expect(spec.devices[0]?.containerEdits).toEqual({
      env: [`CASCADE_GPU_3_UUID=${gpu3.uuid}`],
      deviceNodes: [{ path: '/dev/nvidia3' }],
    });
    expect(spec.containerEdits).toEqual({
      env: ['NVIDIA_VISIBLE_DEVICES=void'],
      deviceNodes: [{ path: '/dev/nvidiactl' }, { path: '/dev/nvidia-uvm' }, { path: '/dev/nvidia-uvm-tools' }],
    });
  });

  it('gives a MIG device its parent node and the GI and CI capability nodes from mig-minors', () => {
    const spec = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [mig] });
    expect(spec.devices[0]?.containerEdits).toEqual({
      env: [`CASCADE_GPU_1_MIG_3G_40GB_4_UUID=${mig.uuid}`, `CASCADE_GPU_1_MIG_3G_40GB_4_PARENT_UUID=${mig.parentUuid}`],
      deviceNodes: [{ path: '/dev/nvidia1' }, { path: '/dev/nvidia-caps/nvidia-cap156' }, { path: '/dev/nvidia-caps/nvidia-cap157' }],
    });
  });

  it('fails clearly when mig-minors lacks the instance', () => {
    expect(() => migCapDevicePaths(table, 0, 5, 0)).toThrow('MIG capability gpu0/gi5/access not found in /proc/driver/nvidia-caps/mig-minors');
  });

  it('points host paths into a containerized driver root when given one', () => {
    const spec = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu0], hostRoot: '/run/nvidia/driver' });
    expect(spec.devices[0]?.containerEdits.deviceNodes).toEqual([{ path: '/dev/nvidia0', hostPath: '/run/nvidia/driver/dev/nvidia0' }]);
    expect(spec.cdiVersion).toBe('0.5.0');
  });

  it('keeps per-device variables distinct so several devices in one container do not clash', () => {
    const spec = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu0, gpu3, mig] });
    const names = spec.devices.flatMap((d) => (d.containerEdits.env ?? []).map((e) => e.split('=')[0]));
    expect(new Set(names).size).toBe(names.length);
    expect(uuidEnvName('gpu-0')).toBe('CASCADE_GPU_0_UUID');
  });

  it('is deterministic', () => {
    const input = { driver: DRIVER, claimUid: UID, devices: [gpu0, mig] };
    expect(JSON.stringify(buildClaimCdiSpec(input))).toBe(JSON.stringify(buildClaimCdiSpec(input)));
  });

  it.each([
    ['no devices', { devices: [] }, 'needs at least one device'],
    ['the same device twice', { devices: [gpu0, gpu0] }, 'device gpu-0 appears twice'],
    ['a driver name that is no DNS subdomain', { driver: 'GPU_Driver' }, 'does not make a valid CDI vendor'],
  ])('rejects %s', (_name, override, message) => {
    expect(() => buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu0], ...override })).toThrow(message);
  });

  it.each<[string, Omit<CdiSpec, 'cdiVersion'>, string]>([
    ['plain device nodes need 0.5.0 (device names may start with a digit)', { kind: 'k8s.x/gpu', devices: [{ name: 'a', containerEdits: {} }] }, '0.5.0'],
    ['annotations need 0.6.0', { kind: 'k8s.x/gpu', annotations: { a: 'b' }, devices: [{ name: 'a', containerEdits: {} }] }, '0.6.0'],
    ['additional GIDs need 0.7.0', { kind: 'k8s.x/gpu', devices: [{ name: 'a', containerEdits: { additionalGids: [44] } }] }, '0.7.0'],
  ])('picks the lowest CDI version: %s', (_name, spec, want) => {
    expect(minimumCdiVersion(spec)).toBe(want);
  });

  it.each<[string, readonly CdiGpuDevice[], string | undefined]>([
    ['one full GPU', [gpu0], undefined],
    ['two full GPUs', [gpu0, gpu3], undefined],
    ['one MIG device', [mig], undefined],
    ['a full GPU and a MIG device', [gpu3, mig], undefined],
    ['a full GPU under a containerized driver root', [gpu0], '/run/nvidia/driver'],
  ])('produces a spec valid against the CDI schema for %s', (_name, devices, hostRoot) => {
    const spec = buildClaimCdiSpec({
      driver: DRIVER,
      claimUid: UID,
      devices,
      ...(hostRoot ? { hostRoot } : {}),
      commonEdits: { mounts: [{ hostPath: '/usr/lib/libcuda.so.1', containerPath: '/usr/lib/libcuda.so.1', options: ['ro', 'bind'] }] },
    });
    expect(schemaErrors(spec)).toBe('');
  });

  it.each<[string, unknown]>([
    ['an unknown top-level field', { cdiVersion: '0.5.0', kind: 'k8s.x/gpu', devices: [{ name: 'a', containerEdits: {} }], extra: 1 }],
    ['a kind without a class', { cdiVersion: '0.5.0', kind: 'k8s.x', devices: [{ name: 'a', containerEdits: {} }] }],
    ['no devices', { cdiVersion: '0.5.0', kind: 'k8s.x/gpu', devices: [] }],
    ['a relative device node path', { cdiVersion: '0.5.0', kind: 'k8s.x/gpu', devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: 'dev/x' }] } }] }],
    ['a device name ending in a dash', { cdiVersion: '0.5.0', kind: 'k8s.x/gpu', devices: [{ name: 'a-', containerEdits: {} }] }],
  ])('has a schema that rejects %s', (_name, spec) => {
    expect(validate(spec)).toBe(false);
  });
});

describe('the CDI spec writer', () => {
  it('writes one 0600 file per claim that round-trips, and deletes it', async () => {
    const { dir, cleanup } = await tempDir('cascade-cdi-');
    try {
      const writer = new CdiSpecWriter(DRIVER, join(dir, 'cdi'));
      const spec = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu0] });
      const path = await writer.write(UID, spec);
      expect(path).toBe(join(dir, 'cdi', `k8s.gpu.cascade.dev-gpu_${UID}.json`));
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect(await writer.read(UID)).toEqual(spec);
      expect(schemaErrors(JSON.parse(await readFile(path, 'utf8')))).toBe('');
      expect(await writer.listClaimUids()).toEqual([UID]);
      expect(await writer.remove(UID)).toBe(true);
      expect(await writer.remove(UID)).toBe(false);
      expect(await readdir(join(dir, 'cdi'))).toEqual([]);
    } finally {
      await cleanup();
    }
  });

  it('leaves an identical spec untouched and replaces a different one, with no temp files behind', async () => {
    const { dir, cleanup } = await tempDir('cascade-cdi-');
    try {
      const writer = new CdiSpecWriter(DRIVER, dir);
      const first = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu0] });
      const path = await writer.write(UID, first);
      const before = await stat(path);
      await writer.write(UID, first);
      const after = await stat(path);
      expect(after.ino).toBe(before.ino);
      expect(after.mtimeMs).toBe(before.mtimeMs);
      const second = buildClaimCdiSpec({ driver: DRIVER, claimUid: UID, devices: [gpu3] });
      await writer.write(UID, second);
      expect(await writer.read(UID)).toEqual(second);
      expect(await readdir(dir)).toEqual([`k8s.gpu.cascade.dev-gpu_${UID}.json`]);
    } finally {
      await cleanup();
    }
  });

  it('ignores other producers\u2019 files when listing claims', async () => {
    const { dir, cleanup } = await tempDir('cascade-cdi-');
    try {
      const writer = new CdiSpecWriter(DRIVER, dir);
      await writer.write('0b0b0b0b-0000-4000-8000-00000000000b', buildClaimCdiSpec({ driver: DRIVER, claimUid: '0b0b0b0b-0000-4000-8000-00000000000b', devices: [gpu0] }));
      await new CdiSpecWriter('other.example.com', dir).write(
        '0c0c0c0c-0000-4000-8000-00000000000c',
        buildClaimCdiSpec({ driver: 'other.example.com', claimUid: '0c0c0c0c-0000-4000-8000-00000000000c', devices: [gpu0] }),
      );
      expect(await writer.listClaimUids()).toEqual(['0b0b0b0b-0000-4000-8000-00000000000b']);
    } finally {
      await cleanup();
    }
  });
});

describe('CDI spec file names', () => {
  it('refuse a claim UID that is not a UUID, so nothing from the kubelet can steer a path', () => {
    expect(() => cdiSpecFileName(DRIVER, '../../etc/passwd')).toThrow(/not a UUID/);
  });
});
