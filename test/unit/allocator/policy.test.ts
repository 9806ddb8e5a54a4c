// Placement policy: where cascade puts things when the API leaves a choice, next
// to the first-fit baseline, and the score explanation that comes with it.
import { Allocator, type AllocationOutcome, type PlacementPolicy, type PolicyName } from '../../../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../../../pkg/api/deviceclasses.js';
import { fleetNode, fleetNodeFacts, simulatedFleetSlices, type SimulatedNode } from '../../../hack/fake-nvidia-smi/fleet.js';
import type { ResourceClaim } from '../../../pkg/api/resource.js';
import { ANY, DRIVER, claim, cls, dev, req, slice } from './helpers.js';

const D = 'gpu.cascade.dev';
const MIG = `mig.${D}`;
const GPU = `gpu.${D}`;

// Fleets built the way the node plugin publishes them: the simulator's nvidia-smi,
// the real parser and pkg/inventory.
async function fleetAllocator(nodes: SimulatedNode[], policy: PolicyName): Promise<Allocator> {
  const slices = await simulatedFleetSlices(nodes);
  return new Allocator({ slices, classes: cascadeDeviceClasses(), nodes: nodes.map((n) => fleetNodeFacts(n)) }, { policy });
}

function mig(name: string, profile: string): ResourceClaim {
  return claim(name, [req('m', MIG, { selectors: [`device.attributes["${D}"].profile == "${profile}"`] })]);
}

function place(a: Allocator, c: ResourceClaim): AllocationOutcome {
  const o = a.allocate({ claims: [c] });
  if (o.kind === 'allocated') a.commit(o);
  return o;
}

function devicesOf(o: AllocationOutcome): string[] {
  return o.kind === 'allocated' ? o.devices.map((d) => `${d.pool}/${d.device}`) : [];
}

