// Property test: random fleets and claims (seeded, deterministic); every allocation
// is checked against an independent reading of the API objects.
import { Allocator, type AllocatedOutcome, type PolicyName } from '../../../pkg/allocator/index.js';
import type { Device, DeviceClass, DeviceConstraint, DeviceRequest, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { compileSelector, makeCelDevice } from '../../../pkg/cel/environment.js';
import { Quantity } from '../../../pkg/cel/quantity.js';
import { DRIVER, claim, cls, dev, firstAvailable, req, slice, sub } from './helpers.js';
import { seededRandom } from '../../../hack/seeded-random.js';

interface World {
  slices: ResourceSlice[];
  classes: DeviceClass[];
  claims: ResourceClaim[][];
}

const CLASSES = [cls('any', `device.driver == "${DRIVER}"`), cls('model-a', `device.attributes["${DRIVER}"].model == "a"`), cls('part', `has(device.attributes["${DRIVER}"].slots)`)];
const SELECTORS = [`device.attributes["${DRIVER}"].mem >= 20`, `device.attributes["${DRIVER}"].model == "b"`, `device.capacity["${DRIVER}"].memory.compareTo(quantity("30Gi")) < 0`];

function randomWorld(seed: number): World {
  const r = seededRandom(seed);
  const int = (n: number): number => Math.floor(r() * n);
  const slices: ResourceSlice[] = [];
  const nodes = 2 + int(3);
  for (let n = 0; n < nodes; n++) {
    const node = `n${n}`;
    const devices: Device[] = [];
    const sets: { name: string; counters: Record<string, string> }[] = [];
    const gpus = 2 + int(2);
    for (let g = 0; g < gpus; g++) {
      const base = { model: r() < 0.5 ? 'a' : 'b', domain: `${node}-d${int(2)}`, parent: `${node}-g${g}` };
      const taints = r() < 0.1 ? [{ key: 'bad', effect: 'NoSchedule' as const }] : undefined;
      if (r() < 0.5) {
        devices.push(dev(`g${g}`, { ...base, mem: 40 }, { capacity: { memory: '40Gi' }, ...(taints ? { taints } : {}) }));
        continue;
      }
      // A partitionable GPU: 4 slots; whole takes all, halves two, quarters one.
      const set = `g${g}-set`;
      sets.push({ name: set, counters: { s0: '1', s1: '1', s2: '1', s3: '1', mem: '40Gi' } });
      const part = (name: string, slots: number[], mem: number): Device =>
        dev(
          name,
          { ...base, mem, slots: slots.length },
          { capacity: { memory: `${mem}Gi` }, consumes: [{ set, counters: { ...Object.fromEntries(slots.map((s) => [`s${s}`, '1'])), mem: `${mem * 1024}Mi` } }], ...(taints ? { taints } : {}) },
        );
      devices.push(part(`g${g}`, [0, 1, 2, 3], 40), part(`g${g}-h0`, [0, 1], 20), part(`g${g}-h2`, [2, 3], 20));
      for (let q = 0; q < 4; q++) devices.push(part(`g${g}-q${q}`, [q], 10));
    }
    if (sets.length > 0) {
      slices.push(slice(node, [], { count: 2, counters: sets }), slice(node, devices, { count: 2 }));
    } else {
      slices.push(slice(node, devices));
    }
  }
  const randomRequest = (name: string): DeviceRequest => {
    const className = CLASSES[int(CLASSES.length)]?.metadata.name ?? 'any';
    const selectors = r() < 0.4 ? [SELECTORS[int(SELECTORS.length)] ?? 'true'] : undefined;
    const tolerations = r() < 0.2 ? [{ key: 'bad', operator: 'Exists' as const }] : undefined;
    if (r() < 0.3) {
      return firstAvailable(name, sub('x', className, { count: 1 + int(3), ...(selectors ? { selectors } : {}) }), sub('y', 'any', { ...(tolerations ? { tolerations } : {}) }));
    }
    return req(name, className, { count: 1 + int(2), ...(selectors ? { selectors } : {}), ...(tolerations ? { tolerations } : {}) });
  };
  const claims: ResourceClaim[][] = [];
  const pods = 6 + int(10);
  for (let p = 0; p < pods; p++) {
    const pod: ResourceClaim[] = [];
    const n = r() < 0.25 ? 2 : 1;
    for (let c = 0; c < n; c++) {
      const requests = Array.from({ length: 1 + int(2) }, (_, i) => randomRequest(`r${i}`));
      const constraints: DeviceConstraint[] = [];
      if (r() < 0.3) constraints.push({ matchAttribute: `${DRIVER}/domain` });
      if (r() < 0.2) constraints.push({ distinctAttribute: `${DRIVER}/parent` });
      pod.push(claim(`p${p}c${c}`, requests, { constraints }));
    }
    claims.push(pod);
  }
  return { slices, classes: CLASSES, claims };
}

interface DeviceInfo {
  readonly device: Device;
  readonly pool: string;
  readonly node: string;
}

/** An independent reading of the slices (no allocator code). */
function index(world: World): { devices: Map<string, DeviceInfo>; capacity: Map<string, Map<string, bigint>> } {
  const devices = new Map<string, DeviceInfo>();
  const capacity = new Map<string, Map<string, bigint>>();
  for (const s of world.slices) {
    for (const d of s.spec.devices ?? []) devices.set(`${s.spec.pool.name}/${d.name}`, { device: d, pool: s.spec.pool.name, node: s.spec.nodeName ?? '' });
    for (const cs of s.spec.sharedCounters ?? []) {
      capacity.set(`${s.spec.pool.name}/${cs.name}`, new Map(Object.entries(cs.counters).map(([k, v]) => [k, Quantity.parse(v.value).nanos])));
    }
  }
  return { devices, capacity };
}

function matches(d: Device, expressions: readonly string[]): boolean {
  const cel = makeCelDevice(DRIVER, d.attributes, d.capacity, false);
  return expressions.every((e) => {
    const c = compileSelector(e);
    if (!c.ok) return false;
    const r = c.selector.evaluate(cel);
    return r.ok && r.matches;
  });
}

function attrValue(d: Device, qualified: string): string | undefined {
  const a = d.attributes?.[qualified.slice(DRIVER.length + 1)] ?? d.attributes?.[qualified];
  if (a === undefined) return undefined;
  return JSON.stringify(a);
}

function checkOutcome(world: World, idx: ReturnType<typeof index>, pod: readonly ResourceClaim[], o: AllocatedOutcome, held: Set<string>, used: Map<string, Map<string, bigint>>): void {
  const nodes = new Set<string>();
  const inThisPod = new Set<string>();
  for (const [ci, ca] of o.claims.entries()) {
    const spec = pod[ci]?.spec.devices;
    const results = ca.allocation.devices?.results ?? [];
    const byRequest = new Map<string, string[]>();
    for (const r of results) {
      const key = `${r.pool}/${r.device}`;
      const info = idx.devices.get(key);
      // Every result names an existing device...
      expect(info).toBeDefined();
      if (info === undefined) continue;
      expect(r.driver).toBe(DRIVER);
      nodes.add(info.node);
      // ... used once across all allocations ...
      expect(held.has(key)).toBe(false);
      expect(inThisPod.has(key)).toBe(false);
      inThisPod.add(key);
      // ... that matches its class and selectors (of the chosen alternative) and is not tainted unless tolerated.
      const [base, subName] = r.request.split('/');
      const request = spec?.requests?.find((x) => x.name === base);
      const chosen = subName === undefined ? request?.exactly : request?.firstAvailable?.find((x) => x.name === subName);
      expect(chosen).toBeDefined();
      if (chosen === undefined) continue;
      const klass = world.classes.find((c) => c.metadata.name === chosen.deviceClassName);
      const exprs = [...(klass?.spec.selectors ?? []), ...(chosen.selectors ?? [])].map((s) => s.cel?.expression ?? 'false');
      expect(matches(info.device, exprs)).toBe(true);
      const blocking = (info.device.taints ?? []).filter((t) => t.effect !== 'None');
      if (blocking.length > 0) expect((chosen.tolerations ?? []).some((t) => t.operator === 'Exists' && (t.key === undefined || t.key === 'bad'))).toBe(true);
      byRequest.set(r.request, [...(byRequest.get(r.request) ?? []), key]);
      for (const cc of info.device.consumesCounters ?? []) {
        const setKey = `${info.pool}/${cc.counterSet}`;
        let u = used.get(setKey);
        if (u === undefined) used.set(setKey, (u = new Map<string, bigint>()));
        for (const [name, v] of Object.entries(cc.counters)) u.set(name, (u.get(name) ?? 0n) + Quantity.parse(v.value).nanos);
      }
    }
    // Counts per request.
    for (const [name, keys] of byRequest) {
      const [base, subName] = name.split('/');
      const request = spec?.requests?.find((x) => x.name === base);
      const chosen = subName === undefined ? request?.exactly : request?.firstAvailable?.find((x) => x.name === subName);
      expect(keys).toHaveLength(chosen?.count ?? 1);
    }
    // Constraints hold over every result of the claim (they name all requests).
    for (const c of spec?.constraints ?? []) {
      const values = results.map((r) => attrValue(idx.devices.get(`${r.pool}/${r.device}`)?.device ?? { name: '' }, c.matchAttribute ?? c.distinctAttribute ?? ''));
      expect(values.every((v) => v !== undefined)).toBe(true);
      if (c.matchAttribute !== undefined) expect(new Set(values).size).toBeLessThanOrEqual(1);
      if (c.distinctAttribute !== undefined) expect(new Set(values).size).toBe(values.length);
    }
  }
  // One node per pod.
  expect(nodes.size).toBeLessThanOrEqual(1);
  for (const k of inThisPod) held.add(k);
  // Counters never exceeded.
  for (const [setKey, u] of used) {
    const cap = idx.capacity.get(setKey);
    expect(cap).toBeDefined();
    for (const [name, v] of u) expect(v <= (cap?.get(name) ?? -1n)).toBe(true);
  }
}

function runWorld(seed: number, policy: PolicyName): string[] {
  const world = randomWorld(seed);
  const idx = index(world);
  const allocator = new Allocator({ slices: world.slices, classes: world.classes }, { policy });
  const held = new Set<string>();
  const used = new Map<string, Map<string, bigint>>();
  const log: string[] = [];
  for (const pod of world.claims) {
    const o = allocator.allocate({ claims: pod });
    if (o.kind === 'allocated') {
      checkOutcome(world, idx, pod, o, held, used);
      allocator.commit(o);
      log.push(o.claims.flatMap((c) => (c.allocation.devices?.results ?? []).map((r) => `${r.request}=${r.pool}/${r.device}`)).join(','));
    } else {
      expect(Buffer.byteLength(o.explanation.short)).toBeLessThanOrEqual(1024);
      if (process.env.DEBUG_PROPERTY) console.log(o.explanation.short);
      log.push('-');
    }
  }
  return log;
}

describe('allocations over random fleets', () => {
  const seeds = Array.from({ length: 60 }, (_, i) => i + 1);
  it.each(seeds)('seed %i: no device twice, counters hold, constraints hold, results match their class and selectors', (seed) => {
    let allocated = 0;
    for (const policy of ['cascade', 'first-fit'] as const) allocated += runWorld(seed, policy).filter((l) => l !== '-').length;
    // The generator is meant to produce worlds where something fits.
    expect(allocated).toBeGreaterThan(0);
  });

  it('is deterministic for a seed', () => {
    expect(runWorld(7, 'cascade')).toEqual(runWorld(7, 'cascade'));
  });
});
