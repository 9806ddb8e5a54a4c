// kubectl cascade: the fleet table a person reads, and the explanation of a
// claim's decision with what each alternative would get now.
import { fleetRows, renderFleet, currentSlices } from '../../../pkg/cli/fleet.js';
import { renderExplain } from '../../../pkg/cli/explain.js';
import type { DeviceClass, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';

const D = 'gpu.cascade.dev';
const a = (name: string, v: string | number): [string, { string?: string; int?: number }] => [`${D}/${name}`, typeof v === 'number' ? { int: v } : { string: v }];

function slice(node: string, generation = 1): ResourceSlice {
  const mig = (start: number, size: number, profile: string): ResourceSlice['spec']['devices'] extends (infer T)[] | undefined ? T : never => ({
    name: `gpu-0-mig-${profile.replace('.', '-')}-${start}`,
    attributes: Object.fromEntries([a('type', 'mig'), a('parentMinor', 0), a('placementStart', start), a('placementSize', size), a('profile', profile), a('productName', 'NVIDIA H100 80GB HBM3')]),
  });
  return {
    metadata: { name: `${node}-s` },
    spec: {
      driver: D,
      nodeName: node,
      pool: { name: node, generation, resourceSliceCount: 1 },
      devices: [
        { name: 'gpu-0', attributes: Object.fromEntries([a('type', 'gpu'), a('minor', 0), a('productName', 'NVIDIA H100 80GB HBM3')]) },
        { name: 'gpu-1', attributes: Object.fromEntries([a('type', 'gpu'), a('minor', 1), a('productName', 'NVIDIA H100 80GB HBM3')]), taints: [{ key: `${D}/unhealthy`, effect: 'NoSchedule' }] },
        mig(0, 4, '3g.40gb'),
        mig(4, 4, '3g.40gb'),
      ],
    },
  };
}

const claimWith = (name: string, results: { request: string; pool: string; device: string }[]): ResourceClaim => ({
  metadata: { name, namespace: 'ml', uid: `uid-${name}` },
  spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: 'gpu' } }] } },
  status: { allocation: { devices: { results: results.map((r) => ({ ...r, driver: D })) } } },
});

describe('kubectl cascade fleet', () => {
  it('shows per GPU whether it is free, split by MIG (with the slices used), used whole, or tainted', () => {
    const rows = fleetRows([slice('n1')], [claimWith('inference', [{ request: 'gpu', pool: 'n1', device: 'gpu-0-mig-3g-40gb-4' }])], D);
    expect(rows).toEqual([
      { node: 'n1', gpu: 'gpu-0', product: 'NVIDIA H100 80GB HBM3', usage: 'mig: 3g.40gb@4 ml/inference', slices: '....####', tainted: '' },
      { node: 'n1', gpu: 'gpu-1', product: 'NVIDIA H100 80GB HBM3', usage: 'free', slices: '', tainted: `${D}/unhealthy:NoSchedule` },
    ]);
    const text = renderFleet(rows);
    expect(text.split('\n')[0]).toMatch(/^NODE\s+GPU\s+PRODUCT\s+MIG SLICES\s+TAINTS\s+USAGE$/);
    expect(text).toContain('2 GPUs, 1 completely free, 1 partly used by MIG, 0 shared, 0 used whole.');
  });

  it('shows a shared GPU with each share and what the shares take together', () => {
    const s = slice('n1');
    s.spec.devices!.push({
      name: 'gpu-1-shared',
      allowMultipleAllocations: true,
      attributes: Object.fromEntries([a('type', 'shared'), a('minor', 1), a('productName', 'NVIDIA H100 80GB HBM3')]),
      capacity: { [`${D}/memory`]: { value: '81559Mi' }, [`${D}/compute`]: { value: '100' } },
    });
    const share = (name: string, memory: string, compute: string): ResourceClaim => {
      const c = claimWith(name, [{ request: 'gpu', pool: 'n1', device: 'gpu-1-shared' }]);
      const r = c.status!.allocation!.devices!.results![0]!;
      r.shareID = `00000000-0000-4000-8000-00000000000${name.length}`;
      r.consumedCapacity = { [`${D}/memory`]: memory, [`${D}/compute`]: compute };
      return c;
    };
    const rows = fleetRows([s], [share('embed', '20Gi', '30'), share('rerank', '20Gi', '30')], D);
    expect(rows.find((r) => r.gpu === 'gpu-1')?.usage).toBe('shared 40Gi/81559Mi 60%: ml/embed (20Gi 30%), ml/rerank (20Gi 30%)');
    expect(renderFleet(rows)).toContain('2 GPUs, 1 completely free, 0 partly used by MIG, 1 shared, 0 used whole.');
  });

  it('ignores slices of older pool generations', () => {
    const old = slice('n1', 1);
    const fresh = { ...slice('n1', 2), metadata: { name: 'n1-new' } };
    expect(currentSlices([old, fresh], D).map((s) => s.metadata.name)).toEqual(['n1-new']);
  });
});

describe('kubectl cascade explain', () => {
  it('says which alternative won, and what each alternative would get on the fleet now', () => {
    const cls: DeviceClass = { metadata: { name: 'gpu' }, spec: { selectors: [{ cel: { expression: `device.driver == "${D}" && device.attributes["${D}"].type == "gpu"` } }] } };
    const claim: ResourceClaim = {
      metadata: { name: 'train', namespace: 'ml', uid: 'u1' },
      spec: {
        devices: {
          requests: [
            {
              name: 'acc',
              firstAvailable: [
                { name: 'b200', deviceClassName: 'gpu', selectors: [{ cel: { expression: `device.attributes["${D}"].productName.contains("B200")` } }] },
                { name: 'h100', deviceClassName: 'gpu' },
              ],
            },
          ],
        },
      },
      status: {
        allocation: {
          devices: { results: [{ request: 'acc/h100', driver: D, pool: 'n1', device: 'gpu-0' }] },
          nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }] },
        },
      },
    };
    const text = renderExplain({ claim, claims: [claim], slices: [slice('n1')], classes: [cls], nodes: [{ name: 'n1' }], events: [], driver: D });
    expect(text).toContain('Allocated on node n1:');
    expect(text).toContain('acc/h100 -> n1/gpu-0');
    expect(text).toContain('Request acc: alternative 2 of 2 (h100) won; b200 did not fit when it was allocated.');
    expect(text).toMatch(/1\. acc\/b200: would not fit now: .*/);
    expect(text).toMatch(/2\. acc\/h100: would fit now on n1 \(gpu-0\)/);
  });
});
