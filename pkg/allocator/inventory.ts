// The inventory: ResourceSlices turned into indexed device and counter-set records
// (complete pools of the highest generation only), built once per snapshot.
import { STANDARD_ATTRIBUTES, type CounterSet, type Device, type DeviceAttribute, type DeviceTaint, type NodeSelector, type ResourceSlice } from '../api/resource.js';
import { makeCelDevice, type CelDevice } from '../cel/environment.js';
import { Quantity } from '../cel/quantity.js';
import { elementsOf, keyOfElements } from './attrsets.js';
import { capacityLayout, policyProblems, type CapacityLayout } from './capacity.js';
import { makeNodeRec, type NodeRec } from './nodes.js';
import type { NodeFacts } from './types.js';

/** How a device uses one counter set: amounts aligned with the set's counters. */
export interface Consumption {
  readonly set: number;
  readonly amounts: Float64Array;
}

export interface DeviceRec {
  readonly idx: number;
  readonly driver: string;
  readonly pool: string;
  readonly name: string;
  /** "driver/pool/device". */
  readonly id: string;
  /** Node index for node-local devices; SHARED for selector/allNodes devices; UNREACHABLE when its node is not a candidate. */
  readonly node: number;
  readonly nodeName: string | undefined;
  readonly nodeSelector: NodeSelector | undefined;
  readonly allNodes: boolean;
  /** Fully qualified attribute name -> typed value key ("s:x", "i:3", "b:true", "v:1.2.3"). */
  readonly attributes: AttributeBag;
  readonly api: Device;
  /** Taints with NoSchedule/NoExecute; the only ones that can block allocation. */
  readonly blockingTaints: readonly DeviceTaint[];
  readonly consumes: readonly Consumption[];
  readonly allowMultiple: boolean;
  /** The device's capacities (consumable when allowMultiple), or undefined when it lists none. */
  readonly capacity: CapacityLayout | undefined;
  /** Why the device can never be allocated (incomplete pool, missing counter set...). */
  readonly unusable: string | undefined;
  readonly incompletePool: boolean;
  /** Capacity units for packing: 1 for a device that consumes no counters. */
  readonly units: number;
}

export interface CounterSetRec {
  readonly idx: number;
  readonly driver: string;
  readonly pool: string;
  readonly name: string;
  readonly node: number;
  readonly counterNames: readonly string[];
  readonly capacity: Float64Array;
  /** Devices consuming from this set. */
  readonly devices: number[];
}

/**
 * A capacity unit: one partitionable device (a counter set) or one device that
 * consumes no counters, i.e. one physical GPU in Cascade's model.
 */
export interface UnitRec {
  readonly idx: number;
  readonly node: number;
  /** The interconnect domain (see Inventory.domains) the unit belongs to. */
  readonly domain: number;
}

/** GPUs of one node that share a topology attribute value (e.g. an NVLink domain). */
export interface DomainRec {
  readonly idx: number;
  readonly node: number;
  readonly name: string;
  readonly units: number[];
}

/** Attribute lookups for constraints and topology (a small interned table per device). */
export interface AttributeBag {
  get(name: string): string | undefined;
  /** The attribute names, fully qualified. */
  keys(): readonly string[];
}

// Attribute names and values repeat across devices; interning keeps one copy each.
const strings = new Map<string, string>();
function intern(s: string): string {
  const hit = strings.get(s);
  if (hit !== undefined) return hit;
  if (strings.size > 500_000) strings.clear();
  strings.set(s, s);
  return s;
}

// Devices of one model list the same attribute names and consume the same
// amounts; one shared array each instead of one per device.
const nameLists = new Map<string, readonly string[]>();
function internNames(names: readonly string[]): readonly string[] {
  const key = names.join('\u0000');
  const hit = nameLists.get(key);
  if (hit !== undefined) return hit;
  if (nameLists.size > 10_000) nameLists.clear();
  nameLists.set(key, names);
  return names;
}
const amountLists = new Map<string, Float64Array>();
function internAmounts(a: Float64Array): Float64Array {
  const key = a.join(',');
  const hit = amountLists.get(key);
  if (hit !== undefined) return hit;
  if (amountLists.size > 100_000) amountLists.clear();
  amountLists.set(key, a);
  return a;
}

