// Side by side on the real control plane: the same stream of GPU pods placed
// through Cascade (webhook gate + controller) and then by the kube-scheduler's
// built-in DRA allocator alone. Prints pods/s, creation-to-bound latency and
// the share of pods that could not be placed. Usage:
//   npm run bench:e2e -- [--nodes 100] [--pods 2000] [--seed 1] [--settle 20] [--modes cascade,kube-scheduler]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ControlPlane, createFakeNode, freePort } from '../pkg/cluster/controlplane.js';
import { repoRoot } from '../pkg/cluster/binaries.js';
import { runController } from '../pkg/controller/run.js';
import { MUTATING_WEBHOOK_CONFIGURATIONS } from '../pkg/controller/webhook.js';
import type { DeviceClass, ResourceClaim, ResourceClaimTemplate } from '../pkg/api/resource.js';
import { ATTR, qualify } from '../pkg/api/devicemodel.js';
import { Informer } from '../pkg/k8s/informer.js';
import { RESOURCES, type Kube } from '../pkg/k8s/resources.js';
import type { Pod } from '../pkg/k8s/types.js';
import { NvidiaSmiBackend } from '../pkg/nvidia/smi-backend.js';
import type { Discovery } from '../pkg/nvidia/backend.js';
import { buildDesiredSlices } from '../pkg/inventory/index.js';
import { SlicePublisher } from '../pkg/publish/publisher.js';
import { createFakeNvidiaSmi, fakeNvidiaSmiBuilt, type FakeConfig } from '../hack/fake-nvidia-smi/testing.js';
import { rootLogger } from '../pkg/log/logger.js';

// Decisions are logged at info; a benchmark only wants problems.
rootLogger().level = process.env.CASCADE_LOG_LEVEL ?? 'warn';

const DRIVER = 'gpu.cascade.dev';
const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    pods: { type: 'string', default: '2000' },
    seed: { type: 'string', default: '1' },
    settle: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '16' },
    modes: { type: 'string', default: 'cascade,kube-scheduler' },
  },
});
const NODES = Number(args.nodes);
const PODS = Number(args.pods);
const SETTLE_MS = Number(args.settle) * 1000;
const CONCURRENCY = Number(args.concurrency);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const NODE_TYPES: { name: string; share: number; fleet: FakeConfig }[] = [
  {
    name: 'h100',
    share: 0.5,
    fleet: {
      driverVersion: '580.105.08',
      cudaVersion: '13.0',
      gpus: Array.from({ length: 8 }, (_v, i) => ({ model: 'H100-80GB', migMode: 'Disabled' as const, numaNode: i < 4 ? 0 : 1 })),
      nvlinkGroups: [[0, 1, 2, 3, 4, 5, 6, 7]],
    },
  },
  {
    name: 'a100',
    share: 0.25,
    fleet: {
      driverVersion: '570.148.08',
      cudaVersion: '12.8',
      gpus: Array.from({ length: 8 }, (_v, i) => ({ model: 'A100-SXM4-40GB', migMode: i < 4 ? ('Enabled' as const) : ('Disabled' as const), numaNode: i < 4 ? 0 : 1 })),
      nvlinkGroups: [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
      ],
    },
  },
  {
    name: 'h200',
    share: 0.25,
    fleet: {
      driverVersion: '580.105.08',
      cudaVersion: '13.0',
      gpus: Array.from({ length: 8 }, (_v, i) => ({ model: 'H200-141GB', migMode: 'Disabled' as const, numaNode: i < 4 ? 0 : 1 })),
      nvlinkGroups: [[0, 1, 2, 3, 4, 5, 6, 7]],
    },
  },
];

const sel = (expr: string): { cel: { expression: string } }[] => [{ cel: { expression: expr } }];
const attr = (name: string): string => `device.attributes["${DRIVER}"].${name}`;

