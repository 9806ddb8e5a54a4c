// The Helm chart (deployments/helm/cascade): it passes helm lint, renders with
// its defaults exactly what the kustomize base renders (so the two never
// drift), exposes the values a platform engineer tunes, refuses bad values
// with a clear message, and installs and uninstalls cleanly with helm itself.
// The examples run on a helm-installed add-on in examples.test.ts.
import { join } from 'node:path';
import YAML from 'yaml';
import { describeCluster, kubectl } from '../support/cluster.js';
import { ADDON_NAMESPACE, type Doc } from '../support/addon.js';
import { CHART, helm, helmTemplate } from '../support/helm.js';
import { repoRoot } from '../../pkg/cluster/binaries.js';

/** Helm's own bookkeeping labels, which the kustomize base cannot have. */
const HELM_LABELS = ['app.kubernetes.io/managed-by', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'helm.sh/chart'];

/** An object as it is compared: Helm's labels dropped, whitespace runs in strings (folded CEL) made one space. */
function normalized(d: Doc): unknown {
  const strip = (v: unknown): unknown => {
    if (typeof v === 'string') return v.replace(/\s+/g, ' ').trim();
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, strip(x)]));
    return v;
  };
  const labels = { ...((d.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {}) };
  for (const l of HELM_LABELS) delete labels[l];
  return strip({ ...d, metadata: { ...d.metadata, labels } });
}

const key = (d: Doc): string => `${d.kind ?? ''} ${d.metadata?.namespace ?? ''}/${d.metadata?.name ?? ''}`;
const byKey = (docs: readonly Doc[]): Map<string, Doc> => new Map(docs.map((d) => [key(d), d]));
const find = (docs: readonly Doc[], kind: string, name: string): Doc => {
  const d = docs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!d) throw new Error(`no ${kind} ${name} rendered`);
  return d;
};
type PodSpecDoc = {
  spec: {
    replicas?: number;
    template: { spec: { nodeSelector?: unknown; tolerations?: unknown; containers: { image: string; args: string[]; env: { name: string; value?: string }[]; resources: unknown }[] } };
  };
};