describe('cascade placement', () => {
  it('puts a small MIG slice where it does not block the 4g placement', async () => {
    const a = await fleetAllocator([fleetNode('n', 'A100-SXM4-80GB', 1, { mig: 'mig' })], 'cascade');
    const o = place(a, mig('small', '1g.10gb'));
    expect(devicesOf(o)).toHaveLength(1);
    // 4g.40gb only fits at memory slices 0-3; a 1g slice at 4, 5 or 6 leaves it placeable.
    expect(devicesOf(o)[0]).toMatch(/mig-1g-10gb-[456]$/);
    expect(place(a, mig('big', '4g.40gb')).kind).toBe('allocated');
  });

  it('keeps the 4g placeable after three 1g slices, where first-fit does not', async () => {
    const results = await Promise.all(
      (['cascade', 'first-fit'] as const).map(async (policy) => {
        const a = await fleetAllocator([fleetNode('n', 'A100-SXM4-80GB', 1, { mig: 'mig' })], policy);
        for (let i = 0; i < 3; i++) expect(place(a, mig(`s${i}`, '1g.10gb')).kind).toBe('allocated');
        return place(a, mig('big', '4g.40gb')).kind;
      }),
    );
    expect(results).toEqual(['allocated', 'unallocated']);
  });

  it('fills a partly used GPU before breaking a whole free one', async () => {
    const a = await fleetAllocator([fleetNode('n', 'H100-80GB', 2)], 'cascade');
    const first = devicesOf(place(a, mig('a', '3g.40gb')))[0] ?? '';
    const parent = first.replace(/-mig-.*/, '');
    const second = devicesOf(place(a, mig('b', '1g.10gb')))[0] ?? '';
    expect(second.startsWith(`${parent}-mig-`)).toBe(true);
  });

  it('packs single GPUs onto a used node so that a whole node stays free for an 8-GPU job', async () => {
    const nodes: SimulatedNode[] = [fleetNode('a', 'H100-80GB', 8, { mig: 'whole' }), fleetNode('b', 'H100-80GB', 8, { mig: 'whole' })];
    const a = await fleetAllocator(nodes, 'cascade');
    const one = (n: string): ResourceClaim => claim(n, [req('g', GPU)]);
    const first = place(a, one('one'));
    const second = place(a, one('two'));
    expect(first.kind === 'allocated' && second.kind === 'allocated' && first.node === second.node).toBe(true);
    const eight = place(a, claim('eight', [req('g', GPU, { count: 8 })], { constraints: [{ matchAttribute: `${D}/nvlinkDomain` }] }));
    expect(eight.kind).toBe('allocated');
  });

  it('uses a GPU without MIG for a whole-GPU request rather than break a MIG-capable one', async () => {
    const a = await fleetAllocator([fleetNode('mig', 'H100-80GB', 1), fleetNode('plain', 'H100-80GB', 1, { mig: 'whole' })], 'cascade');
    const o = place(a, claim('whole', [req('g', GPU)]));
    expect(o.kind === 'allocated' ? o.node : undefined).toBe('plain');
  });

  it('keeps an unconstrained multi-GPU request on one NVLink domain when it can', () => {
    const slices = [slice('n1', [dev('gpu-0', { domain: 'x' }), dev('gpu-1', { domain: 'x' }), dev('gpu-2', { domain: 'y' }), dev('gpu-3', { domain: 'y' })])];
    const pick = (policy: PolicyName): string[] => {
      const a = new Allocator({ slices, classes: [ANY], allocated: [{ driver: DRIVER, pool: 'n1', device: 'gpu-0' }] }, { policy, topologyAttributes: [`${DRIVER}/domain`] });
      return devicesOf(a.allocate({ claims: [claim('pair', [req('r', 'any', { count: 2 })])] }));
    };
    expect(pick('cascade')).toEqual(['n1/gpu-2', 'n1/gpu-3']);
    expect(pick('first-fit')).toEqual(['n1/gpu-1', 'n1/gpu-2']);
  });

  it('first-fit takes the first node and devices in inventory order', () => {
    const a = new Allocator({ slices: [slice('n1', [dev('a'), dev('b')]), slice('n2', [dev('a')])], classes: [ANY] }, { policy: 'first-fit' });
    expect(devicesOf(a.allocate({ claims: [claim('c', [req('r', 'any')])] }))).toEqual(['n1/a']);
  });

  it('after a 1g slice on an H100, a 4g still fits on that GPU under cascade but not under first-fit', async () => {
    const results = await Promise.all(
      (['cascade', 'first-fit'] as const).map(async (policy) => {
        const a = await fleetAllocator([fleetNode('n', 'H100-80GB', 1)], policy);
        expect(place(a, mig('small', '1g.10gb')).kind).toBe('allocated');
        return place(a, mig('big', '4g.40gb')).kind;
      }),
    );
    expect(results).toEqual(['allocated', 'unallocated']);
  });

  it('puts MIG slices on an already split GPU, so a 7g still fits on the other one', async () => {
    const a = await fleetAllocator([fleetNode('n', 'H100-80GB', 2)], 'cascade');
    const parents = new Set<string>();
    for (const [i, p] of ['1g.10gb', '2g.20gb', '1g.10gb'].entries()) {
      const o = place(a, mig(`s${i}`, p));
      expect(o.kind).toBe('allocated');
      for (const d of devicesOf(o)) parents.add(d.replace(/-mig-.*/, ''));
    }
    expect(parents.size).toBe(1);
    expect(place(a, mig('whole', '7g.80gb')).kind).toBe('allocated');
  });

  it('keeps a whole NVLink domain free for a 4-GPU job after single-GPU claims come and go, where first-fit does not', async () => {
    const nvlink = { constraints: [{ matchAttribute: `${D}/nvlinkDomain` }] };
    const results = await Promise.all(
      (['cascade', 'first-fit'] as const).map(async (policy) => {
        // One node, two NVLink domains of four GPUs (gpu-0..3 and gpu-4..7).
        const a = await fleetAllocator([fleetNode('n', 'H100-80GB', 8, { mig: 'whole', gpusPerNvlinkDomain: 4 })], policy);
        const singles = Array.from({ length: 6 }, (_, i) => place(a, claim(`one-${i}`, [req('g', GPU)])));
        // Both policies fill gpu-0..3 and then gpu-4..5; the first four end, freeing one whole domain.
        expect(singles.flatMap(devicesOf)).toEqual([0, 1, 2, 3, 4, 5].map((m) => `n/gpu-${m}`));
        for (const o of singles.slice(0, 4)) a.release(o.kind === 'allocated' ? o.devices : []);
        // A new single GPU: cascade takes it from the broken domain, first-fit breaks the free one.
        expect(place(a, claim('late-one', [req('g', GPU)])).kind).toBe('allocated');
        return place(a, claim('four', [req('g', GPU, { count: 4 })], nvlink)).kind;
      }),
    );
    expect(results).toEqual(['allocated', 'unallocated']);
  });

  it('uses a policy supplied by the caller', () => {
    const lastNode: PlacementPolicy = {
      name: 'last-node',
      nodesToCompare: 1,
      orderNodes: (nodes) => [...nodes].reverse(),
      orderDevices: (candidates) => candidates.map((device) => ({ device, damage: 0 })),
      score: () => ({ total: 0, terms: [] }),
    };
    const a = new Allocator({ slices: [slice('n1', [dev('a')]), slice('n2', [dev('a')])], classes: [ANY] }, { policy: lastNode });
    const o = a.allocate({ claims: [claim('c', [req('r', 'any')])] });
    expect(o.kind === 'allocated' ? o.node : undefined).toBe('n2');
  });

  it('explains why this node and why these devices, within 1 KiB for the event', async () => {
    const a = await fleetAllocator([fleetNode('a', 'H100-80GB', 8, { mig: 'whole' }), fleetNode('b', 'H100-80GB', 8, { mig: 'whole' })], 'cascade');
    place(a, claim('first', [req('g', GPU)]));
    const o = a.allocate({ claims: [claim('second', [req('g', GPU, { count: 2 })])] });
    expect(o.kind).toBe('allocated');
    if (o.kind !== 'allocated') return;
    expect(Buffer.byteLength(o.explanation.short)).toBeLessThanOrEqual(1024);
    expect(o.explanation.short).toContain(`node ${o.node ?? ''}`);
    expect(o.explanation.short).toMatch(/^Took 2 GPUs on node a, which is already in use, so free nodes stay whole/);
    expect(o.explanation.full).toMatch(/fragmentation .*\n {2}demand-fit .*usable for the requests this cluster sees/);
    for (const d of o.devices) expect(o.explanation.full).toContain(d.device);
    expect(o.score.terms.map((t) => t.name)).toEqual(['fragmentation', 'demand-fit', 'topology']);
  });

  it('leaves the state alone until commit', () => {
    const a = new Allocator({ slices: [slice('n1', [dev('only')])], classes: [ANY] });
    const c = claim('c', [req('r', 'any')]);
    expect(a.allocate({ claims: [c] }).kind).toBe('allocated');
    const o = a.allocate({ claims: [c] });
    expect(o.kind).toBe('allocated');
    if (o.kind === 'allocated') a.commit(o);
    expect(a.allocate({ claims: [c] }).kind).toBe('unallocated');
    a.release(o.kind === 'allocated' ? o.devices : []);
    expect(a.allocate({ claims: [c] }).kind).toBe('allocated');
  });

  it('takes the pod cpu off the node on commit', () => {
    const a = new Allocator({ slices: [slice('n1', [dev('a'), dev('b')])], classes: [ANY], nodes: [{ name: 'n1', free: { cpu: '6' } }] });
    const pod = { cpu: '4' };
    const o = a.allocate({ claims: [claim('c1', [req('r', 'any')])], pod });
    if (o.kind === 'allocated') a.commit(o);
    const second = a.allocate({ claims: [claim('c2', [req('r', 'any')])], pod });
    expect(second.kind).toBe('unallocated');
    if (second.kind === 'unallocated') expect(second.explanation.short).toContain('not enough cpu');
  });

  it('does not count what-if questions as demand: later placements are as without them', async () => {
    const nodes = [fleetNode('h100', 'H100-80GB', 2), fleetNode('l40s', 'L40S', 2), fleetNode('a100', 'A100-SXM4-80GB', 2, { mig: 'mig' })];
    const stream = [mig('m0', '1g.10gb'), claim('g0', [req('g', GPU)]), mig('m1', '3g.40gb'), claim('g1', [req('g', GPU)]), claim('g2', [req('g', GPU)])];
    const run = async (whatIfs: number): Promise<string[]> => {
      const a = await fleetAllocator(nodes, 'cascade');
      const before = a.matcher.pressure.totalDemand;
      // Questions such as `kubectl cascade explain` or a preemption check ask without arriving.
      for (let i = 0; i < whatIfs; i++) a.allocate({ claims: [mig(`what-if-${i}`, '7g.80gb')], observeDemand: false });
      expect(a.matcher.pressure.totalDemand).toBe(before);
      return stream.map((c) => devicesOf(place(a, c)).join(','));
    };
    expect(await run(50)).toEqual(await run(0));
  });
});

