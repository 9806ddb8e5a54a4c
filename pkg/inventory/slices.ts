// Splits one node's devices and counter sets into ResourceSlices within every
// API limit, with deterministic names, and checks the limits of any slice set.
import { createHash } from 'node:crypto';
import { type CounterSet, type Device, LIMITS, RESOURCE_API_VERSION, type ResourceSlice } from '../api/resource.js';
import type { GpuDevices } from './devices.js';
import type { DesiredSlice } from './types.js';

const DNS_SUBDOMAIN_MAX = 253;

/**
 * "<node>-<driver with dots as dashes>-<i>". Node names are DNS subdomains, so
 * the result is one too; over 253 characters the node part is shortened and
 * a hash keeps it unique.
 */
export function sliceName(nodeName: string, driverName: string, index: number): string {
  const driver = driverName.replace(/\./g, '-');
  const name = `${nodeName}-${driver}-${index}`;
  if (name.length <= DNS_SUBDOMAIN_MAX) return name;
  const hash = createHash('sha256').update(nodeName).digest('hex').slice(0, 10);
  const room = DNS_SUBDOMAIN_MAX - `-${hash}-${driver}-${index}`.length;
  return `${nodeName.slice(0, room).replace(/[.-]+$/, '')}-${hash}-${driver}-${index}`;
}

