// `npm run demo [-- --once]`: a local Kubernetes 1.36 control plane, a small
// mixed fleet of fake GPU nodes (nvidia-smi simulator, the real node plugin,
// a kubelet stand-in), the Cascade add-on from manifests/, the examples from
// examples/, and a summary of what got allocated where and why.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ControlPlane, freePort, writeServiceAccountKubeconfig } from '../pkg/cluster/controlplane.js';
import { repoRoot } from '../pkg/cluster/binaries.js';
import { fleetRows, renderFleet, renderTable } from '../pkg/cli/fleet.js';
import { KubeApiError } from '../pkg/k8s/client.js';
import type { Kube } from '../pkg/k8s/resources.js';
import type { EventV1, Pod } from '../pkg/k8s/types.js';
import type { ResourceClaim } from '../pkg/api/resource.js';
import { rootLogger } from '../pkg/log/logger.js';
import { FLEETS, fakeNvidiaSmiBuilt, type FakeConfig } from './fake-nvidia-smi/testing.js';
import { ADDON_NAMESPACE, applyServerSide, controllerProcess, renderManifests, webhookToUrl, type Component } from '../test/support/addon.js';
import { startGpuNode, type GpuNode } from '../test/support/gpu-node.js';
import { useControlPlane } from '../test/support/tools.js';

const DRIVER = 'gpu.cascade.dev';
const NAMESPACE = 'cascade-demo';
const { values: args } = parseArgs({ options: { once: { type: 'boolean', default: false }, timeout: { type: 'string', default: '120' } } });
rootLogger().level = process.env.CASCADE_LOG_LEVEL ?? 'warn';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const step = (line: string): void => void process.stdout.write(`\n==> ${line}\n`);

const FLEET: { name: string; what: string; fleet: FakeConfig }[] = [
  { name: 'gpu-h100-0', what: '8x H100 80GB, one NVLink domain, MIG on demand', fleet: FLEETS.h100x8('Disabled') },
  {
    name: 'gpu-a100-0',
    what: '4x A100 40GB, NVLink pairs 0-1 and 2-3',
    fleet: {
      driverVersion: '570.148.08',
      cudaVersion: '12.8',
      gpus: Array.from({ length: 4 }, () => ({ model: 'A100-SXM4-40GB', migMode: 'Disabled' as const, numaNode: 0 })),
      nvlinkGroups: [
        [0, 1],
        [2, 3],
      ],
    },
  },
  {
    name: 'gpu-a100-mig-0',
    what: '2x A100 40GB with MIG enabled (partitions only)',
    fleet: {
      driverVersion: '570.148.08',
      cudaVersion: '12.8',
      gpus: [
        { model: 'A100-SXM4-40GB', migMode: 'Enabled' as const, numaNode: 0 },
        { model: 'A100-SXM4-40GB', migMode: 'Enabled' as const, numaNode: 1 },
      ],
    },
  },
];

type Doc = Record<string, unknown> & { kind?: string; metadata?: { name?: string; namespace?: string } };

function exampleDocs(): { file: string; docs: Doc[] }[] {
  const dir = join(repoRoot(), 'examples');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => ({
      file,
      docs: YAML.parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => ({ ...(d.toJSON() as Doc), metadata: { ...((d.toJSON() as Doc).metadata ?? {}), namespace: NAMESPACE } })),
    }));
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`   (gave up waiting for ${what})`);
  return undefined;
}

function claimNameOf(pod: Pod, rc: { name: string; resourceClaimName?: string }): string | undefined {
  return rc.resourceClaimName ?? pod.status?.resourceClaimStatuses?.find((s) => s.name === rc.name)?.resourceClaimName;
}

