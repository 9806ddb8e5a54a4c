// Which devices a (class, selectors) pair selects: evaluated once per pair over the
// fleet and cached, with per-node lists and free counts that State keeps current.
import type { DeviceClass, DeviceSelector } from '../api/resource.js';
import { compileSelector, type CompiledSelector } from '../cel/environment.js';
import type { SelectorInput } from '../cel/inputs.js';
import { attributeReader, SHARED, SHAREABLE, UNREACHABLE, USABLE, type DeviceRec, type Inventory } from './inventory.js';

export interface MatchSet {
  readonly id: number;
  readonly className: string;
  /** Compile error of a selector (or a missing class), with the expression; the claim fails with it. */
  readonly error: string | undefined;
  /**
   * Runtime errors of selectors, per usable device they happened on. As upstream,
   * one fails the claim only where the device could have been chosen: on a
   * candidate node, or reachable from several nodes.
   */
  readonly runtimeErrors: ReadonlyMap<number, string>;
  /** Devices (all, usable or not) that pass the class's selectors. */
  readonly classMatched: number;
  /** Devices (all, usable or not) that pass class and request selectors. */
  readonly matched: readonly number[];
  readonly member: Uint8Array;
  /** Usable matched devices local to each node, in inventory order. */
  readonly byNode: readonly (readonly number[])[];
  /** Usable matched devices reachable from more than one node. */
  readonly shared: readonly number[];
  /** Per node: how many of byNode are available right now (State keeps it current). */
  readonly freeCount: Int32Array;
  /** Per node: the first available device of byNode, -1 for none, -2 not known (State clears it on changes). */
  readonly firstFree: Int32Array;
  /** Per GPU unit: 1 when a usable matched device belongs to it. */
  readonly unitMember: Uint8Array;
  /** Whether a matched device allows multiple allocations (then one device may serve several requests). */
  readonly shareable: boolean;
}

/** Demand and supply per match set, for the cascade policy's contention term. */
export interface Pressure {
  /** How often each match set was asked for (later firstAvailable entries count less). */
  readonly demand: number[];
  totalDemand: number;
  /** Available node-local devices per match set, fleet-wide. */
  readonly totalFree: number[];
  /** Bumped whenever demand or free counts change (memos of derived costs key on it). */
  version: number;
}

interface Compiled {
  readonly selectors: readonly CompiledSelector[];
  readonly error: string | undefined;
}

function compileAll(selectors: readonly DeviceSelector[] | undefined, what: string): Compiled {
  const out: CompiledSelector[] = [];
  for (const [i, s] of (selectors ?? []).entries()) {
    if (s.cel === undefined) return { selectors: out, error: `${what}selector #${i} has no CEL expression (unsupported selector type)` };
    const c = compileSelector(s.cel.expression);
    if (!c.ok) return { selectors: out, error: `${what}selector #${i} ${JSON.stringify(c.expression)}: compile error: ${c.error}` };
    out.push(c.selector);
  }
  return { selectors: out, error: undefined };
}

interface ClassResult {
  readonly member: Uint8Array;
  readonly list: readonly number[];
  readonly error: string | undefined;
  readonly runtimeErrors: ReadonlyMap<number, string>;
}

const NO_ERRORS: ReadonlyMap<number, string> = new Map();

export class Matcher {
  private readonly inv: Inventory;
  private readonly classes: ReadonlyMap<string, DeviceClass>;
  private readonly classCache = new Map<string, ClassResult>();
  private readonly setCache = new Map<string, MatchSet>();
  /** Device groups by selector inputs, per device list (see grouping()). */
  private readonly groupCache = new Map<string, readonly (readonly number[])[]>();
  readonly sets: MatchSet[] = [];
  /** Per device, the match sets it belongs to, up to setsSeen[d] (see setsOf). */
  private readonly deviceSets: number[][];
  private readonly setsSeen: Int32Array;
  private readonly isAvailable: (device: number) => boolean;
  readonly pressure: Pressure = { demand: [], totalDemand: 0, totalFree: [], version: 0 };
  /** Per GPU unit, the match sets any of its devices belongs to, up to unitSetsSeen[u] (see unitSets). */
  private readonly unitSetLists: (readonly number[])[];
  private readonly canonicalLists = new Map<string, readonly number[]>();
  private readonly unitSetsSeen: Int32Array;

