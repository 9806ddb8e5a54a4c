// Allocator benchmark: a synthetic fleet (H100 whole, A100 and H100 with dynamic
// MIG, H200) and a seeded stream of claims, run under both policies; prints figures.
// Three streams by default, the same claims in each:
//   fill:   nothing ever ends, so the fleet fills until claims fail (packing quality);
//   churn:  after each claim, with chance --churn, a random running allocation ends
//           (the original default; arrivals outrun departures about 3:1, so the fleet
//           sits full and what gets in is whatever fits the holes departures leave);
//   steady: every claim runs for a random time (exponential, seeded per claim) whose
//           mean makes the offered load --load times the fleet's GPU capacity, so
//           arrivals and departures balance and failures come from fragmentation.
// Both policies see the identical claims, departure draws and lifetimes.
// Each (stream, policy) runs in its own child process so that its peak RSS is its own.
// Usage: npm run bench:allocator -- [--nodes 1000] [--claims 20000] [--seed 1] [--churn 0.3] [--load 1]
//          [--stream all|fill|churn|steady] [--policy cascade|first-fit] [--quick]
//        npm run bench:allocator -- --stream sharing [--seed 1] [--policy cascade|best-fit|first-fit]
//          (the GPU-sharing trace's shapes under three policies: bench/sharing.ts)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Allocator, type AllocatedDeviceRef, type PolicyName } from '../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../pkg/api/deviceclasses.js';
import { fleetNodeFacts, simulatedFleetSlices, type SimulatedNode } from '../hack/fake-nvidia-smi/fleet.js';
import { KINDS, fleet } from './fleet.js';
import { seededRandom } from '../hack/seeded-random.js';
import type { ResourceSlice } from '../pkg/api/resource.js';
import type { DeviceRequest, DeviceSubRequest, ResourceClaim } from '../pkg/api/resource.js';
import { runSharingBench } from './sharing.js';

type StreamName = 'fill' | 'churn' | 'steady';
const STREAMS: readonly StreamName[] = ['fill', 'churn', 'steady'];

interface Flags {
  nodes: number;
  claims: number;
  seed: number;
  policies: PolicyName[];
  streams: StreamName[];
  /** Set in a child process: run this one policy and print its figures as JSON. */
  child: PolicyName | undefined;
  /** Churn stream: after each claim, the chance that a random running allocation ends. */
  churn: number;
  /** Steady stream: offered load (mean GPU units running if all were admitted) over fleet capacity. */
  load: number;
}

function parseFlags(argv: readonly string[]): Flags {
  const flags: Flags = { nodes: 1000, claims: 20_000, seed: 1, policies: ['cascade', 'first-fit'], streams: [...STREAMS], child: undefined, churn: 0.3, load: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--nodes' && v !== undefined) flags.nodes = Number(v);
    else if (a === '--claims' && v !== undefined) flags.claims = Number(v);
    else if (a === '--seed' && v !== undefined) flags.seed = Number(v);
    else if (a === '--policy' && (v === 'cascade' || v === 'first-fit')) flags.policies = [v];
    else if (a === '--child' && (v === 'cascade' || v === 'first-fit')) flags.child = v;
    else if (a === '--churn' && v !== undefined) flags.churn = Number(v);
    else if (a === '--load' && v !== undefined) flags.load = Number(v);
    else if (a === '--stream' && v !== undefined && (v === 'all' || (STREAMS as readonly string[]).includes(v))) flags.streams = v === 'all' ? [...STREAMS] : STREAMS.filter((x) => x === v);
    else if (a === '--quick') [flags.nodes, flags.claims] = [100, 2000];
    else continue;
    if (a !== '--quick') i++;
  }
  return flags;
}

const D = 'gpu.cascade.dev';
const GPU = `gpu.${D}`;
const MIG = `mig.${D}`;
const product = (p: string): { cel: { expression: string } } => ({ cel: { expression: `device.attributes["${D}"].productName.contains("${p}")` } });
const profile = (p: string): { cel: { expression: string } } => ({ cel: { expression: `device.attributes["${D}"].profile == "${p}"` } });

function pick<T>(rand: () => number, weighted: readonly (readonly [number, T])[]): T {
  let total = 0;
  for (const [w] of weighted) total += w;
  let r = rand() * total;
  for (const [w, v] of weighted) {
    r -= w;
    if (r <= 0) return v;
  }
  const last = weighted[weighted.length - 1];
  if (last === undefined) throw new Error('empty choice');
  return last[1];
}

