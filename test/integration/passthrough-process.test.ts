// Passthrough through the node plugin as the DaemonSet runs it (a child
// process with --sysfs-root over the sysfs stand-in): 100 prepare/unprepare
// cycles of a switchable GPU with an audio function and of a pool GPU, the
// plugin killed with SIGKILL in the middle of ten of them, and at the end every
// function bound to the driver it should have, nothing stranded, nothing held.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import { CRASH_POINT_ENV, type CrashPoint } from '../../pkg/nodeplugin/crash.js';
import { CHECKPOINT_FILE } from '../../pkg/nodeplugin/run.js';
import { type FakeHost, createFakeHost } from '../../hack/fake-sysfs/testing.js';
import { Component } from '../support/addon.js';
import { adminKubeconfig, describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { type PluginDirs, allocatedClaim, registerWith, pluginArgs, pluginConfig, pluginDirs, refOf } from './node-plugin-support.js';

describeCluster('passthrough in the node plugin process', () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `vfio-${tag}.cascade.dev`;
  const ns = useNamespace('vfio');
  const node = `vfio-${tag}`;
  let host: FakeHost;
  let dirs: PluginDirs;
  const components: Component[] = [];
  // GPU 0: switchable, with an HDMI audio function. GPU 1: a pool GPU.
  const SWITCHABLE = '0000:18:00.0';
  const POOL = '0000:29:00.0';

  const start = (name: string, env: Record<string, string> = {}): Component => {
    const config = pluginConfig(driver, node, dirs, host.smi, {
      pollIntervalMs: 600_000,
      healthIntervalMs: 600_000,
      sysfsRoot: host.sysfs.root,
      devRoot: host.sysfs.devRoot,
      passthrough: { pool: [POOL], switchable: [SWITCHABLE] },
    });
    const c = new Component(`${node}-${name}`, 'cmd/node-plugin/main.js', pluginArgs(config, adminKubeconfig()), { ...host.smi.env, ...env }).start();
    components.push(c);
    return c;
  };

  beforeAll(async () => {
    await createFakeNode(ns.kube, node);
    host = createFakeHost(
      {
        gpus: [
          { model: 'H100-80GB', numaNode: 0 },
          { model: 'H100-80GB', numaNode: 1 },
        ],
      },
      { audio: [0] },
    );
    dirs = pluginDirs();
  });

  afterAll(async () => {
    for (const c of components) await c.stop('SIGKILL');
    host?.cleanup();
    dirs?.cleanup();
    for (const s of await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` }).catch(() => [])) {
      await ns.kube.resourceSlices.delete(s.metadata.name ?? '').catch(() => undefined);
    }
    await ns.kube.nodes.delete(node).catch(() => undefined);
  });

  it('survives 100 prepare/unprepare cycles with SIGKILLs in the middle, leaving every GPU with the driver it should have', async () => {
    const vm = [
      refOf(await allocatedClaim(ns.kube, ns.name, 'vm-switchable', driver, node, ['vfio-0000-18-00-0'])),
      refOf(await allocatedClaim(ns.kube, ns.name, 'vm-pool', driver, node, ['vfio-0000-29-00-0'])),
    ];
    const crashes: CrashPoint[] = ['after-vfio-bind', 'after-vfio-return', 'before-prepare-complete'];
    let plugin = start('first');
    let kubelet = await registerWith(dirs, driver);
    // At start-up the pool GPU went to vfio-pci; the switchable one stayed with nvidia.
    expect(host.sysfs.driverOf(POOL)).toBe('vfio-pci');
    expect(host.sysfs.driverOf(SWITCHABLE)).toBe('nvidia');
    let kills = 0;
    const restart = async (env: Record<string, string> = {}): Promise<void> => {
      kubelet.close();
      await eventually('the plugin to die', async () => !plugin.running || undefined);
      plugin = start(`run-${components.length}`, env);
      kubelet = await registerWith(dirs, driver);
    };
    /** Calls until it succeeds, restarting the plugin whenever it was killed. */
    const until = async (what: 'prepare' | 'unprepare', ref: (typeof vm)[number]): Promise<void> => {
      for (let attempt = 0; attempt < 3; attempt++) {
        let out;
        try {
          out = (await kubelet[what]([ref])).get(ref.uid);
        } catch (err) {
          // The call failed at the transport: the plugin killed itself (wait until it is reaped).
          await eventually('the killed plugin to exit', async () => !plugin.running || undefined, 30_000).catch(() => {
            throw err;
          });
          kills += 1;
          await restart();
          continue;
        }
        if (out?.error === '' || out?.error === undefined) return;
        throw new Error(`${what} of ${ref.name}: ${out.error}`);
      }
      throw new Error(`${what} of ${ref.name} did not succeed after restarts`);
    };
    // Ten cycles crash, alternately on the pool GPU's claim and the switchable one's.
    const crashesAt = (cycle: number): boolean => cycle % 10 === (Math.floor(cycle / 10) % 2 === 0 ? 5 : 4);
    for (let cycle = 0; cycle < 100; cycle++) {
      const ref = vm[cycle % 2] ?? vm[0];
      if (ref === undefined) throw new Error('no claim');
      if (crashesAt(cycle)) {
        // This cycle's plugin kills itself at a point inside prepare or unprepare.
        const point = crashes[((cycle / 10) % crashes.length) | 0] ?? 'after-vfio-bind';
        plugin.stop('SIGTERM').catch(() => undefined);
        await restart({ [CRASH_POINT_ENV]: point });
      }
      await until('prepare', ref);
      if (ref === vm[0]) {
        expect(host.sysfs.driverOf(SWITCHABLE)).toBe('vfio-pci');
        expect(host.sysfs.driverOf('0000:18:00.1')).toBe('vfio-pci');
      }
      await until('unprepare', ref);
      if (crashesAt(cycle) && plugin.running) {
        // A point this claim's path never reached: back to a plugin without one.
        plugin.stop('SIGTERM').catch(() => undefined);
        await restart();
      }
    }
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(host.sysfs.driverOf(SWITCHABLE)).toBe('nvidia');
    expect(host.sysfs.driverOf('0000:18:00.1')).toBe('snd_hda_intel');
    expect(host.sysfs.driverOf(POOL)).toBe('vfio-pci');
    const checkpoint = JSON.parse(readFileSync(join(dirs.stateDir, CHECKPOINT_FILE), 'utf8')) as { payload: { claims: object; stranded?: object } };
    expect(checkpoint.payload.claims).toEqual({});
    expect(checkpoint.payload.stranded ?? {}).toEqual({});
    // Nothing healthy is tainted: the published passthrough devices carry no taint.
    const slices = await eventually('slices with both passthrough devices', async () => {
      const list = await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` });
      const names = list.flatMap((s) => (s.spec?.devices ?? []).map((d) => d.name));
      return names.includes('vfio-0000-18-00-0') && names.includes('vfio-0000-29-00-0') ? list : undefined;
    });
    const devices = slices.flatMap((s) => s.spec?.devices ?? []);
    expect(devices.filter((d) => (d.taints ?? []).length > 0).map((d) => d.name)).toEqual([]);
    // The switchable GPU is back for containers too (whole, shared, MIG); the pool GPU is for VMs only.
    const names = devices.map((d) => d.name);
    expect(names).toEqual(expect.arrayContaining(['gpu-0', 'gpu-0-shared', 'gpu-0-mig-3g-40gb-4', 'vfio-0000-18-00-0', 'vfio-0000-29-00-0']));
    expect(names.filter((n) => n.startsWith('gpu-1'))).toEqual([]);
    kubelet.close();
  }, 900_000);
});
