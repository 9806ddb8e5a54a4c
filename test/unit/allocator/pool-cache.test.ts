// A rebuild of the index parses only the pools whose slices changed (PoolCache):
// what it reuses must give exactly the index, and the decisions, of a fresh build.
import { Allocator, PoolCache } from '../../../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../../../pkg/api/deviceclasses.js';
import type { ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { fleetNode, fleetNodeFacts, simulatedFleetSlices, type SimulatedNode } from '../../../hack/fake-nvidia-smi/fleet.js';
import { placeEach } from './helpers.js';

const D = 'gpu.cascade.dev';
const baseNodes = [fleetNode('h100-a', 'H100-80GB', 4), fleetNode('h100-b', 'H100-80GB', 4), fleetNode('a100-a', 'A100-SXM4-40GB', 4, { mig: 'mig' })];

function claims(): ResourceClaim[] {
  const shapes = [
    { deviceClassName: `gpu.${D}` },
    { deviceClassName: `mig.${D}`, selectors: [{ cel: { expression: `device.attributes["${D}"].profile.startsWith("1g.")` } }] },
    { deviceClassName: `shared.${D}`, capacity: { requests: { memory: '20Gi', compute: '30' } } },
    { deviceClassName: `mig.${D}`, selectors: [{ cel: { expression: `device.attributes["${D}"].profile.startsWith("3g.")` } }] },
  ];
  return Array.from({ length: 30 }, (_v, i) => ({
    metadata: { name: `c${i}`, namespace: 'default', uid: `uid-${i}` },
    spec: { devices: { requests: [{ name: 'r', exactly: shapes[i % shapes.length] ?? { deviceClassName: `gpu.${D}` } }] } },
  }));
}

function build(slices: readonly ResourceSlice[], nodes: readonly SimulatedNode[], cache?: PoolCache): Allocator {
  return new Allocator({ slices, classes: cascadeDeviceClasses(D), nodes: nodes.map((n) => fleetNodeFacts(n)) }, { policy: 'cascade', ...(cache ? { poolCache: cache } : {}) });
}

function decisions(a: Allocator): string[] {
  return placeEach(a, claims());
}

/** The index as a comparable picture: every device with its node, counters and state, every counter set. */
function picture(a: Allocator): unknown {
  const inv = a.inventory;
  return {
    devices: inv.devices.map((d) => ({
      id: d.id,
      node: inv.nodes[d.node]?.name ?? d.node,
      attributes: d.attributes.keys().map((k) => `${k}=${d.attributes.get(k) ?? ''}`),
      consumes: d.consumes.map((c) => ({ set: `${inv.counterSets[c.set]?.pool ?? '?'}/${inv.counterSets[c.set]?.name ?? '?'}`, amounts: [...c.amounts] })),
      unusable: d.unusable,
      available: a.state.available[d.idx],
    })),
    sets: inv.counterSets.map((s) => ({ id: `${s.pool}/${s.name}`, node: inv.nodes[s.node]?.name, capacity: [...s.capacity], devices: s.devices.map((x) => inv.devices[x]?.id) })),
    units: inv.units.length,
    problems: inv.poolProblems,
  };
}

/** Slices as an informer hands them out: with a uid and a resourceVersion. */
function versioned(slices: readonly ResourceSlice[]): ResourceSlice[] {
  return slices.map((s) => ({ ...s, metadata: { ...s.metadata, uid: `uid-${s.metadata.name ?? ''}`, resourceVersion: '1' } }));
}

describe('rebuilding the index from the pools that changed', () => {
  let slices: ResourceSlice[];

  beforeAll(async () => {
    slices = versioned(await simulatedFleetSlices(baseNodes));
  });

  it('reuses every pool when nothing changed, with the index and decisions of a fresh build', () => {
    const cache = new PoolCache();
    build(slices, baseNodes, cache);
    expect(cache.last).toEqual({ parsed: 3, reused: 0 });
    const again = build(slices, baseNodes, cache);
    expect(cache.last).toEqual({ parsed: 0, reused: 3 });
    expect(picture(again)).toEqual(picture(build(slices, baseNodes)));
    expect(decisions(again)).toEqual(decisions(build(slices, baseNodes)));
  });

  it('parses a changed slice again: a device gone from it is gone from the index', () => {
    const cache = new PoolCache();
    build(slices, baseNodes, cache);
    const changed = slices.map((s) =>
      s.spec.pool.name === 'h100-b' && (s.spec.devices ?? []).some((d) => d.name === 'gpu-0')
        ? { ...s, metadata: { ...s.metadata, resourceVersion: '2' }, spec: { ...s.spec, devices: (s.spec.devices ?? []).filter((d) => d.name !== 'gpu-0') } }
        : s,
    );
    const rebuilt = build(changed, baseNodes, cache);
    expect(cache.last).toEqual({ parsed: 1, reused: 2 });
    expect(rebuilt.inventory.deviceIndex.has(`${D}/h100-b/gpu-0`)).toBe(false);
    expect(rebuilt.inventory.deviceIndex.has(`${D}/h100-a/gpu-0`)).toBe(true);
    expect(picture(rebuilt)).toEqual(picture(build(changed, baseNodes)));
    expect(decisions(rebuilt)).toEqual(decisions(build(changed, baseNodes)));
  });

  it('renumbers reused pools when a new pool comes first, and their counters stay their own', async () => {
    const cache = new PoolCache();
    build(slices, baseNodes, cache);
    const first = fleetNode('a000-new', 'H100-80GB', 2);
    const nodes = [first, ...baseNodes];
    const grown = [...versioned(await simulatedFleetSlices([first])), ...slices];
    const rebuilt = build(grown, nodes, cache);
    expect(cache.last).toEqual({ parsed: 1, reused: 3 });
    const inv = rebuilt.inventory;
    for (const d of inv.devices) for (const c of d.consumes) expect(`${inv.counterSets[c.set]?.pool}@${inv.counterSets[c.set]?.node}`).toBe(`${d.pool}@${d.node}`);
    expect(picture(rebuilt)).toEqual(picture(build(grown, nodes)));
    expect(decisions(rebuilt)).toEqual(decisions(build(grown, nodes)));
  });

  it('parses slices without a uid or resourceVersion every time, and forgets pools that went', async () => {
    const cache = new PoolCache();
    const plain = await simulatedFleetSlices(baseNodes);
    build(plain, baseNodes, cache);
    build(plain, baseNodes, cache);
    expect(cache.last).toEqual({ parsed: 3, reused: 0 });
    build(slices, baseNodes, cache);
    build(
      slices.filter((s) => s.spec.pool.name !== 'h100-a'),
      baseNodes,
      cache,
    );
    expect(cache.last).toEqual({ parsed: 0, reused: 2 });
    // h100-a was dropped from the cache when a build did not see it.
    build(slices, baseNodes, cache);
    expect(cache.last).toEqual({ parsed: 1, reused: 2 });
  });
});

describe('warming the index', () => {
  it('leaves devices, usage and demand as they were, and every later decision as without it', async () => {
    const slices = versioned(await simulatedFleetSlices(baseNodes));
    const warmed = build(slices, baseNodes);
    const before = picture(warmed);
    expect(warmed.warm()).toEqual([]);
    expect(picture(warmed)).toEqual(before);
    expect(warmed.usage()).toEqual(build(slices, baseNodes).usage());
    expect(warmed.demand.shapes()).toEqual([]);
    expect(decisions(warmed)).toEqual(decisions(build(slices, baseNodes)));
  });

  it('fails a class whose selector does not compile quietly, as it would fail a claim, and decides the rest as before', async () => {
    const slices = versioned(await simulatedFleetSlices(baseNodes));
    const classes = [...cascadeDeviceClasses(D), { metadata: { name: 'broken' }, spec: { selectors: [{ cel: { expression: 'device.attributes[' } }] } }];
    const a = new Allocator({ slices, classes, nodes: baseNodes.map((n) => fleetNodeFacts(n)) });
    expect(a.warm()).toEqual([]);
    expect(placeEach(a, claims().slice(0, 4))).toEqual(placeEach(build(slices, baseNodes), claims().slice(0, 4)));
  });
});
