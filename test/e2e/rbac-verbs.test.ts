// Least privilege, verb by verb: every verb the manifests grant the controller
// and the node plugin is exercised the way the component uses it, and refused
// once that one verb is taken away; and what the components must never do is
// refused outright. A new verb in the manifests fails this test until it has
// its operation here.
import { join } from 'node:path';
import { describeCluster, adminKubeconfig, clusterDir, eventually, useNamespace } from '../support/cluster.js';
import { ADDON_NAMESPACE, nodeBoundKubeconfig, renderManifests, type Doc } from '../support/addon.js';
import { createFakeNode, writeServiceAccountKubeconfig } from '../../pkg/cluster/controlplane.js';
import { KubeApiError } from '../../pkg/k8s/client.js';
import { Kube, RESOURCES } from '../../pkg/k8s/resources.js';
import { MUTATING_WEBHOOK_CONFIGURATIONS } from '../../pkg/controller/webhook.js';
import { FAILOVER_RESERVES } from '../../pkg/controller/reserve.js';

const DRIVER = 'gpu.cascade.dev';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

interface Grant {
  readonly component: 'controller' | 'node-plugin';
  readonly namespaced: boolean;
  readonly key: string;
}

type Op = (k: Kube) => Promise<unknown>;

/** 0 when allowed (whatever else the API server said), 403 when authorization refused it. */
async function refusal(op: Op, k: Kube): Promise<number> {
  try {
    await op(k);
    return 0;
  } catch (err) {
    if (err instanceof KubeApiError && err.code === 403) return 403;
    // The status subresources' field authorization (binding, driver) answers 422 with a Forbidden field error.
    if (err instanceof KubeApiError && err.code === 422 && /Forbidden: changing status\..* requires resource="resourceclaims\//.test(err.message)) return 403;
    return 0;
  }
}

function rulesOf(docs: Doc[], kind: string, name: string): Rule[] {
  const d = docs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!d) throw new Error(`manifests have no ${kind} ${name}`);
  return (d as unknown as { rules: Rule[] }).rules;
}

const keyOf = (group: string, resource: string, verb: string): string => `${group || 'core'}/${resource} ${verb}`;

function grants(component: Grant['component'], rules: Rule[], namespaced: boolean): Grant[] {
  return rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => ({ component, namespaced, key: keyOf(g, res, v) })))));
}

/** The rules with one verb of one resource taken away. */
function without(rules: Rule[], key: string): Rule[] {
  return rules
    .map((r) => {
      const keep = r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.filter((v) => keyOf(g, res, v) !== key).map((v) => ({ g, res, v }))));
      if (keep.length === r.apiGroups.length * r.resources.length * r.verbs.length) return [r];
      return keep.map((k) => ({ ...r, apiGroups: [k.g], resources: [k.res], verbs: [k.v] }));
    })
    .flat();
}

