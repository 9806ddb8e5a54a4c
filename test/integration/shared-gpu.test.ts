// Shared GPUs on the node: the shared devices the plugin publishes are accepted
// by the real API server, and prepare/unprepare of shares drive a real MPS
// control daemon (hack/fake-mps-control: a detached process per GPU, like the
// real one) and the simulator's compute-policy, through the kubelet's gRPC socket.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResourceClaim } from '../../pkg/api/resource.js';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import type { Kube } from '../../pkg/k8s/resources.js';
import { cdiSpecFileName } from '../../pkg/kubeletplugin/cdi.js';
import { type RunningNodePlugin, startNodePlugin } from '../../pkg/nodeplugin/run.js';
import { FLEETS, type FakeNvidiaSmi, createFakeNvidiaSmi } from '../../hack/fake-nvidia-smi/testing.js';
import { fakeMpsControlPath, killDaemons, liveDaemons } from '../../hack/fake-mps-control/testing.js';
import { logger } from '../../pkg/log/logger.js';
import { MpsControl } from '../../pkg/nodeplugin/mps.js';
import { describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { KubeletStandin } from '../support/kubelet-standin.js';
import { type PluginDirs, allocatedClaim, allocatedShare, backendFor, cdiSchemaProblems, pluginConfig, pluginDirs, refOf } from './node-plugin-support.js';

interface CdiFile {
  devices: { name: string; containerEdits: { env?: string[]; mounts?: { hostPath: string; containerPath: string }[]; deviceNodes?: { path: string }[] } }[];
}

describeCluster('shared GPUs on the node', () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `sh-${tag}.cascade.dev`;
  const ns = useNamespace('sh', { 'cascade-test': tag });
  const node = `sh-${tag}-h100`;
  let smi: FakeNvidiaSmi;
  let dirs: PluginDirs;
  let plugin: RunningNodePlugin;
  let kubelet: KubeletStandin;
  const mpsRoot = (): string => join(dirs.stateDir, 'mps');
  const config = () => pluginConfig(driver, node, dirs, smi, { pollIntervalMs: 1000, healthIntervalMs: 500 });
  const gpuUuid = (i: number): string => plugin.inventory.inventory?.discovery.gpus[i]?.uuid ?? '';

  beforeAll(async () => {
    await createFakeNode(ns.kube, node);
    smi = createFakeNvidiaSmi(FLEETS.h100x8('Disabled'));
    dirs = pluginDirs();
    plugin = await startNodePlugin(config(), { kube: ns.kube, backend: backendFor(smi) });
    kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
  }, 60_000);

  afterAll(async () => {
    kubelet?.close();
    await plugin?.stop();
    if (dirs) killDaemons(mpsRoot());
    smi?.cleanup();
    dirs?.cleanup();
    for (const s of (await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` }).catch(() => [])) ?? []) {
      await ns.kube.resourceSlices.delete(s.metadata.name ?? '').catch(() => undefined);
    }
    await ns.kube.nodes.delete(node).catch(() => undefined);
  });

  const shareClaim = (kube: Kube, name: string, device: string, memory: string, compute: string, sharing?: Record<string, unknown>): Promise<ResourceClaim> =>
    allocatedShare(kube, { namespace: ns.name, name, driver, node, device, memory, compute, ...(sharing ? { sharing } : {}) });

  const cdiOf = (uid: string): CdiFile => JSON.parse(readFileSync(join(dirs.cdiRoot, cdiSpecFileName(driver, uid)), 'utf8')) as CdiFile;

  it('publishes every GPU a second time as a shared device with consumable memory and compute, and the API server accepts it', async () => {
    const slices = await eventually('slices', async () => {
      const s = await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` });
      return s.length > 0 ? s : undefined;
    });
    const shared = slices.flatMap((s) => s.spec.devices ?? []).filter((d) => d.name.endsWith('-shared'));
    expect(shared.map((d) => d.name).sort()).toEqual(Array.from({ length: 8 }, (_v, i) => `gpu-${i}-shared`).sort());
    // What went in came back: the server kept allowMultipleAllocations and the request policies.
    expect(shared[0]?.allowMultipleAllocations).toBe(true);
    expect(shared[0]?.capacity?.[`${driver}/memory`]?.requestPolicy?.validRange).toEqual({ min: '1Gi', step: '1Gi' });
    expect(shared[0]?.capacity?.[`${driver}/compute`]?.requestPolicy).toEqual({ default: '10', validRange: { min: '1', max: '100', step: '1' } });
  });

  it('runs one MPS daemon for two shares of a GPU, gives each container its limits, and stops it after the last', async () => {
    const a = await shareClaim(ns.kube, 'share-a', 'gpu-3-shared', '20Gi', '30');
    const b = await shareClaim(ns.kube, 'share-b', 'gpu-3-shared', '20Gi', '30');
    const ra = (await kubelet.prepare([refOf(a)])).get(a.metadata.uid ?? '');
    expect(ra?.error).toBe('');
    const rb = (await kubelet.prepare([refOf(b)])).get(b.metadata.uid ?? '');
    expect(rb?.error).toBe('');
    const uuid = gpuUuid(3);
    const daemons = liveDaemons(mpsRoot());
    expect([...daemons.keys()]).toEqual([uuid]);

    const pipe = join(mpsRoot(), uuid, 'pipe');
    for (const c of [a, b]) {
      const dev = cdiOf(c.metadata.uid ?? '').devices[0];
      expect(dev?.containerEdits.env).toEqual(expect.arrayContaining([`CUDA_MPS_PIPE_DIRECTORY=${pipe}`, 'CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=20480M', 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30']));
      const log = join(mpsRoot(), uuid, 'log');
      expect(dev?.containerEdits.env).toContain(`CUDA_MPS_LOG_DIRECTORY=${log}`);
      expect(dev?.containerEdits.mounts).toEqual([
        expect.objectContaining({ hostPath: pipe, containerPath: pipe, options: expect.arrayContaining(['rw']) }),
        expect.objectContaining({ hostPath: log, containerPath: log, options: expect.arrayContaining(['ro']) }),
      ]);
      expect(dev?.containerEdits.deviceNodes?.map((n) => n.path)).toEqual(['/dev/nvidia3']);
    }
    // The specs are valid CDI (the schema the container runtimes use).
    expect(await cdiSchemaProblems(dirs.cdiRoot)).toEqual({ files: 2, problems: [] });
    // status.devices shows each share with its share ID and what it got.
    const status = await eventually('status.devices of share-a', async () => (await ns.kube.resourceClaims.get('share-a', ns.name)).status?.devices?.[0]);
    expect(status.shareID).toBe(a.status?.allocation?.devices?.results?.[0]?.shareID);
    expect(status.data).toMatchObject({ type: 'shared', sharing: { strategy: 'MPS', memoryMiB: 20480, computePercent: 30, pipeDirectory: pipe } });

    expect((await kubelet.unprepare([refOf(a)])).get(a.metadata.uid ?? '')?.error).toBe('');
    expect([...liveDaemons(mpsRoot()).values()]).toEqual([...daemons.values()]);
    expect((await kubelet.unprepare([refOf(b)])).get(b.metadata.uid ?? '')?.error).toBe('');
    expect(liveDaemons(mpsRoot()).size).toBe(0);
    expect(existsSync(join(mpsRoot(), uuid))).toBe(false);
  });

  it('keeps a running MPS daemon and its clients across a plugin restart, restarts a dead one and stops one nobody uses', async () => {
    const a = await shareClaim(ns.kube, 'share-keep', 'gpu-1-shared', '10Gi', '50');
    expect((await kubelet.prepare([refOf(a)])).get(a.metadata.uid ?? '')?.error).toBe('');
    const before = liveDaemons(mpsRoot());
    expect(before.size).toBe(1);

    // A restart finds the daemon alive and leaves it (the share's processes keep their server).
    kubelet.close();
    await plugin.stop();
    plugin = await startNodePlugin(config(), { kube: ns.kube, backend: backendFor(smi) });
    kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
    expect(liveDaemons(mpsRoot())).toEqual(before);

    // A daemon that died while the plugin was down comes back at start-up.
    kubelet.close();
    await plugin.stop();
    killDaemons(mpsRoot());
    plugin = await startNodePlugin(config(), { kube: ns.kube, backend: backendFor(smi) });
    kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
    const after = liveDaemons(mpsRoot());
    expect([...after.keys()]).toEqual([...before.keys()]);
    expect([...after.values()]).not.toEqual([...before.values()]);

    // A daemon no checkpointed claim needs (left by anything) is stopped at start-up.
    kubelet.close();
    await plugin.stop();
    const stray = new MpsControl({ controlPath: fakeMpsControlPath(), root: mpsRoot(), log: logger('test') });
    await stray.ensure(gpuUuid(7));
    expect(liveDaemons(mpsRoot()).size).toBe(2);
    plugin = await startNodePlugin(config(), { kube: ns.kube, backend: backendFor(smi) });
    kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
    expect([...liveDaemons(mpsRoot()).keys()]).toEqual([...before.keys()]);

    expect((await kubelet.unprepare([refOf(a)])).get(a.metadata.uid ?? '')?.error).toBe('');
    expect(liveDaemons(mpsRoot()).size).toBe(0);
  });

  it('sets the time slice for a time-sliced share and puts it back after the last one', async () => {
    const a = await shareClaim(ns.kube, 'slice-a', 'gpu-5-shared', '8Gi', '25', { strategy: 'TimeSlicing', timeSlicing: { interval: 'Long' } });
    const r = (await kubelet.prepare([refOf(a)])).get(a.metadata.uid ?? '');
    expect(r?.error).toBe('');
    expect(smi.readState().gpus[5]?.timeslice).toBe(3);
    expect(liveDaemons(mpsRoot()).size).toBe(0);
    const env = cdiOf(a.metadata.uid ?? '').devices[0]?.containerEdits.env ?? [];
    expect(env.some((e) => e.startsWith('CUDA_MPS_'))).toBe(false);
    // An MPS share of the same GPU is refused: a GPU is shared one way at a time.
    const b = await shareClaim(ns.kube, 'slice-b', 'gpu-5-shared', '8Gi', '25', { strategy: 'MPS' });
    const rb = (await kubelet.prepare([refOf(b)])).get(b.metadata.uid ?? '');
    expect(rb?.error).toMatch(/shared GPU gpu-5-shared is shared through time-slicing \(time slice 3\) by claim .*slice-a; this claim asks for MPS/);
    expect(liveDaemons(mpsRoot()).size).toBe(0);
    expect((await kubelet.unprepare([refOf(a)])).get(a.metadata.uid ?? '')?.error).toBe('');
    expect(smi.readState().gpus[5]?.timeslice).toBe(0);
  });

  it("shares a MIG partition among its claim's containers through MPS: a daemon for the instance, stopped before the instance is destroyed", async () => {
    const c = await allocatedClaim(ns.kube, ns.name, 'mig-mps', driver, node, ['gpu-4-mig-3g-40gb-4'], { strategy: 'MPS' });
    const r = (await kubelet.prepare([refOf(c)])).get(c.metadata.uid ?? '');
    expect(r?.error).toBe('');
    const mig = smi.readState().gpus[4]?.gpuInstances ?? [];
    expect(mig).toHaveLength(1);
    const dev = cdiOf(c.metadata.uid ?? '').devices[0];
    const migUuid = (dev?.containerEdits.env ?? []).find((e) => /^CASCADE_[A-Z0-9_]*_UUID=MIG-/.test(e))?.split('=')[1] ?? '';
    expect(migUuid).toMatch(/^MIG-/);
    // One daemon, for the instance itself, and the container reaches it.
    expect([...liveDaemons(mpsRoot()).keys()]).toEqual([migUuid]);
    expect(dev?.containerEdits.env).toContain(`CUDA_MPS_PIPE_DIRECTORY=${join(mpsRoot(), migUuid, 'pipe')}`);
    expect(await cdiSchemaProblems(dirs.cdiRoot)).toEqual({ files: 1, problems: [] });
    const status = await eventually('status.devices of mig-mps', async () => (await ns.kube.resourceClaims.get('mig-mps', ns.name)).status?.devices?.[0]);
    expect(status.data).toMatchObject({ type: 'mig', uuid: migUuid, sharing: { strategy: 'MPS', pipeDirectory: join(mpsRoot(), migUuid, 'pipe') } });

    expect((await kubelet.unprepare([refOf(c)])).get(c.metadata.uid ?? '')?.error).toBe('');
    expect(liveDaemons(mpsRoot()).size).toBe(0);
    expect(smi.readState().gpus[4]?.gpuInstances ?? []).toHaveLength(0);

    // Time-slicing is set per GPU, so a partition refuses it, saying why.
    const t = await allocatedClaim(ns.kube, ns.name, 'mig-slice', driver, node, ['gpu-4-mig-1g-10gb-0'], { strategy: 'TimeSlicing' });
    const rt = (await kubelet.prepare([refOf(t)])).get(t.metadata.uid ?? '');
    expect(rt?.error).toMatch(/^InvalidAllocation: claim .*mig-slice.*"TimeSlicing" is not supported on MIG device gpu-4-mig-1g-10gb-0: nvidia-smi sets a time slice for a whole GPU/);
  });

  it("fails a share whose MPS daemon cannot start with a message naming the claim, the GPU and the daemon's words, and leaves nothing behind", async () => {
    kubelet.close();
    await plugin.stop();
    // The plugin runs the control program with its own environment: the stand-in's fault switch goes there.
    process.env.FAKE_MPS_CONTROL_FAIL_START = '1';
    try {
      plugin = await startNodePlugin(config(), { kube: ns.kube, backend: backendFor(smi) });
      kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
      const c = await shareClaim(ns.kube, 'no-daemon', 'gpu-2-shared', '8Gi', '25');
      const r = (await kubelet.prepare([refOf(c)])).get(c.metadata.uid ?? '');
      expect(r?.error).toMatch(
        /^SharingFailed: claim .*no-daemon .*: cannot start MPS on gpu-2 for device gpu-2-shared: cannot start the MPS control daemon for GPU-[0-9a-f-]+: Cannot start MPS control daemon: simulated failure/,
      );
      expect(liveDaemons(mpsRoot()).size).toBe(0);
      expect(existsSync(join(dirs.cdiRoot, cdiSpecFileName(driver, c.metadata.uid ?? '')))).toBe(false);
      expect(plugin.preparer.checkpointState.claims[c.metadata.uid ?? '']).toBeUndefined();
    } finally {
      delete process.env.FAKE_MPS_CONTROL_FAIL_START;
      kubelet.close();
      await plugin.stop();
      plugin = await startNodePlugin(config(), { kube: ns.kube, backend: backendFor(smi) });
      kubelet = await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver });
    }
  });

  it('refuses a share whose allocation lacks a share ID or consumed capacity, naming the claim', async () => {
    await ns.kube.resourceClaims.create({ metadata: { name: 'no-share', namespace: ns.name }, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `shared.${driver}` } }] } } });
    const broken = await ns.kube.resourceClaims.mergePatch(
      'no-share',
      {
        status: {
          allocation: {
            devices: { results: [{ request: 'gpu', driver, pool: node, device: 'gpu-6-shared' }] },
            nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] },
          },
        },
      },
      ns.name,
      'status',
    );
    const r = (await kubelet.prepare([refOf(broken)])).get(broken.metadata.uid ?? '');
    expect(r?.error).toMatch(/no-share.*shared GPU gpu-6-shared was allocated without a valid share ID/);
    expect(liveDaemons(mpsRoot()).size).toBe(0);
  });
});
