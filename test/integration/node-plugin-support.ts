// Shared by the node-plugin integration tests: per-file temp directories for
// the kubelet's sockets and the plugin's state, claims allocated by hand on
// the real API server, and the CDI schema.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import type { ResourceClaim } from '../../pkg/api/resource.js';
import type { Kube } from '../../pkg/k8s/resources.js';
import type { NodePluginConfig } from '../../pkg/nodeplugin/config.js';
import type { FakeNvidiaSmi } from '../../hack/fake-nvidia-smi/testing.js';
import { fakeMpsControlPath } from '../../hack/fake-mps-control/testing.js';
import { NvidiaSmiBackend } from '../../pkg/nvidia/smi-backend.js';
import { eventually } from '../support/cluster.js';
import { KubeletStandin } from '../support/kubelet-standin.js';
import { type GpuSelection, PASSTHROUGH_OFF } from '../../pkg/nodeplugin/passthrough.js';

/** The real nvidia-smi backend pointed at a simulator (its config travels in the environment). */
export function backendFor(smi: FakeNvidiaSmi): NvidiaSmiBackend {
  return new NvidiaSmiBackend({ path: smi.path, env: { ...smi.env } });
}

export interface PluginDirs {
  readonly root: string;
  readonly registryDir: string;
  readonly pluginsDir: string;
  readonly cdiRoot: string;
  readonly stateDir: string;
  cleanup(): void;
}

/** Short paths under /tmp: unix socket paths must stay under 108 bytes. */
export function pluginDirs(): PluginDirs {
  const root = mkdtempSync('/tmp/np-');
  return {
    root,
    registryDir: join(root, 'reg'),
    pluginsDir: join(root, 'plg'),
    cdiRoot: join(root, 'cdi'),
    stateDir: join(root, 'state'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export function pluginConfig(driverName: string, nodeName: string, dirs: PluginDirs, smi: FakeNvidiaSmi, over: Partial<NodePluginConfig> = {}): NodePluginConfig {
  return {
    nvidiaSmiPath: smi.path,
    nvidiaSmiTimeoutMs: 30_000,
    // No driver files in tests unless a test points these at a fake root.
    driverRoot: join(dirs.root, 'no-driver'),
    hostDriverRoot: '/',
    nodeName,
    driverName,
    dryRun: false,
    kubeconfig: undefined,
    pluginsDir: dirs.pluginsDir,
    registryDir: dirs.registryDir,
    cdiRoot: dirs.cdiRoot,
    stateDir: dirs.stateDir,
    dynamicMig: true,
    healthPort: undefined,
    healthHost: '127.0.0.1',
    pollIntervalMs: 60_000,
    healthIntervalMs: 60_000,
    migMinorsPath: smi.migMinorsPath,
    onCorruptCheckpoint: 'fail',
    sharing: {},
    mpsControlPath: fakeMpsControlPath(),
    mpsRoot: join(dirs.stateDir, 'mps'),
    sysfsRoot: '/sys',
    devRoot: '/dev',
    passthrough: PASSTHROUGH_OFF,
    ...over,
  };
}

/** Registers with a (re)started plugin process; retried because a killed plugin leaves its socket file behind. */
export async function registerWith(dirs: PluginDirs, driver: string): Promise<KubeletStandin> {
  return await eventually(
    'the plugin to serve its registration socket',
    async () => {
      try {
        return await KubeletStandin.discover({ registryDir: dirs.registryDir, driverName: driver, timeoutMs: 2000 });
      } catch {
        return undefined;
      }
    },
    60_000,
  );
}

/** Command-line flags for the same configuration, for the plugin as a child process. */
export function pluginArgs(config: NodePluginConfig, kubeconfig: string): string[] {
  return [
    `--nvidia-smi=${config.nvidiaSmiPath}`,
    `--node-name=${config.nodeName}`,
    `--driver-name=${config.driverName}`,
    `--kubeconfig=${kubeconfig}`,
    `--plugins-dir=${config.pluginsDir}`,
    `--registry-dir=${config.registryDir}`,
    `--cdi-root=${config.cdiRoot}`,
    `--state-dir=${config.stateDir}`,
    `--poll-interval=${config.pollIntervalMs}ms`,
    `--health-interval=${config.healthIntervalMs}ms`,
    `--mps-control=${config.mpsControlPath}`,
    `--mps-root=${config.mpsRoot}`,
    `--sysfs-root=${config.sysfsRoot}`,
    `--dev-root=${config.devRoot}`,
    `--passthrough-pool=${selection(config.passthrough.pool)}`,
    `--passthrough-switchable=${selection(config.passthrough.switchable)}`,
  ];
}

function selection(s: GpuSelection): string {
  return s === 'all' ? 'all' : s.length === 0 ? 'none' : s.join(',');
}

/**
 * A claim for a share of a shared GPU, allocated as a 1.36 allocator writes it
 * (a share ID, the consumed memory and compute), by writing status.allocation as admin.
 */
export async function allocatedShare(
  kube: Kube,
  o: { namespace: string; name: string; driver: string; node: string; device: string; memory: string; compute: string; sharing?: Record<string, unknown> },
): Promise<ResourceClaim> {
  const q = (n: string): string => `${o.driver}/${n}`;
  const config = o.sharing ? [{ requests: ['gpu'], opaque: { driver: o.driver, parameters: { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', sharing: o.sharing } } }] : undefined;
  const capacity = { [q('memory')]: o.memory, [q('compute')]: o.compute };
  await kube.resourceClaims.create({
    metadata: { name: o.name, namespace: o.namespace },
    spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `shared.${o.driver}`, capacity: { requests: capacity } } }], ...(config ? { config } : {}) } },
  });
  return await kube.resourceClaims.mergePatch(
    o.name,
    {
      status: {
        allocation: {
          devices: {
            results: [{ request: 'gpu', driver: o.driver, pool: o.node, device: o.device, shareID: randomUUID(), consumedCapacity: capacity }],
            ...(config ? { config: config.map((c) => ({ source: 'FromClaim', ...c })) } : {}),
          },
          nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [o.node] }] }] },
        },
      },
    },
    o.namespace,
    'status',
  );
}

