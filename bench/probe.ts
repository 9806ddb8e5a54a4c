// `npm run probe`: hostile inputs, faults and load against the add-on as a user
// installs it (manifests/, two controller replicas and two node plugins under
// their own ServiceAccounts, on a real Kubernetes 1.36 control plane), then a
// summary of what went wrong. Every count but "inputs tried" should be 0.
//
//   npm run probe -- [--claims 2000]
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:https';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ControlPlane, freePort, writeServiceAccountKubeconfig } from '../pkg/cluster/controlplane.js';
import { KubeApiError } from '../pkg/k8s/client.js';
import { Kube } from '../pkg/k8s/resources.js';
import type { ResourceSlice } from '../pkg/api/resource.js';
import { SlicePublisher } from '../pkg/publish/publisher.js';
import { FLEETS, fakeNvidiaSmiBuilt } from '../hack/fake-nvidia-smi/testing.js';
import { ADDON_NAMESPACE, type Component, applyServerSide, controllerProcess, nodeBoundKubeconfig, renderManifests, webhookToUrl } from '../test/support/addon.js';
import { startGpuNode, type GpuNode } from '../test/support/gpu-node.js';
import { doubleBooked } from '../test/support/claims.js';
import { eventually, useControlPlane } from '../test/support/tools.js';

const DRIVER = 'gpu.cascade.dev';
const GATED = 'probe-gated';
const { values: args } = parseArgs({ options: { claims: { type: 'string', default: '2000' } } });
const LOAD = Number(args.claims);

const tally = { inputs: 0, controllerExits: 0, pluginExits: 0, doubleBooked: 0, leakedMig: 0, neverReleased: 0, metricsMisses: 0, leaseChanges: 0, acceptedHostileWrites: 0 };
const say = (s: string): void => void process.stdout.write(`${s}\n`);

interface ClientCert {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

function webhookClient(cp: ControlPlane): ClientCert {
  const kc = JSON.parse(readFileSync(join(cp.dir, 'pki', 'webhook-client.kubeconfig'), 'utf8')) as { users: { user: Record<string, string> }[] };
  const user = kc.users[0]?.user ?? {};
  const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');
  return { cert: unb64(user['client-certificate-data']), key: unb64(user['client-key-data']), ca: readFileSync(join(cp.dir, 'pki', 'ca.crt'), 'utf8') };
}

/** POSTs a body to the webhook; resolves to the status code, or -1 when the connection was refused. */
function postWebhook(port: number, body: string | Buffer, client: ClientCert | undefined, ca: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/mutate-pods', method: 'POST', agent: false, rejectUnauthorized: false, ca, ...(client ? { cert: client.cert, key: client.key } : {}) },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.setTimeout(10_000, () => req.destroy());
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

function hostileBodies(): (string | Buffer)[] {
  const review = (r: unknown): string => JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: r });
  const fixed: (string | Buffer)[] = [
    'null',
    '42',
    '[]',
    '{"request":',
    '',
    Buffer.from([0, 255, 1, 254]),
    '{"request":{"uid":"b","object":{"spec":{}}}}',
    review({ uid: 'c', object: { spec: { resourceClaims: [{}] } } }),
    review({ uid: 'd', object: { metadata: 'x', spec: { resourceClaims: 'x' } } }),
    review({ uid: 'e', object: { spec: { resourceClaims: [null, 3, { name: 7 }] } } }),
    `{"request":{"uid":"f","object":${'{"a":'.repeat(4000)}1${'}'.repeat(4000)}}}`,
    Buffer.alloc(4 * 1024 * 1024, 0x20),
  ];
  const base = review({
    uid: 'fuzz',
    operation: 'CREATE',
    namespace: GATED,
    object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c' }], resourceClaims: [{ name: 'g', resourceClaimTemplateName: 'one-gpu' }] } },
  });
  let seed = 7;
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  const fuzz = Array.from({ length: 150 }, () => {
    const chars = base.split('');
    for (let k = 0; k < 1 + rand(6); k++) chars[rand(chars.length)] = '{}[]":,0n1tfu\\ '[rand(15)] ?? ' ';
    return chars.join('');
  });
  return [...fixed, ...fuzz];
}

