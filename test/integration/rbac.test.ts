// RBAC is really enforced: a ServiceAccount's kubeconfig gets exactly what its
// role grants, so manifests' RBAC is what tests exercise.
import { describeCluster, useNamespace, adminKubeconfig, clusterDir, eventually } from '../support/cluster.js';
import { writeServiceAccountKubeconfig, createFakeNode } from '../../pkg/cluster/controlplane.js';
import { Kube } from '../../pkg/k8s/resources.js';
import { KubeApiError } from '../../pkg/k8s/client.js';
import { join } from 'node:path';

describeCluster('the local control plane', () => {
  const ns = useNamespace('rbac');

  it('creates fake Nodes that are Ready, untainted and have capacity', async () => {
    const node = await createFakeNode(ns.kube, `${ns.name}-node`, { cpu: '32', memory: '256Gi', labels: { 'cascade.dev/test': 'yes' } });
    expect(node.status?.allocatable).toEqual({ cpu: '32', memory: '256Gi', pods: '110' });
    expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.spec?.taints ?? []).toEqual([]);
    expect(node.metadata.labels?.['cascade.dev/test']).toBe('yes');
    await ns.kube.nodes.delete(node.metadata.name!);
  });

  it('gives a ServiceAccount token kubeconfig only what RBAC grants', async () => {
    const path = await writeServiceAccountKubeconfig(adminKubeconfig(), ns.name, 'reader', join(clusterDir(), `${ns.name}-reader.kubeconfig`));
    const sa = Kube.fromFile(path);
    try {
      const denied = (await sa.resourceSlices.list().catch((e: unknown) => e)) as KubeApiError;
      expect(denied).toBeInstanceOf(KubeApiError);
      expect(denied.code).toBe(403);
      expect(denied.message).toContain(`system:serviceaccount:${ns.name}:reader`);

      const rbac = ns.kube.api({ group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRole', plural: 'clusterroles', namespaced: false });
      const binding = ns.kube.api({ group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: false });
      await rbac.create({ metadata: { name: `${ns.name}-slices` }, rules: [{ apiGroups: ['resource.k8s.io'], resources: ['resourceslices'], verbs: ['get', 'list', 'watch'] }] } as never);
      await binding.create({
        metadata: { name: `${ns.name}-slices` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${ns.name}-slices` },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns.name }],
      } as never);
      const items = await eventually('RBAC grant to take effect', async () => (await sa.resourceSlices.list().catch(() => undefined)) ?? undefined);
      expect(Array.isArray(items)).toBe(true);
      const create = (await sa.resourceSlices
        .create({ metadata: { name: `${ns.name}-x` }, spec: { driver: 'gpu.cascade.dev', nodeName: 'n', pool: { name: 'n', generation: 1, resourceSliceCount: 1 }, devices: [] } })
        .catch((e: unknown) => e)) as KubeApiError;
      expect(create.code).toBe(403);
      await binding.delete(`${ns.name}-slices`);
      await rbac.delete(`${ns.name}-slices`);
    } finally {
      sa.close();
    }
  });
});