describe('placement of shares of shared GPUs', () => {
  const SHARED = cls('shared', `device.driver == "${DRIVER}" && device.allowMultipleAllocations`);
  const WHOLE = cls('whole', `device.driver == "${DRIVER}" && !device.allowMultipleAllocations`);
  // Two GPUs, each published whole and shared, the two forms kept apart by one counter.
  const gpu = (i: number) => [
    dev(`gpu-${i}`, {}, { consumes: [{ set: `c${i}`, counters: { gpu: '1' } }] }),
    dev(
      `gpu-${i}-shared`,
      {},
      {
        allowMultiple: true,
        consumes: [{ set: `c${i}`, counters: { gpu: '1' } }],
        capacity: { compute: { value: '100', requestPolicy: { default: '10', validRange: { min: '1', max: '100', step: '1' } } } },
      },
    ),
  ];
  const fleet = () => [slice('n1', [], { count: 2, counters: [0, 1].map((i) => ({ name: `c${i}`, counters: { gpu: '1' } })) }), slice('n1', [...gpu(0), ...gpu(1)], { count: 2 })];
  const share = (name: string, compute: number) => claim(name, [req('r', 'shared', { capacity: { compute: String(compute) } })]);
  const existing = (device: string, compute: number) => ({
    driver: DRIVER,
    pool: 'n1',
    device,
    shareID: `00000000-0000-4000-8000-0000000000${compute}`,
    consumedCapacity: { compute: String(compute) },
  });

  it('fills a GPU other shares already use before starting a fresh one, and says so first', () => {
    const a = new Allocator({ slices: fleet(), classes: [SHARED, WHOLE], allocated: [existing('gpu-1-shared', 50)] }, { policy: 'cascade' });
    const o = a.allocate({ claims: [share('s', 30)] });
    if (o.kind !== 'allocated') throw new Error(o.explanation.full);
    expect(o.devices.map((d) => d.device)).toEqual(['gpu-1-shared']);
    expect(o.explanation.short).toMatch(/^Shared gpu-1 on node n1, which other shares already use, so whole GPUs stay free/);
  });

  it('leaves a partly used GPU the room the common share needs, where best fit fills it to an unusable sliver', () => {
    // gpu-0 has 50% left, gpu-1 90%; the cluster has been asking for 50% shares.
    const setup = { slices: fleet(), classes: [SHARED, WHOLE], allocated: [existing('gpu-0-shared', 50), existing('gpu-1-shared', 10)] };
    const pick = (policy: PolicyName): string => {
      const a = new Allocator(setup, { policy });
      for (let i = 0; i < 20; i++) a.allocate({ claims: [share(`seen-${i}`, 50)] });
      const o = a.allocate({ claims: [share('now', 40)] });
      if (o.kind !== 'allocated') throw new Error(o.explanation.full);
      a.commit(o);
      // Whatever was chosen, can the next common request still be served?
      const next = a.allocate({ claims: [share('next', 50)] });
      return `${o.devices[0]?.device ?? '?'} then ${next.kind}`;
    };
    // Cascade puts the 40% share on gpu-1 (90% -> 50%): both GPUs can still take a 50% share.
    expect(pick('cascade')).toBe('gpu-1-shared then allocated');
    // Best fit takes the tightest, gpu-0 (50% -> 10%), which no 50% share can use.
    expect(pick('best-fit')).toBe('gpu-0-shared then allocated');
    const a = new Allocator(setup, { policy: 'best-fit' });
    a.commit(a.allocate({ claims: [share('now', 40)] }) as never);
    a.commit(a.allocate({ claims: [share('next', 50)] }) as never);
    // ...and then a second 50% share has nowhere to go, where cascade's choice still hosts it.
    expect(a.allocate({ claims: [share('third', 50)] }).kind).toBe('unallocated');
    const c = new Allocator(setup, { policy: 'cascade' });
    for (let i = 0; i < 20; i++) c.allocate({ claims: [share(`seen-${i}`, 50)] });
    for (const [n, v] of [
      ['now', 40],
      ['next', 50],
      ['third', 50],
    ] as const) {
      const o = c.allocate({ claims: [share(n, v)] });
      expect(o.kind).toBe('allocated');
      if (o.kind === 'allocated') c.commit(o);
    }
  });
});

