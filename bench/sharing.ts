// The sharing stream of the allocator benchmark (npm run bench:allocator -- --stream sharing):
// request shapes of Alibaba's GPU-sharing trace on a fleet shaped like the trace's,
// built by the real inventory code (simulated nvidia-smi -> NvidiaSmiBackend ->
// pkg/inventory), under first-fit, best-fit and Cascade's policy in one run.
//
// Facts used (cluster-trace-gpu-v2023, openb_pod_list_default.csv and
// openb_node_list_gpu_node.csv, alibaba/clusterdata commit 50a91c7; the trace the
// FGD paper, USENIX ATC'23, measured):
//   nodes: 617 with 8 GPUs, 54 with 4, 518 with 2, 24 with 1 (1,213 nodes, 6,212 GPUs),
//   each with the CPU the trace gives it (NODES below);
//   GPU pods: 3,078 share one GPU (gpu_milli < 1000), 3,911 take one whole GPU,
//   75 take several (16 x 2, 15 x 4, 44 x 8 GPUs); CPU-only pods are left out;
//   every GPU pod shape with its CPU, as (GPUs, gpu_milli, cpu_milli, pods), is POD_SHAPES
//   below (81 shapes, counts as in the trace). With --no-cpu the pods ask for no CPU.
// Substitutions, because the simulator knows NVIDIA's current boards and the trace
// names Alibaba's own: 8-GPU nodes are A100-80GB (as many as the trace's G2 nodes,
// MIG off) and H100-80GB (the rest: MIG-capable, so shares, whole GPUs and MIG
// placements all compete for them); 4-GPU nodes L40S; 2- and 1-GPU nodes T4. A share
// asks for gpu_milli/10 percent of compute and 1Gi of memory (the trace gives one GPU
// fraction; compute binds, as in the paper's model). Pods' memory is not modelled.
import { performance } from 'node:perf_hooks';
import { Allocator, type NodeFacts, type PodFacts, type PolicyName } from '../pkg/allocator/index.js';
import { seededRandom } from '../hack/seeded-random.js';
import { placedWasteBound, refusedWasteBound } from './packing-bounds.js';
import { cascadeDeviceClasses } from '../pkg/api/deviceclasses.js';
import type { DeviceRequest, ResourceClaim, ResourceSlice } from '../pkg/api/resource.js';
import type { FakeConfig } from '../hack/fake-nvidia-smi/config.js';
import { type SimulatedNode, simulatedFleetSlices } from '../hack/fake-nvidia-smi/fleet.js';

const D = 'gpu.cascade.dev';

/** Every GPU pod shape of the trace: [GPUs, gpu_milli, cpu_milli, pods]. */
// prettier-ignore
const POD_SHAPES: readonly (readonly [number, number, number, number])[] = [
  [1, 50, 4000, 3], [1, 50, 6000, 4], [1, 110, 4000, 18], [1, 110, 6000, 4], [1, 110, 8000, 2], [1, 140, 1000, 1], [1, 160, 4000, 54], [1, 160, 6000, 20],
  [1, 220, 4000, 43], [1, 220, 8000, 19], [1, 230, 4000, 122], [1, 230, 8000, 18], [1, 270, 4152, 4], [1, 290, 1000, 1], [1, 320, 1000, 22], [1, 320, 4000, 232],
  [1, 320, 6000, 2], [1, 320, 8000, 72], [1, 330, 4000, 7], [1, 350, 4000, 6], [1, 370, 2000, 2], [1, 370, 4152, 45], [1, 440, 8000, 2], [1, 460, 6000, 120],
  [1, 460, 8000, 2], [1, 460, 12000, 6], [1, 470, 4000, 2], [1, 470, 8000, 360], [1, 470, 11908, 388], [1, 480, 4000, 18], [1, 480, 8000, 1], [1, 550, 4152, 72],
  [1, 590, 3152, 75], [1, 650, 1000, 2], [1, 650, 4000, 2], [1, 650, 8000, 12], [1, 650, 11908, 237], [1, 810, 3152, 1047], [1, 810, 4152, 31], [1, 1000, 1000, 15],
  [1, 1000, 2000, 8], [1, 1000, 3152, 470], [1, 1000, 4000, 159], [1, 1000, 5000, 1], [1, 1000, 6000, 8], [1, 1000, 7000, 11], [1, 1000, 8000, 164], [1, 1000, 8200, 41],
  [1, 1000, 8710, 1], [1, 1000, 9400, 6], [1, 1000, 9810, 195], [1, 1000, 11300, 874], [1, 1000, 11400, 599], [1, 1000, 11800, 1], [1, 1000, 11900, 55], [1, 1000, 11908, 153],
  [1, 1000, 12000, 326], [1, 1000, 14000, 1], [1, 1000, 14200, 93], [1, 1000, 14900, 8], [1, 1000, 15200, 36], [1, 1000, 15400, 9], [1, 1000, 15700, 158], [1, 1000, 15900, 1],
  [1, 1000, 16000, 150], [1, 1000, 16400, 29], [1, 1000, 18708, 255], [1, 1000, 24200, 84], [2, 1000, 6000, 3], [2, 1000, 14000, 1], [2, 1000, 16200, 7], [2, 1000, 17400, 2],
  [2, 1000, 30200, 3], [4, 1000, 32000, 3], [4, 1000, 32200, 9], [4, 1000, 60200, 3], [8, 1000, 64000, 3], [8, 1000, 64200, 18], [8, 1000, 88000, 18], [8, 1000, 120000, 3],
  [8, 1000, 120200, 2],
];

