// The files in examples/ are what users copy: each is applied here as it is
// (kubectl apply --server-side) on a small mixed fleet, and gets the outcome its
// comment promises. kubectl cascade then shows the fleet a person would see.
// The add-on is installed here as most users install it, with helm install of
// deployments/helm/cascade (the other tests use the kustomize manifests).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describeCluster, adminKubeconfig, eventually, kubectl, useNamespace } from '../support/cluster.js';
import { applyServerSide, renderManifests, type Doc } from '../support/addon.js';
import { helm, installAddonWithHelm, type HelmInstall } from '../support/helm.js';
import { startGpuNode, type GpuNode, nodesPublished } from '../support/gpu-node.js';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import { FLEETS } from '../../hack/fake-nvidia-smi/testing.js';
import type { ResourceClaim, ResourceSlice } from '../../pkg/api/resource.js';
import type { Pod } from '../../pkg/k8s/types.js';

const DRIVER = 'gpu.cascade.dev';

describeCluster('the examples in examples/', () => {
  const ns = useNamespace('examples', { 'cascade-e2e': 'examples' });
  const nodes: GpuNode[] = [];
  let install: HelmInstall;

  beforeAll(async () => {
    install = await installAddonWithHelm('examples-controller', { 'cascade-e2e': 'examples' });
    nodes.push(
      await startGpuNode(ns.kube, { name: 'ex-h100', fleet: FLEETS.h100x8('Disabled') }),
      await startGpuNode(ns.kube, {
        name: 'ex-a100',
        fleet: {
          driverVersion: '570.148.08',
          cudaVersion: '12.8',
          gpus: Array.from({ length: 4 }, () => ({ model: 'A100-SXM4-40GB' })),
          nvlinkGroups: [
            [0, 1],
            [2, 3],
          ],
        },
      }),
    );
    await nodesPublished(ns.kube, ['ex-h100', 'ex-a100'], DRIVER);
  }, 120_000);

  afterAll(async () => {
    await install?.uninstall().catch(() => undefined);
    for (const n of nodes) await n.stop();
    if (ns.kube) for (const n of nodes) await ns.kube.nodes.delete(n.name).catch(() => undefined);
    // The other tests install with kustomize over what is left: put it back as they expect.
    await applyServerSide(await renderManifests('dev')).catch(() => undefined);
  });

  const apply = async (file: string): Promise<void> => {
    const docs = YAML.parseAllDocuments(readFileSync(join(repoRoot(), 'examples', file), 'utf8')).map((d): Doc => {
      const o = d.toJSON() as Doc;
      return { ...o, metadata: { ...o.metadata, namespace: ns.name } };
    });
    const res = await applyServerSide(docs);
    if (res.code !== 0) throw new Error(`${file}: ${res.stderr}`);
  };

  const boundPod = (name: string): Promise<Pod> =>
    eventually(
      `${name} bound and prepared`,
      async () => {
        const p = await ns.kube.pods.get(name, ns.name);
        if (!p.spec.nodeName) return undefined;
        const prepared = nodes.find((n) => n.name === p.spec.nodeName)?.kubelet.results.get(`${ns.name}/${name}`);
        if (!prepared) return undefined;
        for (const r of prepared.claims.values()) if (r.error) throw new Error(r.error);
        return p;
      },
      60_000,
    );

  const claimOf = async (pod: Pod, claimName = pod.spec.resourceClaims?.[0]?.name): Promise<ResourceClaim> => {
    const rc = pod.spec.resourceClaims?.find((r) => r.name === claimName);
    const name = rc?.resourceClaimName ?? pod.status?.resourceClaimStatuses?.find((s) => s.name === claimName)?.resourceClaimName ?? '';
    return await ns.kube.resourceClaims.get(name, ns.name);
  };

  const devicesOf = (c: ResourceClaim): string[] => (c.status?.allocation?.devices?.results ?? []).map((r) => r.device);

  it('full-gpu.yaml gets one whole GPU', async () => {
    await apply('full-gpu.yaml');
    const claim = await claimOf(await boundPod('full-gpu'));
    expect(devicesOf(claim)).toHaveLength(1);
    expect(devicesOf(claim)[0]).toMatch(/^gpu-\d$/);
  });

  it('mig-slice.yaml gets a 3g MIG partition that the node plugin really creates', async () => {
    await apply('mig-slice.yaml');
    const pod = await boundPod('mig-slice');
    const [device] = devicesOf(await claimOf(pod));
    expect(device).toMatch(/^gpu-\d-mig-3g-\d+gb-[04]$/);
    const node = nodes.find((n) => n.name === pod.spec.nodeName)!;
    const gpu = Number(/^gpu-(\d)/.exec(device ?? '')?.[1]);
    const start = Number(/-(\d)$/.exec(device ?? '')?.[1]);
    expect(node.sim.readState().gpus[gpu]?.gpuInstances.map((gi) => gi.start)).toEqual([start]);
  });

  it('preference-list.yaml gets its first choice, an H100, while one is free', async () => {
    await apply('preference-list.yaml');
    const pod = await boundPod('preference-list');
    expect(pod.spec.nodeName).toBe('ex-h100');
    const claim = await claimOf(pod);
    expect(claim.status?.allocation?.devices?.results?.map((r) => r.request)).toEqual(['accel/h100']);
  });

  it('nvlink-4.yaml gets four GPUs sharing one NVLink domain', async () => {
    await apply('nvlink-4.yaml');
    const pod = await boundPod('nvlink-4');
    const claim = await claimOf(pod);
    const devs = devicesOf(claim);
    expect(devs).toHaveLength(4);
    const slices: ResourceSlice[] = await ns.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${pod.spec.nodeName ?? ''}` });
    const domains = new Set(
      slices
        .flatMap((s) => s.spec.devices ?? [])
        .filter((d) => devs.includes(d.name))
        .map((d) => d.attributes?.[`${DRIVER}/nvlinkDomain`]?.string),
    );
    expect(domains.size).toBe(1);
    expect([...domains][0]).toBeTruthy();
  });

  it('shared-claim.yaml puts both pods on the same node and the same GPU', async () => {
    await apply('shared-claim.yaml');
    const a = await boundPod('shared-a');
    const b = await boundPod('shared-b');
    expect(a.spec.nodeName).toBe(b.spec.nodeName);
    const claim = await ns.kube.resourceClaims.get('shared-gpu', ns.name);
    expect(devicesOf(claim)).toHaveLength(1);
    expect(claim.status?.reservedFor?.map((r) => r.name).sort()).toEqual(['shared-a', 'shared-b']);
  });

  it('shared-mps.yaml gives both pods a 20Gi/30% share of the same GPU', async () => {
    await apply('shared-mps.yaml');
    const a = await boundPod('embed');
    const b = await boundPod('rerank');
    expect(a.spec.nodeName).toBe(b.spec.nodeName);
    const results = [await claimOf(a), await claimOf(b)].map((c) => c.status?.allocation?.devices?.results?.[0]);
    expect(results[0]?.device).toMatch(/^gpu-\d-shared$/);
    expect(results[1]?.device).toBe(results[0]?.device);
    expect(results[0]?.shareID).not.toBe(results[1]?.shareID);
    for (const r of results) expect(r?.consumedCapacity).toEqual({ [`${DRIVER}/memory`]: '20Gi', [`${DRIVER}/compute`]: '30' });
  });

  it('kubectl cascade fleet shows what the examples took', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [join(repoRoot(), 'dist', 'cmd', 'kubectl-cascade', 'main.js'), '--kubeconfig', adminKubeconfig(), 'fleet'], (err, stdout, stderr) =>
        err ? reject(new Error(stderr || err.message)) : resolve(stdout),
      );
    });
    expect(out).toMatch(/^NODE\s+GPU\s+PRODUCT/);
    expect(out).toMatch(new RegExp(`ex-h100\\s+gpu-\\d\\s+NVIDIA H100 80GB HBM3.*whole: ${ns.name}/`));
    expect(out).toMatch(new RegExp(`mig: 3g\\.\\d+gb@[04] ${ns.name}/mig-slice`));
    expect(out).toMatch(new RegExp(`shared 40Gi/\\S+ 60%: ${ns.name}/embed-gpu-\\w+ \\(20Gi 30%\\), ${ns.name}/rerank-gpu-\\w+ \\(20Gi 30%\\)`));
    expect(out).toMatch(/12 GPUs, \d+ completely free, \d+ partly used by MIG, 1 shared/);
  });

  it('was installed by helm install, whose notes say how to check it, and helm uninstall removes what it made', async () => {
    expect(install.output).toContain('Cascade 0.1.0 is installed in namespace cascade-system as DRA driver gpu.cascade.dev.');
    expect(install.output).toContain('Device classes: gpu.gpu.cascade.dev mig.gpu.cascade.dev shared.gpu.cascade.dev vfio.gpu.cascade.dev');
    const status = await helm(['status', 'cascade', '--kubeconfig', adminKubeconfig(), '--namespace', 'cascade-system']);
    expect(status.stdout).toMatch(/STATUS: deployed/);
    await install.uninstall();
    const left = await kubectl(['get', 'deviceclasses,mutatingwebhookconfigurations,validatingadmissionpolicies,clusterroles', '-o', 'name']);
    expect(left.stdout).not.toMatch(/cascade/);
  });
});