describeCluster('the Helm chart', () => {
  let base: Doc[];

  beforeAll(async () => {
    const out = await kubectl(['kustomize', join(repoRoot(), 'manifests', 'base')]);
    if (out.code !== 0) throw new Error(out.stderr);
    base = YAML.parseAllDocuments(out.stdout).map((d) => d.toJSON() as Doc);
  });

  it('passes helm lint', async () => {
    const out = await helm(['lint', CHART, '--strict', '--namespace', ADDON_NAMESPACE]);
    expect([out.code, out.stdout]).toEqual([0, expect.stringContaining('1 chart(s) linted, 0 chart(s) failed')]);
  });

  it('renders with its defaults exactly the objects of the kustomize base', async () => {
    const chart = byKey(await helmTemplate());
    const kust = byKey(base.filter((d) => d.kind !== 'Namespace'));
    expect([...chart.keys()].sort()).toEqual([...kust.keys()].sort());
    for (const [k, d] of kust) expect([k, normalized(chart.get(k) ?? {})]).toEqual([k, normalized(d)]);
    // Every object carries the add-on's label and Helm's.
    for (const d of chart.values()) expect((d.metadata as { labels: Record<string, string> }).labels).toMatchObject({ 'app.kubernetes.io/part-of': 'cascade', 'app.kubernetes.io/managed-by': 'Helm' });
  });

  it('creates the namespace with the pod-security label of the base when asked to', async () => {
    const ns = find(await helmTemplate(['--set', 'namespace.create=true']), 'Namespace', ADDON_NAMESPACE);
    expect(normalized(ns)).toEqual(normalized(find(base, 'Namespace', ADDON_NAMESPACE)));
  });

  it('exposes the driver name, image, placement, replicas, resources, device classes, features and the gate scope', async () => {
    const docs = await helmTemplate([
      '--set',
      'driverName=gpu.example.com,image.repository=registry.example.com/cascade,image.tag=0.2.0,image.pullPolicy=Always,controller.replicas=3',
      '--set',
      'deviceClasses.vfio=false,deviceClasses.mig=false,features.dynamicMig=false,features.sharing=false,features.preemption=false,features.failoverReserves=false',
      '--set',
      'features.defragIntervalSeconds=300,features.passthrough.switchable=all,nodePlugin.kubeletDir=/var/lib/k0s/kubelet',
      '--set-json',
      'features.coAllocateDrivers=["dra.cpu","dra.net"]',
      '--set-json',
      // Helm merges maps with the defaults: a user replaces the default label by nulling it.
      'nodePlugin.nodeSelector={"node-role.example.com/gpu":"true","nvidia.com/gpu.present":null}',
      '--set-json',
      'nodePlugin.tolerations=[{"key":"dedicated","operator":"Equal","value":"gpu","effect":"NoSchedule"}]',
      '--set-json',
      'controller.resources={"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"memory":"2Gi"}}',
      '--set-json',
      'gate.namespaceSelector={"matchLabels":{"gpu.example.com/allocate":"cascade"}}',
    ]);
    const ctl = find(docs, 'Deployment', 'cascade-controller') as unknown as PodSpecDoc;
    const c = ctl.spec.template.spec.containers[0];
    expect(ctl.spec.replicas).toBe(3);
    expect(c?.image).toBe('registry.example.com/cascade:0.2.0');
    expect(c?.args).toEqual(['--driver-name=gpu.example.com', '--http-port=8080', '--webhook-port=8443', '--no-preemption', '--no-failover-reserves', '--defrag-interval=300']);
    expect(c?.env.find((e) => e.name === 'CASCADE_CO_ALLOCATE_DRIVERS')?.value).toBe('dra.cpu,dra.net');
    expect(c?.resources).toEqual({ requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } });

    const ds = find(docs, 'DaemonSet', 'cascade-node-plugin') as unknown as PodSpecDoc;
    const p = ds.spec.template.spec.containers[0];
    expect(ds.spec.template.spec.nodeSelector).toEqual({ 'node-role.example.com/gpu': 'true' });
    expect(ds.spec.template.spec.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }]);
    expect(p?.args).toEqual(
      expect.arrayContaining([
        '--driver-name=gpu.example.com',
        '--plugins-dir=/var/lib/k0s/kubelet/plugins',
        '--registry-dir=/var/lib/k0s/kubelet/plugins_registry',
        '--no-dynamic-mig',
        '--no-shared-gpus',
        '--passthrough-switchable=all',
      ]),
    );
    expect(p?.args.some((a) => a.startsWith('--passthrough-pool'))).toBe(false);

    expect(docs.filter((d) => d.kind === 'DeviceClass').map((d) => d.metadata?.name)).toEqual(['gpu.gpu.example.com', 'shared.gpu.example.com']);
    expect(JSON.stringify(find(docs, 'DeviceClass', 'gpu.gpu.example.com'))).toContain('device.attributes[\\"gpu.example.com\\"].type == \\"gpu\\"');
    expect(docs.some((d) => d.kind === 'CustomResourceDefinition')).toBe(false);
    const hook = find(docs, 'MutatingWebhookConfiguration', 'cascade-scheduling-gate') as unknown as { webhooks: { name: string; namespaceSelector: unknown }[] };
    expect(hook.webhooks[0]).toMatchObject({ name: 'scheduling-gate.gpu.example.com', namespaceSelector: { matchLabels: { 'gpu.example.com/allocate': 'cascade' } } });
    // The admission policies follow the driver name (finalizer, slices, opaque config) and the namespace.
    const text = docs.map((d) => JSON.stringify(d)).join('\n');
    expect(text).toContain("'gpu.example.com/allocation'");
    expect(text).toContain("variables.slice.spec.driver == 'gpu.example.com'");
    // Left: only the API group of Cascade's own objects (RBAC for FailoverReserves, the GpuConfig apiVersion).
    expect(text.replace(/\["gpu\.cascade\.dev"\]/g, '').replace(/gpu\.cascade\.dev\/v1alpha1/g, '')).not.toContain('gpu.cascade.dev');
  });

  it.each<[string, string[], RegExp]>([
    ['a driver name that is no DNS subdomain', ['--set', 'driverName=GPU_Driver'], /driverName "GPU_Driver" is not a DNS subdomain/],
    ['an unknown gate failure policy', ['--set', 'gate.failurePolicy=Sometimes'], /failurePolicy.*(Fail|value must be one of)/],
    ['a misspelt value', ['--set', 'controller.replica=2'], /additional properties 'replica' not allowed|replica/],
    ['a relative kubelet directory', ['--set', 'nodePlugin.kubeletDir=var/lib/kubelet'], /kubeletDir/],
  ])('refuses %s with a message naming it', async (_what, args, message) => {
    const out = await helm(['template', 'cascade', CHART, '--namespace', ADDON_NAMESPACE, ...args]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(message);
  });
});