/** One claim of the stream and the kind it is reported under (e.g. "mig 3g.40gb", "multi 4"). */
interface StreamClaim {
  readonly claim: ResourceClaim;
  readonly kind: string;
  /** GPU units its first choice asks for (a MIG profile: mean of its memory and compute shares). */
  readonly size: number;
}

const MIG_SHAPE: Readonly<Record<string, readonly [number, number]>> = {
  '1g.10gb': [1, 1],
  '1g.20gb': [2, 1],
  '2g.20gb': [2, 2],
  '3g.40gb': [4, 3],
  '4g.40gb': [4, 4],
  '7g.80gb': [8, 7],
};

function migSize(p: string): number {
  const [mem, compute] = MIG_SHAPE[p] ?? [8, 7];
  return (mem / 8 + compute / 7) / 2;
}

function claimStream(count: number, seed: number): StreamClaim[] {
  const rand = seededRandom(seed);
  const out: StreamClaim[] = [];
  for (let i = 0; i < count; i++) {
    const kind = pick(rand, [
      [30, 'mig'],
      [25, 'gpu'],
      [15, 'multi'],
      [15, 'fallback'],
      [15, 'small-fallback'],
    ] as const);
    let requests: DeviceRequest[];
    let label: string = kind;
    let size = 1;
    let constraints: { requests?: string[]; matchAttribute: string }[] | undefined;
    switch (kind) {
      case 'mig': {
        const p = pick(rand, [
          [40, '1g.10gb'],
          [10, '1g.20gb'],
          [20, '2g.20gb'],
          [20, '3g.40gb'],
          [5, '4g.40gb'],
          [5, '7g.80gb'],
        ] as const);
        requests = [{ name: 'mig', exactly: { deviceClassName: MIG, selectors: [profile(p)] } }];
        label = `mig ${p}`;
        size = migSize(p);
        break;
      }
      case 'gpu': {
        const p = pick(rand, [
          [50, undefined],
          [25, 'H100'],
          [25, 'H200'],
        ] as const);
        requests = [{ name: 'gpu', exactly: { deviceClassName: GPU, ...(p !== undefined ? { selectors: [product(p)] } : {}) } }];
        label = `gpu ${p ?? 'any'}`;
        break;
      }
      case 'multi': {
        const n = pick(rand, [
          [50, 2],
          [35, 4],
          [15, 8],
        ] as const);
        requests = [{ name: 'gpus', exactly: { deviceClassName: GPU, count: n } }];
        constraints = [{ matchAttribute: `${D}/nvlinkDomain` }];
        label = `multi ${n}`;
        size = n;
        break;
      }
      case 'fallback': {
        const subs: DeviceSubRequest[] = [
          { name: 'h100', deviceClassName: GPU, selectors: [product('H100')] },
          { name: 'a100-pair', deviceClassName: GPU, count: 2, selectors: [product('A100')] },
          { name: 'mig-3g', deviceClassName: MIG, selectors: [profile('3g.40gb')] },
        ];
        requests = [{ name: 'accel', firstAvailable: subs }];
        constraints = [{ requests: ['accel/a100-pair'], matchAttribute: `${D}/nvlinkDomain` }];
        break;
      }
      case 'small-fallback': {
        const subs: DeviceSubRequest[] = [
          { name: 'one-g', deviceClassName: MIG, selectors: [profile('1g.10gb')] },
          { name: 'one-g-big', deviceClassName: MIG, selectors: [profile('1g.20gb')] },
          { name: 'two-g', deviceClassName: MIG, selectors: [profile('2g.20gb')] },
        ];
        requests = [{ name: 'slice', firstAvailable: subs }];
        size = migSize('1g.10gb');
        break;
      }
    }
    const prefix = kind === 'multi' ? `${requests[0]?.exactly?.count ?? ''}gpu` : kind;
    out.push({
      claim: { metadata: { name: `${prefix}-${i}`, namespace: 'bench' }, spec: { devices: { requests, ...(constraints !== undefined ? { constraints } : {}) } } },
      kind: label,
      size,
    });
  }
  return out;
}

interface Figures {
  policy: string;
  stream: StreamName;
  departures: Departures;
  setupMs: number;
  claimsPerSec: number;
  p50: number;
  p99: number;
  max: number;
  rssMiB: number;
  allocated: number;
  firstFailAt: number | undefined;
  firstFailKind: string | undefined;
  shareAtFirstFail: number | undefined;
  shareAtEnd: number;
  /** Mean share over the claims after the first failure (the steady state under churn). */
  shareAfterFirstFail: number | undefined;
  /** GPU capacity units handed out over the run (a whole GPU is 1, a 3g slice about 0.5). */
  unitsAllocated: number;
  /** Claims offered and allocated per kind; for firstAvailable kinds also per chosen entry. */
  offered: Record<string, number>;
  byKind: Record<string, number>;
  /** The three slowest decisions: claim number, kind, milliseconds. */
  slowest: { at: number; kind: string; ms: number }[];
  /**
   * 2- and 4-GPU claims: allocated on one NUMA node; split over two although a
   * one-NUMA placement was free at that moment; split with none free.
   */
  numa: { one: number; splitAvoidable: number; splitForced: number };
}

