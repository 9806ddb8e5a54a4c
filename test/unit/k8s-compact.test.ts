// The controller's slice cache shares equal values across nodes (pkg/k8s/compact.ts):
// the slices must say exactly what they said, the values must really be shared, and
// the allocator must decide the same over compacted slices as over the originals.
import { Allocator } from '../../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../../pkg/api/deviceclasses.js';
import type { ResourceClaim, ResourceSlice } from '../../pkg/api/resource.js';
import { compactSlice, dropManagedFields, ValueInterner } from '../../pkg/k8s/compact.js';
import { fleetNode, fleetNodeFacts, simulatedFleetSlices } from '../../hack/fake-nvidia-smi/fleet.js';
import { placeEach } from './allocator/helpers.js';

const D = 'gpu.cascade.dev';
const nodes = [fleetNode('h100-a', 'H100-80GB', 8), fleetNode('h100-b', 'H100-80GB', 8), fleetNode('a100-a', 'A100-SXM4-40GB', 4)];

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function claims(): ResourceClaim[] {
  const shapes = [
    { deviceClassName: `gpu.${D}` },
    { deviceClassName: `mig.${D}`, selectors: [{ cel: { expression: `device.attributes["${D}"].profile.startsWith("1g.")` } }] },
    { deviceClassName: `shared.${D}`, capacity: { requests: { memory: '20Gi', compute: '30' } } },
    { deviceClassName: `gpu.${D}`, count: 2 },
    { deviceClassName: `mig.${D}`, selectors: [{ cel: { expression: `device.attributes["${D}"].profile.startsWith("3g.")` } }] },
  ];
  return Array.from({ length: 40 }, (_v, i) => ({
    metadata: { name: `c${i}`, namespace: 'default', uid: `uid-${i}` },
    spec: { devices: { requests: [{ name: 'r', exactly: shapes[i % shapes.length] ?? { deviceClassName: `gpu.${D}` } }] } },
  }));
}

function decisions(slices: ResourceSlice[]): string[] {
  return placeEach(new Allocator({ slices, classes: cascadeDeviceClasses(D), nodes: nodes.map((n) => fleetNodeFacts(n)) }, { policy: 'cascade' }), claims());
}

describe('compacted slices', () => {
  let original: ResourceSlice[];
  let compacted: ResourceSlice[];
  let interner: ValueInterner;

  beforeAll(async () => {
    original = await simulatedFleetSlices(nodes);
    interner = new ValueInterner();
    compacted = clone(original).map((s) => compactSlice({ ...s, metadata: { ...s.metadata, managedFields: [{ manager: 'node-plugin' }] } as ResourceSlice['metadata'] }, interner));
  });

  it('say what the originals say, without managedFields', () => {
    expect(JSON.parse(JSON.stringify(compacted))).toEqual(original);
  });

  it('share one object per distinct value across nodes, frozen', () => {
    const device = (node: string, name: string) => compacted.flatMap((s) => (s.spec.pool.name === node ? (s.spec.devices ?? []) : [])).find((d) => d.name === name);
    const a = device('h100-a', 'gpu-0');
    const b = device('h100-b', 'gpu-0');
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    const shared = Object.keys(a?.attributes ?? {}).filter((k) => a?.attributes?.[k] === b?.attributes?.[k]);
    // The product name, driver version, architecture... are one object on both H100 nodes.
    expect(shared.length).toBeGreaterThan(5);
    expect(shared).toContain(`${D}/productName`);
    // Values that differ stay apart: an A100's product name is not an H100's.
    expect(device('a100-a', 'gpu-0')?.attributes?.[`${D}/productName`]).toEqual({ string: 'NVIDIA A100-SXM4-40GB' });
    expect(a?.attributes?.[`${D}/productName`]).toEqual({ string: 'NVIDIA H100 80GB HBM3' });
    const any = a?.attributes?.[shared[0] ?? ''];
    expect(Object.isFrozen(any)).toBe(true);
    // Far fewer distinct values than values.
    const values = compacted.flatMap((s) => (s.spec.devices ?? []).flatMap((d) => Object.keys(d.attributes ?? {}))).length;
    expect(interner.size).toBeLessThan(values / 3);
  });

  it('give the same decisions as the originals (and nothing writes into a shared value)', () => {
    expect(decisions(compacted)).toEqual(decisions(clone(original)));
  });

  it('drop managedFields from any object, keeping the rest', () => {
    const pod = { metadata: { name: 'p', managedFields: [{ manager: 'kubectl' }], labels: { a: 'b' } }, spec: {} };
    expect(JSON.parse(JSON.stringify(dropManagedFields(pod)))).toEqual({ metadata: { name: 'p', labels: { a: 'b' } }, spec: {} });
  });
});