describeCluster('least-privilege RBAC, verb by verb', () => {
  const ns = useNamespace('rbacverbs');
  const node = 'rbacverbs-node';
  let docs: Doc[];
  const sa = { controller: 'rbacverbs-controller', 'node-plugin': 'rbacverbs-node-plugin' } as const;
  const clients: Partial<Record<Grant['component'], Kube>> = {};
  const rbac = (kind: 'ClusterRole' | 'Role' | 'ClusterRoleBinding' | 'RoleBinding'): ReturnType<Kube['api']> =>
    ns.kube.api({ group: 'rbac.authorization.k8s.io', version: 'v1', kind, plural: `${kind.toLowerCase()}s`, namespaced: kind === 'Role' || kind === 'RoleBinding' });

  const clusterRules = (): Record<Grant['component'], Rule[]> => ({
    controller: rulesOf(docs, 'ClusterRole', 'cascade-controller'),
    'node-plugin': rulesOf(docs, 'ClusterRole', 'cascade-node-plugin'),
  });
  const roleRules = (): Rule[] => rulesOf(docs, 'Role', 'cascade-controller');

  async function setRules(component: Grant['component'], cluster: Rule[], role: Rule[] | undefined): Promise<void> {
    const name = sa[component];
    const cr = rbac('ClusterRole');
    const current = await cr.get(name).catch(() => undefined);
    const body = { metadata: { name, ...(current ? { resourceVersion: current.metadata.resourceVersion } : {}) }, rules: cluster };
    if (current) await cr.replace(body);
    else await cr.create(body);
    if (role) {
      const r = rbac('Role');
      const cur = await r.get(name, ADDON_NAMESPACE).catch(() => undefined);
      const rb = { metadata: { name, namespace: ADDON_NAMESPACE, ...(cur ? { resourceVersion: cur.metadata.resourceVersion } : {}) }, rules: role };
      if (cur) await r.replace(rb);
      else await r.create(rb);
    }
  }

  // How each component uses each verb it is granted.
  const claimPath = (): string => ns.kube.resourceClaims.path(ns.name);
  const watch =
    (path: () => string): Op =>
    (k) =>
      k.client.request('GET', path(), { query: { watch: 'true', timeoutSeconds: 1 } });
  const allocation = {
    devices: { results: [{ request: 'gpu', driver: DRIVER, pool: node, device: 'gpu-0' }] },
    nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] },
  };
  const OPS: Record<Grant['component'], Record<string, Op>> = {
    controller: {
      'resource.k8s.io/resourceclaims get': (k) => k.resourceClaims.get('target', ns.name),
      'resource.k8s.io/resourceclaims list': (k) => k.resourceClaims.list(ns.name),
      'resource.k8s.io/resourceclaims watch': watch(claimPath),
      'resource.k8s.io/resourceclaims patch': (k) => k.resourceClaims.mergePatch('target', {}, ns.name),
      'resource.k8s.io/resourceclaims/status patch': (k) => k.resourceClaims.mergePatch('target', { status: {} }, ns.name, 'status'),
      'resource.k8s.io/resourceclaims/binding patch': async (k) => {
        await k.resourceClaims.mergePatch('target', { status: { allocation } }, ns.name, 'status');
        await k.resourceClaims.mergePatch('target', { status: { allocation: null } }, ns.name, 'status');
      },
      'resource.k8s.io/resourceclaimtemplates get': (k) => k.resourceClaimTemplates.get('none', ns.name),
      'resource.k8s.io/resourceclaimtemplates list': (k) => k.resourceClaimTemplates.list(ns.name),
      'resource.k8s.io/resourceclaimtemplates watch': watch(() => ns.kube.resourceClaimTemplates.path(ns.name)),
      'resource.k8s.io/resourceslices get': (k) => k.resourceSlices.get('none'),
      'resource.k8s.io/resourceslices list': (k) => k.resourceSlices.list(),
      'resource.k8s.io/resourceslices watch': watch(() => ns.kube.resourceSlices.path()),
      'resource.k8s.io/deviceclasses get': (k) => k.deviceClasses.get('none'),
      'resource.k8s.io/deviceclasses list': (k) => k.deviceClasses.list(),
      'resource.k8s.io/deviceclasses watch': watch(() => ns.kube.deviceClasses.path()),
      'core/pods get': (k) => k.pods.get('target', ns.name),
      'core/pods list': (k) => k.pods.list(ns.name),
      'core/pods watch': watch(() => ns.kube.pods.path(ns.name)),
      'core/pods patch': (k) => k.pods.mergePatch('target', {}, ns.name),
      'core/nodes get': (k) => k.nodes.get(node),
      'core/nodes list': (k) => k.nodes.list(),
      'core/nodes watch': watch(() => ns.kube.nodes.path()),
      'core/namespaces get': (k) => k.namespaces.get(ns.name),
      'core/namespaces list': (k) => k.namespaces.list(),
      'core/namespaces watch': watch(() => ns.kube.namespaces.path()),
      'core/pods/eviction create': (k) => k.evictPod('none', ns.name),
      'gpu.cascade.dev/failoverreserves list': (k) => k.api(FAILOVER_RESERVES).list(),
      'gpu.cascade.dev/failoverreserves watch': watch(() => ns.kube.api(FAILOVER_RESERVES).path()),
      'gpu.cascade.dev/failoverreserves/status patch': (k) => k.api(FAILOVER_RESERVES).mergePatch('none', { status: {} }, undefined, 'status'),
      'policy/poddisruptionbudgets list': (k) => k.api(RESOURCES.podDisruptionBudgets).list(ns.name),
      'policy/poddisruptionbudgets watch': watch(() => ns.kube.api(RESOURCES.podDisruptionBudgets).path(ns.name)),
      'events.k8s.io/events create': (k) =>
        k.events.create({
          metadata: { name: 'rbacverbs-event', namespace: ns.name },
          eventTime: new Date().toISOString(),
          reportingController: `${DRIVER}/controller`,
          reportingInstance: 'x',
          action: 'Allocate',
          reason: 'Allocated',
          type: 'Normal',
          regarding: { kind: 'Pod', name: 'target', namespace: ns.name },
          note: 'probe',
        } as never),
      'events.k8s.io/events patch': (k) => k.events.mergePatch('rbacverbs-event', { series: { count: 2, lastObservedTime: new Date().toISOString() } }, ns.name),
      'admissionregistration.k8s.io/mutatingwebhookconfigurations get': (k) => k.api(MUTATING_WEBHOOK_CONFIGURATIONS).get('cascade-scheduling-gate'),
      'admissionregistration.k8s.io/mutatingwebhookconfigurations list': (k) => k.api(MUTATING_WEBHOOK_CONFIGURATIONS).list(undefined, { fieldSelector: 'metadata.name=cascade-scheduling-gate' }),
      'admissionregistration.k8s.io/mutatingwebhookconfigurations watch': (k) =>
        k.client.request('GET', ns.kube.api(MUTATING_WEBHOOK_CONFIGURATIONS).path(), { query: { watch: 'true', timeoutSeconds: 1, fieldSelector: 'metadata.name=cascade-scheduling-gate' } }),
      'admissionregistration.k8s.io/mutatingwebhookconfigurations patch': (k) => k.api(MUTATING_WEBHOOK_CONFIGURATIONS).mergePatch('cascade-scheduling-gate', {}),
      'coordination.k8s.io/leases create': (k) => k.leases.create({ metadata: { name: 'rbacverbs-lease', namespace: ADDON_NAMESPACE }, spec: {} }),
      'coordination.k8s.io/leases get': (k) => k.leases.get('cascade-controller', ADDON_NAMESPACE),
      'coordination.k8s.io/leases patch': (k) => k.leases.mergePatch('cascade-controller', {}, ADDON_NAMESPACE),
      'core/secrets create': (k) => k.secrets.create({ metadata: { name: 'rbacverbs-secret', namespace: ADDON_NAMESPACE } }),
      'core/secrets get': (k) => k.secrets.get('cascade-webhook-tls', ADDON_NAMESPACE),
      'core/secrets update': (k) => k.secrets.replace({ metadata: { name: 'cascade-webhook-tls', namespace: ADDON_NAMESPACE } }),
    },
    'node-plugin': {
      'resource.k8s.io/resourceslices list': (k) => k.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${node}` }),
      'resource.k8s.io/resourceslices create': (k) =>
        k.resourceSlices.create({ metadata: { name: 'rbacverbs-slice' }, spec: { driver: DRIVER, nodeName: node, pool: { name: node, generation: 1, resourceSliceCount: 1 }, devices: [] } }),
      'resource.k8s.io/resourceslices update': async (k) => {
        const s = await ns.kube.resourceSlices.get('rbacverbs-existing');
        await k.resourceSlices.replace(s);
      },
      'resource.k8s.io/resourceslices delete': (k) => k.resourceSlices.delete('rbacverbs-none'),
      'resource.k8s.io/resourceclaims get': (k) => k.resourceClaims.get('allocated', ns.name),
      'resource.k8s.io/resourceclaims/status patch': (k) => k.resourceClaims.mergePatch('allocated', { status: {} }, ns.name, 'status'),
      'resource.k8s.io/resourceclaims/driver associated-node:patch': async (k) => {
        await k.resourceClaims.mergePatch('allocated', { status: { devices: [{ driver: DRIVER, pool: node, device: 'gpu-0' }] } }, ns.name, 'status');
        await k.resourceClaims.mergePatch('allocated', { status: { devices: null } }, ns.name, 'status');
      },
      'core/nodes get': (k) => k.nodes.get(node),
    },
  };

  // What neither may ever do.
  const NEVER: Record<Grant['component'], [string, Op][]> = {
    controller: [
      ['create pods', (k) => k.pods.create({ metadata: { name: 'x', namespace: ns.name }, spec: { containers: [{ name: 'c', image: 'x' }] } })],
      ['delete pods', (k) => k.pods.delete('target', ns.name)],
      ['read other Secrets', (k) => k.secrets.list(ADDON_NAMESPACE)],
      [
        'write ResourceSlices',
        (k) => k.resourceSlices.create({ metadata: { name: 'x' }, spec: { driver: DRIVER, nodeName: node, pool: { name: node, generation: 1, resourceSliceCount: 1 }, devices: [] } }),
      ],
      ['change DeviceClasses', (k) => k.deviceClasses.mergePatch('gpu.gpu.cascade.dev', {})],
      ['patch other webhook configurations', (k) => k.api(MUTATING_WEBHOOK_CONFIGURATIONS).mergePatch('someone-else', {})],
      ['delete claims', (k) => k.resourceClaims.delete('target', ns.name)],
    ],
    'node-plugin': [
      [
        'post Events',
        (k) =>
          k.events.create({
            metadata: { generateName: 'x-', namespace: ns.name },
            eventTime: new Date().toISOString(),
            reportingController: 'x/y',
            reportingInstance: 'x',
            action: 'A',
            reason: 'R',
            type: 'Normal',
            regarding: { kind: 'Pod', name: 'p', namespace: ns.name },
          } as never),
      ],
      ['list claims', (k) => k.resourceClaims.list(ns.name)],
      ['read pods', (k) => k.pods.get('target', ns.name)],
      ['patch nodes', (k) => k.nodes.mergePatch(node, {})],
      [
        "write another driver's claim status",
        (k) => k.resourceClaims.mergePatch('allocated', { status: { devices: [{ driver: 'other.example.com', pool: node, device: 'gpu-0' }] } }, ns.name, 'status'),
      ],
      ['read Secrets', (k) => k.secrets.list(ADDON_NAMESPACE)],
    ],
  };

  beforeAll(async () => {
    docs = await renderManifests('dev');
    await ns.kube.namespaces.create({ metadata: { name: ADDON_NAMESPACE } }).catch((e: unknown) => {
      if (!(e instanceof KubeApiError && e.code === 409)) throw e;
    });
    await createFakeNode(ns.kube, node);
    await ns.kube.resourceClaims.create({ metadata: { name: 'target', namespace: ns.name }, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } });
    await ns.kube.resourceClaims.create({ metadata: { name: 'allocated', namespace: ns.name }, spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } });
    await ns.kube.resourceClaims.mergePatch('allocated', { status: { allocation } }, ns.name, 'status');
    await ns.kube.pods.create({
      metadata: { name: 'target', namespace: ns.name },
      spec: { schedulingGates: [{ name: 'example.com/hold' }], containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
    });
    await ns.kube.resourceSlices.create({
      metadata: { name: 'rbacverbs-existing' },
      spec: { driver: DRIVER, nodeName: node, pool: { name: node, generation: 1, resourceSliceCount: 1 }, devices: [] },
    });
    const c = clusterRules();
    for (const component of ['controller', 'node-plugin'] as const) {
      await setRules(component, c[component], component === 'controller' ? roleRules() : undefined);
      const name = sa[component];
      await rbac('ClusterRoleBinding').create({
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace: ADDON_NAMESPACE }],
      } as never);
      if (component === 'controller') {
        await rbac('RoleBinding').create({
          metadata: { name, namespace: ADDON_NAMESPACE },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
          subjects: [{ kind: 'ServiceAccount', name, namespace: ADDON_NAMESPACE }],
        } as never);
      }
    }
    const ctlKc = await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, sa.controller, join(clusterDir(), 'rbacverbs-controller.kubeconfig'));
    await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, sa['node-plugin'], join(clusterDir(), 'rbacverbs-unused.kubeconfig'));
    clients.controller = Kube.fromFile(ctlKc);
    clients['node-plugin'] = Kube.fromFile(await nodeBoundKubeconfig(ns.kube, sa['node-plugin'], node, join(clusterDir(), 'rbacverbs-node-plugin.kubeconfig')));
  }, 60_000);

  afterAll(async () => {
    for (const k of Object.values(clients)) k?.close();
    if (!ns.kube) return;
    for (const name of Object.values(sa)) {
      await rbac('ClusterRoleBinding')
        .delete(name)
        .catch(() => undefined);
      await rbac('ClusterRole')
        .delete(name)
        .catch(() => undefined);
    }
    await rbac('RoleBinding')
      .delete(sa.controller, ADDON_NAMESPACE)
      .catch(() => undefined);
    await rbac('Role')
      .delete(sa.controller, ADDON_NAMESPACE)
      .catch(() => undefined);
    for (const s of ['rbacverbs-existing', 'rbacverbs-slice']) await ns.kube.resourceSlices.delete(s).catch(() => undefined);
    await ns.kube.leases.delete('rbacverbs-lease', ADDON_NAMESPACE).catch(() => undefined);
    await ns.kube.secrets.delete('rbacverbs-secret', ADDON_NAMESPACE).catch(() => undefined);
    await ns.kube.nodes.delete(node).catch(() => undefined);
  });

  it('has an operation for every verb the manifests grant, and grants no verb without one', () => {
    const granted = [...grants('controller', clusterRules().controller, false), ...grants('controller', roleRules(), true), ...grants('node-plugin', clusterRules()['node-plugin'], false)];
    for (const component of ['controller', 'node-plugin'] as const) {
      const keys = granted
        .filter((g) => g.component === component)
        .map((g) => g.key)
        .sort();
      expect(keys).toEqual(Object.keys(OPS[component]).sort());
    }
  });

  it.each(['controller', 'node-plugin'] as const)(
    'lets the %s do each thing it does, and refuses each once its verb is taken away',
    async (component) => {
      const k = clients[component];
      if (!k) throw new Error('no client');
      const full = clusterRules()[component];
      const role = component === 'controller' ? roleRules() : undefined;
      for (const [key, op] of Object.entries(OPS[component])) {
        const inRole = role !== undefined && grants(component, role, true).some((g) => g.key === key);
        await setRules(component, inRole ? full : without(full, key), inRole && role ? without(role, key) : role);
        await eventually(`${component} refused "${key}" without that verb`, async () => (await refusal(op, k)) === 403, 15_000);
        await setRules(component, full, role);
        await eventually(`${component} allowed "${key}" with the manifests' rules`, async () => (await refusal(op, k)) === 0, 15_000);
      }
    },
    240_000,
  );

  it.each(['controller', 'node-plugin'] as const)('refuses the %s everything it must never do', async (component) => {
    const k = clients[component];
    if (!k) throw new Error('no client');
    for (const [what, op] of NEVER[component]) {
      expect([what, await refusal(op, k)]).toEqual([what, 403]);
    }
  });
});
