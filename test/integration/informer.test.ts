// Informers see every change and keep working when the API server goes away
// and comes back; this file uses its own control plane because it restarts it.
import { ControlPlane } from '../../pkg/cluster/controlplane.js';
import { Informer } from '../../pkg/k8s/informer.js';
import { RESOURCES, type Kube } from '../../pkg/k8s/resources.js';
import type { ResourceSlice } from '../../pkg/api/resource.js';
import { describeCluster, eventually } from '../support/cluster.js';

function slice(name: string, devices: number): ResourceSlice {
  return {
    metadata: { name },
    spec: {
      driver: 'gpu.cascade.dev',
      nodeName: 'node-1',
      pool: { name: 'node-1', generation: 1, resourceSliceCount: 1 },
      devices: Array.from({ length: devices }, (_, i) => ({ name: `gpu-${i}` })),
    },
  };
}

describeCluster('Informer', () => {
  let cp: ControlPlane;
  let kube: Kube;
  beforeAll(async () => {
    cp = await ControlPlane.start({ binDir: process.env.CASCADE_BIN_DIR });
    kube = cp.kube();
  }, 120_000);
  afterAll(async () => {
    kube?.close();
    await cp?.stop();
  });

  it('keeps an index up to date through adds, updates and deletes, before handlers run', async () => {
    const informer = new Informer<ResourceSlice>(kube.client, RESOURCES.resourceSlices, { maxBackoffMs: 500 });
    informer.addIndex('size', (s) => [`${s.spec.devices?.length ?? 0}`]);
    const seen: string[] = [];
    informer.on({
      add: (o) =>
        seen.push(
          informer
            .byIndex('size', `${o.spec.devices?.length ?? 0}`)
            .map((x) => x.metadata.name ?? '')
            .join(','),
        ),
    });
    informer.start();
    try {
      await informer.waitForSync();
      await kube.resourceSlices.create(slice('ix-a', 1));
      await kube.resourceSlices.create(slice('ix-b', 1));
      await eventually('both indexed', async () => informer.byIndex('size', '1').length === 2);
      expect(seen).toEqual(['ix-a', 'ix-a,ix-b']);
      await kube.resourceSlices.mergePatch('ix-a', { spec: { devices: [{ name: 'gpu-0' }, { name: 'gpu-1' }] } });
      await eventually('moved', async () => informer.byIndex('size', '2').length === 1);
      expect(informer.byIndex('size', '1').map((x) => x.metadata.name)).toEqual(['ix-b']);
      await kube.resourceSlices.delete('ix-b');
      await eventually('removed', async () => informer.byIndex('size', '1').length === 0);
      await kube.resourceSlices.delete('ix-a');
      await eventually('empty', async () => informer.byIndex('size', '2').length === 0);
    } finally {
      informer.stop();
    }
  });

  it('reports adds, updates and deletes, and catches up after the API server restarts', async () => {
    const events: string[] = [];
    const informer = new Informer<ResourceSlice>(kube.client, RESOURCES.resourceSlices, { maxBackoffMs: 500 });
    informer.on({
      add: (o) => events.push(`add ${o.metadata.name ?? ''}`),
      update: (_o, n) => events.push(`update ${n.metadata.name ?? ''} ${n.spec.devices?.length ?? 0}`),
      delete: (o) => events.push(`delete ${o.metadata.name ?? ''}`),
    });
    informer.start();
    try {
      await informer.waitForSync();
      await kube.resourceSlices.create(slice('a', 1));
      await eventually('add', async () => events.includes('add a'));
      await kube.resourceSlices.mergePatch('a', { spec: { devices: [{ name: 'gpu-0' }, { name: 'gpu-1' }] } });
      await eventually('update', async () => events.includes('update a 2'));
      await kube.resourceSlices.delete('a');
      await eventually('delete', async () => events.includes('delete a'));

      // While the server is down, the informer's watch breaks; changes made
      // after it returns must still arrive.
      await cp.restartApiServer(1_000);
      await kube.resourceSlices.create(slice('b', 3));
      await eventually('add after restart', async () => events.includes('add b'), 60_000);
      expect(informer.get('b')?.spec.devices).toHaveLength(3);
      expect(informer.stats.errors + informer.stats.lists).toBeGreaterThan(1);
      expect(informer.list().map((s) => s.metadata.name)).toEqual(['b']);
    } finally {
      informer.stop();
    }
  });
});