async function summary(kube: Kube, cp: ControlPlane, nodes: readonly GpuNode[], podNames: readonly string[]): Promise<boolean> {
  const pods = (await kube.pods.list(NAMESPACE)).filter((p) => podNames.includes(p.metadata.name ?? ''));
  const claims = await kube.resourceClaims.list(NAMESPACE);
  const events = await kube.events.list(NAMESPACE);
  const rows: string[][] = [];
  const whys: string[] = [];
  let ok = true;
  for (const name of podNames) {
    const pod = pods.find((p) => p.metadata.name === name);
    if (!pod) continue;
    for (const rc of pod.spec.resourceClaims ?? []) {
      const cname = claimNameOf(pod, rc);
      const claim: ResourceClaim | undefined = claims.find((c) => c.metadata.name === cname);
      const results = claim?.status?.allocation?.devices?.results ?? [];
      const node = pod.spec.nodeName ?? '(not bound)';
      const choice = results.find((r) => r.request.includes('/'))?.request.split('/')[1];
      const prepared = nodes
        .find((n) => n.name === pod.spec.nodeName)
        ?.kubelet.results.get(`${NAMESPACE}/${name}`)
        ?.claims.get(claim?.metadata.uid ?? '');
      if (!results.length || !pod.spec.nodeName) ok = false;
      rows.push([
        name,
        cname ?? '?',
        node,
        results.length ? results.map((r) => r.device).join(', ') : '-',
        choice ?? (results.length ? '(single choice)' : '-'),
        prepared ? (prepared.error ? `error: ${prepared.error}` : `${prepared.devices.reduce((n, d) => n + d.cdiDeviceIds.length, 0)} CDI device(s)`) : '-',
      ]);
      const ev: EventV1 | undefined = events.filter((e) => e.regarding.uid === claim?.metadata.uid && (e.reason === 'Allocated' || e.reason === 'AllocationFailed')).pop();
      if (ev) whys.push(`  ${name}: ${ev.reason}: ${ev.note ?? ''}`);
    }
  }
  step('What got allocated');
  say(renderTable(['POD', 'CLAIM', 'NODE', 'DEVICES', 'CHOSEN ALTERNATIVE', 'PREPARED'], rows));
  step('Why (the Allocated events, as kubectl describe shows them)');
  say(whys.join('\n'));
  step('The fleet now (kubectl cascade fleet)');
  const slices = await kube.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${DRIVER}` });
  say(renderFleet(fleetRows(slices, await kube.resourceClaims.list(), DRIVER)));
  step(args.once ? 'Look further (run `npm run demo` without --once to keep the cluster up for these)' : 'Look further');
  const kc = `--kubeconfig ${cp.adminKubeconfigPath}`;
  const kubectl = join(cp.binDir, 'kubectl');
  say(`  ${kubectl} ${kc} -n ${NAMESPACE} describe pod preference-list`);
  say(`  ${kubectl} ${kc} -n ${NAMESPACE} describe resourceclaim ${claims[0]?.metadata.name ?? '<claim>'}`);
  say(`  ${kubectl} ${kc} get resourceslices`);
  say(`  node ${join(repoRoot(), 'dist', 'cmd', 'kubectl-cascade', 'main.js')} ${kc} fleet`);
  say(
    `  node ${join(repoRoot(), 'dist', 'cmd', 'kubectl-cascade', 'main.js')} ${kc} explain -n ${NAMESPACE} ${claims.find((c) => c.metadata.name?.startsWith('preference-list'))?.metadata.name ?? '<claim>'}`,
  );
  return ok;
}

async function main(): Promise<number> {
  if (!fakeNvidiaSmiBuilt()) throw new Error('dist/ is missing: run `npm run build` first (npm run demo does this)');
  step('Starting a local Kubernetes control plane (builds it from source the first time)');
  const cp = await ControlPlane.start({ progress: (l) => say(`   ${l}`) });
  useControlPlane(cp);
  const kube = cp.kube();
  const nodes: GpuNode[] = [];
  let controller: Component | undefined;
  const shutdown = async (): Promise<void> => {
    await controller?.stop();
    for (const n of nodes) await n.stop();
    kube.close();
    await cp.stop();
  };
  try {
    step('Installing the Cascade add-on from manifests/overlays/dev (kubectl apply --server-side)');
    const port = await freePort();
    const applied = await applyServerSide(webhookToUrl(await renderManifests('dev'), `https://127.0.0.1:${port}/mutate-pods`));
    if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr}`);
    say(
      applied.stdout
        .trim()
        .split('\n')
        .map((l) => `   ${l}`)
        .join('\n'),
    );
    const kc = await writeServiceAccountKubeconfig(cp.adminKubeconfigPath, ADDON_NAMESPACE, 'cascade-controller', join(cp.dir, 'controller.kubeconfig'));
    controller = controllerProcess({ name: 'cascade-controller-0', kubeconfig: kc, webhookPort: port }).start();
    say(`   controller running as system:serviceaccount:${ADDON_NAMESPACE}:cascade-controller (log: ${controller.logFile})`);

    step('Starting fake GPU nodes: nvidia-smi simulator + node plugin + kubelet stand-in each');
    for (const f of FLEET) {
      nodes.push(await startGpuNode(kube, { name: f.name, fleet: f.fleet }));
      say(`   ${f.name}: ${f.what}`);
    }
    const published = await waitFor('every node to publish its ResourceSlices', 60_000, async () => {
      const slices = await kube.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${DRIVER}` });
      const pools = new Set(slices.map((s) => s.spec.pool.name));
      return FLEET.every((f) => pools.has(f.name)) ? slices : undefined;
    });
    if (!published) throw new Error('node plugins did not publish; see their logs in ' + join(cp.dir));
    say(`   ${published.length} ResourceSlices, ${published.reduce((n, s) => n + (s.spec.devices?.length ?? 0), 0)} devices published`);
    await waitFor('the controller to be ready', 30_000, async () => ((await kube.leases.get('cascade-controller', ADDON_NAMESPACE)).spec.holderIdentity ? true : undefined));

    step(`Applying examples/ into namespace ${NAMESPACE}`);
    await kube.namespaces.create({ metadata: { name: NAMESPACE } }).catch((e: unknown) => {
      if (!(e instanceof KubeApiError && e.code === 409)) throw e;
    });
    const podNames: string[] = [];
    for (const ex of exampleDocs()) {
      const res = await applyServerSide(ex.docs);
      if (res.code !== 0) throw new Error(`applying ${ex.file} failed: ${res.stderr}`);
      const pods = ex.docs.filter((d) => d.kind === 'Pod').map((d) => d.metadata?.name ?? '');
      podNames.push(...pods);
      say(`   ${ex.file}: ${pods.join(', ')}`);
    }
    await waitFor('the example pods to be bound and prepared', Number(args.timeout) * 1000, async () => {
      const pods = (await kube.pods.list(NAMESPACE)).filter((p) => podNames.includes(p.metadata.name ?? ''));
      const done = pods.every((p) => p.spec.nodeName && nodes.find((n) => n.name === p.spec.nodeName)?.kubelet.results.has(`${NAMESPACE}/${p.metadata.name ?? ''}`));
      return pods.length === podNames.length && done ? true : undefined;
    });
    const ok = await summary(kube, cp, nodes, podNames);
    if (args.once) {
      step(ok ? 'Every example got its devices. Cleaning up (--once).' : 'Some examples did not get devices (see above). Cleaning up (--once).');
      await shutdown();
      return ok ? 0 : 1;
    }
    step('Running. Press Ctrl-C to stop and clean up.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await shutdown();
    return 0;
  } catch (err) {
    await shutdown();
    throw err;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
