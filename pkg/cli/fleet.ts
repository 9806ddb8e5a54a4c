// `kubectl cascade fleet`: per node and GPU, what is whole, what is split into
// MIG partitions, what is shared and by whom, what is free and what is
// tainted, from the live slices and claim allocations.
import type { Device, ResourceClaim, ResourceSlice } from '../api/resource.js';
import { ATTR, CAPACITY, qualify } from '../api/devicemodel.js';
import { Quantity } from '../cel/quantity.js';

export interface GpuRow {
  readonly node: string;
  readonly gpu: string;
  readonly product: string;
  /** "free", "whole: ns/claim", "mig: 3g.40gb@0 ns/claim, ...", "shared 40Gi/79Gi 60%: ns/a (20Gi 30%), ...". */
  readonly usage: string;
  /** Memory slices 0-7 as a bar: # used, . free (MIG-capable GPUs only). */
  readonly slices: string;
  readonly tainted: string;
}

interface Holder {
  readonly claim: string;
  readonly consumed?: Readonly<Record<string, string>>;
}

function attr(d: Device, driver: string, name: string): string | number | boolean | undefined {
  const a = d.attributes?.[qualify(driver, name)];
  return a?.string ?? a?.int ?? a?.bool ?? a?.version;
}

/** Only the highest generation of each pool counts. */
export function currentSlices(slices: readonly ResourceSlice[], driver: string): ResourceSlice[] {
  const maxGen = new Map<string, number>();
  for (const s of slices) if (s.spec.driver === driver) maxGen.set(s.spec.pool.name, Math.max(maxGen.get(s.spec.pool.name) ?? 0, s.spec.pool.generation));
  return slices.filter((s) => s.spec.driver === driver && s.spec.pool.generation === maxGen.get(s.spec.pool.name));
}

interface Gpu {
  node: string;
  pool: string;
  whole?: Device;
  shared?: Device;
  parts: Device[];
}

/** Who holds each of our devices ("pool/device"): one holder, or one per share of a shared GPU. */
function holdersOf(claims: readonly ResourceClaim[], driver: string): { holders: Map<string, Holder>; sharers: Map<string, Holder[]> } {
  const holders = new Map<string, Holder>();
  const sharers = new Map<string, Holder[]>();
  for (const c of claims) {
    for (const r of c.status?.allocation?.devices?.results ?? []) {
      if (r.driver !== driver || r.adminAccess) continue;
      const holder: Holder = { claim: `${c.metadata.namespace ?? ''}/${c.metadata.name ?? ''}`, ...(r.consumedCapacity ? { consumed: r.consumedCapacity } : {}) };
      const key = `${r.pool}/${r.device}`;
      if (r.shareID !== undefined) sharers.set(key, [...(sharers.get(key) ?? []), holder]);
      else holders.set(key, holder);
    }
  }
  return { holders, sharers };
}

/** The published devices grouped per physical GPU: whole, shared and MIG partitions. */
function gpusOf(slices: readonly ResourceSlice[], driver: string): Gpu[] {
  const gpus = new Map<string, Gpu>();
  for (const s of currentSlices(slices, driver)) {
    const node = s.spec.nodeName ?? s.spec.pool.name;
    for (const d of s.spec.devices ?? []) {
      const type = attr(d, driver, ATTR.type);
      const minor = type === 'mig' ? attr(d, driver, ATTR.parentMinor) : (attr(d, driver, ATTR.minor) ?? attr(d, driver, ATTR.index));
      const key = `${s.spec.pool.name}/${String(minor ?? d.name)}`;
      let g = gpus.get(key);
      if (!g) gpus.set(key, (g = { node, pool: s.spec.pool.name, parts: [] }));
      if (type === 'mig') g.parts.push(d);
      else if (type === 'shared') g.shared = d;
      else g.whole = d;
    }
  }
  return [...gpus.values()].sort((a, b) => (a.node + (a.whole?.name ?? '')).localeCompare(b.node + (b.whole?.name ?? ''), undefined, { numeric: true }));
}