/** The workload mix: template name, share of pods, claim spec. */
const WORKLOADS: { name: string; share: number; spec: ResourceClaimTemplate['spec']['spec'] }[] = [
  { name: 'full', share: 0.12, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } },
  {
    name: 'mig-1g',
    share: 0.4,
    spec: { devices: { requests: [{ name: 'mig', exactly: { deviceClassName: `mig.${DRIVER}`, selectors: sel(`${attr('profile')}.startsWith("1g.") && !${attr('profile')}.endsWith("+me")`) } }] } },
  },
  { name: 'mig-3g', share: 0.18, spec: { devices: { requests: [{ name: 'mig', exactly: { deviceClassName: `mig.${DRIVER}`, selectors: sel(`${attr('profile')}.startsWith("3g.")`) } }] } } },
  {
    name: 'nvlink-2',
    share: 0.08,
    spec: {
      devices: { requests: [{ name: 'gpus', exactly: { deviceClassName: `gpu.${DRIVER}`, count: 2 } }], constraints: [{ requests: ['gpus'], matchAttribute: qualify(DRIVER, ATTR.nvlinkDomain) }] },
    },
  },
  {
    name: 'nvlink-4',
    share: 0.04,
    spec: {
      devices: { requests: [{ name: 'gpus', exactly: { deviceClassName: `gpu.${DRIVER}`, count: 4 } }], constraints: [{ requests: ['gpus'], matchAttribute: qualify(DRIVER, ATTR.nvlinkDomain) }] },
    },
  },
  {
    name: 'prefs',
    share: 0.18,
    spec: {
      devices: {
        requests: [
          {
            name: 'acc',
            firstAvailable: [
              { name: 'h200', deviceClassName: `gpu.${DRIVER}`, selectors: sel(`${attr('productName')}.contains("H200")`) },
              { name: 'two-a100', deviceClassName: `gpu.${DRIVER}`, count: 2, selectors: sel(`${attr('productName')}.contains("A100")`) },
              { name: 'mig-3g', deviceClassName: `mig.${DRIVER}`, selectors: sel(`${attr('profile')}.startsWith("3g.")`) },
            ],
          },
        ],
        constraints: [{ requests: ['acc/two-a100'], matchAttribute: qualify(DRIVER, ATTR.nvlinkDomain) }],
      },
    },
  },
];

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

interface PhaseResult {
  readonly mode: string;
  readonly created: number;
  readonly bound: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
  readonly gpuShare: number;
  /** Devices held by more than one claim at the end (must be 0). */
  readonly doubleBooked: number;
}