function httpPortOf(c: Component): number | undefined {
  for (const line of c.log().split('\n')) {
    if (!line.includes('cascade controller running')) continue;
    try {
      return (JSON.parse(line) as { httpPort?: number }).httpPort;
    } catch {
      continue;
    }
  }
  return undefined;
}

/** Polls every replica's /metrics twice a second while `work` runs; a miss is an answer slower than 2 s. */
async function watchResponsive<T>(ports: readonly number[], work: () => Promise<T>): Promise<T> {
  let done = false;
  const poll = async (): Promise<void> => {
    while (!done) {
      for (const p of ports) {
        const ok = await fetch(`http://127.0.0.1:${p}/metrics`, { signal: AbortSignal.timeout(2000) }).then(
          (r) => r.ok,
          () => false,
        );
        if (!ok) tally.metricsMisses++;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const poller = poll();
  try {
    return await work();
  } finally {
    done = true;
    await poller;
  }
}

async function inBatches<T>(items: readonly T[], width: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

async function main(): Promise<number> {
  if (!fakeNvidiaSmiBuilt()) throw new Error('dist/ is missing: run `npm run build` first (npm run probe does this)');
  const cp = await ControlPlane.start({ progress: (l) => say(`  ${l}`) });
  useControlPlane(cp);
  const kube = cp.kube();
  const nodes: GpuNode[] = [];
  const controllers: Component[] = [];
  try {
    const port = await freePort();
    const applied = await applyServerSide(webhookToUrl(await renderManifests('dev'), `https://127.0.0.1:${port}/mutate-pods`));
    if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr}`);
    const kc = await writeServiceAccountKubeconfig(cp.adminKubeconfigPath, ADDON_NAMESPACE, 'cascade-controller', join(cp.dir, 'controller.kubeconfig'));
    controllers.push(controllerProcess({ name: 'probe-controller-0', kubeconfig: kc, webhookPort: port }).start());
    controllers.push(controllerProcess({ name: 'probe-controller-1', kubeconfig: kc, webhookPort: await freePort() }).start());
    nodes.push(await startGpuNode(kube, { name: 'probe-h100', fleet: FLEETS.h100x8('Enabled') }));
    nodes.push(await startGpuNode(kube, { name: 'probe-a100', fleet: FLEETS.a100('Disabled') }));
    await eventually('slices of both nodes', async () => new Set((await kube.resourceSlices.list()).map((s) => s.spec.pool.name)).size >= 2, 60_000);
    const leader = await eventually('a leader', async () => (await kube.leases.get('cascade-controller', ADDON_NAMESPACE).catch(() => undefined))?.spec.holderIdentity, 60_000);
    const httpPorts = await eventually('controllers serving metrics', () => {
      const ps = controllers.map(httpPortOf).filter((p): p is number => p !== undefined);
      return Promise.resolve(ps.length === controllers.length ? ps : undefined);
    });
    for (const ns of [GATED]) await kube.namespaces.create({ metadata: { name: ns } });
    const template = (ns: string, name: string, expression?: string): Promise<unknown> =>
      kube.resourceClaimTemplates.create({
        metadata: { name, namespace: ns },
        spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}`, ...(expression ? { selectors: [{ cel: { expression } }] } : {}) } }] } } },
      });
    await template(GATED, 'one-gpu');
    await template('kube-system', 'one-gpu');
    say(`== set up: leader ${leader}, metrics on ${httpPorts.join(', ')}`);

    // 1. The webhook: hostile bodies with the API server's certificate, and callers without one.
    const client = webhookClient(cp);
    await watchResponsive(httpPorts, async () => {
      for (const body of hostileBodies()) {
        tally.inputs++;
        await postWebhook(port, body, client, client.ca);
      }
      for (let i = 0; i < 20; i++) {
        tally.inputs++;
        if ((await postWebhook(port, '{}', undefined, client.ca)) !== -1) tally.acceptedHostileWrites++;
      }
    });
    say(`== webhook: ${tally.inputs} inputs`);

    // 2. Selectors that freeze a backtracking regex engine, in claims anyone may create.
    const redos = [
      '"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!".matches("^(a|a)*$")',
      '"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!".matches("^(a|aa)*$")',
      `device.attributes["${DRIVER}"].productName.matches("^(([a-zA-Z0-9 ])+)+$")`,
    ];
    await watchResponsive(httpPorts, async () => {
      for (const [i, expression] of redos.entries()) {
        tally.inputs++;
        await kube.resourceClaims.create({
          metadata: { name: `redos-${i}`, namespace: GATED },
          spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}`, selectors: [{ cel: { expression } }] } }] } },
        });
      }
      // Each gets a decision (an allocation, or an event saying why not) while the controller keeps answering.
      await eventually(
        'ReDoS claims decided',
        async () => {
          const decided = new Set((await kube.events.list(GATED)).filter((e) => e.reason === 'Allocated' || e.reason === 'AllocationFailed').map((e) => e.regarding.name));
          return redos.every((_e, i) => decided.has(`redos-${i}`));
        },
        60_000,
      );
      for (let i = 0; i < redos.length; i++) await kube.resourceClaims.delete(`redos-${i}`, GATED);
    });
    say('== ReDoS selectors: done');

    // 3. Pods outside the gate (kube-system) and inside it, at once: one allocator per claim.
    const pod = (ns: string, name: string, tpl: string): Promise<unknown> =>
      kube.pods.create({
        metadata: { name, namespace: ns },
        spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }], resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: tpl }] },
      });
    await Promise.all(Array.from({ length: 8 }, (_x, i) => [pod('kube-system', `sys-${i}`, 'one-gpu'), pod(GATED, `app-${i}`, 'one-gpu')]).flat());
    tally.inputs += 16;
    await eventually(
      'pods settled',
      async () => {
        const claims = [...(await kube.resourceClaims.list('kube-system')), ...(await kube.resourceClaims.list(GATED))];
        return claims.length >= 16 && claims.filter((c) => c.status?.allocation).length >= 8;
      },
      60_000,
    ).catch(() => undefined);
    for (let i = 0; i < 10; i++) {
      const all = await kube.resourceClaims.list();
      tally.doubleBooked = Math.max(tally.doubleBooked, doubleBooked(all).length);
      await new Promise((r) => setTimeout(r, 300));
    }
    say(`== excluded namespace: ${tally.doubleBooked} double-booked`);
    for (let i = 0; i < 8; i++) {
      await kube.pods.delete(`sys-${i}`, 'kube-system', { gracePeriodSeconds: 0 });
      await kube.pods.delete(`app-${i}`, GATED, { gracePeriodSeconds: 0 });
    }

    // 4. A fault right after `mig -cgi` while a MIG claim is prepared.
    const h100 = nodes[0];
    if (h100) {
      h100.sim.setFaults({ failNext: { exitCode: 4, message: 'Insufficient Permissions', skip: 1 } });
      tally.inputs++;
      await kube.resourceClaims.create({
        metadata: { name: 'mig-fault', namespace: GATED },
        spec: { devices: { requests: [{ name: 'mig', exactly: { deviceClassName: `mig.${DRIVER}`, selectors: [{ cel: { expression: `device.attributes["${DRIVER}"].profile == "1g.10gb"` } }] } }] } },
      });
      await kube.pods.create({
        metadata: { name: 'mig-pod', namespace: GATED },
        spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'mig' }] } }], resourceClaims: [{ name: 'mig', resourceClaimName: 'mig-fault' }] },
      });
      await eventually('the MIG pod bound', async () => (await kube.pods.get('mig-pod', GATED)).spec.nodeName, 60_000).catch(() => undefined);
    }

    // 5. A node plugin's token writing another node's pool.
    const pluginKube = Kube.fromFile(await nodeBoundKubeconfig(kube, 'cascade-node-plugin', 'probe-a100', join(cp.dir, 'probe-plugin.kubeconfig')));
    const hijack: ResourceSlice = {
      metadata: { name: 'probe-hijack' },
      spec: { driver: DRIVER, nodeName: 'probe-a100', pool: { name: 'probe-h100', generation: 1_000_000, resourceSliceCount: 1 }, devices: [] },
    };
    tally.inputs++;
    if (
      await pluginKube.resourceSlices.create(hijack).then(
        () => true,
        (e: unknown) => !(e instanceof KubeApiError && e.code === 403),
      )
    )
      tally.acceptedHostileWrites++;
    tally.inputs++;
    if (
      await new SlicePublisher(pluginKube, { driver: DRIVER, nodeName: 'probe-h100' }).publish([]).then(
        () => true,
        () => false,
      )
    )
      tally.acceptedHostileWrites++;
    pluginKube.close();

    // 6. Load: many claims arrive at once and leave again, while /metrics is polled.
    const holder = async (): Promise<string | undefined> => (await kube.leases.get('cascade-controller', ADDON_NAMESPACE)).spec.holderIdentity;
    const before = await holder();
    const names = Array.from({ length: LOAD }, (_x, i) => `load-${i}`);
    await watchResponsive(httpPorts, async () => {
      await inBatches(names, 50, (n) =>
        kube.resourceClaims.create({ metadata: { name: n, namespace: GATED }, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } }),
      );
      tally.inputs += LOAD;
      await eventually('some load claims allocated', async () => (await kube.resourceClaims.list(GATED)).some((c) => c.metadata.name?.startsWith('load-') && c.status?.allocation), 60_000).catch(
        () => undefined,
      );
      await inBatches(names, 50, (n) => kube.resourceClaims.delete(n, GATED).catch(() => undefined));
    });
    if ((await holder()) !== before) tally.leaseChanges++;
    say(`== load: ${LOAD} claims created and deleted`);

    // 7. Everything gone: no allocation, finalizer or MIG instance left behind.
    await kube.pods.delete('mig-pod', GATED, { gracePeriodSeconds: 0 }).catch(() => undefined);
    await kube.resourceClaims.delete('mig-fault', GATED).catch(() => undefined);
    await eventually('every claim gone', async () => (await kube.resourceClaims.list()).length === 0, 120_000).catch(() => undefined);
    tally.neverReleased = (await kube.resourceClaims.list()).filter((c) => c.status?.allocation || (c.metadata.finalizers ?? []).includes(`${DRIVER}/allocation`)).length;
    await eventually('MIG instances gone', () => Promise.resolve((h100?.sim.readState().gpus ?? []).every((g) => g.gpuInstances.length === 0)), 60_000).catch(() => undefined);
    tally.leakedMig = (h100?.sim.readState().gpus ?? []).reduce((n, g) => n + g.gpuInstances.length, 0);
    tally.controllerExits = controllers.filter((c) => !c.running).length;
    tally.pluginExits = nodes.filter((n) => !n.plugin.running).length;
  } finally {
    for (const c of controllers) await c.stop();
    for (const n of nodes) await n.stop();
    kube.close();
    // Keep the components' logs: the control plane's directory goes with it.
    const keep = mkdtempSync(join(tmpdir(), 'cascade-probe-logs-'));
    for (const c of [...controllers, ...nodes.map((n) => n.plugin)]) if (existsSync(c.logFile)) copyFileSync(c.logFile, join(keep, basename(c.logFile)));
    say(`== component logs kept in ${keep}`);
    await cp.stop();
  }
  say('');
  say(
    YAML.stringify({
      'inputs tried': tally.inputs,
      'controller exits': tally.controllerExits,
      'plugin exits': tally.pluginExits,
      'double-booked devices': tally.doubleBooked,
      'leaked MIG instances': tally.leakedMig,
      'allocations never released': tally.neverReleased,
      'hostile writes accepted': tally.acceptedHostileWrites,
      'metrics answers slower than 2 s': tally.metricsMisses,
      'leader changes under load': tally.leaseChanges,
    }).trim(),
  );
  const bad = Object.entries(tally).filter(([k, v]) => k !== 'inputs' && v !== 0);
  return bad.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`probe failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(2);
  },
);