/** Parallel arrays instead of a Map per device: a fraction of the memory for 100k devices. */
class Attributes implements AttributeBag {
  private readonly names: readonly string[];
  private readonly values: readonly string[];
  constructor(names: readonly string[], values: readonly string[]) {
    this.names = names;
    this.values = values;
  }
  get(name: string): string | undefined {
    const i = this.names.indexOf(name);
    return i < 0 ? undefined : this.values[i];
  }
  keys(): readonly string[] {
    return this.names;
  }

  /** The value at a slot found for this bag's name list (see attributeReader). */
  static read(bag: Attributes, name: string, memo: { names: readonly string[] | undefined; slot: number }): string | undefined {
    if (bag.names !== memo.names) {
      memo.names = bag.names;
      memo.slot = bag.names.indexOf(name);
    }
    return memo.slot < 0 ? undefined : bag.values[memo.slot];
  }
}

/**
 * Reads one attribute from many devices: devices of one model share their name
 * list, so the name is looked up once per list rather than once per device.
 */
export function attributeReader(name: string): (bag: AttributeBag) => string | undefined {
  const memo: { names: readonly string[] | undefined; slot: number } = { names: undefined, slot: -1 };
  return (bag) => (bag instanceof Attributes ? Attributes.read(bag, name, memo) : bag.get(name));
}

const NO_TAINTS: readonly DeviceTaint[] = [];

export const SHARED = -1;
/** Bits of Inventory.deviceFlags. */
export const USABLE = 1;
export const SHAREABLE = 2;
export const UNREACHABLE = -2;

export interface Inventory {
  readonly devices: readonly DeviceRec[];
  readonly counterSets: readonly CounterSetRec[];
  readonly nodes: readonly NodeRec[];
  readonly nodeIndex: ReadonlyMap<string, number>;
  readonly deviceIndex: ReadonlyMap<string, number>;
  /** Node-local devices per node, in inventory order. */
  readonly devicesByNode: readonly (readonly number[])[];
  /** Devices reachable from several nodes (nodeSelector / allNodes). */
  readonly sharedDevices: readonly number[];
  /** Pools skipped or degraded, with the reason. */
  readonly poolProblems: readonly string[];
  /** Capacity units per node (see DeviceRec.units; one per counter set). */
  readonly nodeUnits: Float64Array;
  readonly units: readonly UnitRec[];
  readonly domains: readonly DomainRec[];
  /** Domains per node. */
  readonly nodeDomains: readonly (readonly number[])[];
  /** The unit a device belongs to (its first counter set's, or its own); -1 for none. */
  readonly deviceUnit: Int32Array;
  /** The unit of each counter set. */
  readonly setUnit: Int32Array;
  /** Devices of each unit. */
  readonly unitDevices: readonly (readonly number[])[];
  /**
   * Each device's interconnect domain: the values of the topology attributes it
   * carries, together ("nvlinkDomain=s:x,numaNode=i:0"); undefined when it carries none.
   */
  readonly deviceDomain: readonly (string | undefined)[];
  /** Each device's NUMA node (resource.kubernetes.io/numaNode, else any driver's `numaNode` attribute); -1 when unknown. */
  readonly deviceNuma: Int32Array;
  /**
   * DeviceRec.node, and per device bit 1 when it is usable and bit 2 when it allows
   * multiple allocations: loops over a large part of the fleet read these rather
   * than each device's record.
   */
  readonly deviceNode: Int32Array;
  readonly deviceFlags: Uint8Array;
  /** CEL view of a device, built on first use. */
  celDevice(idx: number): CelDevice;
}

export function attributeKey(attr: DeviceAttribute): string | undefined {
  if (attr.string !== undefined) return `s:${attr.string}`;
  if (attr.int !== undefined) return `i:${attr.int}`;
  if (attr.bool !== undefined) return `b:${attr.bool}`;
  if (attr.version !== undefined) return `v:${attr.version}`;
  // List-type attributes (KEP-5491): a non-empty list; an empty one is no value.
  if (attr.strings !== undefined) return keyOfElements(attr.strings.map((x) => `s:${x}`));
  if (attr.ints !== undefined) return keyOfElements(attr.ints.map((x) => `i:${x}`));
  if (attr.bools !== undefined) return keyOfElements(attr.bools.map((x) => `b:${x}`));
  if (attr.versions !== undefined) return keyOfElements(attr.versions.map((x) => `v:${x}`));
  return undefined;
}