function printRow(r: PhaseResult): void {
  console.log(
    `${r.mode.padEnd(16)} ${String(r.bound).padStart(10)}   ${(((r.created - r.bound) / r.created) * 100).toFixed(1).padStart(7)}%   ${(r.bound / Math.max(r.seconds, 0.001)).toFixed(1).padStart(6)}   ${r.p50.toFixed(2).padStart(5)}   ${r.p99.toFixed(2).padStart(5)}   ${(r.gpuShare * 100).toFixed(1).padStart(6)}%   ${String(r.doubleBooked).padStart(6)}`,
  );
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

/** Devices that appear in the allocations of more than one claim. */
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

/** GPU capacity units held by allocated claims: 1 per whole GPU, memory slices / 8 per MIG partition (keyed by pool/device). */
function gpuUnits(claims: readonly ResourceClaim[], sizes: ReadonlyMap<string, number>): number {
  let units = 0;
  for (const c of claims) for (const r of c.status?.allocation?.devices?.results ?? []) units += sizes.get(`${r.pool}/${r.device}`) ?? 1;
  return units;
}

async function runPhase(kube: Kube, mode: 'cascade' | 'kube-scheduler', order: readonly string[], sizes: ReadonlyMap<string, number>, capacity: number): Promise<PhaseResult> {
  const ns = `bench-${mode}`;
  await kube.namespaces.create({ metadata: { name: ns, labels: { 'cascade-bench': mode } } });
  for (const w of WORKLOADS) await kube.resourceClaimTemplates.create({ metadata: { name: w.name, namespace: ns }, spec: { spec: w.spec } });

  let stopController: (() => Promise<void>) | undefined;
  if (mode === 'cascade') {
    const port = await freePort();
    await kube.api(MUTATING_WEBHOOK_CONFIGURATIONS).create({
      metadata: { name: 'cascade-bench-gate' },
      webhooks: [
        {
          name: `gate.${DRIVER}`,
          clientConfig: { url: `https://127.0.0.1:${port}/mutate-pods` },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
          namespaceSelector: { matchLabels: { 'cascade-bench': 'cascade' } },
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
        },
      ],
    } as never);
    const running = await runController({
      kubeconfig: process.env.CASCADE_BENCH_KUBECONFIG,
      driver: DRIVER,
      namespace: ns,
      identity: 'bench',
      policy: 'cascade',
      workers: 8,
      httpPort: 0,
      httpHost: '127.0.0.1',
      leaderElection: false,
      leaseName: 'bench',
      leaseDurationSeconds: 15,
      webhook: { port, host: '127.0.0.1', serviceName: 'cascade-webhook', secretName: 'cascade-webhook-tls', configName: 'cascade-bench-gate', extraIpAddresses: ['127.0.0.1'] },
    });
    stopController = async () => {
      await running.stop();
      await kube.api(MUTATING_WEBHOOK_CONFIGURATIONS).delete('cascade-bench-gate');
    };
  }

  const createdAt = new Map<string, number>();
  const boundAt = new Map<string, number>();
  let lastBind = Date.now();
  const pods = new Informer<Pod>(kube.client, RESOURCES.pods, { namespace: ns });
  const seen = (p: Pod): void => {
    const name = p.metadata.name ?? '';
    if (p.spec.nodeName && !boundAt.has(name)) {
      boundAt.set(name, Date.now());
      lastBind = Date.now();
    }
  };
  pods.on({ add: seen, update: (_o, p) => seen(p) });
  pods.start();
  await pods.waitForSync();

  const started = Date.now();
  await pool(order, CONCURRENCY, async (workload, i) => {
    const name = `p${String(i).padStart(5, '0')}-${workload}`;
    createdAt.set(name, Date.now());
    await kube.pods.create({
      metadata: { name, namespace: ns },
      spec: {
        containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', resources: { requests: { cpu: '100m', memory: '256Mi' }, claims: [{ name: 'c' }] } }],
        resourceClaims: [{ name: 'c', resourceClaimTemplateName: workload }],
        terminationGracePeriodSeconds: 0,
      },
    });
  });
  process.stderr.write(`  ${mode}: ${order.length} pods created in ${((Date.now() - started) / 1000).toFixed(1)}s; waiting for the placements to settle\n`);
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline && boundAt.size < order.length && Date.now() - lastBind < SETTLE_MS) {
    await new Promise((r) => setTimeout(r, 500));
  }
  pods.stop();
  const latencies = [...boundAt].map(([n, t]) => (t - (createdAt.get(n) ?? t)) / 1000).sort((a, b) => a - b);
  const last = Math.max(...boundAt.values(), started);
  const claims = await kube.resourceClaims.list(ns);
  const result: PhaseResult = {
    mode,
    created: order.length,
    bound: boundAt.size,
    seconds: (last - started) / 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    gpuShare: gpuUnits(claims, sizes) / capacity,
    doubleBooked: doubleBooked(claims),
  };

  // Print at once: the figures must survive whatever happens during cleanup.
  printRow(result);

  // Clean up so the next phase starts from an empty fleet.
  process.stderr.write(`  ${mode}: cleaning up\n`);
  await pool(await kube.pods.list(ns), CONCURRENCY, async (p) => {
    await kube.pods.delete(p.metadata.name ?? '', ns, { gracePeriodSeconds: 0 }).catch(() => undefined);
  });
  const cleanDeadline = Date.now() + 300_000;
  while (Date.now() < cleanDeadline && (await kube.resourceClaims.list(ns)).length > 0) await new Promise((r) => setTimeout(r, 1000));
  await stopController?.();
  await kube.namespaces.delete(ns).catch(() => undefined);
  return result;
}

