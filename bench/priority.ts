// Priority benchmark (npm run bench:priority): a stream with two priorities and
// departures over a fleet built by the real inventory code, run with the
// features off (pending pods wait in priority order) and on (a high-priority
// pod that fits nowhere evicts the cheapest low-priority pods on one node,
// chosen by the controller's own planPreemption; evicted pods go back to the
// queue and start over), in one run, the same arrivals and lifetimes in both.
//
// Time is counted in ticks: each tick a Poisson number of pods arrives, every
// running pod ends with its lifetime, and the queue is tried in order (high
// priority first, then by arrival). Printed per mode: high- and low-priority
// wait from arrival to placement (p50/p99/max, in ticks), mean GPU capacity in
// use, pods placed and evicted. Shapes: 1 GPU (45%), a MIG 3g slice (20%),
// 2 GPUs (20%), 4 GPUs (10%), 8 GPUs (5%); 20% of pods are high priority.
// With the features on, every 10 ticks the first waiting pod that fits nowhere is
// also served by moves when it can be (the defragmenter's serveWithMoves, as the
// controller's --defrag-interval does): half of the low-priority pods are movable.
// Usage: npx tsx bench/priority.ts [--nodes 200] [--ticks 3000] [--load 1.1] [--seed 1]
import { performance } from 'node:perf_hooks';
import { Allocator, type AllocatedDeviceRef } from '../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../pkg/api/deviceclasses.js';
import type { ResourceClaim } from '../pkg/api/resource.js';
import { planPreemption, type VictimCandidate } from '../pkg/controller/preemption.js';
import { serveWithMoves, type Mover } from '../pkg/cli/defrag.js';
import { fleetNode, fleetNodeFacts, simulatedFleetSlices, type SimulatedNode } from '../hack/fake-nvidia-smi/fleet.js';
import { seededRandom } from '../hack/seeded-random.js';

const D = 'gpu.cascade.dev';

interface Flags {
  nodes: number;
  ticks: number;
  load: number;
  seed: number;
}

function flags(argv: readonly string[]): Flags {
  const f: Flags = { nodes: 200, ticks: 3000, load: 1.1, seed: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = Number(argv[i + 1]);
    if (argv[i] === '--nodes') f.nodes = v;
    else if (argv[i] === '--ticks') f.ticks = v;
    else if (argv[i] === '--load') f.load = v;
    else if (argv[i] === '--seed') f.seed = v;
  }
  return f;
}

interface Job {
  readonly id: number;
  readonly high: boolean;
  readonly arrival: number;
  readonly lifetime: number;
  readonly units: number;
  readonly claim: ResourceClaim;
}

const SHAPES: readonly (readonly [number, string, number])[] = [
  [45, 'gpu', 1],
  [20, 'mig', 0.5],
  [20, 'gpu2', 2],
  [10, 'gpu4', 4],
  [5, 'gpu8', 8],
];

function claimFor(id: number, kind: string): ResourceClaim {
  const nv = [{ matchAttribute: `${D}/nvlinkDomain` }];
  const spec =
    kind === 'mig'
      ? { devices: { requests: [{ name: 'g', exactly: { deviceClassName: `mig.${D}`, selectors: [{ cel: { expression: `device.attributes["${D}"].profile == "3g.40gb"` } }] } }] } }
      : { devices: { requests: [{ name: 'g', exactly: { deviceClassName: `gpu.${D}`, count: kind === 'gpu' ? 1 : Number(kind.slice(3)) } }], ...(kind === 'gpu' ? {} : { constraints: nv }) } };
  return { metadata: { name: `job-${id}`, namespace: 'bench', uid: `uid-${id}` }, spec };
}