/** Whether some node has `n` free whole GPUs in one NVLink domain and on one NUMA node right now. */
function oneNumaPlacementFree(allocator: Allocator, n: number): boolean {
  const inv = allocator.inventory;
  const type = `${D}/type`;
  const counts = new Map<string, number>();
  for (const d of inv.devices) {
    if (d.attributes.get(type) !== 's:gpu' || allocator.state.available[d.idx] !== 1 || d.blockingTaints.length > 0) continue;
    const key = `${d.node}/${inv.deviceDomain[d.idx] ?? ''}`;
    const c = (counts.get(key) ?? 0) + 1;
    if (c >= n) return true;
    counts.set(key, c);
  }
  return false;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** How running allocations end. */
type Departures = { readonly kind: 'none' } | { readonly kind: 'churn'; readonly chance: number } | { readonly kind: 'lifetime'; readonly mean: number };

function departuresFor(stream: StreamName, flags: Flags, claims: readonly StreamClaim[], fleetGpus: number): Departures {
  if (stream === 'fill') return { kind: 'none' };
  if (stream === 'churn') return { kind: 'churn', chance: flags.churn };
  // Little's law: running units = arrivals per claim (1) x mean lifetime x mean size.
  let sum = 0;
  for (const c of claims) sum += c.size;
  const meanSize = claims.length > 0 ? sum / claims.length : 1;
  return { kind: 'lifetime', mean: (flags.load * fleetGpus) / meanSize };
}

/** A min-heap of running allocations by the claim index at which they end. */
class EndHeap {
  private readonly items: { end: number; devices: readonly AllocatedDeviceRef[] }[] = [];

  push(end: number, devices: readonly AllocatedDeviceRef[]): void {
    const a = this.items;
    a.push({ end, devices });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pi = a[p];
      const ii = a[i];
      if (pi === undefined || ii === undefined || pi.end <= ii.end) break;
      a[p] = ii;
      a[i] = pi;
      i = p;
    }
  }

  /** Removes and returns the devices of one allocation ending at or before `now`. */
  popDue(now: number): readonly AllocatedDeviceRef[] | undefined {
    const a = this.items;
    const top = a[0];
    if (top === undefined || top.end > now) return undefined;
    const last = a.pop();
    if (last !== undefined && a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if ((a[l]?.end ?? Infinity) < (a[m]?.end ?? Infinity)) m = l;
        if ((a[r]?.end ?? Infinity) < (a[m]?.end ?? Infinity)) m = r;
        if (m === i) break;
        const x = a[m];
        const y = a[i];
        if (x === undefined || y === undefined) break;
        a[m] = y;
        a[i] = x;
        i = m;
      }
    }
    return top.devices;
  }
}