  constructor(inv: Inventory, classes: readonly DeviceClass[], isAvailable: (device: number) => boolean) {
    this.inv = inv;
    this.classes = new Map(classes.map((c) => [c.metadata.name ?? '', c]));
    this.deviceSets = inv.devices.map(() => []);
    this.setsSeen = new Int32Array(inv.devices.length);
    this.unitSetLists = inv.units.map(() => []);
    this.unitSetsSeen = new Int32Array(inv.units.length);
    this.isAvailable = isAvailable;
  }

  deviceClass(name: string): DeviceClass | undefined {
    return this.classes.get(name);
  }

  /**
   * The devices of a list grouped by the values of some selector inputs (see
   * cel/inputs.ts), cached per list: one selector on "profile" groups a class's
   * devices once, and every later selector on "profile" reuses the groups.
   */
  private grouping(listKey: string, list: readonly number[], inputs: readonly SelectorInput[]): readonly (readonly number[])[] {
    const key = `${listKey}\u0001${JSON.stringify(inputs)}`;
    const hit = this.groupCache.get(key);
    if (hit !== undefined) return hit;
    const byValue = new Map<string, number[]>();
    // One attribute (the common selector): its interned value is the key as it stands.
    const only = inputs.length === 1 && inputs[0]?.kind === 'attribute' ? attributeReader(`${inputs[0].domain}/${inputs[0].name}`) : undefined;
    // Neighbouring devices (the partitions of one GPU) often agree: the last group is tried first.
    let lastKey: string | undefined;
    let last: number[] = [];
    const devices = this.inv.devices;
    for (const d of list) {
      const dev = devices[d];
      const k = only !== undefined ? (dev === undefined ? '' : (only(dev.attributes) ?? '\u0000')) : recordInputKey(inputs, dev);
      if (k !== lastKey) {
        let g = byValue.get(k);
        if (g === undefined) byValue.set(k, (g = []));
        last = g;
        lastKey = k;
      }
      last.push(d);
    }
    const groups = [...byValue.values()];
    this.groupCache.set(key, groups);
    return groups;
  }

  /**
   * Runs selectors in order over a list of devices (a device failing one is not
   * shown the next, as the API's allocator does). A selector that reads a fixed
   * set of fields is evaluated once per group of devices that agree on them.
   * A runtime error fails the devices it happens on and is reported for the first
   * usable one.
   */
  private evaluate(devices: readonly number[], selectors: readonly CompiledSelector[], what: string, listKey?: string): ClassResult {
    const one = selectors.length === 1 ? selectors[0] : undefined;
    if (one?.inputs !== undefined && listKey !== undefined) {
      const r = this.evaluateGrouped(devices, one, listKey);
      if (r !== undefined) return r;
    }
    const alive = new Uint8Array(this.inv.devices.length);
    for (const d of devices) alive[d] = 1;
    const runtimeErrors = new Map<number, string>();
    const usable = (d: number): boolean => this.inv.devices[d]?.unusable === undefined;
    const failed = (i: number, sel: CompiledSelector, d: number, why: string, group?: readonly number[]): void => {
      // A device that can never be allocated is not looked at by the API's allocator either.
      const message = (x: number): string => `${what}selector #${i} ${JSON.stringify(sel.expression)} failed on device ${this.inv.devices[x]?.id ?? '?'}: ${why}`;
      for (const x of group ?? [d]) if (alive[x] === 1 && usable(x) && !runtimeErrors.has(x)) runtimeErrors.set(x, message(x));
    };
    for (const [i, sel] of selectors.entries()) {
      if (sel.inputs !== undefined && listKey !== undefined) {
        for (const group of this.grouping(listKey, devices, sel.inputs)) {
          let rep = -1;
          for (const d of group) {
            if (alive[d] !== 1) continue;
            if (rep < 0 || (!usable(rep) && usable(d))) rep = d;
            if (usable(rep)) break;
          }
          if (rep < 0) continue;
          const r = sel.evaluate(this.inv.celDevice(rep));
          if (r.ok && r.matches) continue;
          if (!r.ok) failed(i, sel, rep, r.error, group);
          for (const d of group) alive[d] = 0;
        }
        continue;
      }
      for (const d of devices) {
        if (alive[d] !== 1) continue;
        const r = sel.evaluate(this.inv.celDevice(d));
        if (r.ok && r.matches) continue;
        if (!r.ok) failed(i, sel, d, r.error);
        alive[d] = 0;
      }
    }
    const list: number[] = [];
    for (const d of devices) if (alive[d] === 1) list.push(d);
    return { member: alive, list, error: undefined, runtimeErrors };
  }

