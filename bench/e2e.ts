// End to end on the real control plane, side by side: the same streams of GPU
// pods placed through Cascade (webhook gate + controller), through Cascade with
// the webhook off (ungated pods: the controller races the kube-scheduler), and
// by the kube-scheduler's built-in DRA allocator alone. For each fleet size it
// prints pods/s, creation-to-bound and creation-to-prepared latency, pods and
// GPU capacity unplaced, API writes per pod by kind, the API server's request
// rate, and the controller's (and scheduler's) CPU seconds and peak RSS.
//
// The fleet: Node objects with 8 GPUs each (H100 and H200 with dynamic MIG,
// A100 with half its GPUs in MIG mode). A few sample nodes run the real node
// plugin process (nvidia-smi simulator, gRPC sockets) with the kubelet
// stand-in preparing what lands there; every other node's ResourceSlices come
// from a light publisher in this process, built by the same inventory code
// the plugin uses (1,000 plugin processes would not fit in 24 GiB).
//
// Usage:
//   npm run bench:e2e -- [--nodes 100,300,1000] [--streams fit,over]
//     [--modes cascade,no-webhook,kube-scheduler] [--seed 1] [--sample 3]
//     [--settle 20] [--limit 600] [--builtin-limit S] [--concurrency 16] [--rate R]
// --rate: pods arrive at R per second on average (seeded Poisson arrivals), the way a
// cluster's pods do, instead of all at once. A burst measures how fast the control plane
// drains a queue: a pod's time to bound is then mostly its place in the line. A rate it
// keeps up with measures how long one pod waits. Both are printed with the rate they ran at.
// --limit: seconds a Cascade phase may take from its first pod's creation; it ends earlier
// once no pod was bound for --settle seconds. The phases in which the kube-scheduler
// allocates (alone, or racing Cascade with the webhook off) run to --builtin-limit.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlPlane, createFakeNode, freePort, writeServiceAccountKubeconfig } from '../pkg/cluster/controlplane.js';
import type { ResourceClaim } from '../pkg/api/resource.js';
import { ATTR, qualify } from '../pkg/api/devicemodel.js';
import { Informer } from '../pkg/k8s/informer.js';
import { RESOURCES, type Kube } from '../pkg/k8s/resources.js';
import type { Pod } from '../pkg/k8s/types.js';
import { NvidiaSmiBackend } from '../pkg/nvidia/smi-backend.js';
import type { Discovery } from '../pkg/nvidia/backend.js';
import { buildDesiredSlices, type DesiredSlice } from '../pkg/inventory/index.js';
import { SlicePublisher } from '../pkg/publish/publisher.js';
import { createFakeNvidiaSmi, fakeNvidiaSmiBuilt } from '../hack/fake-nvidia-smi/testing.js';
import { DRIVER, NODE_TYPES, STREAMS, WORKLOADS, rng, streamOf } from './e2e-workload.js';
import { rootLogger } from '../pkg/log/logger.js';
import { ADDON_NAMESPACE, applyServerSide, Component, renderManifests, webhookToUrl } from '../test/support/addon.js';
import { nodesPublished, startGpuNode, type GpuNode } from '../test/support/gpu-node.js';
import { useControlPlane } from '../test/support/tools.js';

// Decisions are logged at info; a benchmark only wants problems.
rootLogger().level = process.env.CASCADE_LOG_LEVEL ?? 'warn';

const GATED = { 'cascade-bench': 'gated' };
const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    streams: { type: 'string', default: 'fit,over' },
    modes: { type: 'string', default: 'cascade,no-webhook,kube-scheduler' },
    seed: { type: 'string', default: '1' },
    sample: { type: 'string', default: '3' },
    settle: { type: 'string', default: '20' },
    limit: { type: 'string', default: '600' },
    'builtin-limit': { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    rate: { type: 'string' },
  },
});
const NODE_COUNTS = (args.nodes ?? '100').split(',').map(Number);
const SAMPLE = Number(args.sample);
const SETTLE_MS = Number(args.settle) * 1000;
const LIMIT_MS = Number(args.limit) * 1000;
/** The built-in allocator may get less time: at 1,000 nodes it binds a pod every few seconds. */
const BUILTIN_LIMIT_MS = Number(args['builtin-limit'] ?? args.limit) * 1000;
const CONCURRENCY = Number(args.concurrency);
/** Mean arrivals per second; undefined: every pod at once (as fast as CONCURRENCY clients create them). */
const RATE = args.rate === undefined ? undefined : Number(args.rate);
if (RATE !== undefined && !(RATE > 0)) throw new Error(`--rate must be a positive number of pods per second, not ${args.rate}`);
const MODES = ['cascade', 'no-webhook', 'kube-scheduler'] as const;
type Mode = (typeof MODES)[number];