function stream(f: Flags, capacity: number): Job[] {
  const rand = seededRandom(f.seed);
  const life = seededRandom(f.seed ^ 0x9e3779b9);
  const meanUnits = SHAPES.reduce((s, [w, , u]) => s + w * u, 0) / SHAPES.reduce((s, [w]) => s + w, 0);
  const meanLife = 200;
  // Little's law: arrivals per tick x mean lifetime x mean size = load x capacity.
  const rate = (f.load * capacity) / (meanLife * meanUnits);
  const jobs: Job[] = [];
  let id = 0;
  for (let t = 0; t < f.ticks; t++) {
    // Poisson arrivals by inversion.
    let n = 0;
    for (let p = Math.exp(-rate), s = p, u = rand(); u > s;) {
      n++;
      p *= rate / n;
      s += p;
    }
    for (let k = 0; k < n; k++) {
      let r = rand() * 100;
      let shape = SHAPES[0]!;
      for (const sh of SHAPES) {
        r -= sh[0];
        if (r <= 0) {
          shape = sh;
          break;
        }
      }
      const high = rand() < 0.2;
      jobs.push({ id, high, arrival: t, lifetime: Math.max(1, Math.round(-meanLife * Math.log(1 - life()))), units: shape[2], claim: claimFor(id, shape[1]) });
      id++;
    }
  }
  return jobs;
}

interface Running {
  readonly job: Job;
  readonly devices: readonly AllocatedDeviceRef[];
  readonly node: string;
  readonly ends: number;
}

interface Figures {
  readonly mode: string;
  readonly highWait: readonly number[];
  readonly lowWait: readonly number[];
  readonly utilization: number;
  readonly placed: number;
  readonly evicted: number;
  readonly moves: number;
  readonly highPlaced: number;
  readonly seconds: number;
}

function pct(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
}

function simulate(mode: 'off' | 'on', jobs: readonly Job[], nodes: readonly SimulatedNode[], allocator: Allocator, ticks: number): Figures {
  const started = performance.now();
  const running = new Map<number, Running>();
  let queue: { job: Job; since: number }[] = [];
  const highWait: number[] = [];
  const lowWait: number[] = [];
  let next = 0;
  let utilSum = 0;
  let placed = 0;
  let evicted = 0;
  let moves = 0;
  let highPlaced = 0;
  const place = (job: Job, t: number, since: number): boolean => {
    const o = allocator.allocate({ claims: [job.claim], observeDemand: false });
    if (o.kind !== 'allocated') return false;
    allocator.commit(o);
    running.set(job.id, { job, devices: o.devices, node: o.node ?? '', ends: t + job.lifetime });
    (job.high ? highWait : lowWait).push(t - since);
    placed++;
    if (job.high) highPlaced++;
    return true;
  };
  for (let t = 0; t < ticks; t++) {
    for (const [id, r] of running) {
      if (r.ends > t) continue;
      allocator.release(r.devices);
      running.delete(id);
    }
    while (next < jobs.length && (jobs[next]?.arrival ?? Infinity) <= t) {
      const j = jobs[next++];
      if (j) queue.push({ job: j, since: j.arrival });
    }
    queue.sort((a, b) => Number(b.job.high) - Number(a.job.high) || a.since - b.since || a.job.id - b.job.id);
    const waiting: typeof queue = [];
    for (const q of queue) {
      if (place(q.job, t, q.since)) continue;
      if (mode === 'on' && q.job.high) {
        const candidates: VictimCandidate[] = [...running.values()]
          .filter((r) => !r.job.high)
          .map((r) => ({ key: String(r.job.id), uid: String(r.job.id), node: r.node, priority: 0, refs: r.devices, milliCpu: 0, memoryBytes: 0 }));
        const plan = planPreemption(allocator, { claims: [q.job.claim] }, candidates);
        if (plan) {
          for (const v of plan.victims) {
            const r = running.get(Number(v.key));
            if (!r) continue;
            allocator.release(r.devices);
            running.delete(r.job.id);
            evicted++;
            // Evicted: back to the queue, waiting from now (its work is lost).
            waiting.push({ job: r.job, since: t });
          }
          if (place(q.job, t, q.since)) continue;
        }
      }
      waiting.push(q);
    }
    queue = waiting;
    if (mode === 'on' && t % 10 === 0)
      moves += defragOnce(allocator, queue, running, t, (job, since) => {
        (job.high ? highWait : lowWait).push(t - since);
        placed++;
        if (job.high) highPlaced++;
      });
    const u = allocator.usage();
    utilSum += u.units > 0 ? u.used / u.units : 0;
  }
  for (const r of running.values()) allocator.release(r.devices);
  void nodes;
  return {
    mode,
    highWait: highWait.sort((a, b) => a - b),
    lowWait: lowWait.sort((a, b) => a - b),
    utilization: utilSum / ticks,
    placed,
    evicted,
    moves,
    highPlaced,
    seconds: (performance.now() - started) / 1000,
  };
}