  /**
   * One selector over groups of devices that agree on its inputs: the result is
   * the groups that pass, without a pass over every device of the list (a
   * profile selector over a fleet's MIG partitions keeps one group in seven).
   * Undefined when the selector fails at runtime on a group: the general path
   * reports those errors.
   */
  private evaluateGrouped(devices: readonly number[], sel: CompiledSelector, listKey: string): ClassResult | undefined {
    const kept: (readonly number[])[] = [];
    for (const group of this.grouping(listKey, devices, sel.inputs ?? [])) {
      const rep = group.find((d) => this.inv.devices[d]?.unusable === undefined) ?? group[0];
      if (rep === undefined) continue;
      const r = sel.evaluate(this.inv.celDevice(rep));
      if (!r.ok) return undefined;
      if (r.matches) kept.push(group);
    }
    const member = new Uint8Array(this.inv.devices.length);
    for (const g of kept) for (const d of g) member[d] = 1;
    // In the list's order: one pass over it costs less than sorting what was kept.
    const list = kept.length === 1 ? [...(kept[0] ?? [])] : devices.filter((d) => member[d] === 1);
    return { member, list, error: undefined, runtimeErrors: NO_ERRORS };
  }

  private classResult(className: string): ClassResult {
    const hit = this.classCache.get(className);
    if (hit !== undefined) return hit;
    const cls = this.classes.get(className);
    let result: ClassResult;
    if (cls === undefined) {
      result = { member: new Uint8Array(this.inv.devices.length), list: [], error: `device class ${className} not found`, runtimeErrors: NO_ERRORS };
    } else {
      const compiled = compileAll(cls.spec.selectors, `device class ${className}: `);
      result =
        compiled.error !== undefined
          ? { member: new Uint8Array(this.inv.devices.length), list: [], error: compiled.error, runtimeErrors: NO_ERRORS }
          : this.evaluate([...this.inv.devices.keys()], compiled.selectors, `device class ${className}: `, '');
    }
    this.classCache.set(className, result);
    return result;
  }