function run(policy: PolicyName, stream: StreamName, nodes: readonly SimulatedNode[], slices: readonly ResourceSlice[], claims: readonly StreamClaim[], departures: Departures, seed: number): Figures {
  const t0 = process.hrtime.bigint();
  const allocator = new Allocator({ slices, classes: cascadeDeviceClasses(), nodes: nodes.map((n) => fleetNodeFacts(n)) }, { policy });
  const setupMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const lat = new Float64Array(claims.length);
  let rss = process.memoryUsage().rss;
  let allocated = 0;
  let firstFailAt: number | undefined;
  let firstFailKind: string | undefined;
  let shareAtFirstFail: number | undefined;
  const share = (): number => {
    const u = allocator.usage();
    return u.units > 0 ? u.used / u.units : 0;
  };
  const unitsOf = (devices: readonly AllocatedDeviceRef[]): number => {
    let u = 0;
    for (const r of devices) u += allocator.state.unitShare(allocator.inventory.deviceIndex.get(`${r.driver}/${r.pool}/${r.device}`) ?? -1);
    return u;
  };
  let total = 0;
  let unitsAllocated = 0;
  // Departures and lifetimes use their own seeded streams so both policies see the same draws.
  const leave = seededRandom(seed ^ 0x5bd1e995);
  const lifetime = seededRandom(seed ^ 0x27d4eb2f);
  const live: (readonly AllocatedDeviceRef[])[] = [];
  const ending = new EndHeap();
  const offered = new Map<string, number>();
  const byKind = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);
  let shareSum = 0;
  const numa = { one: 0, splitAvoidable: 0, splitForced: 0 };
  claims.forEach(({ claim, kind }, i) => {
    // Drawn for every claim, admitted or not, so that claim i lives as long under both policies.
    const life = departures.kind === 'lifetime' ? -departures.mean * Math.log(1 - lifetime()) : 0;
    if (departures.kind === 'lifetime') for (let gone = ending.popDue(i); gone !== undefined; gone = ending.popDue(i)) allocator.release(gone);
    const s = process.hrtime.bigint();
    const outcome = allocator.allocate({ claims: [claim] });
    let ns = Number(process.hrtime.bigint() - s);
    if (outcome.kind === 'allocated' && (kind === 'multi 2' || kind === 'multi 4')) {
      // Measured before the commit, outside the timed part: was one NUMA node possible?
      const spans = new Set(outcome.devices.map((r) => allocator.inventory.deviceNuma[allocator.inventory.deviceIndex.get(`${r.driver}/${r.pool}/${r.device}`) ?? -1]));
      if (spans.size <= 1) numa.one++;
      else if (oneNumaPlacementFree(allocator, kind === 'multi 2' ? 2 : 4)) numa.splitAvoidable++;
      else numa.splitForced++;
    }
    const c0 = process.hrtime.bigint();
    if (outcome.kind === 'allocated') allocator.commit(outcome);
    ns += Number(process.hrtime.bigint() - c0);
    lat[i] = ns / 1e6;
    total += ns;
    bump(offered, kind);
    if (outcome.kind === 'allocated') {
      allocated++;
      unitsAllocated += unitsOf(outcome.devices);
      if (departures.kind === 'churn') live.push(outcome.devices);
      else if (departures.kind === 'lifetime') ending.push(i + life, outcome.devices);
      bump(byKind, kind);
      // Which firstAvailable entry won says what the fleet could still offer.
      const sub = outcome.claims[0]?.alternatives[0]?.subrequest;
      if (sub !== undefined) bump(byKind, `${kind} -> ${sub}`);
    } else if (firstFailAt === undefined) {
      firstFailAt = i;
      firstFailKind = kind;
      shareAtFirstFail = share();
    }
    if (departures.kind === 'churn' && live.length > 0 && leave() < departures.chance) {
      const k = Math.floor(leave() * live.length);
      const gone = live[k];
      live[k] = live[live.length - 1] ?? [];
      live.pop();
      if (gone !== undefined) allocator.release(gone);
    }
    if (firstFailAt !== undefined) shareSum += share();
    if (i % 1000 === 0) rss = Math.max(rss, process.memoryUsage().rss);
  });
  // maxRSS is the true peak of this process (in KiB), sampling only a lower bound.
  rss = Math.max(rss, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024);
  const slowest = [...lat.keys()]
    .sort((a, b) => (lat[b] ?? 0) - (lat[a] ?? 0))
    .slice(0, 3)
    .map((at) => ({ at, kind: claims[at]?.kind ?? '?', ms: lat[at] ?? 0 }));
  lat.sort();
  return {
    slowest,
    policy,
    stream,
    departures,
    setupMs,
    claimsPerSec: claims.length / (total / 1e9),
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: lat[lat.length - 1] ?? 0,
    rssMiB: rss / 2 ** 20,
    allocated,
    firstFailAt,
    firstFailKind,
    shareAtFirstFail,
    shareAtEnd: share(),
    shareAfterFirstFail: firstFailAt === undefined ? undefined : shareSum / (claims.length - firstFailAt),
    unitsAllocated,
    numa,
    offered: Object.fromEntries(offered),
    byKind: Object.fromEntries(byKind),
  };
}

function runInChild(policy: PolicyName, stream: StreamName, flags: Flags): Figures {
  const script = fileURLToPath(import.meta.url);
  const args = [
    ...process.execArgv,
    script,
    '--child',
    policy,
    '--stream',
    stream,
    ...['--nodes', String(flags.nodes), '--claims', String(flags.claims), '--seed', String(flags.seed), '--churn', String(flags.churn), '--load', String(flags.load)],
  ];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`benchmark child for ${policy} failed (${r.status ?? r.signal ?? '?'}): ${r.stderr}`);
  const f = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Figures;
  return { ...f, stream };
}

