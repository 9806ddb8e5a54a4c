// Consumable capacity (resource.k8s.io/v1, KEP-5075): what one allocation of a
// device takes of each of its capacities, after the device's request policy.
// Computed exactly on quantities (bigint nanos) once per (request, capacity
// layout); the state then tracks consumption as numbers in milli-units.
import type { CapacityRequestPolicy, DeviceCapacity } from '../api/resource.js';
import { Quantity } from '../cel/quantity.js';

/** A device's capacities, in a fixed (sorted) name order. */
export interface CapacityLayout {
  readonly names: readonly string[];
  /** Capacity values in milli-units, aligned with names. */
  readonly values: Float64Array;
  readonly specs: readonly DeviceCapacity[];
  /** Identifies equal layouts, so demands are computed once per layout. */
  readonly key: string;
}

/** What an allocation of a device consumes, aligned with its layout's names. */
export interface CapacityDemand {
  /** Milli-units, for the state's sums. */
  readonly amounts: Float64Array;
  /** The same amounts as quantities, for status.allocation's consumedCapacity. */
  readonly quantities: Readonly<Record<string, string>>;
}

export type DemandResult = { readonly ok: true; readonly demand: CapacityDemand } | { readonly ok: false; readonly why: string };

const MILLI = 1_000_000n;

/** Milli-units of a quantity, rounded up so nothing is ever undercounted. */
export function toMilli(q: Quantity): number {
  const n = q.nanos;
  const m = n / MILLI;
  return Number(m * MILLI === n || n < 0n ? m : m + 1n);
}

function parse(text: string | undefined): Quantity | undefined {
  return text === undefined ? undefined : Quantity.tryParse(text);
}

const layouts = new Map<string, CapacityLayout>();

export function capacityLayout(capacity: Readonly<Record<string, DeviceCapacity>> | undefined): CapacityLayout | undefined {
  if (capacity === undefined) return undefined;
  const names = Object.keys(capacity).sort();
  if (names.length === 0) return undefined;
  // A short key: most capacities have no policy, and this runs for every device of the fleet.
  let key = '';
  for (const n of names) {
    const c = capacity[n];
    key += `${n}\u0001${c?.value ?? ''}\u0001${c?.requestPolicy === undefined ? '' : JSON.stringify(c.requestPolicy)}\u0002`;
  }
  const hit = layouts.get(key);
  if (hit !== undefined) return hit;
  const specs = names.map((n) => capacity[n] as DeviceCapacity);
  const values = new Float64Array(names.length);
  specs.forEach((s, i) => (values[i] = toMilli(parse(s.value) ?? Quantity.fromInteger(0))));
  const layout: CapacityLayout = { names, values, specs, key };
  if (layouts.size > 10_000) layouts.clear();
  layouts.set(key, layout);
  return layout;
}

/**
 * The amount one allocation consumes of a capacity: the request rounded up to
 * what the policy allows; without a request, the policy's default, else all of it.
 */
export function consumedAmount(requested: Quantity | undefined, cap: DeviceCapacity): { ok: true; value: Quantity } | { ok: false; why: string } {
  const value = parse(cap.value) ?? Quantity.fromInteger(0);
  const policy: CapacityRequestPolicy | undefined = cap.requestPolicy;
  if (requested === undefined) {
    const def = parse(policy?.default);
    return { ok: true, value: def ?? value };
  }
  let consumed = requested;
  if (policy?.validValues !== undefined && policy.validValues.length > 0) {
    const next = policy.validValues
      .map((v) => parse(v))
      .filter((v): v is Quantity => v !== undefined)
      .sort((a, b) => a.compareTo(b))
      .find((v) => v.compareTo(requested) >= 0);
    if (next === undefined) return { ok: false, why: `${requested.toString()} is more than the largest valid value ${policy.validValues[policy.validValues.length - 1] ?? ''}` };
    consumed = next;
  } else if (policy?.validRange !== undefined) {
    const min = parse(policy.validRange.min) ?? Quantity.fromInteger(0);
    const max = parse(policy.validRange.max);
    const step = parse(policy.validRange.step);
    if (requested.compareTo(min) < 0) consumed = min;
    else if (step !== undefined && step.sign() > 0) {
      const over = requested.nanos - min.nanos;
      const k = (over + step.nanos - 1n) / step.nanos;
      consumed = Quantity.fromNanos(min.nanos + k * step.nanos);
    }
    if (max !== undefined && consumed.compareTo(max) > 0) return { ok: false, why: `${requested.toString()} is more than the most one allocation may take (${max.toString()})` };
  }
  if (consumed.compareTo(value) > 0) return { ok: false, why: `${consumed.toString()} is more than the device has (${value.toString()})` };
  return { ok: true, value: consumed };
}

// Per layout object (layouts are interned), then per request: no long keys to hash on the hot path.
const demands = new WeakMap<CapacityLayout, Map<string, DemandResult>>();
const noLayout = new Map<string, DemandResult>();

/**
 * What one allocation of a device with this layout consumes for a request's
 * capacity requirements, or why the device cannot serve the request. A request
 * for a capacity the device does not have never matches.
 */
