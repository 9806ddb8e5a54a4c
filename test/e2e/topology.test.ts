// examples/numa-gpus-cpus.yaml and examples/gpudirect-4gpu-4nic.yaml end to
// end: an 8-GPU HGX-like node (GPUs 0-3 on NUMA node 0, each GPU behind its
// own PCIe switch and root complex in a simulated sysfs) with the real node
// plugin, the CPU and NIC drivers' slices published as those drivers publish
// them, and the controller co-allocating both drivers with the GPUs. The
// scheduler binds each pod on the allocation, the kubelet stand-in prepares
// the GPUs, and `kubectl describe` shows where every device sits.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describeCluster, eventually, kubectl, useNamespace } from '../support/cluster.js';
import { applyServerSide, installAddonWithController, type Component, type Doc } from '../support/addon.js';
import { startGpuNode, type GpuNode } from '../support/gpu-node.js';
import { cpuSlice, foreignDeviceClasses, nicSlice, type Nic } from '../support/foreign-drivers.js';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import type { ResourceClaim, ResourceSlice } from '../../pkg/api/resource.js';
import type { Pod } from '../../pkg/k8s/types.js';

const DRIVER = 'gpu.cascade.dev';
const NODE = 'hgx-1';
const ROOT = 'resource.kubernetes.io/pcieRoot';