  /** The match set of a class plus request selectors; errors name the selector, callers the request. */
  matchSet(className: string, selectors: readonly DeviceSelector[] | undefined): MatchSet {
    const exprs = (selectors ?? []).map((s) => s.cel?.expression ?? '\u0000');
    const key = JSON.stringify([className, exprs]);
    const hit = this.setCache.get(key);
    if (hit !== undefined) return hit;
    const what = '';
    const cls = this.classResult(className);
    let matched: ClassResult = cls;
    let error = cls.error;
    if (error === undefined && exprs.length > 0) {
      const compiled = compileAll(selectors, what);
      if (compiled.error !== undefined) {
        error = compiled.error;
        matched = { member: new Uint8Array(this.inv.devices.length), list: [], error, runtimeErrors: NO_ERRORS };
      } else {
        matched = this.evaluate(cls.list, compiled.selectors, what, className);
      }
    }
    const id = this.sets.length;
    const byNode: number[][] = this.inv.nodes.map(() => []);
    const shared: number[] = [];
    const freeCount = new Int32Array(this.inv.nodes.length);
    const unitMember = new Uint8Array(this.inv.units.length);
    const { deviceNode, deviceFlags, deviceUnit } = this.inv;
    let shareable = false;
    for (const d of matched.list) {
      const flags = deviceFlags[d] ?? 0;
      if ((flags & SHAREABLE) !== 0) shareable = true;
      if ((flags & USABLE) === 0) continue;
      const u = deviceUnit[d] ?? -1;
      if (u >= 0) unitMember[u] = 1;
      const node = deviceNode[d] ?? UNREACHABLE;
      if (node >= 0) {
        byNode[node]?.push(d);
        if (this.isAvailable(d)) freeCount[node] = (freeCount[node] ?? 0) + 1;
      } else if (node === SHARED) {
        shared.push(d);
      }
    }
    const runtimeErrors = matched === cls || cls.runtimeErrors.size === 0 ? matched.runtimeErrors : new Map([...cls.runtimeErrors, ...matched.runtimeErrors]);
    const firstFree = new Int32Array(this.inv.nodes.length).fill(-2);
    const set: MatchSet = {
      id,
      className,
      error,
      runtimeErrors,
      classMatched: cls.list.length,
      matched: matched.list,
      member: matched.member,
      byNode,
      shared,
      freeCount,
      firstFree,
      unitMember,
      shareable,
    };
    this.sets.push(set);
    let total = 0;
    for (const c of freeCount) total += c;
    this.pressure.demand.push(0);
    this.pressure.totalFree.push(total);
    this.pressure.version++;
    this.setCache.set(key, set);
    return set;
  }

  /**
   * The match sets a device belongs to (for free-count upkeep). Brought up to
   * date when asked: a new set over 100k devices does not touch each of them.
   */
  setsOf(d: number): readonly number[] {
    const list = this.deviceSets[d];
    if (list === undefined) return [];
    for (let id = this.setsSeen[d] ?? 0; id < this.sets.length; id++) {
      const set = this.sets[id];
      if (set !== undefined && set.member[d] === 1 && this.inv.devices[d]?.unusable === undefined) list.push(id);
    }
    this.setsSeen[d] = this.sets.length;
    return list;
  }

  /**
   * Match sets any device of a unit belongs to, brought up to date with new sets
   * when asked. Units with the same sets share one list, so costs derived from
   * it can be memoised per list (see contentionCost).
   */
  unitSets(unit: number): readonly number[] {
    let list = this.unitSetLists[unit];
    if (list === undefined) return [];
    const seen = this.unitSetsSeen[unit] ?? 0;
    if (seen < this.sets.length) {
      let grown: number[] | undefined;
      for (let id = seen; id < this.sets.length; id++) if (this.sets[id]?.unitMember[unit] === 1) (grown ??= [...list]).push(id);
      if (grown !== undefined) {
        const key = grown.join(',');
        list = this.canonicalLists.get(key) ?? grown;
        this.canonicalLists.set(key, list);
        this.unitSetLists[unit] = list;
      }
      this.unitSetsSeen[unit] = this.sets.length;
    }
    return list;
  }
}

/**
 * The values of a selector's inputs on one device, read from the inventory's
 * record rather than a built CEL device (building one for every device of a
 * fleet costs more than the selectors). Equal keys mean equal CEL values:
 * attributes by their typed key, capacities by their text (two spellings of
 * one quantity only split a group, never merge two).
 */
function recordInputKey(inputs: readonly SelectorInput[], d: DeviceRec | undefined): string {
  if (d === undefined) return '';
  let key = '';
  for (const i of inputs) {
    if (i.kind === 'driver') key += d.driver;
    else if (i.kind === 'allowMultipleAllocations') key += d.allowMultiple ? 't' : 'f';
    else if (i.kind === 'attribute') key += d.attributes.get(`${i.domain}/${i.name}`) ?? '-';
    else {
      const cap = d.api.capacity;
      key += `${cap?.[`${i.domain}/${i.name}`]?.value ?? '-'}|${i.domain === d.driver ? (cap?.[i.name]?.value ?? '-') : ''}`;
    }
    key += '\u0000';
  }
  return key;
}