async function main(): Promise<void> {
  if (!fakeNvidiaSmiBuilt()) throw new Error('run `npm run build` first: the nvidia-smi simulator runs from dist/');
  process.stderr.write(`bench:e2e: ${NODES} nodes x 8 GPUs, ${PODS} pods, seed ${args.seed}\n`);
  const cp = await ControlPlane.start({ progress: (l) => process.stderr.write(`  ${l}\n`) });
  process.env.CASCADE_BENCH_KUBECONFIG = cp.adminKubeconfigPath;
  const kube = cp.kube();
  try {
    const models = await discoverModels();
    const classes = YAML.parseAllDocuments(readFileSync(join(repoRoot(), 'manifests', 'base', 'deviceclasses.yaml'), 'utf8')).map((d) => d.toJSON() as DeviceClass);
    for (const dc of classes) await kube.deviceClasses.create(dc);
    const nodes: { name: string; type: string }[] = [];
    let acc = 0;
    for (const t of NODE_TYPES) {
      const n = Math.round(NODES * (acc + t.share)) - Math.round(NODES * acc);
      acc += t.share;
      for (let i = 0; i < n; i++) nodes.push({ name: `${t.name}-${String(i).padStart(3, '0')}`, type: t.name });
    }
    const sizes = new Map<string, number>();
    process.stderr.write(`  publishing ResourceSlices for ${nodes.length} nodes\n`);
    await pool(nodes, 8, async (n) => {
      await createFakeNode(kube, n.name, { cpu: '224', memory: '2Ti', pods: '250' });
      const discovery = models.get(n.type);
      if (!discovery) throw new Error(`no discovery for ${n.type}`);
      const desired = buildDesiredSlices({ nodeName: n.name, driverName: DRIVER, discovery });
      for (const s of desired)
        for (const d of s.spec.devices ?? []) {
          const size = d.attributes?.[qualify(DRIVER, ATTR.placementSize)]?.int;
          // Keyed by node: the same partition name has other sizes on other boards (1g.10gb on A100 vs H100).
          if (size !== undefined) sizes.set(`${n.name}/${d.name}`, size / 8);
        }
      await new SlicePublisher(kube, { driver: DRIVER, nodeName: n.name }).publish(desired);
    });
    const capacity = nodes.length * 8;
    const rand = rng(Number(args.seed));
    const order = Array.from({ length: PODS }, () => {
      let x = rand();
      for (const w of WORKLOADS) {
        if ((x -= w.share) < 0) return w.name;
      }
      return WORKLOADS[0]?.name ?? 'full';
    });
    const mix = WORKLOADS.map((w) => `${w.name} ${Math.round(w.share * 100)}%`).join(', ');
    console.log(`\nbench:e2e on Kubernetes ${cp.version}: ${nodes.length} nodes x 8 GPUs (${NODE_TYPES.map((t) => `${Math.round(t.share * 100)}% ${t.name}`).join(', ')}), ${PODS} pods (${mix})`);
    console.log('mode             pods bound   unplaced   pods/s   p50 s   p99 s   GPU allocated   double-booked');
    const modes = (args.modes ?? '').split(',');
    if (modes.includes('cascade')) await runPhase(kube, 'cascade', order, sizes, capacity);
    if (modes.includes('kube-scheduler')) await runPhase(kube, 'kube-scheduler', order, sizes, capacity);
  } finally {
    kube.close();
    await cp.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:e2e failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