async function pool<T>(items: readonly T[], n: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Pod creations refused with a server error (a webhook call that failed, say), each retried as a ReplicaSet would. */
let createRetries = 0;

async function createRetrying<T>(create: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (err) {
      const code = (err as { code?: number }).code ?? 0;
      if (attempt >= 5 || code < 500) throw err;
      createRetries++;
      process.stderr.write(`  pod creation refused (${String(err)}); retrying\n`);
      await sleep(200 * attempt);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** CPU seconds (user + system) and peak RSS in MiB of a local process, from /proc. */
function procUsage(pid: number | undefined): { cpu: number; peakMiB: number } {
  if (pid === undefined) return { cpu: NaN, peakMiB: NaN };
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime), counted from after the command name; clock ticks of 1/100 s.
    const cpu = (Number(fields[11]) + Number(fields[12])) / 100;
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { cpu, peakMiB: hwm ? Number(hwm[1]) / 1024 : NaN };
  } catch {
    return { cpu: NaN, peakMiB: NaN };
  }
}

/**
 * The API server's request counters (apiserver_request_total), keyed "resource[/subresource] VERB",
 * and the seconds it spent on them (apiserver_request_duration_seconds_sum) under "seconds KEY".
 */
async function apiRequests(kube: Kube): Promise<Map<string, number>> {
  const text = await kube.client.request<string>('GET', '/metrics');
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const total = line.startsWith('apiserver_request_total{');
    if (!total && !line.startsWith('apiserver_request_duration_seconds_sum{')) continue;
    const labels = new Map([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
    const sub = labels.get('subresource');
    const key = `${total ? '' : 'seconds '}${labels.get('resource') ?? '?'}${sub ? `/${sub}` : ''} ${labels.get('verb') ?? '?'}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

interface Histogram {
  count: number;
  sum: number;
  /** Cumulative counts by upper bound. */
  readonly buckets: Map<number, number>;
}

/** A histogram from a Prometheus text page, summed over its label sets. */
function histogram(text: string, name: string): Histogram {
  const h: Histogram = { count: 0, sum: 0, buckets: new Map() };
  for (const line of text.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith(`${name}_count`)) h.count += value;
    else if (line.startsWith(`${name}_sum`)) h.sum += value;
    else if (line.startsWith(`${name}_bucket`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      const bound = le === '+Inf' ? Infinity : Number(le);
      h.buckets.set(bound, (h.buckets.get(bound) ?? 0) + value);
    }
  }
  return h;
}

/** The smallest bucket bound that holds a share q of the observations (q = 1: the bound of the largest). */
function bucketBound(h: Histogram, q: number): number {
  for (const [bound, n] of [...h.buckets].sort((a, b) => a[0] - b[0])) if (n >= q * h.count) return bound;
  return NaN;
}

/** What the controller says of itself: decisions, index rebuilds, event-loop lag. */
async function controllerFigures(httpPort: number): Promise<string> {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then(
    (r) => r.text(),
    () => '',
  );
  if (!text) return 'no metrics';
  const d = histogram(text, 'cascade_decision_seconds');
  const r = histogram(text, 'cascade_inventory_rebuild_seconds');
  const lag = /^cascade_controller_nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text)?.[1];
  const ms = (v: number): string => (Number.isFinite(v) ? `${(v * 1000).toFixed(v < 0.01 ? 1 : 0)} ms` : 'over 1 s');
  return (
    `${d.count} decisions, mean ${ms(d.sum / Math.max(d.count, 1))}, p99 <= ${ms(bucketBound(d, 0.99))}, max <= ${ms(bucketBound(d, 1))}; ` +
    `${r.count} index rebuilds, ${r.sum.toFixed(1)} s in all, longest <= ${ms(bucketBound(r, 1))}; event-loop lag max ${Number(lag ?? NaN).toFixed(2)} s`
  );
}

/** The controller logs each decision over 100 ms with its wall and CPU time: how many, and the slowest five. */
function slowDecisions(log: string): string {
  const slow: { ms: number; cpuMs: number; lists: number; for: string }[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('slow allocation decision')) continue;
    try {
      const e = JSON.parse(line) as { ms?: number; cpuMs?: number; newDeviceLists?: number; for?: string };
      slow.push({ ms: e.ms ?? NaN, cpuMs: e.cpuMs ?? NaN, lists: e.newDeviceLists ?? 0, for: e.for ?? '?' });
    } catch {
      // Not a JSON line (a crash trace, say): not a decision.
    }
  }
  if (slow.length === 0) return 'no decision took over 100 ms';
  slow.sort((a, b) => b.ms - a.ms);
  const top = slow.slice(0, 5).map((d) => `${d.ms} ms (CPU ${d.cpuMs} ms, ${d.lists} new device lists, ${d.for})`);
  return `${slow.length} decisions over 100 ms; slowest: ${top.join('; ')}`;
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);

function diff(after: ReadonlyMap<string, number>, before: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
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

/** Devices that appear in the allocations of more than one claim (must be 0). */
function doubleBooked(claims: readonly ResourceClaim[]): number {
  const seen = new Set<string>();
  let doubles = 0;
  for (const c of claims)
    for (const r of c.status?.allocation?.devices?.results ?? []) {
      const k = `${r.pool}/${r.device}`;
      if (seen.has(k)) doubles++;
      seen.add(k);
    }
  return doubles;
}

/** GPU capacity held by allocated claims: 1 per whole GPU, memory slices / 8 per MIG partition (keyed node/device). */
function gpuUnits(claims: readonly ResourceClaim[], sizes: ReadonlyMap<string, number>): number {
  let units = 0;
  for (const c of claims) for (const r of c.status?.allocation?.devices?.results ?? []) units += sizes.get(`${r.pool}/${r.device}`) ?? 1;
  return units;
}

/** Who wrote a claim's allocation: the field manager of its status (the kube-scheduler, or Cascade's client). */
function allocatedBy(c: ResourceClaim): string | undefined {
  if (!c.status?.allocation) return undefined;
  const fields = (c.metadata as { managedFields?: { manager?: string; subresource?: string; fieldsV1?: unknown }[] }).managedFields ?? [];
  const entries = fields.filter((f) => f.subresource === 'status' && JSON.stringify(f.fieldsV1 ?? {}).includes('"f:allocation"'));
  return entries.at(-1)?.manager;
}

/** Where the pods that did not get bound stand: gated or not, claim allocated or not, and the scheduler's last FailedScheduling note. */
async function whyUnbound(kube: Kube, ns: string, pods: readonly Pod[], claims: readonly ResourceClaim[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const waiting = pods.filter((p) => !p.spec.nodeName);
  if (waiting.length === 0) return out;
  const allocated = new Set(claims.filter((c) => c.status?.allocation).flatMap((c) => (c.metadata.ownerReferences ?? []).map((o) => o.name)));
  const lastWord = new Map<string, string>();
  for (const e of await kube.events.list(ns)) {
    if (e.reason !== 'FailedScheduling' || e.regarding.kind !== 'Pod') continue;
    lastWord.set(e.regarding.name ?? '', (e.note ?? '').replace(/\d+/g, 'N').slice(0, 140));
  }
  for (const p of waiting) {
    const name = p.metadata.name ?? '';
    const key = `${(p.spec.schedulingGates ?? []).length > 0 ? 'gated' : 'ungated'}, claim ${allocated.has(name) ? 'allocated' : 'not allocated'}${lastWord.has(name) ? `, scheduler: ${lastWord.get(name) ?? ''}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

interface Fleet {
  readonly kube: Kube;
  readonly nodes: number;
  readonly capacity: number;
  readonly sizes: ReadonlyMap<string, number>;
  readonly sampled: readonly GpuNode[];
  readonly controllerKubeconfig: string;
  readonly webhookPort: number;
  readonly pids: () => Partial<Record<string, number>>;
}

/** The steps of a pod's path, in order, as the benchmark's watches see them land. */
const STAGES = ['claim created', 'claim named in pod', 'finalizer', 'allocated', 'gate removed', 'reserved'] as const;
type Stage = (typeof STAGES)[number];

interface PhaseResult {
  readonly nodes: number;
  readonly stream: string;
  readonly mode: Mode;
  readonly created: number;
  readonly bound: number;
  /** From the first creation to the last bind. */
  readonly seconds: number;
  /** From the first creation to the end of the phase. */
  readonly wallSeconds: number;
  readonly bind: readonly number[];
  readonly prepare: readonly number[];
  readonly gpuShare: number;
  readonly writes: ReadonlyMap<string, number>;
  readonly requests: number;
  readonly controller: { cpu: number; peakMiB: number };
  /** The tail: when the pods bound after 5 s were created, and where the slowest of them waited. */
  readonly slowPods: string;
  readonly schedulerCpu: number;
  readonly apiserverCpu: number;
  readonly doubleBooked: number;
  readonly allocators: ReadonlyMap<string, number>;
  /** Decisions, index rebuilds and event-loop lag, from the controller's /metrics. */
  readonly controllerFigures: string | undefined;
  /** The controller's slow decisions (over 100 ms, from its log): how many, and the slowest with their CPU time. */
  readonly slowDecisions: string | undefined;
  /** Pod creations the API server refused with a server error and the benchmark retried. */
  readonly createRetries: number;
  /** CPU seconds of the other local processes: etcd, the controller manager, this benchmark (with the sample nodes' kubelet stand-ins). */
  readonly otherCpu: Readonly<Record<string, number>>;
  /** Mean API server latency (ms) of the most frequent writes. */
  readonly writeLatencyMs: readonly (readonly [string, number])[];
  /** The most frequent API requests of the phase, reads included. */
  readonly topRequests: readonly (readonly [string, number])[];
  /** Pods not bound at the end, counted by where they stand (gated, allocated, the scheduler's last word). */
  readonly unbound: ReadonlyMap<string, number>;
  /** Median seconds from creation to: the claim created, the claim allocated, the gate removed. */
  readonly stages: Readonly<Record<Stage, number>>;
}

const HEADER =
  'nodes  stream  mode            pods   bound  unplaced  GPU alloc  pods/s   bound p50/p99/max s   prepared n p50/p99/max s   writes/pod  API req/s  ctrl CPU s  ctrl RSS MiB  sched CPU s  apiserver CPU s  double';

function fmt(v: number, d = 2): string {
  return Number.isFinite(v) ? v.toFixed(d) : '-';
}

function row(r: PhaseResult): string {
  const b = r.bind;
  const p = r.prepare;
  const writes = [...r.writes.values()].reduce((a, v) => a + v, 0);
  return [
    String(r.nodes).padStart(5),
    r.stream.padEnd(6),
    r.mode.padEnd(14),
    String(r.created).padStart(6),
    String(r.bound).padStart(6),
    `${fmt(((r.created - r.bound) / r.created) * 100, 1)}%`.padStart(8),
    `${fmt(r.gpuShare * 100, 1)}%`.padStart(9),
    fmt(r.bound / Math.max(r.seconds, 0.001), 1).padStart(6),
    `${fmt(percentile(b, 50))}/${fmt(percentile(b, 99))}/${fmt(b.at(-1) ?? NaN)}`.padStart(20),
    `${String(p.length).padStart(4)} ${fmt(percentile(p, 50))}/${fmt(percentile(p, 99))}/${fmt(p.at(-1) ?? NaN)}`.padStart(25),
    fmt(writes / r.created).padStart(10),
    fmt(r.requests / Math.max(r.wallSeconds, 0.001), 0).padStart(9),
    fmt(r.controller.cpu, 1).padStart(10),
    fmt(r.controller.peakMiB, 0).padStart(12),
    fmt(r.schedulerCpu, 1).padStart(11),
    fmt(r.apiserverCpu, 1).padStart(15),
    String(r.doubleBooked).padStart(6),
  ].join('  ');
}

/**
 * The pods bound more than 5 s after their creation: how many, the span of
 * phase time in which they were created (one stall, or spread out), and for
 * the five slowest the seconds from creation to each step they reached.
 */
function slowPods(started: number, createdAt: ReadonlyMap<string, number>, boundAt: ReadonlyMap<string, number>, stages: Readonly<Record<Stage, ReadonlyMap<string, number>>>): string {
  const waited = [...boundAt]
    .map(([n, t]): [string, number, number] => [n, t - (createdAt.get(n) ?? t), (createdAt.get(n) ?? t) - started])
    .filter(([, w]) => w > 5_000)
    .sort((a, b) => b[1] - a[1]);
  if (waited.length === 0) return 'no pod took over 5 s to bind';
  const at = waited.map(([, , c]) => c / 1000).sort((a, b) => a - b);
  // Creation times in 30 s windows: a stall shows as one or two busy windows.
  const windows = new Map<number, number>();
  for (const c of at) windows.set(Math.floor(c / 30) * 30, (windows.get(Math.floor(c / 30) * 30) ?? 0) + 1);
  const busiest = [...windows]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([w, n]) => `${n} created in ${w}-${w + 30} s`)
    .join(', ');
  const detail = waited.slice(0, 5).map(([n, w, c]) => {
    const created = createdAt.get(n) ?? 0;
    const steps = STAGES.flatMap((k) => {
      const t = stages[k].get(n);
      return t === undefined ? [] : [`${k} ${fmt((t - created) / 1000)}`];
    });
    return `${n} (created at ${fmt(c / 1000, 0)} s): ${steps.join(', ')}, bound ${fmt(w / 1000)}`;
  });
  return `${waited.length} pods took over 5 s to bind, created between ${fmt(at[0] ?? 0, 0)} and ${fmt(at[at.length - 1] ?? 0, 0)} s into the phase (${busiest}); slowest: ${detail.join('; ')}`;
}

function writesLine(r: PhaseResult): string {
  const kinds = [...r.writes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / r.created).toFixed(2)}`);
  const by = r.mode === 'no-webhook' ? `; allocations written by ${[...r.allocators].map(([m, n]) => `${m} ${n}`).join(', ')}` : '';
  const steps = STAGES.filter((k) => Number.isFinite(r.stages[k])).map((k) => `${k} ${fmt(r.stages[k])}`);
  const stages = `median s from creation: ${steps.join(', ')}, bound ${fmt(percentile(r.bind, 50))}`;
  const cpu = Object.entries(r.otherCpu)
    .map(([k, v]) => `${k} ${fmt(v, 1)}`)
    .join(', ');
  const top = r.topRequests.map(([k, v]) => `${k} ${v}`).join(', ');
  const latency = r.writeLatencyMs.map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
  const unbound =
    r.unbound.size > 0
      ? `\n    not bound: ${[...r.unbound]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 5)
          .map(([k, n]) => `${n} ${k}`)
          .join('; ')}`
      : '';
  const refused = r.createRetries > 0 ? `; ${r.createRetries} creations refused and retried` : '';
  return `  ${r.nodes} ${r.stream} ${r.mode}: ${stages}${refused}\n    writes per pod: ${kinds.join(', ')}${by}${r.controllerFigures ? `\n    controller: ${r.controllerFigures}` : ''}${r.slowDecisions ? `\n    ${r.slowDecisions}` : ''}\n    tail: ${r.slowPods}\n    CPU s of the rest: ${cpu}; most requests: ${top}\n    mean API latency of writes, ms: ${latency}${unbound}`;
}

function controllerProcess(f: Fleet, name: string, httpPort: number, webhook: boolean): Component {
  return new Component(
    name,
    'cmd/controller/main.js',
    [
      `--kubeconfig=${f.controllerKubeconfig}`,
      `--namespace=${ADDON_NAMESPACE}`,
      `--identity=${name}`,
      `--http-port=${httpPort}`,
      '--http-host=127.0.0.1',
      // With the webhook off the controller takes claims in every namespace, racing the scheduler.
      ...(webhook ? [`--webhook-port=${f.webhookPort}`, '--webhook-host=127.0.0.1', '--webhook-ip=127.0.0.1'] : ['--webhook-port=-1']),
      '--no-leader-elect',
    ],
    { CASCADE_LOG_LEVEL: 'warn' },
  );
}

async function runPhase(f: Fleet, stream: string, mode: Mode, order: readonly string[]): Promise<PhaseResult> {
  const { kube } = f;
  const ns = `${stream}-${mode}`;
  await kube.namespaces.create({ metadata: { name: ns, labels: mode === 'cascade' ? GATED : {} } });
  for (const w of WORKLOADS) await kube.resourceClaimTemplates.create({ metadata: { name: w.name, namespace: ns }, spec: { spec: w.spec } });

  let controller: Component | undefined;
  const httpPort = await freePort();
  if (mode !== 'kube-scheduler') {
    controller = controllerProcess(f, `controller-${f.nodes}-${ns}`, httpPort, mode === 'cascade').start();
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${httpPort}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline || !controller.running) throw new Error(`the controller did not get ready; see ${controller.logFile}`);
      await sleep(250);
    }
  }

  const createdAt = new Map<string, number>();
  const boundAt = new Map<string, number>();
  let lastProgress = Date.now();
  const pods = new Informer<Pod>(kube.client, RESOURCES.pods, { namespace: ns });
  const seen = (p: Pod): void => {
    const name = p.metadata.name ?? '';
    if (p.spec.nodeName && !boundAt.has(name)) {
      boundAt.set(name, Date.now());
      lastProgress = Date.now();
    }
  };
  pods.on({ add: seen, update: (_o, p) => seen(p) });
  // Where the time goes: when each pod's claim appears, is allocated, and the pod loses its gate.
  const stages = Object.fromEntries(STAGES.map((k) => [k, new Map<string, number>()])) as Record<Stage, Map<string, number>>;
  const reached = (stage: Stage, pod: string): void => {
    if (!stages[stage].has(pod)) stages[stage].set(pod, Date.now());
  };
  const claimsWatch = new Informer<ResourceClaim>(kube.client, RESOURCES.resourceClaims, { namespace: ns });
  const claimSeen = (c: ResourceClaim): void => {
    const owner = c.metadata.ownerReferences?.find((o) => o.kind === 'Pod')?.name;
    if (!owner) return;
    reached('claim created', owner);
    if ((c.metadata.finalizers ?? []).length > 0) reached('finalizer', owner);
    if (c.status?.allocation) reached('allocated', owner);
    if ((c.status?.reservedFor ?? []).length > 0) reached('reserved', owner);
  };
  claimsWatch.on({ add: claimSeen, update: (_o, c) => claimSeen(c) });
  pods.on({
    update: (o, p) => {
      const name = p.metadata.name ?? '';
      if ((o.spec.schedulingGates ?? []).length > 0 && (p.spec.schedulingGates ?? []).length === 0) reached('gate removed', name);
      if ((p.status?.resourceClaimStatuses ?? []).some((s) => s.resourceClaimName)) reached('claim named in pod', name);
    },
  });
  pods.start();
  claimsWatch.start();
  await pods.waitForSync();
  await claimsWatch.waitForSync();

  const pid = (c: string): number | undefined => f.pids()[c];
  const others = (): Record<string, number> => ({
    etcd: procUsage(pid('etcd')).cpu,
    kcm: procUsage(pid('kube-controller-manager')).cpu,
    bench: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
  });
  const before = { api: await apiRequests(kube), ctrl: procUsage(controller?.pid), sched: procUsage(pid('kube-scheduler')), apiserver: procUsage(pid('kube-apiserver')), others: others() };
  const retriesBefore = createRetries;
  const arrivals = arrivalTimes(order.length, Number(args.seed));
  /** How far behind its arrival time the latest creation started (the clients could not keep up). */
  let lateMs = 0;
  const started = Date.now();
  // The kube-scheduler binds the pods of both other modes: where it allocates (alone, or racing
  // Cascade without the gate) a minute may pass between binds, so those phases run to their limit.
  const scheduled = mode !== 'cascade';
  const deadline = started + (scheduled ? BUILTIN_LIMIT_MS : LIMIT_MS);
  await pool(order, CONCURRENCY, async (workload, i) => {
    const name = `p${String(i).padStart(5, '0')}-${workload}`;
    const due = started + (arrivals[i] ?? 0);
    // Paced pods due after the phase's end never arrive.
    if (due > deadline) return;
    if (due > Date.now()) await sleep(due - Date.now());
    lateMs = Math.max(lateMs, Date.now() - due);
    createdAt.set(name, Date.now());
    await createRetrying(() =>
      kube.pods.create({
        metadata: { name, namespace: ns },
        spec: {
          containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', resources: { requests: { cpu: '100m', memory: '256Mi' }, claims: [{ name: 'c' }] } }],
          resourceClaims: [{ name: 'c', resourceClaimTemplateName: workload }],
          terminationGracePeriodSeconds: 0,
        },
      }),
    );
  });
  lastProgress = Math.max(lastProgress, Date.now());
  process.stderr.write(
    `  ${f.nodes} ${ns}: ${createdAt.size} pods created in ${((Date.now() - started) / 1000).toFixed(1)}s${RATE !== undefined ? ` (at most ${(lateMs / 1000).toFixed(1)} s behind their arrival times)` : ''}; waiting for placements to settle\n`,
  );
  while (Date.now() < deadline && boundAt.size < createdAt.size && (scheduled || Date.now() - lastProgress < SETTLE_MS)) await sleep(500);
  const ended = Date.now();
  // Pods bound on the sample nodes are prepared by their kubelet stand-ins: wait for those in flight.
  const sampledNames = new Set(f.sampled.map((n) => n.name));
  const onSample = (): string[] =>
    pods
      .list()
      .filter((p) => sampledNames.has(p.spec.nodeName ?? ''))
      .map((p) => `${ns}/${p.metadata.name ?? ''}`);
  const prepDeadline = Date.now() + 60_000;
  while (Date.now() < prepDeadline && onSample().some((k) => !f.sampled.some((n) => n.kubelet.results.has(k)))) await sleep(250);
  const after = { api: await apiRequests(kube), ctrl: procUsage(controller?.pid), sched: procUsage(pid('kube-scheduler')), apiserver: procUsage(pid('kube-apiserver')), others: others() };
  const ctrlFigures = controller ? await controllerFigures(httpPort) : undefined;
  const slow = controller ? slowDecisions(controller.log()) : undefined;
  pods.stop();
  claimsWatch.stop();
  const median = (m: ReadonlyMap<string, number>): number =>
    percentile(
      [...m].map(([n, t]) => (t - (createdAt.get(n) ?? t)) / 1000).sort((a, b) => a - b),
      50,
    );

  const last = Math.max(...boundAt.values(), started);
  const bind = [...boundAt].map(([n, t]) => (t - (createdAt.get(n) ?? t)) / 1000).sort((a, b) => a - b);
  const prepare = onSample()
    .map((k) => {
      const at = f.sampled.map((n) => n.kubelet.results.get(k)?.at).find((t) => t !== undefined);
      const created = createdAt.get(k.slice(ns.length + 1));
      return at !== undefined && created !== undefined ? (at - created) / 1000 : NaN;
    })
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const claims = await kube.resourceClaims.list(ns);
  const unbound = await whyUnbound(kube, ns, pods.list(), claims);
  const allocators = new Map<string, number>();
  for (const c of claims) {
    const m = allocatedBy(c);
    if (m) allocators.set(m, (allocators.get(m) ?? 0) + 1);
  }
  const all = diff(after.api, before.api);
  const api = new Map([...all].filter(([k]) => !k.startsWith('seconds ')));
  // Mean API latency of the writes, in ms: how long each step of a pod's path waits on the API server.
  const latency = [...api]
    .filter(([k]) => WRITE_VERBS.has(k.slice(k.lastIndexOf(' ') + 1)))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6)
    .map(([k, n]): [string, number] => [k, ((all.get(`seconds ${k}`) ?? 0) / n) * 1000]);
  const result: PhaseResult = {
    nodes: f.nodes,
    stream,
    mode,
    created: createdAt.size,
    bound: boundAt.size,
    seconds: (last - started) / 1000,
    wallSeconds: (ended - started) / 1000,
    bind,
    prepare,
    gpuShare: gpuUnits(claims, f.sizes) / f.capacity,
    writes: new Map([...api].filter(([k]) => WRITE_VERBS.has(k.slice(k.lastIndexOf(' ') + 1)))),
    requests: [...api.values()].reduce((a, v) => a + v, 0),
    controller: { cpu: after.ctrl.cpu - before.ctrl.cpu, peakMiB: after.ctrl.peakMiB },
    schedulerCpu: after.sched.cpu - before.sched.cpu,
    apiserverCpu: after.apiserver.cpu - before.apiserver.cpu,
    doubleBooked: doubleBooked(claims),
    allocators,
    unbound,
    createRetries: createRetries - retriesBefore,
    controllerFigures: ctrlFigures,
    slowDecisions: slow,
    otherCpu: Object.fromEntries(Object.entries(after.others).map(([k, v]) => [k, v - (before.others[k] ?? 0)])),
    topRequests: [...api].sort((a, b) => b[1] - a[1]).slice(0, 8),
    writeLatencyMs: latency,
    stages: Object.fromEntries(STAGES.map((k) => [k, median(stages[k])])) as Record<Stage, number>,
    slowPods: slowPods(started, createdAt, boundAt, stages),
  };
  // Print at once: the figures must survive whatever happens during cleanup.
  console.log(row(result));
  console.log(writesLine(result));

  // Clean up so the next phase starts from an empty fleet: the controller keeps running until the claims are gone.
  process.stderr.write(`  ${f.nodes} ${ns}: cleaning up\n`);
  // Thousands of pods: the collection delete may outlast a request's timeout; the namespace's deletion finishes the job.
  await kube.client
    .request('DELETE', `/api/v1/namespaces/${ns}/pods`, { body: { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 }, timeoutMs: 600_000 })
    .catch((err: unknown) => process.stderr.write(`  deleting the pods of ${ns}: ${String(err)}\n`));
  await kube.namespaces.delete(ns);
  const cleanDeadline = Date.now() + 600_000;
  while (Date.now() < cleanDeadline && (await kube.namespaces.list()).some((n) => n.metadata.name === ns)) await sleep(1000);
  for (const n of f.sampled) await n.kubelet.settle();
  await controller?.stop();
  return result;
}