/** Human form of an attribute key ("a, b" for a list). */
export function attributeKeyText(key: string): string {
  return elementsOf(key)
    .map((e) => e.slice(2))
    .join(', ');
}

interface PoolGroup {
  readonly driver: string;
  readonly pool: string;
  generation: number;
  expected: number;
  slices: ResourceSlice[];
}

function qualify(driver: string, name: string): string {
  return name.includes('/') ? name : `${driver}/${name}`;
}

const MAX_EXACT = 2 ** 53;

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a < 0n ? -a : a;
}

/**
 * Counter values become doubles for speed. Each counter is divided by the GCD of
 * every value it takes, which keeps them exact integers; if one is still too large,
 * capacity is rounded down and consumption up, so an allocation never overcommits.
 */
interface ScaledCounter {
  g: bigint;
  max: bigint;
  scale: bigint;
}

class CounterScaler {
  /**
   * Per counter set (driver/pool/set) and counter name: the gcd and the largest
   * of the values seen, all that finish() needs; then the scale.
   */
  private readonly groups = new Map<string, Map<string, ScaledCounter>>();

  /** The counters of one set, looked up once per set and device. */
  group(setKey: string): Map<string, ScaledCounter> {
    let g = this.groups.get(setKey);
    if (g === undefined) this.groups.set(setKey, (g = new Map<string, ScaledCounter>()));
    return g;
  }

  add(group: Map<string, ScaledCounter>, name: string, nanos: bigint): void {
    const seen = group.get(name);
    if (seen === undefined) {
      group.set(name, { g: nanos, max: nanos, scale: 1n });
      return;
    }
    if (nanos !== seen.g) seen.g = gcd(seen.g, nanos);
    if (nanos > seen.max) seen.max = nanos;
  }

  finish(): void {
    for (const group of this.groups.values()) {
      for (const c of group.values()) {
        let scale = c.g === 0n ? 1n : c.g;
        if (c.max / scale > BigInt(MAX_EXACT)) scale = c.max / BigInt(MAX_EXACT / 2) + 1n;
        c.scale = scale;
      }
    }
  }

  capacity(group: Map<string, { scale: bigint }> | undefined, name: string, nanos: bigint): number {
    const s = group?.get(name)?.scale ?? 1n;
    return Number(nanos / s);
  }

  consumption(group: Map<string, { scale: bigint }> | undefined, name: string, nanos: bigint): number {
    const s = group?.get(name)?.scale ?? 1n;
    const q = nanos / s;
    return Number(q * s === nanos ? q : q + 1n);
  }
}

/** Slices grouped into pools, in driver and pool order; only a pool's highest generation counts. */
function groupPools(slices: readonly ResourceSlice[]): PoolGroup[] {
  const pools = new Map<string, PoolGroup>();
  for (const slice of slices) {
    const key = `${slice.spec.driver}/${slice.spec.pool.name}`;
    let g = pools.get(key);
    if (g === undefined || slice.spec.pool.generation > g.generation) {
      g = { driver: slice.spec.driver, pool: slice.spec.pool.name, generation: slice.spec.pool.generation, expected: slice.spec.pool.resourceSliceCount, slices: [] };
      pools.set(key, g);
    }
    if (slice.spec.pool.generation === g.generation) g.slices.push(slice);
  }
  return [...pools.values()].sort((a, b) => (a.driver === b.driver ? cmpStr(a.pool, b.pool) : cmpStr(a.driver, b.driver)));
}

/** Nodes: the given ones, or those that node-local slices name. */
function collectNodes(poolList: readonly PoolGroup[], nodeFacts: readonly NodeFacts[] | undefined): { nodes: NodeRec[]; nodeIndex: Map<string, number> } {
  const nodes: NodeRec[] = [];
  const nodeIndex = new Map<string, number>();
  const addNode = (facts: NodeFacts): void => {
    if (nodeIndex.has(facts.name)) return;
    nodeIndex.set(facts.name, nodes.length);
    nodes.push(makeNodeRec(nodes.length, facts));
  };
  if (nodeFacts !== undefined) {
    for (const n of nodeFacts) addNode(n);
    return { nodes, nodeIndex };
  }
  const names = new Set<string>();
  for (const p of poolList) {
    for (const s of p.slices) {
      if (s.spec.nodeName !== undefined) names.add(s.spec.nodeName);
      for (const d of s.spec.devices ?? []) if (d.nodeName !== undefined) names.add(d.nodeName);
    }
  }
  for (const name of [...names].sort(cmpStr)) addNode({ name });
  return { nodes, nodeIndex };
}