/** The trace's GPU nodes: [GPUs, CPU cores, nodes]. */
const NODES: readonly (readonly [number, number, number])[] = [
  [1, 8, 22],
  [1, 128, 2],
  [2, 8, 2],
  [2, 16, 107],
  [2, 64, 22],
  [2, 104, 387],
  [4, 32, 28],
  [4, 48, 9],
  [4, 96, 17],
  [8, 64, 7],
  [8, 82, 1],
  [8, 96, 570],
  [8, 128, 39],
];
const CHECKPOINTS = [0.5, 0.8, 0.9, 1.0, 1.1, 1.3] as const;
/** Offered load of the stream with departures, as a share of the fleet's GPUs. */
const LOAD = 0.94;

interface TraceNode extends SimulatedNode {
  readonly cpu: number;
}

export function traceFleet(): TraceNode[] {
  const gpus = (model: string, n: number, mig?: 'Disabled'): FakeConfig => ({
    driverVersion: '580.105.08',
    cudaVersion: '13.0',
    gpus: Array.from({ length: n }, (_v, i) => ({ model, ...(mig ? { migMode: mig } : {}), numaNode: i < n / 2 ? 0 : 1 })),
    ...(n >= 4 && model !== 'L40S' ? { nvlinkGroups: [Array.from({ length: n }, (_v, i) => i)] } : {}),
  });
  const nodes: TraceNode[] = [];
  let eights = 0;
  for (const [n, cpu, count] of NODES) {
    for (let i = 0; i < count; i++) {
      // As many A100 nodes as the trace has G2 nodes (549), H100 for the other 8-GPU nodes.
      const config = n === 8 ? gpus(eights++ < 549 ? 'A100-SXM4-80GB' : 'H100-80GB', 8, 'Disabled') : n === 4 ? gpus('L40S', 4) : gpus('T4', n);
      nodes.push({ name: `node-${String(nodes.length).padStart(4, '0')}-${n}gpu`, config, cpu });
    }
  }
  return nodes;
}

interface Pod {
  readonly claim: ResourceClaim;
  readonly kind: string;
  /** GPUs it asks for (a share: gpu_milli / 1000). */
  readonly gpus: number;
  readonly cpuMilli: number;
  /** A share's gpu_milli; undefined for whole GPUs. */
  readonly milli?: number;
}

function request(kind: 'share' | 'whole', arg: number): DeviceRequest {
  if (kind === 'share') {
    return { name: 'gpu', exactly: { deviceClassName: `shared.${D}`, capacity: { requests: { [`${D}/memory`]: '1Gi', [`${D}/compute`]: String(arg / 10) } } } };
  }
  return { name: 'gpu', exactly: { deviceClassName: `gpu.${D}`, count: arg } };
}