async function buildFleet(cp: ControlPlane, count: number, models: ReadonlyMap<string, Discovery>): Promise<Fleet> {
  const kube = cp.kube();
  const webhookPort = await freePort();
  const applied = await applyServerSide(webhookToUrl(await renderManifests('dev'), `https://127.0.0.1:${webhookPort}/mutate-pods`, GATED));
  if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr}`);
  const controllerKubeconfig = await writeServiceAccountKubeconfig(cp.adminKubeconfigPath, ADDON_NAMESPACE, 'cascade-controller', join(cp.dir, 'controller.kubeconfig'));

  const nodes: { name: string; type: string }[] = [];
  let acc = 0;
  for (const t of NODE_TYPES) {
    const n = Math.round(count * (acc + t.share)) - Math.round(count * acc);
    acc += t.share;
    for (let i = 0; i < n; i++) nodes.push({ name: `${t.name}-${String(i).padStart(4, '0')}`, type: t.name });
  }
  // The sample: the first nodes of each type in turn run the real node plugin.
  const sampleNames = new Set<string>();
  for (let i = 0; sampleNames.size < Math.min(SAMPLE, nodes.length); i++) for (const t of NODE_TYPES) if (sampleNames.size < SAMPLE) sampleNames.add(`${t.name}-${String(i).padStart(4, '0')}`);
  const sizes = new Map<string, number>();
  const desiredFor = (n: { name: string; type: string }): DesiredSlice[] => {
    const discovery = models.get(n.type);
    if (!discovery) throw new Error(`no discovery for ${n.type}`);
    const desired = buildDesiredSlices({ nodeName: n.name, driverName: DRIVER, discovery });
    for (const s of desired)
      for (const d of s.spec.devices ?? []) {
        const size = d.attributes?.[qualify(DRIVER, ATTR.placementSize)]?.int;
        // Keyed by node: the same partition name has other sizes on other boards (1g.10gb on A100 vs H100).
        if (size !== undefined) sizes.set(`${n.name}/${d.name}`, size / 8);
      }
    return desired;
  };
  const sampled: GpuNode[] = [];
  for (const n of nodes.filter((x) => sampleNames.has(x.name))) {
    desiredFor(n);
    const fleet = NODE_TYPES.find((t) => t.name === n.type)?.fleet;
    if (!fleet) throw new Error(`no fleet for ${n.type}`);
    sampled.push(await startGpuNode(kube, { name: n.name, fleet, cpu: '224', memory: '2Ti' }));
  }
  const publishing = Date.now();
  process.stderr.write(`  ${count} nodes: ${sampled.length} run the node plugin; publishing ResourceSlices for the others\n`);
  await pool(
    nodes.filter((x) => !sampleNames.has(x.name)),
    32,
    async (n) => {
      await createFakeNode(kube, n.name, { cpu: '224', memory: '2Ti', pods: '250', labels: { 'cascade.dev/simulated-gpus': 'true' } });
      await new SlicePublisher(kube, { driver: DRIVER, nodeName: n.name }).publish(desiredFor(n));
    },
  );
  await nodesPublished(
    kube,
    nodes.map((n) => n.name),
    DRIVER,
    300_000,
  );
  process.stderr.write(`  ${count} nodes published in ${((Date.now() - publishing) / 1000).toFixed(1)}s\n`);
  return { kube, nodes: count, capacity: nodes.length * 8, sizes, sampled, controllerKubeconfig, webhookPort, pids: () => cp.pids() };
}

/**
 * Milliseconds from a phase's start at which each pod arrives: all at 0 without
 * --rate, else a seeded Poisson process of RATE per second (exponential gaps).
 */
function arrivalTimes(count: number, seed: number): number[] {
  if (RATE === undefined) return new Array<number>(count).fill(0);
  const rand = rng(seed ^ 0x5bd1e995);
  let t = 0;
  return Array.from({ length: count }, () => {
    const at = t;
    t += (-Math.log(1 - rand()) / RATE) * 1000;
    return at;
  });
}

async function main(): Promise<void> {
  if (!fakeNvidiaSmiBuilt()) throw new Error('run `npm run build` first: the node plugin and the nvidia-smi simulator run from dist/');
  const modes = (args.modes ?? '').split(',') as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`unknown mode ${m} (${MODES.join(', ')})`);
  const streams = (args.streams ?? '').split(',');
  const models = await discoverModels();
  const mix = WORKLOADS.map((w) => `${w.name} ${Math.round(w.share * 100)}%`).join(', ');
  const results: PhaseResult[] = [];
  for (const count of NODE_COUNTS) {
    process.stderr.write(`bench:e2e: ${count} nodes x 8 GPUs, streams ${streams.join(', ')}, modes ${modes.join(', ')}, seed ${args.seed}\n`);
    const cp = await ControlPlane.start({ progress: (l) => process.stderr.write(`  ${l}\n`) });
    useControlPlane(cp);
    let fleet: Fleet | undefined;
    try {
      fleet = await buildFleet(cp, count, models);
      console.log(
        `\nbench:e2e on Kubernetes ${cp.version}: ${count} nodes x 8 GPUs, pods arriving ${RATE === undefined ? 'all at once' : `at ${RATE}/s (Poisson)`} (${NODE_TYPES.map((t) => `${Math.round(t.share * 100)}% ${t.name}`).join(', ')}; dynamic MIG on H100/H200), ${fleet.sampled.length} with the real node plugin; pods: ${mix}`,
      );
      console.log(HEADER);
      for (const s of streams) {
        const order = streamOf(s, fleet.capacity, Number(args.seed));
        for (const m of modes) results.push(await runPhase(fleet, s, m, order));
      }
    } finally {
      for (const n of fleet?.sampled ?? []) await n.stop();
      fleet?.kube.close();
      await cp.stop();
    }
  }
  if (NODE_COUNTS.length > 1) {
    console.log(
      `\nAll sizes (streams: ${Object.entries(STREAMS)
        .map(([k, v]) => `${k} ${v * 100}%`)
        .join(', ')} of GPU capacity):`,
    );
    console.log(HEADER);
    for (const r of results) console.log(row(r));
  }
}

main().catch((err: unknown) => {
  console.error(`bench:e2e failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