interface PendingSet {
  driver: string;
  pool: string;
  name: string;
  /** The set's node by name; undefined for a set of devices reachable from several nodes. */
  nodeName: string | undefined;
  counters: [string, bigint][];
}

interface PendingDevice {
  driver: string;
  pool: string;
  slice: ResourceSlice;
  device: Device;
  incomplete: boolean;
  duplicate: boolean;
}

/** The first pass: every counter set and device of every pool, with the counter values the scaler needs. */
class PendingInventory {
  readonly sets: PendingSet[] = [];
  readonly setKeys = new Map<string, number>();
  /** Per pool (driver/pool), the first counter set name defined twice in it. */
  private readonly duplicateSets = new Map<string, string>();
  readonly devices: PendingDevice[] = [];
  readonly scaler = new CounterScaler();
  constructor(
    private readonly problems: string[],
    // Counter values repeat ("1", "2", "16") across a fleet: parse each text once.
    private readonly parsed: Map<string, bigint>,
  ) {}

  nanosOf(value: string): bigint {
    let n = this.parsed.get(value);
    if (n === undefined) this.parsed.set(value, (n = Quantity.tryParse(value)?.nanos ?? 0n));
    return n;
  }

  addPool(p: PoolGroup): void {
    const complete = p.slices.length === p.expected;
    if (p.slices.length < p.expected) this.problems.push(`pool ${p.driver}/${p.pool} is incomplete: ${p.slices.length} of ${p.expected} slices of generation ${p.generation}`);
    else if (!complete) this.problems.push(`pool ${p.driver}/${p.pool} is inconsistent: ${p.slices.length} slices of generation ${p.generation}, where their resourceSliceCount says ${p.expected}`);
    const seen = new Set<string>();
    const sortedSlices = [...p.slices].sort((a, b) => cmpStr(a.metadata.name ?? '', b.metadata.name ?? ''));
    for (const slice of sortedSlices) {
      for (const cs of slice.spec.sharedCounters ?? []) this.addSet(p, slice, cs);
      for (const device of slice.spec.devices ?? []) {
        const duplicate = seen.has(device.name);
        seen.add(device.name);
        this.devices.push({ driver: p.driver, pool: p.pool, slice, device, incomplete: !complete, duplicate });
        for (const cc of device.consumesCounters ?? []) {
          const group = this.scaler.group(`${p.driver}/${p.pool}/${cc.counterSet}`);
          for (const [name, c] of Object.entries(cc.counters)) this.scaler.add(group, name, this.nanosOf(c.value));
        }
      }
    }
  }

  private addSet(p: PoolGroup, slice: ResourceSlice, cs: CounterSet): void {
    const key = `${p.driver}/${p.pool}/${cs.name}`;
    if (this.setKeys.has(key)) {
      // Counter set names are unique within a pool; a pool that repeats one is invalid (see invalidPools).
      if (!this.duplicateSets.has(`${p.driver}/${p.pool}`)) this.duplicateSets.set(`${p.driver}/${p.pool}`, cs.name);
      return;
    }
    // A counter set belongs to the slice's node (per-device node selection gives it none).
    const nodeName = slice.spec.perDeviceNodeSelection === true ? undefined : slice.spec.nodeName;
    const counters: [string, bigint][] = [];
    const group = this.scaler.group(key);
    for (const [name, c] of Object.entries(cs.counters)) {
      const nanos = this.nanosOf(c.value);
      counters.push([name, nanos]);
      this.scaler.add(group, name, nanos);
    }
    this.setKeys.set(key, this.sets.length);
    this.sets.push({ driver: p.driver, pool: p.pool, name: cs.name, nodeName, counters });
  }

