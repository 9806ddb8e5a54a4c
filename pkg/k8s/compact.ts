// Memory of large caches. A 1,000-node fleet publishes about a quarter of a million
// devices, and their attribute, capacity and counter values repeat from node to node
// (one product name, driver version and MIG profile table per GPU model). A cache that
// keeps every slice would hold each of those values once per device; here equal values
// are shared, one frozen object per distinct value. managedFields, which no consumer of
// the caches reads, are dropped from every cached object.
import type { Device, ResourceSlice } from '../api/resource.js';
import type { KubeObject } from './resources.js';

/** Shares equal small JSON values; forgets everything once it holds `maxEntries` (values still shared stay correct). */
export class ValueInterner {
  private readonly seen = new Map<string, object>();

  constructor(private readonly maxEntries = 500_000) {}

  intern<V extends object>(value: V): V {
    const key = keyOf(value);
    const hit = this.seen.get(key);
    if (hit !== undefined) return hit as V;
    if (this.seen.size >= this.maxEntries) this.seen.clear();
    this.seen.set(key, Object.freeze(value));
    return value;
  }

  get size(): number {
    return this.seen.size;
  }
}

/** A cheap key for the common one-field shapes ({string: "x"}, {value: "80Gi"}); JSON for the rest. */
function keyOf(v: object): string {
  const keys = Object.keys(v);
  if (keys.length === 1) {
    const k = keys[0] ?? '';
    const x = (v as Record<string, unknown>)[k];
    if (typeof x === 'string') return `${k}\u0000s${x}`;
    if (typeof x === 'number' || typeof x === 'boolean') return `${k}\u0000${typeof x}${String(x)}`;
  }
  return JSON.stringify(v);
}

function internValues<V extends object>(record: Record<string, V> | undefined, interner: ValueInterner): void {
  if (!record) return;
  for (const k of Object.keys(record)) {
    const v = record[k];
    if (v !== undefined && typeof v === 'object') record[k] = interner.intern(v);
  }
}

function compactDevice(d: Device, interner: ValueInterner): void {
  internValues(d.attributes, interner);
  internValues(d.capacity, interner);
  for (const c of d.consumesCounters ?? []) internValues(c.counters, interner);
}

/** Drops managedFields (in place; keeps the object's shape). */
export function dropManagedFields<T extends KubeObject>(obj: T): T {
  const meta = obj.metadata as { managedFields?: unknown } | undefined;
  if (meta?.managedFields !== undefined) meta.managedFields = undefined;
  return obj;
}

/** A slice as the controller caches it: managedFields dropped, equal values shared (in place). */
export function compactSlice(slice: ResourceSlice, interner: ValueInterner): ResourceSlice {
  dropManagedFields(slice);
  for (const d of slice.spec.devices ?? []) compactDevice(d, interner);
  for (const s of slice.spec.sharedCounters ?? []) internValues(s.counters, interner);
  return slice;
}