/** Pods drawn from the trace's shape distribution until their demand reaches `upTo` GPUs. */
export function podStream(upTo: number, seed: number): Pod[] {
  const rand = seededRandom(seed);
  const shapes: { w: number; make: (i: number) => Pod }[] = [];
  const claim = (i: number, r: DeviceRequest): ResourceClaim => ({ metadata: { name: `pod-${i}`, namespace: 'trace', uid: `uid-${i}` }, spec: { devices: { requests: [r] } } });
  for (const [k, milli, cpuMilli, n] of POD_SHAPES) {
    const share = k === 1 && milli < 1000;
    shapes.push({
      w: n,
      make: (i) => ({
        claim: claim(i, share ? request('share', milli) : request('whole', k)),
        kind: share ? 'share' : k === 1 ? '1 GPU' : `${k} GPUs`,
        gpus: share ? milli / 1000 : k,
        cpuMilli,
        ...(share ? { milli } : {}),
      }),
    });
  }
  const total = shapes.reduce((s, x) => s + x.w, 0);
  const out: Pod[] = [];
  let demand = 0;
  while (demand < upTo) {
    let r = rand() * total;
    const shape = shapes.find((s) => (r -= s.w) <= 0) ?? shapes[shapes.length - 1];
    if (shape === undefined) break;
    const pod = shape.make(out.length);
    out.push(pod);
    demand += pod.gpus;
  }
  return out;
}

/**
 * What packing the shares alone must waste, in GPUs, with every share of the
 * stream known in advance and CPU ignored: (a) what best-fit decreasing leaves
 * unused on the GPUs it fills, an offline packing no online policy is expected
 * to beat; (b) the least any packing that places every share can leave unused
 * (the linear-programming bound of bench/packing-bounds.ts); (c) the least
 * unallocated capacity at all when shares may be refused instead (at 100%
 * arrival, refusing a large share frees a GPU for the others).
 */
export function shareWasteBounds(millis: readonly number[], overshoot: number): { readonly offline: number; readonly placed: number; readonly refused: number } {
  const items = [...millis].sort((a, b) => b - a);
  const total = items.reduce((x, m) => x + m, 0);
  // Best-fit decreasing: each share on the fullest GPU it fits on.
  const bins: number[] = [];
  for (const m of items) {
    let best = -1;
    for (let i = 0; i < bins.length; i++) if ((bins[i] ?? 0) + m <= 1000 && (best < 0 || (bins[i] ?? 0) > (bins[best] ?? 0))) best = i;
    if (best < 0) bins.push(m);
    else bins[best] = (bins[best] ?? 0) + m;
  }
  return { offline: bins.length - total / 1000, placed: placedWasteBound(millis), refused: refusedWasteBound(millis, overshoot) };
}

interface Point {
  readonly arrivedPct: number;
  readonly allocated: number;
  readonly unallocated: number;
  /** GPUs nobody holds any part of (the rest of the unallocated capacity is room left on partly used GPUs). */
  readonly wholeFree: number;
  readonly failures: Readonly<Record<string, number>>;
}

interface PolicyResult {
  readonly policy: PolicyName;
  readonly points: readonly Point[];
  readonly firstFailurePct: number | undefined;
  readonly claimsPerSec: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Indexing the slices and running each class's selectors over them, before the first decision. */
  readonly buildMs: number;
  /** The stream with departures: failures and unallocated capacity at the end. */
  readonly departures: { readonly failures: number; readonly arrivals: number; readonly unallocated: number };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

function runPolicy(
  policy: PolicyName,
  slices: readonly ResourceSlice[],
  nodes: readonly NodeFacts[] | undefined,
  capacity: number,
  pods: readonly Pod[],
  seed: number,
  opts: { readonly compare?: number; readonly departures: boolean },
): PolicyResult {
  const { compare } = opts;
  const snapshot = { slices, classes: cascadeDeviceClasses(D), ...(nodes ? { nodes } : {}) };
  const podOf = (p: Pod): { pod?: PodFacts } => (nodes ? { pod: { cpu: `${p.cpuMilli}m` } } : {});
  const built = performance.now();
  const allocator = new Allocator(snapshot, { policy, ...(compare ? { nodesToCompare: compare } : {}) });
  const buildMs = performance.now() - built;
  const points: Point[] = [];
  const failures: Record<string, number> = {};
  const times: number[] = [];
  let arrived = 0;
  let allocated = 0;
  let firstFailurePct: number | undefined;
  let next = 0;
  const started = performance.now();
  for (const pod of pods) {
    const t0 = performance.now();
    const o = allocator.allocate({ claims: [pod.claim], ...podOf(pod) });
    if (o.kind === 'allocated') allocator.commit(o);
    times.push(performance.now() - t0);
    arrived += pod.gpus;
    if (o.kind === 'allocated') allocated += pod.gpus;
    else {
      failures[pod.kind] = (failures[pod.kind] ?? 0) + 1;
      firstFailurePct ??= (100 * arrived) / capacity;
    }
    while (next < CHECKPOINTS.length && arrived >= (CHECKPOINTS[next] ?? 0) * capacity) {
      let wholeFree = 0;
      for (const u of allocator.inventory.units) if ((allocator.state.unitHolds[u.idx] ?? 0) === 0) wholeFree++;
      points.push({ arrivedPct: Math.round((CHECKPOINTS[next] ?? 0) * 100), allocated, unallocated: capacity - allocated, wholeFree, failures: { ...failures } });
      next++;
    }
  }
  const elapsed = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);