/** A claim with one request per device, allocated to those devices by writing status.allocation as admin. */
export async function allocatedClaim(kube: Kube, ns: string, name: string, driver: string, node: string, devices: readonly string[], sharing?: Record<string, unknown>): Promise<ResourceClaim> {
  const requests = devices.map((_d, i) => ({ name: `r${i}`, exactly: { deviceClassName: `gpu.${driver}` } }));
  const config = sharing ? [{ opaque: { driver, parameters: { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig', sharing } } }] : undefined;
  const created = await kube.resourceClaims.create({ metadata: { name, namespace: ns }, spec: { devices: { requests, ...(config ? { config } : {}) } } });
  return await kube.resourceClaims.mergePatch(
    name,
    {
      status: {
        allocation: {
          devices: {
            results: devices.map((device, i) => ({ request: `r${i}`, driver, pool: node, device })),
            ...(config ? { config: config.map((c) => ({ source: 'FromClaim', ...c })) } : {}),
          },
          nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] },
        },
      },
    },
    created.metadata.namespace,
    'status',
  );
}

export function refOf(claim: ResourceClaim): { namespace: string; name: string; uid: string } {
  return { namespace: claim.metadata.namespace ?? '', name: claim.metadata.name ?? '', uid: claim.metadata.uid ?? '' };
}

/** Total GPU instances in the simulator's state. */
export function instanceCount(smi: FakeNvidiaSmi): number {
  return smi.readState().gpus.reduce((n, g) => n + g.gpuInstances.length, 0);
}

const schema = JSON.parse(readFileSync(new URL('../fixtures/cdi-schema.json', import.meta.url), 'utf8')) as object;
const validateCdi = new Ajv({ allErrors: true, strict: true }).compile(schema);

/** Problems of every CDI spec file in dir against the CDI schema (empty when all are valid). */
export async function cdiSchemaProblems(dir: string): Promise<{ files: number; problems: string[] }> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  const problems: string[] = [];
  for (const n of names) {
    const doc: unknown = JSON.parse(readFileSync(join(dir, n), 'utf8'));
    if (!validateCdi(doc)) problems.push(`${n}: ${JSON.stringify(validateCdi.errors)}`);
  }
  return { files: names.length, problems };
}