/** The MIG partitions in use on a GPU ("3g.40gb@0 ns/claim") and the memory slices they take. */
function migUsage(g: Gpu, holders: ReadonlyMap<string, Holder>, driver: string): { migs: string[]; used: boolean[] } {
  const used = Array.from({ length: 8 }, () => false);
  const migs: string[] = [];
  for (const p of g.parts) {
    const h = holders.get(`${g.pool}/${p.name}`);
    if (!h) continue;
    const start = Number(attr(p, driver, ATTR.placementStart) ?? 0);
    const size = Number(attr(p, driver, ATTR.placementSize) ?? 0);
    for (let i = start; i < start + size && i < 8; i++) used[i] = true;
    migs.push(`${String(attr(p, driver, ATTR.profile) ?? p.name)}@${start} ${h.claim}`);
  }
  return { migs, used };
}

function gpuRow(g: Gpu, holders: ReadonlyMap<string, Holder>, sharers: ReadonlyMap<string, Holder[]>, driver: string): GpuRow {
  const name = g.whole?.name ?? g.parts[0]?.name.replace(/-mig-.*$/, '') ?? '?';
  const part = g.parts[0];
  const product = String((g.whole && attr(g.whole, driver, ATTR.productName)) ?? (part && attr(part, driver, ATTR.productName)) ?? '');
  const wholeHolder = g.whole ? holders.get(`${g.pool}/${g.whole.name}`) : undefined;
  const { migs, used } = migUsage(g, holders, driver);
  const taints = [...(g.whole?.taints ?? []), ...g.parts.flatMap((p) => p.taints ?? [])];
  const shares = g.shared ? (sharers.get(`${g.pool}/${g.shared.name}`) ?? []) : [];
  let usage = 'free';
  if (wholeHolder) usage = `whole: ${wholeHolder.claim}`;
  else if (migs.length) usage = `mig: ${migs.join(', ')}`;
  else if (shares.length && g.shared) usage = sharedUsage(g.shared, shares, driver);
  return {
    node: g.node,
    gpu: name,
    product,
    usage,
    slices: g.parts.length ? (wholeHolder ? '########' : used.map((u) => (u ? '#' : '.')).join('')) : '',
    tainted: taints.length ? [...new Set(taints.map((t) => `${t.key}:${t.effect}`))].join(',') : '',
  };
}

export function fleetRows(slices: readonly ResourceSlice[], claims: readonly ResourceClaim[], driver: string): GpuRow[] {
  const { holders, sharers } = holdersOf(claims, driver);
  return gpusOf(slices, driver).map((g) => gpuRow(g, holders, sharers, driver));
}

/** "shared 40Gi/79Gi 60%: ns/a (20Gi 30%), ns/b (20Gi 30%)": what the shares take of memory and compute. */
function sharedUsage(device: Device, shares: readonly Holder[], driver: string): string {
  const mem = qualify(driver, CAPACITY.memory);
  const compute = qualify(driver, CAPACITY.compute);
  let memory = 0n;
  let percent = 0n;
  for (const s of shares) {
    memory += Quantity.tryParse(s.consumed?.[mem] ?? '0')?.nanos ?? 0n;
    percent += Quantity.tryParse(s.consumed?.[compute] ?? '0')?.nanos ?? 0n;
  }
  const total = device.capacity?.[mem]?.value ?? '?';
  const each = shares.map((s) => `${s.claim} (${s.consumed?.[mem] ?? '?'} ${s.consumed?.[compute] ?? '?'}%)`);
  return `shared ${Quantity.fromNanos(memory).toString()}/${total} ${Quantity.fromNanos(percent).toString()}%: ${each.join(', ')}`;
}

/** Renders rows as an aligned text table, kubectl style. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
      .join('')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function renderFleet(rows: readonly GpuRow[]): string {
  const total = rows.length;
  const free = rows.filter((r) => r.usage === 'free').length;
  const table = renderTable(
    ['NODE', 'GPU', 'PRODUCT', 'MIG SLICES', 'TAINTS', 'USAGE'],
    rows.map((r) => [r.node, r.gpu, r.product, r.slices || '-', r.tainted || '-', r.usage]),
  );
  const count = (prefix: string): number => rows.filter((r) => r.usage.startsWith(prefix)).length;
  return `${table}\n\n${total} GPUs, ${free} completely free, ${count('mig:')} partly used by MIG, ${count('shared ')} shared, ${count('whole:')} used whole.`;
}
