// Decision benchmark: the controller's allocator alone, on the end-to-end
// benchmark's fleet and pod mix (bench/e2e-workload.ts), without a control
// plane. Slices come from the node plugin's own inventory code over the
// nvidia-smi simulator's discovery, as in bench/e2e.ts. The index is built as
// the controller builds it on becoming the leader; then the fit stream's pods
// are decided one at a time and committed, as the controller's queue does.
// It prints the first decision (a cold process: selectors, caches and code
// meet the fleet for the first time), the first decision of each workload,
// and p50 / p99 / max over the stream, side by side for an index built cold
// (the baseline) and one warmed as the controller warms it (Allocator.warm).
// Each variant runs in its own child process, so neither inherits the other's
// compiled code or heap.
// Usage: npm run bench:decisions -- [--nodes 100,300,1000] [--seed 1] [--pods N]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Allocator } from '../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../pkg/api/deviceclasses.js';
import type { ResourceClaim, ResourceSlice } from '../pkg/api/resource.js';
import type { Discovery } from '../pkg/nvidia/backend.js';
import { NvidiaSmiBackend } from '../pkg/nvidia/smi-backend.js';
import { buildDesiredSlices } from '../pkg/inventory/index.js';
import { createFakeNvidiaSmi, fakeNvidiaSmiBuilt } from '../hack/fake-nvidia-smi/testing.js';
import { DRIVER, NODE_TYPES, WORKLOADS, streamOf } from './e2e-workload.js';

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100,300,1000' },
    seed: { type: 'string', default: '1' },
    pods: { type: 'string' },
    child: { type: 'string' },
  },
});

interface Figures {
  nodes: number;
  devices: number;
  buildMs: number;
  pods: number;
  allocated: number;
  firstMs: number;
  firstByWorkload: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
  over100: number;
  slowest: string;
}

async function discoverModels(): Promise<Map<string, Discovery>> {
  const out = new Map<string, Discovery>();
  for (const t of NODE_TYPES) {
    const sim = createFakeNvidiaSmi(t.fleet);
    try {
      out.set(t.name, await new NvidiaSmiBackend({ path: sim.path, env: sim.env }).discover());
    } finally {
      sim.cleanup();
    }
  }
  return out;
}

/** The e2e fleet's slices, named and versioned as an informer hands them out. */
function fleetSlices(count: number, models: ReadonlyMap<string, Discovery>): ResourceSlice[] {
  const slices: ResourceSlice[] = [];
  let acc = 0;
  for (const t of NODE_TYPES) {
    const n = Math.round(count * (acc + t.share)) - Math.round(count * acc);
    acc += t.share;
    const discovery = models.get(t.name);
    if (discovery === undefined) throw new Error(`no discovery for ${t.name}`);
    for (let i = 0; i < n; i++) {
      const nodeName = `${t.name}-${String(i).padStart(4, '0')}`;
      for (const [k, d] of buildDesiredSlices({ nodeName, driverName: DRIVER, discovery }).entries()) {
        const name = `${nodeName}-${DRIVER}-${k}`;
        slices.push({
          apiVersion: 'resource.k8s.io/v1',
          kind: 'ResourceSlice',
          metadata: { name, uid: `uid-${name}`, resourceVersion: '1' },
          spec: { ...d.spec, pool: { ...d.spec.pool, generation: 1 } },
        });
      }
    }
  }
  return slices;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

async function child(nodes: number, warm: boolean): Promise<Figures> {
  const models = await discoverModels();
  const slices = fleetSlices(nodes, models);
  const nodeNames = [...new Set(slices.map((s) => s.spec.nodeName ?? ''))];
  const t0 = performance.now();
  const allocator = new Allocator({ slices, classes: cascadeDeviceClasses(), nodes: nodeNames.map((name) => ({ name, allocatable: { cpu: '224', memory: '2Ti', pods: '250' } })), allocated: [] });
  if (warm) allocator.warm();
  const buildMs = performance.now() - t0;
  const stream = streamOf('fit', nodeNames.length * 8, Number(args.seed));
  const count = args.pods === undefined ? stream.length : Math.min(stream.length, Number(args.pods));
  const times: number[] = [];
  const firstByWorkload: Record<string, number> = {};
  let allocated = 0;
  let slowest = { ms: 0, what: '' };
  for (let i = 0; i < count; i++) {
    const w = WORKLOADS.find((x) => x.name === stream[i]);
    if (w === undefined) continue;
    const claim: ResourceClaim = { apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaim', metadata: { namespace: 'bench', name: `p${i}-${w.name}`, uid: `c${i}` }, spec: w.spec };
    const started = performance.now();
    const outcome = allocator.allocate({ claims: [claim], pod: { namespace: 'bench', name: `p${i}`, cpu: '1', memory: '1Gi' } });
    if (outcome.kind !== 'unallocated') allocator.commit(outcome);
    const ms = performance.now() - started;
    times.push(ms);
    firstByWorkload[w.name] ??= ms;
    if (outcome.kind !== 'unallocated') allocated++;
    if (ms > slowest.ms) slowest = { ms, what: `#${i} ${w.name}` };
  }
  const sorted = [...times].sort((a, b) => a - b);
  return {
    nodes: nodeNames.length,
    devices: allocator.inventory.devices.length,
    buildMs,
    pods: count,
    allocated,
    firstMs: times[0] ?? 0,
    firstByWorkload,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? 0,
    over100: times.filter((t) => t > 100).length,
    slowest: slowest.what,
  };
}

function main(): void {
  if (!fakeNvidiaSmiBuilt()) throw new Error('run `npm run build` first: discovery runs the nvidia-smi simulator from dist/');
  const sizes = (args.nodes ?? '').split(',').map(Number);
  process.stdout.write(`allocator decisions on the e2e fleet and fit stream, one child process per variant; node ${process.version}\n`);
  const cols = ['nodes', 'devices', 'index', 'build+warm ms', 'pods', 'allocated', 'first ms', 'p50 ms', 'p99 ms', 'max ms', '>100 ms', 'slowest'];
  process.stdout.write(cols.map((c) => c.padStart(14)).join('') + '   first of each workload (ms)\n');
  const self = fileURLToPath(import.meta.url);
  for (const n of sizes) {
    for (const variant of ['cold', 'warmed']) {
      const r = spawnSync(
        process.execPath,
        [...process.execArgv, self, '--child', variant, '--nodes', String(n), '--seed', args.seed ?? '1', ...(args.pods !== undefined ? ['--pods', args.pods] : [])],
        {
          encoding: 'utf8',
          maxBuffer: 64 << 20,
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      if (r.status !== 0) throw new Error(`child ${variant} at ${n} nodes failed (${r.status ?? r.signal})`);
      const f = JSON.parse(r.stdout) as Figures;
      const row = [f.nodes, f.devices, variant, f.buildMs.toFixed(0), f.pods, f.allocated, f.firstMs.toFixed(1), f.p50.toFixed(2), f.p99.toFixed(2), f.max.toFixed(1), f.over100, f.slowest].map(
        String,
      );
      const firsts = Object.entries(f.firstByWorkload)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ');
      process.stdout.write(row.map((c) => c.padStart(14)).join('') + `   ${firsts}\n`);
    }
  }
}

if (args.child !== undefined) {
  const f = await child(Number(args.nodes), args.child === 'warmed');
  process.stdout.write(JSON.stringify(f));
} else {
  main();
}
