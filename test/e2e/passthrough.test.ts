// examples/vm-passthrough.yaml end to end: a node with a pool GPU and a
// switchable one in a simulated sysfs, the controller allocating, the real
// node plugin binding to vfio-pci, and a second VM that makes it rebind one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describeCluster, eventually, useNamespace } from '../support/cluster.js';
import { applyServerSide, installAddonWithController, type Component, type Doc } from '../support/addon.js';
import { startGpuNode, type GpuNode } from '../support/gpu-node.js';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import type { Pod } from '../../pkg/k8s/types.js';
import { cdiSpecFileName } from '../../pkg/kubeletplugin/cdi.js';

const DRIVER = 'gpu.cascade.dev';
const POOL = '0000:29:00.0';
const SWITCHABLE = '0000:18:00.0';

describeCluster('passthrough to a VM (examples/vm-passthrough.yaml)', () => {
  const ns = useNamespace('vfio-e2e', { 'cascade-e2e': 'vfio' });
  let node: GpuNode;
  let controller: Component;

  beforeAll(async () => {
    controller = await installAddonWithController('vfio-controller', { 'cascade-e2e': 'vfio' });
    node = await startGpuNode(ns.kube, {
      name: 'vm-host',
      fleet: {
        gpus: [
          { model: 'H100-80GB', numaNode: 0 },
          { model: 'H100-80GB', numaNode: 1 },
        ],
      },
      passthrough: { pool: POOL, switchable: SWITCHABLE, host: { audio: [0] } },
    });
    await eventually(
      'the node to publish both passthrough devices',
      async () => {
        const names = (await ns.kube.resourceSlices.list(undefined, { fieldSelector: 'spec.nodeName=vm-host' })).flatMap((s) => (s.spec.devices ?? []).map((d) => d.name));
        return names.includes('vfio-0000-18-00-0') && names.includes('vfio-0000-29-00-0');
      },
      60_000,
    );
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    await node?.stop();
    await ns.kube?.nodes.delete('vm-host').catch(() => undefined);
  });

  const docs = (): Doc[] =>
    YAML.parseAllDocuments(readFileSync(join(repoRoot(), 'examples', 'vm-passthrough.yaml'), 'utf8')).map((d): Doc => {
      const o = d.toJSON() as Doc;
      return { ...o, metadata: { ...o.metadata, namespace: ns.name } };
    });

  const prepared = (name: string): Promise<Pod> =>
    eventually(
      `${name} bound and prepared`,
      async () => {
        const p = await ns.kube.pods.get(name, ns.name);
        const r = p.spec.nodeName ? node.kubelet.results.get(`${ns.name}/${name}`) : undefined;
        if (!r) return undefined;
        for (const c of r.claims.values()) if (c.error) throw new Error(c.error);
        return p;
      },
      60_000,
    );

  const allocatedEvent = (claim: string): Promise<string> =>
    eventually(`the Allocated event of ${claim}`, async () => {
      const events = await ns.kube.events.list(ns.name);
      return events.find((e) => e.regarding.name === claim && e.reason === 'Allocated')?.note;
    });

  it('gives the VM the pool GPU already bound to vfio-pci, with its VFIO nodes', async () => {
    const res = await applyServerSide(docs());
    if (res.code !== 0) throw new Error(res.stderr);
    const pod = await prepared('virt-launcher-vm-1');
    const claimName = pod.status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? '';
    const claim = await ns.kube.resourceClaims.get(claimName, ns.name);
    expect(claim.status?.allocation?.devices?.results?.map((r) => r.device)).toEqual(['vfio-0000-29-00-0']);
    expect(await allocatedEvent(claimName)).toMatch(
      /^Allocated vfio-0000-29-00-0 \[NUMA 1, pci0000:29\] on node vm-host\. Passed through 0000:29:00.0 on node vm-host, already bound to vfio-pci, so no GPU changes driver\./,
    );
    expect(claim.status?.devices?.[0]?.data).toMatchObject({ type: 'vfio', pciBusID: POOL, iommuGroup: 21 });
    const spec = readFileSync(join(node.dirs.cdi, cdiSpecFileName(DRIVER, claim.metadata.uid ?? '')), 'utf8');
    expect(spec).toContain('/dev/vfio/21');
    // KubeVirt v1.9's virt-launcher reads the PCI address from the KEP-5304 metadata file of the pod's claim.
    const mount = (JSON.parse(spec) as { devices: { containerEdits: { mounts?: { hostPath: string; containerPath: string }[] } }[] }).devices[0]?.containerEdits.mounts?.[0];
    expect(mount?.containerPath).toBe('/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/gpu/gpu/gpu.cascade.dev-metadata.json');
    const metadata = JSON.parse(readFileSync(mount?.hostPath ?? '', 'utf8')) as { podClaimName?: string; requests: { devices: { attributes: Record<string, { string?: string }> }[] }[] };
    expect(metadata.podClaimName).toBe('gpu');
    expect(metadata.requests[0]?.devices[0]?.attributes['resource.kubernetes.io/pciBusID']).toEqual({ string: POOL });
    expect(node.sysfs?.driverOf(POOL)).toBe('vfio-pci');
  });

  it('rebinds the switchable GPU for a second VM and says so, and returns it with its audio function when the VM is gone', async () => {
    const second = docs().map((d) => (d.kind === 'Pod' ? { ...d, metadata: { ...d.metadata, name: 'virt-launcher-vm-2' } } : d));
    const res = await applyServerSide(second);
    if (res.code !== 0) throw new Error(res.stderr);
    const pod = await prepared('virt-launcher-vm-2');
    const claimName = pod.status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? '';
    expect(await allocatedEvent(claimName)).toMatch(
      /^Allocated vfio-0000-18-00-0 \[NUMA 0, pci0000:18\] on node vm-host\. Rebinding gpu-0 \(0000:18:00.0\) on node vm-host to vfio-pci: no GPU bound for passthrough was free on a node that fits\./,
    );
    expect(node.sysfs?.driverOf(SWITCHABLE)).toBe('vfio-pci');
    expect(node.sysfs?.driverOf('0000:18:00.1')).toBe('vfio-pci');
    // The GPU is gone from nvidia-smi while the VM has it; it comes back when the pod is deleted.
    await ns.kube.pods.delete('virt-launcher-vm-2', ns.name, { gracePeriodSeconds: 0 });
    await eventually('the switchable GPU back with the nvidia driver', async () => node.sysfs?.driverOf(SWITCHABLE) === 'nvidia' && node.sysfs?.driverOf('0000:18:00.1') === 'snd_hda_intel', 90_000);
  });
});