describeCluster('topology: GPUs with their CPUs and NICs in one claim (examples/numa-gpus-cpus.yaml, examples/gpudirect-4gpu-4nic.yaml)', () => {
  const ns = useNamespace('topo-e2e', { 'cascade-e2e': 'topology' });
  let node: GpuNode;
  let controller: Component;
  /** PCIe root of each GPU, as the node plugin published it. */
  const gpuRoot = new Map<string, string>();
  const created: { slices: string[]; classes: string[] } = { slices: [], classes: [] };

  beforeAll(async () => {
    controller = await installAddonWithController('topology-controller', { 'cascade-e2e': 'topology' }, ['--co-allocate-drivers=dra.cpu,dra.net']);
    node = await startGpuNode(ns.kube, {
      name: NODE,
      fleet: { gpus: Array.from({ length: 8 }, (_v, i) => ({ model: 'H100-80GB', numaNode: i < 4 ? 0 : 1 })), nvlinkGroups: [[0, 1, 2, 3, 4, 5, 6, 7]] },
      sysfs: {},
    });
    const gpus = await eventually(
      'the node plugin to publish 8 GPUs with their PCIe roots',
      async () => {
        const devices = (await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${NODE}` })).flatMap((s) => (s.spec.driver === DRIVER ? (s.spec.devices ?? []) : []));
        const whole = devices.filter((d) => d.attributes?.[`${DRIVER}/type`]?.string === 'gpu' && d.attributes[ROOT]?.string !== undefined);
        return whole.length === 8 ? whole : undefined;
      },
      60_000,
    );
    for (const g of gpus) gpuRoot.set(g.name, g.attributes?.[ROOT]?.string ?? '');
    // What the CPU and NIC drivers' node plugins would publish on this node: one RDMA NIC per GPU root.
    const nics: Nic[] = gpus.map((g, i) => ({
      address: `0000:${(0xa0 + i).toString(16)}:00.0`,
      ifName: `ibp${i}s0`,
      pcieRoot: g.attributes?.[ROOT]?.string ?? '',
      numaNode: g.attributes?.['resource.kubernetes.io/numaNode']?.int ?? 0,
    }));
    const slices: ResourceSlice[] = [
      cpuSlice(NODE, [
        { numaNode: 0, socket: 0, cpus: 48 },
        { numaNode: 1, socket: 1, cpus: 48 },
      ]),
      nicSlice(NODE, nics),
    ];
    for (const s of slices) {
      await ns.kube.resourceSlices.create(s);
      created.slices.push(s.metadata.name ?? '');
    }
    for (const c of foreignDeviceClasses()) {
      await ns.kube.deviceClasses.create(c);
      created.classes.push(c.metadata.name ?? '');
    }
  }, 150_000);

  afterAll(async () => {
    await controller?.stop();
    await node?.stop();
    for (const s of created.slices) await ns.kube?.resourceSlices.delete(s).catch(() => undefined);
    for (const c of created.classes) await ns.kube?.deviceClasses.delete(c).catch(() => undefined);
    await ns.kube?.nodes.delete(NODE).catch(() => undefined);
  });

  const apply = async (file: string): Promise<void> => {
    const docs = YAML.parseAllDocuments(readFileSync(join(repoRoot(), 'examples', file), 'utf8')).map((d): Doc => {
      const o = d.toJSON() as Doc;
      return { ...o, metadata: { ...o.metadata, namespace: ns.name } };
    });
    const res = await applyServerSide(docs);
    if (res.code !== 0) throw new Error(res.stderr);
  };

  /** The pod bound and its GPUs prepared by the node plugin; returns its claim. */
  const boundAndPrepared = async (pod: string): Promise<{ pod: Pod; claim: ResourceClaim }> =>
    await eventually(
      `${pod} bound and prepared`,
      async () => {
        const p = await ns.kube.pods.get(pod, ns.name);
        const r = p.spec.nodeName ? node.kubelet.results.get(`${ns.name}/${pod}`) : undefined;
        if (!r) return undefined;
        for (const c of r.claims.values()) if (c.error) throw new Error(c.error);
        const name = p.status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? '';
        return { pod: p, claim: await ns.kube.resourceClaims.get(name, ns.name) };
      },
      90_000,
    );

  const describeClaim = async (name: string): Promise<string> => {
    const r = await eventually(`kubectl describe of ${name} to show its Allocated event`, async () => {
      const out = await kubectl(['describe', 'resourceclaim', name, '-n', ns.name]);
      return out.code === 0 && out.stdout.includes('Allocated') ? out.stdout : undefined;
    });
    // kubectl wraps long event messages; compare without the line breaks.
    return r.replace(/\s+/g, ' ');
  };

  it('numa-gpus-cpus.yaml: two GPUs and 32 CPUs of one NUMA node, and describe shows where each sits', async () => {
    await apply('numa-gpus-cpus.yaml');
    const { pod, claim } = await boundAndPrepared('numa-trainer');
    expect(pod.spec.nodeName).toBe(NODE);
    const results = claim.status?.allocation?.devices?.results ?? [];
    const gpus = results.filter((r) => r.driver === DRIVER);
    const cpus = results.filter((r) => r.driver === 'dra.cpu');
    expect(gpus).toHaveLength(2);
    expect(cpus).toHaveLength(1);
    expect(cpus[0]?.consumedCapacity).toEqual({ 'dra.cpu/cpu': '32' });
    // The node plugin prepared exactly the two GPUs (the CPU driver prepares its own device).
    const prepared = [...(node.kubelet.results.get(`${ns.name}/numa-trainer`)?.claims.values() ?? [])].flatMap((c) => c.devices?.map((d) => d.deviceName) ?? []);
    expect(prepared.sort()).toEqual(gpus.map((g) => g.device).sort());
    const numa = cpus[0]?.device === 'cpudevnuma000' ? 0 : 1;
    for (const g of gpus) expect(Number(g.device.replace('gpu-', '')) < 4 ? 0 : 1).toBe(numa);
    const text = await describeClaim(claim.metadata.name ?? '');
    for (const g of gpus) expect(text).toContain(`${g.device} [NUMA ${numa}, ${gpuRoot.get(g.device) ?? '?'}]`);
    expect(text).toContain(`a share of dra.cpu cpudevnuma00${numa} (32 dra.cpu/cpu) [NUMA ${numa}]`);
  }, 120_000);

  it('gpudirect-4gpu-4nic.yaml: four GPUs, each with the RDMA NIC on its PCIe root, on one NUMA node', async () => {
    await apply('gpudirect-4gpu-4nic.yaml');
    const { pod, claim } = await boundAndPrepared('gpudirect-worker');
    expect(pod.spec.nodeName).toBe(NODE);
    const results = claim.status?.allocation?.devices?.results ?? [];
    const slices = await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${NODE}` });
    const rootOf = (driver: string, device: string): string | undefined =>
      slices.flatMap((s) => (s.spec.driver === driver ? (s.spec.devices ?? []) : [])).find((d) => d.name === device)?.attributes?.[ROOT]?.string;
    const roots: string[] = [];
    for (let i = 0; i < 4; i++) {
      const g = results.find((r) => r.request === `gpu-${i}`);
      const n = results.find((r) => r.request === `nic-${i}`);
      expect([g?.driver, n?.driver]).toEqual([DRIVER, 'dra.net']);
      const root = rootOf(DRIVER, g?.device ?? '');
      expect(root).toBeDefined();
      expect(rootOf('dra.net', n?.device ?? '')).toBe(root);
      roots.push(root ?? '');
    }
    expect(new Set(roots).size).toBe(4);
    // The first job holds two GPUs of one NUMA node; the four go to the other, whole.
    const numas = new Set(results.filter((r) => r.driver === DRIVER).map((r) => (Number(r.device.replace('gpu-', '')) < 4 ? 0 : 1)));
    expect(numas.size).toBe(1);
    const text = await describeClaim(claim.metadata.name ?? '');
    for (const r of results) expect(text).toMatch(new RegExp(`${r.device} \\[NUMA [01], pci[0-9a-f]{4}:[0-9a-f]{2}\\]`));
  }, 120_000);

  it('refuses a claim that mixes GPUs with a driver Cascade does not allocate: the pod stays gated and is told why', async () => {
    await ns.kube.deviceClasses.create({ metadata: { name: 'fpga.example.com' }, spec: { selectors: [{ cel: { expression: 'device.driver == "fpga.example.com"' } }] } });
    created.classes.push('fpga.example.com');
    await ns.kube.resourceClaims.create({
      metadata: { name: 'gpu-and-fpga', namespace: ns.name },
      spec: {
        devices: {
          requests: [
            { name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } },
            { name: 'fpga', exactly: { deviceClassName: 'fpga.example.com' } },
          ],
        },
      },
    });
    await ns.kube.pods.create({
      metadata: { name: 'mixed', namespace: ns.name },
      spec: {
        restartPolicy: 'Never',
        resourceClaims: [{ name: 'x', resourceClaimName: 'gpu-and-fpga' }],
        containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'x' }] } }],
      },
    });
    const note = await eventually('the pod to be told why it waits', async () => {
      const events = await ns.kube.events.list(ns.name);
      return events.find((e) => e.regarding.name === 'mixed' && e.reason === 'InvalidClaim')?.note;
    });
    expect(note).toMatch(
      /^The pod stays gated because its claim gpu-and-fpga is refused: it mixes device classes Cascade allocates \(gpu\.gpu\.cascade\.dev\) with classes of drivers the kube-scheduler allocates \(fpga\.example\.com\)/,
    );
    const claimNote = await eventually('the claim to be told too', async () => {
      const events = await ns.kube.events.list(ns.name);
      return events.find((e) => e.regarding.name === 'gpu-and-fpga' && e.reason === 'InvalidClaim')?.note;
    });
    expect(claimNote).toMatch(/^Cascade refuses to allocate this claim because it mixes/);
    const pod = await ns.kube.pods.get('mixed', ns.name);
    expect(pod.spec.schedulingGates?.map((g) => g.name)).toEqual([`${DRIVER}/allocation`]);
    expect((await ns.kube.resourceClaims.get('gpu-and-fpga', ns.name)).status?.allocation).toBeUndefined();
  });
});