describe('GPUs and the CPU to use them', () => {
  const m = (v: string) => `device.attributes["${DRIVER}"].model == "${v}"`;
  const gpus = (node: string, n: number, model: string) =>
    slice(
      node,
      Array.from({ length: n }, (_, i) => dev(`gpu-${i}`, { model })),
    );
  const pod = (name: string, model: string, cpu: string) => ({ claims: [claim(name, [req('r', 'any', { selectors: [m(model)] })])], pod: { cpu } });

  it('keeps a node with little CPU for pods its CPU can still feed, so fewer GPUs end up stranded', () => {
    // a and b have 2 GPUs each, a only 20 cores; c (another model) shows pods take 10 cores per GPU.
    const snapshot = {
      slices: [gpus('a', 2, 'x'), gpus('b', 2, 'x'), gpus('c', 8, 'y')],
      classes: [ANY],
      nodes: [
        { name: 'a', free: { cpu: '20' } },
        { name: 'b', free: { cpu: '200' } },
        { name: 'c', free: { cpu: '200' } },
      ],
    };
    const run = (policy: PolicyName): number => {
      const alloc = new Allocator(snapshot, { policy });
      for (let i = 0; i < 3; i++) {
        const o = alloc.allocate(pod(`seen-${i}`, 'y', '10'));
        if (o.kind === 'allocated') alloc.commit(o);
      }
      let placed = 0;
      for (const [i, cpu] of ['15', '10', '10', '10'].entries()) {
        const o = alloc.allocate(pod(`p${i}`, 'x', cpu));
        if (o.kind === 'allocated') {
          alloc.commit(o);
          placed++;
        }
      }
      return placed;
    };
    // First fit puts the 15-core pod on a, whose other GPU then has 5 cores to go with it.
    expect(run('first-fit')).toBe(3);
    expect(run('cascade')).toBe(4);
  });
});
