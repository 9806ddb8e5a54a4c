// The exact API writes the controller makes for a decision, counted at the
// HTTP layer on the real control plane: a standalone claim costs a finalizer
// patch, a status patch and one Event; a gated pod's claim adds an Event on
// the pod, the gate's removal and its Event. Nothing else is written.
import { randomBytes } from 'node:crypto';
import { describeCluster, useNamespace, eventually, adminKubeconfig } from '../support/cluster.js';
import { deviceClasses, wholeGpuSlice } from '../support/fleet.js';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import { Controller } from '../../pkg/controller/controller.js';
import { KubeClient, type RequestOptions } from '../../pkg/k8s/client.js';
import { Kube } from '../../pkg/k8s/resources.js';
import { KubeConfig } from '@kubernetes/client-node';
import { logger } from '../../pkg/log/logger.js';

/** A client that remembers every write it sends: "<METHOD> <path> [<what>]". */
class RecordingClient extends KubeClient {
  readonly writes: string[] = [];

  override async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    if (method !== 'GET') this.writes.push(`${method} ${path.replace(/\?.*$/, '')}${what(path, opts.body)}`);
    return await super.request<T>(method, path, opts);
  }
}

/** For an Event, its reason and the kind of object it is about; for a patch, the fields it sets. */
function what(path: string, body: unknown): string {
  if (path.includes('/events')) {
    const e = body as { reason?: string; regarding?: { kind?: string } } | undefined;
    return ` [${e?.reason ?? '?'} on ${e?.regarding?.kind ?? '?'}]`;
  }
  if (Array.isArray(body)) return ` [${(body as { op?: string; path?: string }[]).map((op) => `${op.op ?? ''} ${op.path ?? ''}`).join(', ')}]`;
  const fields: string[] = [];
  const o = body as { metadata?: { finalizers?: unknown; annotations?: unknown }; status?: Record<string, unknown> } | undefined;
  if (o?.metadata?.finalizers !== undefined) fields.push('finalizers');
  if (o?.metadata?.annotations !== undefined) fields.push('annotations');
  for (const k of Object.keys(o?.status ?? {})) fields.push(`status.${k}`);
  return ` [${fields.join(', ')}]`;
}

describeCluster("the controller's API writes", () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `wr-${tag}.cascade.dev`;
  const ns = useNamespace('wr');
  const node = `wr-${tag}`;
  let client: RecordingClient;
  let controller: Controller;

  beforeAll(async () => {
    await createFakeNode(ns.kube, node, { cpu: '16', memory: '64Gi' });
    for (const dc of deviceClasses(driver)) await ns.kube.deviceClasses.create(dc);
    await ns.kube.resourceSlices.create(await wholeGpuSlice(driver, node, 'H100-80GB', 2));
    const kc = new KubeConfig();
    kc.loadFromFile(adminKubeconfig());
    client = new RecordingClient(kc);
    controller = new Controller({ kube: new Kube(client), driver, identity: 'writes-test', logger: logger('writes-test') });
    await controller.startProcessing();
  }, 60_000);

  afterAll(async () => {
    await controller?.stop();
    for (const dc of deviceClasses(driver)) await ns.kube.deviceClasses.delete(dc.metadata.name!).catch(() => undefined);
    await ns.kube.resourceSlices.delete(`${node}-${driver.replace(/\./g, '-')}-0`).catch(() => undefined);
    await ns.kube.nodes.delete(node).catch(() => undefined);
  });

  const claimPath = (name: string): string => `/apis/resource.k8s.io/v1/namespaces/${ns.name}/resourceclaims/${name}`;
  const eventsPath = `/apis/events.k8s.io/v1/namespaces/${ns.name}/events`;
  const settled = async (count: number): Promise<string[]> => {
    await eventually(`${count} writes, then an idle queue`, async () => client.writes.length >= count && controller.pendingWork === 0).catch((err: unknown) => {
      throw new Error(`${String(err)}; written so far: ${client.writes.join('; ')}; queue backlog ${controller.pendingWork}`);
    });
    return [...client.writes].sort();
  };

  it('allocates a standalone claim with a finalizer patch, a status patch and one Event', async () => {
    client.writes.length = 0;
    await ns.kube.resourceClaims.create({ metadata: { name: 'solo', namespace: ns.name }, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}` } }] } } });
    await eventually('allocated', async () => (await ns.kube.resourceClaims.get('solo', ns.name)).status?.allocation !== undefined);
    expect(await settled(3)).toEqual([`PATCH ${claimPath('solo')} [finalizers]`, `PATCH ${claimPath('solo')}/status [status.allocation]`, `POST ${eventsPath} [Allocated on ResourceClaim]`].sort());
  });

  it("allocates a gated pod's claims with the pod, says so on both (the pod's event also tells of the gate), and removes the gate: nothing else", async () => {
    client.writes.length = 0;
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'one-gpu', namespace: ns.name },
      spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}` } }] } } },
    });
    await ns.kube.pods.create({
      metadata: { name: 'user', namespace: ns.name },
      spec: {
        schedulingGates: [{ name: `${driver}/allocation` }],
        resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
        containers: [{ name: 'c', image: 'busybox', resources: { claims: [{ name: 'gpu' }] } }],
      },
    });
    const claimName = await eventually('the generated claim', async () => (await ns.kube.pods.get('user', ns.name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName);
    await eventually('the gate removed', async () => ((await ns.kube.pods.get('user', ns.name)).spec.schedulingGates ?? []).length === 0);
    expect(await settled(5)).toEqual(
      [
        `PATCH ${claimPath(claimName)} [finalizers]`,
        `PATCH ${claimPath(claimName)}/status [status.allocation]`,
        `POST ${eventsPath} [Allocated on ResourceClaim]`,
        `POST ${eventsPath} [Allocated on Pod]`,
        `PATCH /api/v1/namespaces/${ns.name}/pods/user [test /spec/schedulingGates/0/name, remove /spec/schedulingGates/0]`,
      ].sort(),
    );
  });
});