  /**
   * A pool that lists a device twice, or whose device uses a counter set the pool does not
   * define, is invalid as a whole, as upstream treats it: none of its devices is allocated.
   */
  invalidPools(): Map<string, string> {
    const invalid = new Map<string, string>();
    for (const pd of this.devices) {
      const key = `${pd.driver}/${pd.pool}`;
      // An incomplete pool's counter sets may be in a slice that has not arrived yet.
      if (invalid.has(key) || pd.incomplete) continue;
      const twice = this.duplicateSets.get(key);
      if (twice !== undefined) invalid.set(key, `counter set ${twice} is defined twice`);
      else if (pd.duplicate) invalid.set(key, `device ${pd.device.name} is listed twice`);
      else {
        const missing = (pd.device.consumesCounters ?? []).find((cc) => !this.setKeys.has(`${key}/${cc.counterSet}`));
        if (missing) invalid.set(key, `device ${pd.device.name} uses counter set ${missing.counterSet}, which the pool does not define`);
        else {
          // A counter the set does not have is as invalid as a set the pool does not have.
          for (const cc of pd.device.consumesCounters ?? []) {
            const set = this.sets[this.setKeys.get(`${key}/${cc.counterSet}`) ?? -1];
            const unknown = Object.keys(cc.counters).find((n) => !set?.counters.some(([name]) => name === n));
            if (unknown !== undefined) {
              invalid.set(key, `device ${pd.device.name} uses counter ${unknown}, which counter set ${cc.counterSet} does not define`);
              break;
            }
          }
        }
      }
    }
    for (const [key, why] of invalid) this.problems.push(`pool ${key} is invalid (${why}); none of its devices is allocated`);
    return invalid;
  }

  counterSets(): PoolSet[] {
    return this.sets.map((s, idx) => {
      const capacity = new Float64Array(s.counters.length);
      const group = this.scaler.group(`${s.driver}/${s.pool}/${s.name}`);
      s.counters.forEach(([name, nanos], i) => (capacity[i] = this.scaler.capacity(group, name, nanos)));
      return { idx, driver: s.driver, pool: s.pool, name: s.name, nodeName: s.nodeName, counterNames: s.counters.map(([n]) => n), capacity };
    });
  }

  /** What a device consumes, in its counter sets' units (set indices of this pool); `problem` says why it cannot be used. */
  consumption(pd: PendingDevice, counterSets: readonly PoolSet[]): { consumes: Consumption[]; problem: string | undefined } {
    let problem: string | undefined;
    const consumes: Consumption[] = [];
    for (const cc of pd.device.consumesCounters ?? []) {
      const setIdx = this.setKeys.get(`${pd.driver}/${pd.pool}/${cc.counterSet}`);
      const set = setIdx === undefined ? undefined : counterSets[setIdx];
      if (set === undefined) {
        problem ??= `counter set ${cc.counterSet} is not in pool ${pd.driver}/${pd.pool}`;
        continue;
      }
      const amounts = new Float64Array(set.counterNames.length);
      const group = this.scaler.group(`${pd.driver}/${pd.pool}/${cc.counterSet}`);
      for (const [name, c] of Object.entries(cc.counters)) {
        const i = set.counterNames.indexOf(name);
        if (i < 0) {
          problem ??= `counter ${name} is not in counter set ${cc.counterSet}`;
          continue;
        }
        amounts[i] = (amounts[i] ?? 0) + this.scaler.consumption(group, name, this.nanosOf(c.value));
      }
      consumes.push({ set: set.idx, amounts: internAmounts(amounts) });
    }
    return { consumes, problem };
  }
}

/** A device's interned attributes: qualified names and typed value keys. */
function deviceAttributes(driver: string, device: Device): Attributes {
  const names: string[] = [];
  const values: string[] = [];
  for (const [name, attr] of Object.entries(device.attributes ?? {})) {
    const key = attributeKey(attr);
    if (key === undefined) continue;
    names.push(intern(qualify(driver, name)));
    values.push(intern(key));
  }
  return new Attributes(internNames(names), values);
}

/** A device as parsed from its pool: everything of its record but the indices the whole fleet decides. */
type PoolDevice = Omit<DeviceRec, 'idx' | 'node'> & { readonly duplicate: boolean };

/** A counter set as parsed from its pool (idx: its place in the pool). */
interface PoolSet {
  readonly idx: number;
  readonly driver: string;
  readonly pool: string;
  readonly name: string;
  readonly nodeName: string | undefined;
  readonly counterNames: readonly string[];
  readonly capacity: Float64Array;
}

/** One pool's part of the inventory; it depends on the pool's slices alone. */
interface ParsedPool {
  readonly problems: readonly string[];
  readonly sets: readonly PoolSet[];
  readonly devices: readonly PoolDevice[];
}