function table(flags: Flags, stream: StreamName, results: readonly Figures[]): void {
  const pct = (x: number | undefined): string => (x === undefined || x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const dep = results[0]?.departures;
  const what =
    dep === undefined || dep.kind === 'none'
      ? `${flags.claims} claims, nothing ends: the fleet fills until claims fail`
      : dep.kind === 'churn'
        ? `the same ${flags.claims} claims; after each, with chance ${dep.chance}, a random running allocation ends`
        : `the same ${flags.claims} claims; each runs for an exponential time, mean ${dep.mean.toFixed(0)} arrivals (offered load ${flags.load} x capacity)`;
  process.stdout.write(`\nstream "${stream}": ${what}; both policies see the same draws\n`);
  const rows: [string, (f: Figures) => string][] = [
    ['inventory build (ms)', (f) => f.setupMs.toFixed(0)],
    ['claims/s (decide + commit)', (f) => f.claimsPerSec.toFixed(0)],
    ['p50 decision (ms)', (f) => f.p50.toFixed(3)],
    ['p99 decision (ms)', (f) => f.p99.toFixed(3)],
    ['max decision (ms)', (f) => f.max.toFixed(1)],
    ...[0, 1, 2].map((k): [string, (f: Figures) => string] => [
      k === 0 ? 'slowest decisions: claim # kind (ms)' : '',
      (f) => {
        const x = f.slowest[k];
        return x === undefined ? '' : `#${x.at} ${x.kind} (${x.ms.toFixed(0)})`;
      },
    ]),
    ['peak RSS (MiB)', (f) => f.rssMiB.toFixed(0)],
    ['claims allocated', (f) => `${f.allocated}/${flags.claims}`],
    ['GPU units allocated (sum of claim sizes)', (f) => f.unitsAllocated.toFixed(0)],
    ['first failure at claim #', (f) => (f.firstFailAt === undefined || f.firstFailAt === null ? 'none' : String(f.firstFailAt))],
    ['first claim that failed', (f) => f.firstFailKind ?? 'none'],
    ['GPU capacity used at first failure', (f) => pct(f.shareAtFirstFail)],
    ['GPU capacity used at end', (f) => pct(f.shareAtEnd)],
    ['GPU capacity used after first failure (mean)', (f) => pct(f.shareAfterFirstFail)],
    ['2-/4-GPU claims on one NUMA node, of those that could be', (f) => pct(f.numa.one / Math.max(1, f.numa.one + f.numa.splitAvoidable))],
    ['  split although one NUMA node had room', (f) => String(f.numa.splitAvoidable)],
    ['  split, no NUMA node had room', (f) => String(f.numa.splitForced)],
  ];
  const kinds = [...new Set(results.flatMap((r) => [...Object.keys(r.offered), ...Object.keys(r.byKind)]))].sort();
  rows.push(['allocated per kind (of offered)', () => '']);
  for (const k of kinds) {
    const offered = results[0]?.offered[k];
    rows.push([`  ${k}${offered !== undefined ? ` (${offered})` : ''}`, (f) => String(f.byKind[k] ?? 0)]);
  }
  const w0 = Math.max(...rows.map(([l]) => l.length));
  process.stdout.write(`${''.padEnd(w0)}  ${results.map((r) => r.policy.padStart(12)).join('  ')}\n`);
  for (const [label, get] of rows) process.stdout.write(`${label.padEnd(w0)}  ${results.map((r) => get(r).padStart(12)).join('  ')}\n`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // The sharing stream has a fleet and shapes of its own (bench/sharing.ts).
  if (argv[argv.indexOf('--stream') + 1] === 'sharing' && argv.includes('--stream')) {
    await runSharingBench(argv);
    return;
  }
  const flags = parseFlags(argv);
  if (flags.child !== undefined) {
    const stream = flags.streams[0] ?? 'churn';
    const nodes = fleet(flags.nodes);
    const slices = await simulatedFleetSlices(nodes);
    const claims = claimStream(flags.claims, flags.seed);
    const f = run(flags.child, stream, nodes, slices, claims, departuresFor(stream, flags, claims, nodes.length * 8), flags.seed);
    process.stdout.write(JSON.stringify(f) + '\n');
    return;
  }
  process.stdout.write(
    `fleet: ${flags.nodes} nodes x 8 GPUs (${KINDS.map((k) => k.label).join(', ')}, one kind per node in turn); claims: ${flags.claims} (seed ${flags.seed}); node ${process.version}\n`,
  );
  for (const stream of flags.streams)
    table(
      flags,
      stream,
      flags.policies.map((p) => runInChild(p, stream, flags)),
    );
  process.stdout.write('\nGPU capacity: one unit per GPU; a MIG-partitioned GPU counts the mean share of its counters in use.\n');
}

await main();