/** One defragmentation step: the first waiting pod that moves can serve; returns the moves made. */
function defragOnce(allocator: Allocator, queue: { job: Job; since: number }[], running: Map<number, Running>, t: number, waited: (job: Job, since: number) => void): number {
  const movers: Mover[] = [...running.values()]
    .filter((r) => !r.job.high && r.job.id % 2 === 0)
    .map((r) => ({ key: String(r.job.id), node: r.node, refs: r.devices, request: { claims: [r.job.claim], observeDemand: false } }));
  if (movers.length === 0) return 0;
  for (let i = 0; i < queue.length && i < 4; i++) {
    const q = queue[i];
    if (!q) continue;
    const r = serveWithMoves(allocator, { claims: [q.job.claim], observeDemand: false }, movers);
    if (!r.ok) continue;
    running.set(q.job.id, { job: q.job, devices: r.served.devices, node: r.served.node ?? '', ends: t + q.job.lifetime });
    waited(q.job, q.since);
    for (const { v, o } of r.placed) {
      const old = running.get(Number(v.key));
      if (old) running.set(old.job.id, { ...old, devices: o.devices, node: o.node ?? '' });
    }
    queue.splice(i, 1);
    return r.placed.length;
  }
  return 0;
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2));
  const nodes = Array.from({ length: f.nodes }, (_v, i) => fleetNode(`node-${String(i).padStart(4, '0')}`, 'H100-80GB', 8, { mig: i % 2 === 0 ? 'whole' : 'dynamic' }));
  const slices = await simulatedFleetSlices(nodes);
  const jobs = stream(f, f.nodes * 8);
  const high = jobs.filter((j) => j.high).length;
  process.stdout.write(
    `fleet: ${f.nodes} nodes x 8 H100 (half whole, half dynamic MIG); ${jobs.length} pods over ${f.ticks} ticks (${high} high priority), offered load ${f.load} x capacity, mean lifetime 200 ticks; seed ${f.seed}; node ${process.version}\n\n`,
  );
  const results = (['off', 'on'] as const).map((mode) => {
    const allocator = new Allocator({ slices, classes: cascadeDeviceClasses(), nodes: nodes.map((n) => fleetNodeFacts(n)) }, { policy: 'cascade' });
    return simulate(mode, jobs, nodes, allocator, f.ticks);
  });
  const rows: [string, (x: Figures) => string][] = [
    ['high-priority wait p50 (ticks)', (x) => String(pct(x.highWait, 50))],
    ['high-priority wait p99 (ticks)', (x) => String(pct(x.highWait, 99))],
    ['high-priority wait max (ticks)', (x) => String(x.highWait[x.highWait.length - 1] ?? 0)],
    ['low-priority wait p50 (ticks)', (x) => String(pct(x.lowWait, 50))],
    ['low-priority wait p99 (ticks)', (x) => String(pct(x.lowWait, 99))],
    ['mean GPU capacity in use', (x) => `${(100 * x.utilization).toFixed(1)}%`],
    ['pods placed (high)', (x) => `${x.placed} (${x.highPlaced})`],
    ['preemptions (low-priority pods evicted)', (x) => String(x.evicted)],
    ['moves (defragmentation)', (x) => String(x.moves)],
    ['simulation time (s)', (x) => x.seconds.toFixed(1)],
  ];
  const w = Math.max(...rows.map(([l]) => l.length));
  process.stdout.write(`${''.padEnd(w)}  ${'features off'.padStart(16)}  ${'preempt + defrag'.padStart(16)}\n`);
  for (const [label, get] of rows) process.stdout.write(`${label.padEnd(w)}  ${results.map((r) => get(r).padStart(16)).join('  ')}\n`);
}

await main();