/** The record of one device, with its counter sets numbered within the pool. */
function poolDevice(pd: PendingDevice, pending: PendingInventory, counterSets: readonly PoolSet[], invalid: string | undefined): PoolDevice {
  const { device, slice } = pd;
  const { consumes, problem } = pending.consumption(pd, counterSets);
  let unusable: string | undefined = pd.incomplete ? `pool ${pd.driver}/${pd.pool} is incomplete` : invalid !== undefined ? `pool ${pd.driver}/${pd.pool} is invalid: ${invalid}` : problem;
  if (unusable === undefined && device.capacity !== undefined) {
    const bad = Object.entries(device.capacity).flatMap(([n, c]) => policyProblems(n, c))[0];
    if (bad !== undefined) unusable = `device ${device.name}: ${bad}`;
  }
  if (unusable === undefined) {
    // An attribute without a value Kubernetes defines (an empty list, a type from a newer API): upstream fails on it too.
    const valueless = Object.entries(device.attributes ?? {}).find(([, a]) => attributeKey(a) === undefined)?.[0];
    if (valueless !== undefined) unusable = `device ${device.name}: unsupported attribute value for ${valueless} (no value of a known type, or an empty list)`;
  }
  const perDevice = slice.spec.perDeviceNodeSelection === true;
  const nodeName = perDevice ? device.nodeName : slice.spec.nodeName;
  return {
    driver: pd.driver,
    pool: pd.pool,
    name: device.name,
    id: `${pd.driver}/${pd.pool}/${device.name}`,
    nodeName,
    nodeSelector: perDevice ? device.nodeSelector : slice.spec.nodeSelector,
    allNodes: (perDevice ? device.allNodes : slice.spec.allNodes) ?? false,
    attributes: deviceAttributes(pd.driver, device),
    api: device,
    blockingTaints: device.taints === undefined ? NO_TAINTS : device.taints.filter((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute'),
    consumes,
    allowMultiple: device.allowMultipleAllocations === true,
    capacity: capacityLayout(device.capacity),
    unusable,
    incompletePool: pd.incomplete,
    units: consumes.length === 0 ? 1 : 0,
    duplicate: pd.duplicate,
  };
}

/** Parses one pool: its problems, counter sets and devices. */
function parsePool(p: PoolGroup, parsed: Map<string, bigint>): ParsedPool {
  const problems: string[] = [];
  const pending = new PendingInventory(problems, parsed);
  pending.addPool(p);
  pending.scaler.finish();
  const sets = pending.counterSets();
  const invalid = pending.invalidPools().get(`${p.driver}/${p.pool}`);
  return { problems, sets, devices: pending.devices.map((pd) => poolDevice(pd, pending, sets, invalid)) };
}

/** A pool's parse, with the slices (and their uid@resourceVersion) it came from. */
interface PoolEntry {
  readonly signature: string;
  readonly slices: readonly ResourceSlice[];
  readonly parsed: ParsedPool;
}

/**
 * Parsed pools kept from one build of the inventory to the next, so that a
 * rebuild parses only the pools whose slices changed. A pool is reused when
 * its slices are the same objects at the same resourceVersions (as an
 * informer's cache hands them out); slices without a uid and resourceVersion
 * are parsed every time. Entries of pools a build did not see are dropped.
 */
export class PoolCache {
  private entries = new Map<string, PoolEntry>();
  private next = new Map<string, PoolEntry>();
  /** Pools parsed and reused by the last build. */
  readonly last = { parsed: 0, reused: 0 };

  /** @internal */
  begin(): void {
    this.next = new Map();
    this.last.parsed = 0;
    this.last.reused = 0;
  }

  /** @internal */
  get(p: PoolGroup, parse: () => ParsedPool): ParsedPool {
    const key = `${p.driver}/${p.pool}`;
    const signature = poolSignature(p.slices);
    const hit = signature === undefined ? undefined : this.entries.get(key);
    if (hit !== undefined && hit.signature === signature && hit.slices.length === p.slices.length && hit.slices.every((x, i) => x === p.slices[i])) {
      this.next.set(key, hit);
      this.last.reused++;
      return hit.parsed;
    }
    const parsed = parse();
    this.last.parsed++;
    if (signature !== undefined) this.next.set(key, { signature, slices: [...p.slices], parsed });
    return parsed;
  }

  /** @internal */
  end(): void {
    this.entries = this.next;
  }
}

function poolSignature(slices: readonly ResourceSlice[]): string | undefined {
  let sig = '';
  for (const s of slices) {
    const { uid, resourceVersion } = s.metadata;
    if (uid === undefined || resourceVersion === undefined) return undefined;
    sig += `${uid}@${resourceVersion};`;
  }
  return sig;
}

type Units = Pick<Inventory, 'units' | 'domains' | 'nodeDomains' | 'deviceUnit' | 'setUnit' | 'unitDevices'>;

/** A device's interconnect domain: every topology attribute it carries, in the given order. */
function domainOf(d: DeviceRec, topologyAttributes: readonly string[]): string | undefined {
  let key: string | undefined;
  for (const a of topologyAttributes) {
    const v = d.attributes.get(a);
    if (v !== undefined) key = `${key === undefined ? '' : key + ','}${a}=${attributeKeyText(v)}`;
  }
  return key === undefined ? undefined : intern(key);
}

// dra.cpu v0.2.0 publishes dra.cpu/numaNodeID (and dra.net/numaNode); dranet v1.4 dra.net/numaNode.
const NUMA_SUFFIXES = ['/numaNode', '/numaNodeID'];

/** The NUMA node a device declares: the standard attribute first, else a driver's own `<domain>/numaNode` integer. */
function numaOf(d: DeviceRec): number {
  const std = d.attributes.get(STANDARD_ATTRIBUTES.numaNode);
  const fromKey = (k: string | undefined): number => (k !== undefined && k.startsWith('i:') ? Number(k.slice(2)) : -1);
  if (std !== undefined) return fromKey(std);
  for (const name of d.attributes.keys()) if (NUMA_SUFFIXES.some((x) => name.endsWith(x))) return fromKey(d.attributes.get(name));
  return -1;
}

/**
 * Units (a counter set, or a device without counters) and their interconnect
 * domains; a unit without a topology attribute falls in a per-node default domain.
 */
function buildUnits(nodeCount: number, devices: readonly DeviceRec[], counterSets: readonly CounterSetRec[], topologyAttributes: readonly string[]): Units {
  const units: UnitRec[] = [];
  const domains: DomainRec[] = [];
  const nodeDomains: number[][] = Array.from({ length: nodeCount }, () => []);
  const domainIndex = new Map<string, number>();
  const deviceUnit = new Int32Array(devices.length).fill(-1);
  const setUnit = new Int32Array(counterSets.length).fill(-1);
  // Units group by the outermost interconnect their devices carry (the NVLink
  // domain, else the NUMA node): breaking a whole NVLink domain is what costs
  // the big jobs, whichever socket a GPU sits on.
  const outermost = (d: DeviceRec): string => {
    for (const a of topologyAttributes) {
      const v = d.attributes.get(a);
      if (v !== undefined) return `${a}=${attributeKeyText(v)}`;
    }
    return '(node)';
  };
  const addUnit = (node: number, sample: DeviceRec): number => {
    const name = outermost(sample);
    const key = `${node}\u0000${name}`;
    let dom = domainIndex.get(key);
    if (dom === undefined) {
      dom = domains.length;
      domainIndex.set(key, dom);
      domains.push({ idx: dom, node, name, units: [] });
      nodeDomains[node]?.push(dom);
    }
    const u = units.length;
    units.push({ idx: u, node, domain: dom });
    domains[dom]?.units.push(u);
    return u;
  };
  for (const set of counterSets) {
    const first = devices[set.devices[0] ?? -1];
    if (set.node < 0 || first === undefined) continue;
    const u = addUnit(set.node, first);
    setUnit[set.idx] = u;
    for (const d of set.devices) if ((deviceUnit[d] ?? -1) < 0) deviceUnit[d] = u;
  }
  for (const d of devices) {
    if (d.node < 0 || d.unusable !== undefined || d.consumes.length > 0) continue;
    deviceUnit[d.idx] = addUnit(d.node, d);
  }
  const unitDevices: number[][] = units.map(() => []);
  deviceUnit.forEach((u, d) => {
    if (u >= 0) unitDevices[u]?.push(d);
  });
  return { units, domains, nodeDomains, deviceUnit, setUnit, unitDevices };
}

export function buildInventory(slices: readonly ResourceSlice[], nodeFacts: readonly NodeFacts[] | undefined, topologyAttributes: readonly string[] = [], cache?: PoolCache): Inventory {
  const problems: string[] = [];
  const poolList = groupPools(slices);
  const { nodes, nodeIndex } = collectNodes(poolList, nodeFacts);
  const parsedValues = new Map<string, bigint>();
  cache?.begin();
  const pools = poolList.map((p) => (cache === undefined ? parsePool(p, parsedValues) : cache.get(p, () => parsePool(p, parsedValues))));
  cache?.end();

  const counterSets: CounterSetRec[] = [];
  const devices: DeviceRec[] = [];
  const deviceIndex = new Map<string, number>();
  const devicesByNode: number[][] = nodes.map(() => []);
  const sharedDevices: number[] = [];
  const nodeUnits = new Float64Array(nodes.length);
  const nodeOf = (name: string | undefined): number => (name === undefined ? SHARED : (nodeIndex.get(name) ?? UNREACHABLE));
  for (const pool of pools) {
    problems.push(...pool.problems);
    const offset = counterSets.length;
    for (const set of pool.sets)
      counterSets.push({ idx: offset + set.idx, driver: set.driver, pool: set.pool, name: set.name, node: nodeOf(set.nodeName), counterNames: set.counterNames, capacity: set.capacity, devices: [] });
    for (const part of pool.devices) {
      const idx = devices.length;
      const consumes = offset === 0 ? part.consumes : part.consumes.map((c) => ({ set: c.set + offset, amounts: c.amounts }));
      // Spelled out rather than spread: one object shape for every record, and fast to build.
      const rec: DeviceRec = {
        idx,
        driver: part.driver,
        pool: part.pool,
        name: part.name,
        id: part.id,
        node: nodeOf(part.nodeName),
        nodeName: part.nodeName,
        nodeSelector: part.nodeSelector,
        allNodes: part.allNodes,
        attributes: part.attributes,
        api: part.api,
        blockingTaints: part.blockingTaints,
        consumes,
        allowMultiple: part.allowMultiple,
        capacity: part.capacity,
        unusable: part.unusable,
        incompletePool: part.incompletePool,
        units: part.units,
      };
      devices.push(rec);
      if (!part.duplicate) deviceIndex.set(rec.id, idx);
      if (rec.unusable === undefined) for (const c of rec.consumes) counterSets[c.set]?.devices.push(idx);
      if (rec.node >= 0) {
        devicesByNode[rec.node]?.push(idx);
        if (rec.unusable === undefined) nodeUnits[rec.node] = (nodeUnits[rec.node] ?? 0) + rec.units;
      } else if (rec.node === SHARED) {
        sharedDevices.push(idx);
      }
    }
  }
  for (const set of counterSets) if (set.node >= 0 && set.devices.length > 0) nodeUnits[set.node] = (nodeUnits[set.node] ?? 0) + 1;

  return {
    devices,
    counterSets,
    nodes,
    nodeIndex,
    deviceIndex,
    devicesByNode,
    sharedDevices,
    poolProblems: problems,
    nodeUnits,
    ...buildUnits(nodes.length, devices, counterSets, topologyAttributes),
    deviceDomain: devices.map((d) => domainOf(d, topologyAttributes)),
    deviceNuma: Int32Array.from(devices, numaOf),
    deviceNode: Int32Array.from(devices, (d) => d.node),
    deviceFlags: Uint8Array.from(devices, (d) => (d.unusable === undefined ? USABLE : 0) | (d.allowMultiple ? SHAREABLE : 0)),
    celDevice: celAccessor(devices),
  };
}

// Kept outside buildInventory so the closure does not keep its temporaries alive.
function celAccessor(devices: readonly DeviceRec[]): (idx: number) => CelDevice {
  const cache: (CelDevice | undefined)[] = new Array<CelDevice | undefined>(devices.length);
  return (idx: number): CelDevice => {
    let c = cache[idx];
    if (c === undefined) {
      const d = devices[idx];
      if (d === undefined) throw new RangeError(`no device ${idx}`);
      c = makeCelDevice(d.driver, d.api.attributes, d.api.capacity, d.allowMultiple);
      cache[idx] = c;
    }
    return c;
  };
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
