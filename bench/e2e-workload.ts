// The end-to-end benchmark's fleet and workload, shared with the decision
// benchmark (bench/decisions.ts) so that both measure the same thing: node types
// of 8 GPUs (H100 and H200 with dynamic MIG, A100 with half its GPUs in MIG
// mode), the claim templates of the pod mix, and the seeded streams.
import type { ResourceClaimTemplate } from '../pkg/api/resource.js';
import { ATTR, qualify } from '../pkg/api/devicemodel.js';
import type { FakeConfig } from '../hack/fake-nvidia-smi/testing.js';

export const DRIVER = 'gpu.cascade.dev';

/** Arrived demand as a share of the fleet's GPU capacity. */
export const STREAMS: Readonly<Record<string, number>> = { fit: 0.6, over: 1.5 };

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export const NODE_TYPES: { name: string; share: number; fleet: FakeConfig }[] = [
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

/** The workload mix: template name, share of pods, GPUs it asks for (nominal, to size the streams), claim spec. */
export const WORKLOADS: { name: string; share: number; gpus: number; spec: ResourceClaimTemplate['spec']['spec'] }[] = [
  { name: 'full', share: 0.12, gpus: 1, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } },
  {
    name: 'mig-1g',
    share: 0.4,
    gpus: 1 / 8,
    spec: { devices: { requests: [{ name: 'mig', exactly: { deviceClassName: `mig.${DRIVER}`, selectors: sel(`${attr('profile')}.startsWith("1g.") && !${attr('profile')}.endsWith("+me")`) } }] } },
  },
  {
    name: 'mig-3g',
    share: 0.18,
    gpus: 1 / 2,
    spec: { devices: { requests: [{ name: 'mig', exactly: { deviceClassName: `mig.${DRIVER}`, selectors: sel(`${attr('profile')}.startsWith("3g.")`) } }] } },
  },
  {
    name: 'nvlink-2',
    share: 0.08,
    gpus: 2,
    spec: {
      devices: { requests: [{ name: 'gpus', exactly: { deviceClassName: `gpu.${DRIVER}`, count: 2 } }], constraints: [{ requests: ['gpus'], matchAttribute: qualify(DRIVER, ATTR.nvlinkDomain) }] },
    },
  },
  {
    name: 'nvlink-4',
    share: 0.04,
    gpus: 4,
    spec: {
      devices: { requests: [{ name: 'gpus', exactly: { deviceClassName: `gpu.${DRIVER}`, count: 4 } }], constraints: [{ requests: ['gpus'], matchAttribute: qualify(DRIVER, ATTR.nvlinkDomain) }] },
    },
  },
  {
    name: 'prefs',
    share: 0.18,
    gpus: 1,
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

export function streamOf(name: string, capacity: number, seed: number): string[] {
  const target = STREAMS[name];
  if (target === undefined) throw new Error(`unknown stream ${name} (fit, over)`);
  const meanGpus = WORKLOADS.reduce((a, w) => a + w.share * w.gpus, 0);
  const count = Math.round((target * capacity) / meanGpus);
  const rand = rng(seed);
  return Array.from({ length: count }, () => {
    let x = rand();
    for (const w of WORKLOADS) if ((x -= w.share) < 0) return w.name;
    return WORKLOADS[0]?.name ?? 'full';
  });
}
