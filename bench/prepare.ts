// Prepare latency through the kubelet's real gRPC socket against the nvidia-smi
// simulator, and nvidia-smi calls per prepared device (counted by a wrapper
// around the simulator). Claims come from memory: no API server is involved.
// Run: npm run build && npm run bench:prepare [-- --cycles 100]
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { ResourceClaim } from '../pkg/api/resource.js';
import { repoRoot } from '../pkg/cluster/binaries.js';
import { KubeApiError } from '../pkg/k8s/client.js';
import { rootLogger } from '../pkg/log/logger.js';
import type { ClaimSource } from '../pkg/nodeplugin/claims.js';
import type { NodePluginConfig } from '../pkg/nodeplugin/config.js';
import { PASSTHROUGH_OFF } from '../pkg/nodeplugin/passthrough.js';
import { startNodePlugin } from '../pkg/nodeplugin/run.js';
import { NvidiaSmiBackend } from '../pkg/nvidia/smi-backend.js';
import { FLEETS, type FakeConfig, createFakeNvidiaSmi } from '../hack/fake-nvidia-smi/testing.js';
import { fakeMpsControlPath } from '../hack/fake-mps-control/testing.js';
import { KubeletStandin } from '../test/support/kubelet-standin.js';

const DRIVER = 'bench.cascade.dev';
const NODE = 'bench-node';

class MemoryClaims implements ClaimSource {
  readonly claims = new Map<string, ResourceClaim>();

  get(namespace: string, name: string): Promise<ResourceClaim> {
    const c = this.claims.get(`${namespace}/${name}`);
    if (!c) return Promise.reject(new KubeApiError(404, 'NotFound', `resourceclaims "${name}" not found`, 'GET', name));
    return Promise.resolve(c);
  }