  // Departures: the same shapes arrive and leave. Before each arrival, running pods
  // picked at random leave until the pod would bring the load to at most LOAD of the
  // fleet's GPUs, so every policy runs at the same offered load and a failure means
  // the free capacity was there but in pieces the pod could not use.
  const fresh = new Allocator(snapshot, { policy, ...(compare ? { nodesToCompare: compare } : {}) });
  const rand = seededRandom(seed + 7);
  const running: { gpus: number; cpuMilli: number; devices: ReturnType<Allocator['allocate']> }[] = [];
  let load = 0;
  let depFailures = 0;
  const rounds = opts.departures ? pods.length * 2 : 0;
  for (let i = 0; i < rounds; i++) {
    const pod = pods[i % pods.length];
    if (pod === undefined) break;
    while (load + pod.gpus > capacity * LOAD && running.length > 0) {
      const j = Math.floor(rand() * running.length);
      const [gone] = running.splice(j, 1);
      if (gone === undefined) break;
      if (gone.devices.kind === 'allocated') {
        fresh.release(gone.devices.devices);
        if (nodes && gone.devices.node !== undefined) fresh.adjustNodeFree(gone.devices.node, gone.cpuMilli, 0);
      }
      load -= gone.gpus;
    }
    const o = fresh.allocate({ claims: [pod.claim], ...podOf(pod) });
    if (o.kind === 'allocated') {
      fresh.commit(o);
      running.push({ gpus: pod.gpus, cpuMilli: pod.cpuMilli, devices: o });
      load += pod.gpus;
    } else depFailures++;
  }
  return {
    policy,
    points,
    firstFailurePct,
    claimsPerSec: pods.length / elapsed,
    p99Ms: percentile(times, 0.99),
    maxMs: times[times.length - 1] ?? 0,
    buildMs,
    departures: { failures: depFailures, arrivals: rounds, unallocated: capacity - load },
  };
}