/** 64 when any device has taints or consumes counters, otherwise 128. */
export function deviceLimit(devices: readonly Device[]): number {
  return devices.some((d) => (d.taints?.length ?? 0) > 0 || (d.consumesCounters?.length ?? 0) > 0) ? LIMITS.devicesPerSliceWithTaintsOrCounters : LIMITS.devicesPerSlice;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Packs devices into slices GPU by GPU (a GPU's devices stay together unless
 * one GPU alone exceeds a slice, so a change on one GPU rewrites one slice),
 * and counter sets into their own slices, eight sets each.
 */
export function packSlices(nodeName: string, driverName: string, gpus: readonly GpuDevices[]): DesiredSlice[] {
  const ordered = [...gpus].sort((a, b) => a.minor - b.minor);
  const counterSets: CounterSet[] = ordered.flatMap((g) => (g.counterSet ? [g.counterSet] : []));
  const counterGroups = chunk(counterSets, LIMITS.sharedCountersPerSlice);
  const deviceGroups: Device[][] = [];
  let current: Device[] = [];
  for (const g of ordered) {
    if (g.devices.length === 0) continue;
    const merged = [...current, ...g.devices];
    if (merged.length <= deviceLimit(merged)) {
      current = merged;
      continue;
    }
    if (current.length > 0) deviceGroups.push(current);
    current = [];
    for (const part of chunk(g.devices, deviceLimit(g.devices))) {
      if (part.length === deviceLimit(g.devices)) deviceGroups.push(part);
      else current = part;
    }
  }
  if (current.length > 0) deviceGroups.push(current);

  const total = counterGroups.length + deviceGroups.length;
  const pool = { name: nodeName, resourceSliceCount: total };
  const slices: DesiredSlice[] = [];
  for (const sets of counterGroups) {
    slices.push({ name: sliceName(nodeName, driverName, slices.length), spec: { driver: driverName, pool, nodeName, sharedCounters: sets } });
  }
  for (const devices of deviceGroups) {
    slices.push({ name: sliceName(nodeName, driverName, slices.length), spec: { driver: driverName, pool, nodeName, devices } });
  }
  return slices;
}

/** Full ResourceSlice objects for a pool generation (what --dry-run prints). */
export function toResourceSlices(desired: readonly DesiredSlice[], generation: number): ResourceSlice[] {
  return desired.map((d) => ({
    apiVersion: RESOURCE_API_VERSION,
    kind: 'ResourceSlice',
    metadata: { name: d.name },
    spec: { ...d.spec, pool: { ...d.spec.pool, generation } },
  }));
}

/** A digest of the desired slices, independent of generation: equal digests mean nothing to publish. */
export function fingerprint(desired: readonly DesiredSlice[]): string {
  return createHash('sha256').update(JSON.stringify(desired)).digest('hex');
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Every API limit a slice set must respect; returns the violations as sentences (empty when fine). */
export function limitViolations(slices: readonly DesiredSlice[]): string[] {
  const problems: string[] = [];
  const counterSets = new Map<string, CounterSet>();
  for (const s of slices) for (const set of s.spec.sharedCounters ?? []) counterSets.set(set.name, set);
  const deviceNames = new Set<string>();
  for (const s of slices) {
    const where = `slice ${s.name}`;
    if (s.name.length > DNS_SUBDOMAIN_MAX || !DNS_SUBDOMAIN.test(s.name)) problems.push(`${where}: name is not a DNS subdomain`);
    if (s.spec.pool.resourceSliceCount !== slices.length) problems.push(`${where}: resourceSliceCount ${s.spec.pool.resourceSliceCount} but ${slices.length} slices`);
    const devices = s.spec.devices ?? [];
    const sets = s.spec.sharedCounters ?? [];
    if (devices.length > 0 && sets.length > 0) problems.push(`${where}: holds both devices and sharedCounters`);
    if (devices.length > deviceLimit(devices)) problems.push(`${where}: ${devices.length} devices, limit ${deviceLimit(devices)}`);
    if (sets.length > LIMITS.sharedCountersPerSlice) problems.push(`${where}: ${sets.length} counter sets, limit ${LIMITS.sharedCountersPerSlice}`);
    for (const set of sets) {
      if (!DNS_LABEL.test(set.name)) problems.push(`${where}: counter set ${set.name} is not a DNS label`);
      const n = Object.keys(set.counters).length;
      if (n > LIMITS.countersPerSet) problems.push(`${where}: counter set ${set.name} has ${n} counters, limit ${LIMITS.countersPerSet}`);
      for (const c of Object.keys(set.counters)) if (!DNS_LABEL.test(c)) problems.push(`${where}: counter ${c} is not a DNS label`);
    }
    for (const d of devices) {
      const at = `${where} device ${d.name}`;
      if (d.name.length > 63 || !DNS_LABEL.test(d.name)) problems.push(`${at}: name is not a DNS label`);
      if (deviceNames.has(d.name)) problems.push(`${at}: name is used twice in the pool`);
      deviceNames.add(d.name);
      const n = Object.keys(d.attributes ?? {}).length + Object.keys(d.capacity ?? {}).length;
      if (n > LIMITS.attributesAndCapacitiesPerDevice) problems.push(`${at}: ${n} attributes and capacities, limit ${LIMITS.attributesAndCapacitiesPerDevice}`);
      for (const [k, v] of Object.entries(d.attributes ?? {})) {
        const set = [v.int, v.bool, v.string, v.version].filter((x) => x !== undefined).length;
        if (set !== 1) problems.push(`${at}: attribute ${k} has ${set} values`);
        if (v.string !== undefined && v.string.length > LIMITS.attributeStringLength) problems.push(`${at}: attribute ${k} is longer than ${LIMITS.attributeStringLength}`);
      }
      const consumes = d.consumesCounters ?? [];
      if (consumes.length > LIMITS.consumesCountersPerDevice) problems.push(`${at}: consumes ${consumes.length} counter sets, limit ${LIMITS.consumesCountersPerDevice}`);
      for (const c of consumes) {
        const set = counterSets.get(c.counterSet);
        if (!set) {
          problems.push(`${at}: consumes from unknown counter set ${c.counterSet}`);
          continue;
        }
        for (const [name, v] of Object.entries(c.counters)) {
          const have = set.counters[name];
          if (!have) problems.push(`${at}: consumes counter ${name} that ${c.counterSet} does not have`);
          else if (Number(v.value) > Number(have.value)) problems.push(`${at}: consumes ${v.value} of ${name}, the set has ${have.value}`);
        }
      }
    }
  }
  return problems;
}