  add(name: string, uid: string, devices: readonly string[]): { namespace: string; name: string; uid: string } {
    this.claims.set(`bench/${name}`, {
      metadata: { name, namespace: 'bench', uid },
      spec: { devices: { requests: devices.map((_d, i) => ({ name: `r${i}`, exactly: { deviceClassName: 'gpu' } })) } },
      status: { allocation: { devices: { results: devices.map((device, i) => ({ request: `r${i}`, driver: DRIVER, pool: NODE, device })) } } },
    });
    return { namespace: 'bench', name, uid };
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

interface Figures {
  readonly label: string;
  readonly prepares: number;
  readonly devicesPerClaim: number;
  readonly p50: number;
  readonly p99: number;
  readonly callsPerDevicePrepare: number;
  readonly callsPerDeviceUnprepare: number;
  readonly commands: ReadonlyMap<string, number>;
}

async function scenario(label: string, fleet: FakeConfig, claimDevices: readonly (readonly string[])[], cycles: number): Promise<Figures> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-prepare-'));
  const smi = createFakeNvidiaSmi(fleet, { dir });
  const callLog = path.join(dir, 'calls.log');
  writeFileSync(callLog, '');
  // A counting wrapper: logs its arguments, then runs the simulator in the same process.
  const wrapper = path.join(dir, 'nvidia-smi');
  const simMain = pathToFileURL(path.join(repoRoot(), 'dist', 'hack', 'fake-nvidia-smi', 'main.js')).href;
  writeFileSync(
    wrapper,
    `#!${process.execPath}\nimport { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(callLog)}, process.argv.slice(2).join(' ') + '\\n');\nawait import(${JSON.stringify(simMain)});\n`,
  );
  chmodSync(wrapper, 0o755);
  const claims = new MemoryClaims();
  const config: NodePluginConfig = {
    nvidiaSmiPath: wrapper,
    nvidiaSmiTimeoutMs: 30_000,
    // The simulator has no driver files to mount.
    driverRoot: path.join(dir, 'no-driver'),
    hostDriverRoot: '/',
    onCorruptCheckpoint: 'fail',
    nodeName: NODE,
    driverName: DRIVER,
    dryRun: false,
    kubeconfig: undefined,
    pluginsDir: path.join(dir, 'plg'),
    registryDir: path.join(dir, 'reg'),
    cdiRoot: path.join(dir, 'cdi'),
    stateDir: path.join(dir, 'state'),
    dynamicMig: true,
    healthPort: undefined,
    healthHost: '127.0.0.1',
    // No background discovery or health polls during the measurement.
    pollIntervalMs: 3_600_000,
    healthIntervalMs: 3_600_000,
    migMinorsPath: smi.migMinorsPath,
    sharing: {},
    mpsControlPath: fakeMpsControlPath(),
    mpsRoot: path.join(dir, 'state', 'mps'),
    sysfsRoot: '/sys',
    devRoot: '/dev',
    passthrough: PASSTHROUGH_OFF,
  };
  const plugin = await startNodePlugin(config, { kube: null, claims, backend: new NvidiaSmiBackend({ path: wrapper, env: { ...smi.env } }) });
  const kubelet = await KubeletStandin.discover({ registryDir: config.registryDir, driverName: DRIVER });
  const calls = (): string[] =>
    readFileSync(callLog, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
  const latencies: number[] = [];
  let prepareCalls = 0;
  let unprepareCalls = 0;
  const commands = new Map<string, number>();
  const warmup = 3;
  try {
    for (let i = 0; i < cycles + warmup; i++) {
      const devices = claimDevices[i % claimDevices.length] ?? [];
      const ref = claims.add(`c${i}`, `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, devices);
      const before = calls().length;
      const t0 = performance.now();
      const res = (await kubelet.prepare([ref])).get(ref.uid);
      const t1 = performance.now();
      if (!res || res.error) throw new Error(`prepare ${ref.name} failed: ${res?.error ?? 'no result'}`);
      const during = calls().slice(before);
      const mid = calls().length;
      const un = (await kubelet.unprepare([ref])).get(ref.uid);
      if (un?.error) throw new Error(`unprepare ${ref.name} failed: ${un.error}`);
      if (i < warmup) continue;
      latencies.push(t1 - t0);
      prepareCalls += during.length;
      unprepareCalls += calls().length - mid;
      for (const c of during) {
        const key = c.replace(/\d+/g, 'N');
        commands.set(key, (commands.get(key) ?? 0) + 1);
      }
    }
  } finally {
    kubelet.close();
    await plugin.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const perClaim = claimDevices[0]?.length ?? 1;
  return {
    label,
    prepares: latencies.length,
    devicesPerClaim: perClaim,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    callsPerDevicePrepare: prepareCalls / (latencies.length * perClaim),
    callsPerDeviceUnprepare: unprepareCalls / (latencies.length * perClaim),
    commands,
  };
}

async function main(): Promise<void> {
  // Figures on stdout, only problems on stderr.
  rootLogger().level = process.env.CASCADE_LOG_LEVEL ?? 'warn';
  const i = process.argv.indexOf('--cycles');
  const cycles = i > 0 ? Number(process.argv[i + 1]) : 50;
  if (!Number.isInteger(cycles) || cycles <= 0) throw new Error('--cycles takes a positive integer');
  const results: Figures[] = [];
  const gpus = Array.from({ length: 8 }, (_v, g) => [`gpu-${g}`]);
  results.push(await scenario('whole GPU (MIG off)', FLEETS.h100x8('Disabled'), gpus, cycles));
  const migs = ['gpu-0-mig-1g-10gb-0', 'gpu-1-mig-3g-40gb-4', 'gpu-2-mig-2g-20gb-2', 'gpu-3-mig-7g-80gb-0', 'gpu-4-mig-1g-20gb-6'].map((d) => [d]);
  results.push(await scenario('MIG partition (MIG on)', FLEETS.h100x8('Enabled'), migs, cycles));
  results.push(await scenario('4 MIG partitions in one claim', FLEETS.h100x8('Enabled'), [['gpu-5-mig-1g-10gb-0', 'gpu-5-mig-1g-10gb-1', 'gpu-6-mig-3g-40gb-0', 'gpu-7-mig-4g-40gb-0']], cycles));

  process.stdout.write(`prepare through the real gRPC socket, nvidia-smi simulator (8x H100), ${cycles} prepares each after 3 warm-up\n`);
  process.stdout.write(`${'scenario'.padEnd(32)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}  smi calls/device: prepare unprepare\n`);
  for (const r of results) {
    process.stdout.write(
      `${r.label.padEnd(32)} ${r.p50.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)}  ${r.callsPerDevicePrepare.toFixed(2).padStart(24)} ${r.callsPerDeviceUnprepare.toFixed(2).padStart(9)}\n`,
    );
  }
  for (const r of results) {
    if (r.commands.size === 0) continue;
    process.stdout.write(`\n${r.label}: nvidia-smi commands during prepare\n`);
    for (const [c, n] of [...r.commands].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${String(n).padStart(5)}  nvidia-smi ${c}\n`);
  }
}

await main();