export async function runSharingBench(argv: readonly string[]): Promise<void> {
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv[seedAt + 1]) : 1;
  const policyAt = argv.indexOf('--policy');
  const only = policyAt >= 0 ? argv[policyAt + 1] : undefined;
  const policies: PolicyName[] = only === 'cascade' || only === 'first-fit' || only === 'best-fit' ? [only] : ['first-fit', 'best-fit', 'cascade'];
  const departures = !argv.includes('--no-departures');
  const nodes = traceFleet();
  const withCpu = !argv.includes('--no-cpu');
  const facts: NodeFacts[] | undefined = withCpu ? nodes.map((n) => ({ name: n.name, free: { cpu: String(n.cpu), memory: '1Ti' } })) : undefined;
  const t0 = performance.now();
  const slices = await simulatedFleetSlices(nodes);
  const built = (performance.now() - t0) / 1000;
  const capacity = nodes.reduce((s, n) => s + n.config.gpus.length, 0);
  const devices = slices.reduce((s, x) => s + (x.spec.devices?.length ?? 0), 0);
  const pods = podStream(capacity * (CHECKPOINTS[CHECKPOINTS.length - 1] ?? 1), seed);
  process.stdout.write(
    `sharing stream: ${nodes.length} nodes, ${capacity} GPUs, ${devices} devices in ${slices.length} slices built by pkg/inventory from simulated nvidia-smi in ${built.toFixed(1)} s; ` +
      `${pods.length} pods drawn from the openb trace's shapes (seed ${seed}), ${withCpu ? "with the trace's CPU per pod and node" : 'without CPU'}; node ${process.version}\n`,
  );
  const compareAt = argv.indexOf('--compare');
  const compare = compareAt >= 0 ? Number(argv[compareAt + 1]) : undefined;
  const results = policies.map((p) => runPolicy(p, slices, facts, capacity, pods, seed, { ...(compare ? { compare } : {}), departures }));
  const w = 14;
  const row = (label: string, cells: readonly string[]): void => void process.stdout.write(`${label.padEnd(44)}${cells.map((c) => c.padStart(w)).join('')}\n`);
  row(
    '',
    results.map((r) => r.policy),
  );
  for (const [i, pct] of CHECKPOINTS.entries()) {
    const at = results.map((r) => r.points[i]);
    row(
      `arrived ${Math.round(pct * 100)}%: GPUs allocated`,
      at.map((p) => (p ? p.allocated.toFixed(1) : '-')),
    );
    row(
      `             GPUs unallocated`,
      at.map((p) => (p ? p.unallocated.toFixed(1) : '-')),
    );
    row(
      `               of which whole GPUs free`,
      at.map((p) => (p ? String(p.wholeFree) : '-')),
    );
    const kinds = [...new Set(at.flatMap((p) => Object.keys(p?.failures ?? {})))].sort();
    row(
      `             failures`,
      at.map((p) => String(Object.values(p?.failures ?? {}).reduce((s, n) => s + n, 0))),
    );
    for (const k of kinds)
      row(
        `               ${k}`,
        at.map((p) => String(p?.failures[k] ?? 0)),
      );
  }
  const summary: [string, (r: PolicyResult) => string][] = [
    ['first failure at arrived demand (% of GPUs)', (r) => (r.firstFailurePct === undefined ? 'none' : r.firstFailurePct.toFixed(1))],
    ['claims/s', (r) => r.claimsPerSec.toFixed(0)],
    ['decision p99 (ms)', (r) => r.p99Ms.toFixed(2)],
    ['decision max (ms)', (r) => r.maxMs.toFixed(2)],
    ['allocator built from the slices (ms)', (r) => r.buildMs.toFixed(0)],
    [`departures, ${LOAD * 100}% load: failures/arrivals`, (r) => `${r.departures.failures}/${r.departures.arrivals}`],
    ['departures: GPUs unallocated at the end', (r) => r.departures.unallocated.toFixed(1)],
  ];
  for (const [label, cell] of summary) row(label, results.map(cell));
  const at100 = (p: PolicyName): number | undefined => results.find((r) => r.policy === p)?.points[CHECKPOINTS.indexOf(1.0)]?.unallocated;
  const c = at100('cascade');
  const b = at100('best-fit');
  const arrivedShares: number[] = [];
  let arrivedGpus = 0;
  for (const p of pods) {
    if (arrivedGpus >= capacity) break;
    arrivedGpus += p.gpus;
    if (p.milli !== undefined) arrivedShares.push(p.milli);
  }
  const bounds = shareWasteBounds(arrivedShares, arrivedGpus - capacity);
  process.stdout.write(
    `\npacking the ${arrivedShares.length} shares that arrived by 100%, all known in advance and CPU ignored: best-fit decreasing leaves ${bounds.offline.toFixed(1)} GPUs unused on the GPUs it fills; ` +
      `a packing that places all of them cannot leave less than ${bounds.placed.toFixed(1)} (linear-programming bound); refusing large shares so that the rest fit, no less than ${bounds.refused.toFixed(1)} GPUs stay unallocated\n`,
  );
  if (c !== undefined && b !== undefined && b > 0) {
    process.stdout.write(
      `at 100% arrival Cascade leaves ${(c / b).toFixed(2)}x the unallocated GPU capacity best-fit leaves (target: at most 0.67x; the offline packing alone is ${(bounds.offline / b).toFixed(2)}x, ` +
        `the bound with every share placed ${(bounds.placed / b).toFixed(2)}x, with shares refused ${(bounds.refused / b).toFixed(2)}x)\n`,
    );
    if (b > bounds.offline) process.stdout.write(`beyond the offline packing's waste, Cascade leaves ${((c - bounds.offline) / (b - bounds.offline)).toFixed(2)}x what best-fit leaves\n`);
  }
}