export function demandFor(layout: CapacityLayout | undefined, requests: Readonly<Record<string, string>> | undefined, requestKey: string): DemandResult {
  let cache = layout === undefined ? noLayout : demands.get(layout);
  if (cache === undefined) demands.set(layout as CapacityLayout, (cache = new Map<string, DemandResult>()));
  const hit = cache.get(requestKey);
  if (hit !== undefined) return hit;
  const result = computeDemand(layout, requests);
  if (cache.size > 10_000) cache.clear();
  cache.set(requestKey, result);
  return result;
}

function computeDemand(layout: CapacityLayout | undefined, requests: Readonly<Record<string, string>> | undefined): DemandResult {
  for (const name of Object.keys(requests ?? {})) {
    if (layout === undefined || !layout.names.includes(name)) return { ok: false, why: `the device has no capacity ${name}` };
  }
  if (layout === undefined) return { ok: true, demand: { amounts: new Float64Array(0), quantities: {} } };
  const amounts = new Float64Array(layout.names.length);
  const quantities: Record<string, string> = {};
  for (const [i, name] of layout.names.entries()) {
    const text = requests?.[name];
    const requested = text === undefined ? undefined : parse(text);
    if (text !== undefined && requested === undefined) return { ok: false, why: `capacity request ${name}: ${JSON.stringify(text)} is not a quantity` };
    const spec = layout.specs[i];
    if (spec === undefined) continue;
    const r = consumedAmount(requested, spec);
    if (!r.ok) return { ok: false, why: `capacity ${name}: ${r.why}` };
    amounts[i] = toMilli(r.value);
    quantities[name] = r.value.toString();
  }
  return { ok: true, demand: { amounts, quantities } };
}

/** Milli-unit amounts of a result's consumedCapacity, aligned with the layout (unknown names ignored). */
export function amountsOf(layout: CapacityLayout | undefined, consumed: Readonly<Record<string, string>> | undefined): Float64Array | undefined {
  if (layout === undefined || consumed === undefined) return undefined;
  const out = new Float64Array(layout.names.length);
  for (const [i, name] of layout.names.entries()) {
    const q = parse(consumed[name]);
    if (q !== undefined) out[i] = toMilli(q);
  }
  return out;
}

/** Checks a request policy the way the API server's validation does; problems as text. */
export function policyProblems(name: string, cap: DeviceCapacity): string[] {
  const p = cap.requestPolicy;
  if (p === undefined) return [];
  const out: string[] = [];
  const value = parse(cap.value);
  if (p.validValues !== undefined && p.validRange !== undefined) out.push(`capacity ${name}: requestPolicy sets both validValues and validRange`);
  const def = parse(p.default);
  if (p.default !== undefined && def === undefined) out.push(`capacity ${name}: requestPolicy.default ${JSON.stringify(p.default)} is not a quantity`);
  if (def !== undefined && value !== undefined && def.compareTo(value) > 0) out.push(`capacity ${name}: requestPolicy.default is more than the capacity`);
  if (p.validValues !== undefined) {
    const vals = p.validValues.map(parse);
    if (vals.some((v) => v === undefined)) out.push(`capacity ${name}: requestPolicy.validValues holds a value that is not a quantity`);
    for (let i = 1; i < vals.length; i++) {
      const a = vals[i - 1];
      const b = vals[i];
      if (a !== undefined && b !== undefined && a.compareTo(b) >= 0) out.push(`capacity ${name}: requestPolicy.validValues must be sorted and distinct`);
    }
    if (def === undefined) out.push(`capacity ${name}: requestPolicy.default is required with validValues`);
    else if (!vals.some((v) => v !== undefined && v.equals(def))) out.push(`capacity ${name}: requestPolicy.default must be one of validValues`);
    if (vals.length > 10) out.push(`capacity ${name}: requestPolicy.validValues has more than 10 entries`);
  }
  if (p.validRange !== undefined) {
    const min = parse(p.validRange.min);
    const max = parse(p.validRange.max);
    const step = parse(p.validRange.step);
    if (min === undefined) out.push(`capacity ${name}: requestPolicy.validRange needs min`);
    if (def === undefined) out.push(`capacity ${name}: requestPolicy.default is required with validRange`);
    if (min !== undefined && def !== undefined && def.compareTo(min) < 0) out.push(`capacity ${name}: requestPolicy.default is less than min`);
    if (max !== undefined && def !== undefined && def.compareTo(max) > 0) out.push(`capacity ${name}: requestPolicy.default is more than max`);
    if (min !== undefined && max !== undefined && min.compareTo(max) > 0) out.push(`capacity ${name}: requestPolicy.validRange min is more than max`);
    if (step !== undefined && step.sign() <= 0) out.push(`capacity ${name}: requestPolicy.validRange step must be positive`);
    if (min !== undefined && step !== undefined && step.sign() > 0) {
      for (const [what, q] of [
        ['max', max],
        ['default', def],
      ] as const) {
        if (q !== undefined && (q.nanos - min.nanos) % step.nanos !== 0n) out.push(`capacity ${name}: requestPolicy.validRange ${what} must be min plus a multiple of step`);
      }
    }
  }
  return out;
}
