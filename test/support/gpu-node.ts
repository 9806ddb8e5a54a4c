// A fake GPU node for e2e tests and the demo: a Node object, an nvidia-smi
// simulator with the given GPUs, the real node plugin running as a process
// under its ServiceAccount token bound to that node, and a kubelet stand-in
// that prepares claims of pods bound there over the plugin's real sockets.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import { Kube } from '../../pkg/k8s/resources.js';
import { createFakeNvidiaSmi, type FakeConfig, type FakeNvidiaSmi } from '../../hack/fake-nvidia-smi/testing.js';
import { fakeMpsControlPath, killDaemons } from '../../hack/fake-mps-control/testing.js';
import { type FakeHostOptions, pciFunctionsFor } from '../../hack/fake-sysfs/testing.js';
import { type FakeSysfs, startFakeSysfs } from '../../hack/fake-sysfs/sysfs.js';
import { Component, nodeBoundKubeconfig } from './addon.js';
import { FakeKubelet } from './fake-kubelet.js';
import { clusterDir, eventually } from './tools.js';

export interface GpuNodeOptions {
  readonly name: string;
  readonly fleet: FakeConfig;
  readonly driver?: string;
  readonly labels?: Record<string, string>;
  readonly cpu?: string;
  readonly memory?: string;
  /** Passthrough: the node's PCI functions in a simulated sysfs, and the plugin's --passthrough-* flags. */
  readonly passthrough?: { readonly pool?: string; readonly switchable?: string; readonly host?: FakeHostOptions };
  /** The node's PCIe tree in a simulated sysfs without passthrough (PCIe roots and switches to publish). */
  readonly sysfs?: FakeHostOptions;
  /** The build whose node plugin runs (a dist/ directory); default: this checkout's. */
  readonly pluginDist?: string;
}

export interface GpuNode {
  readonly name: string;
  readonly sim: FakeNvidiaSmi;
  readonly plugin: Component;
  readonly kubelet: FakeKubelet;
  readonly dirs: { readonly root: string; readonly plugins: string; readonly registry: string; readonly cdi: string; readonly state: string };
  /** Where the node plugin keeps its MPS daemons (see hack/fake-mps-control). */
  readonly mpsRoot: string;
  /** The simulated sysfs, when the node passes GPUs through. */
  readonly sysfs: FakeSysfs | undefined;
  /** Restarts the node plugin process (after a crash, for example), from another build when given one. */
  restartPlugin(distRoot?: string): void;
  stop(): Promise<void>;
}

/** Waits until every named node has published its pool of the driver's ResourceSlices. */
export async function nodesPublished(kube: Kube, names: readonly string[], driver = 'gpu.cascade.dev', timeoutMs = 60_000): Promise<void> {
  await eventually(
    `${names.join(', ')} to publish`,
    async () => {
      const pools = new Set((await kube.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${driver}` })).map((s) => s.spec.pool.name));
      return names.every((n) => pools.has(n)) ? true : undefined;
    },
    timeoutMs,
  );
}

export async function startGpuNode(admin: Kube, o: GpuNodeOptions): Promise<GpuNode> {
  const driver = o.driver ?? 'gpu.cascade.dev';
  await createFakeNode(admin, o.name, { cpu: o.cpu ?? '96', memory: o.memory ?? '1Ti', labels: { 'cascade.dev/simulated-gpus': 'true', ...o.labels } });
  const root = join(clusterDir(), 'nodes', o.name);
  const dirs = { root, plugins: join(root, 'plugins'), registry: join(root, 'plugins_registry'), cdi: join(root, 'cdi'), state: join(root, 'state') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true, mode: 0o700 });
  const pt = o.passthrough;
  const host = pt?.host ?? o.sysfs;
  const sysfs = pt || o.sysfs ? startFakeSysfs(join(root, 'sys'), join(root, 'dev'), { functions: pciFunctionsFor(o.fleet, host), vfioPci: host?.vfioPci ?? true }) : undefined;
  const sim = createFakeNvidiaSmi(sysfs ? { ...o.fleet, sysfsRoot: sysfs.root } : o.fleet, { dir: join(root, 'nvidia-smi') });
  const passthroughArgs = sysfs
    ? [`--sysfs-root=${sysfs.root}`, `--dev-root=${sysfs.devRoot}`, ...(pt ? [`--passthrough-pool=${pt.pool ?? 'none'}`, `--passthrough-switchable=${pt.switchable ?? 'none'}`] : [])]
    : [];
  const mpsRoot = join(dirs.state, 'mps');
  const kubeconfig = await nodeBoundKubeconfig(admin, 'cascade-node-plugin', o.name, join(root, 'plugin.kubeconfig'));
  const makePlugin = (distRoot?: string): Component =>
    new Component(
      `node-plugin-${o.name}`,
      'cmd/node-plugin/main.js',
      [
        `--kubeconfig=${kubeconfig}`,
        `--node-name=${o.name}`,
        `--driver-name=${driver}`,
        `--nvidia-smi=${sim.path}`,
        `--plugins-dir=${dirs.plugins}`,
        `--registry-dir=${dirs.registry}`,
        `--cdi-root=${dirs.cdi}`,
        `--state-dir=${dirs.state}`,
        '--poll-interval=5s',
        '--health-interval=2s',
        `--mps-control=${fakeMpsControlPath()}`,
        `--mps-root=${mpsRoot}`,
        ...passthroughArgs,
      ],
      sim.env,
      distRoot,
    ).start();
  let plugin = makePlugin(o.pluginDist);
  const kubelet = new FakeKubelet(admin, o.name, dirs.registry, driver);
  await kubelet.start();
  return {
    name: o.name,
    sim,
    get plugin(): Component {
      return plugin;
    },
    kubelet,
    dirs,
    restartPlugin: (distRoot?: string) => {
      plugin = makePlugin(distRoot);
    },
    mpsRoot,
    sysfs,
    stop: async () => {
      kubelet.stop();
      await plugin.stop();
      sysfs?.stop();
      // MPS daemons outlive the plugin by design; a test must not leave them behind.
      killDaemons(mpsRoot);
    },
  };
}

/** Waits until the node's kubelet stand-in prepared the pod's claims; their CDI device IDs, or the plugin's error. */
export function preparedOn(node: GpuNode, namespace: string, pod: string): Promise<readonly string[]> {
  return eventually(
    `${pod} prepared on ${node.name}`,
    async () => {
      const r = node.kubelet.results.get(`${namespace}/${pod}`);
      if (!r) return undefined;
      const all = [...r.claims.values()];
      if (all.some((c) => c.error)) throw new Error(all.map((c) => c.error).join('; '));
      return all.flatMap((c) => c.devices.flatMap((d) => d.cdiDeviceIds));
    },
    60_000,
  );
}
