// The real kube-controller-manager turns a pod's ResourceClaimTemplate
// reference into a generated ResourceClaim, exactly as Cascade relies on.
import { describeCluster, useNamespace, kubectl, eventually } from '../support/cluster.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';

// A class of no installed driver: nothing allocates this claim, only the claim controller acts.
const DRIVER = 'unowned.example.com';

describeCluster('ResourceClaimTemplates and the resourceclaim controller', () => {
  const ns = useNamespace('tmpl');

  it('creates a claim for the pod, owned by it and named after it, and records it in the pod status', async () => {
    await ns.kube.resourceClaimTemplates.create({
      metadata: { name: 'one-gpu', namespace: ns.name },
      spec: { spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${DRIVER}` } }] } } },
    });
    const pod = await ns.kube.pods.create({
      metadata: { name: 'trainer', namespace: ns.name },
      spec: {
        containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', resources: { claims: [{ name: 'gpu' }] } }],
        resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
        // A gate keeps the scheduler away: nothing could allocate this claim here.
        schedulingGates: [{ name: 'test.cascade.dev/hold' }],
      },
    });

    const claim = await eventually('the generated claim', async () => {
      const claims = await ns.kube.resourceClaims.list(ns.name);
      return claims.find((c) => c.metadata.ownerReferences?.some((o) => o.uid === pod.metadata.uid));
    });
    expect(claim.metadata.name).toMatch(/^trainer-gpu-/);
    expect(claim.metadata.annotations?.['resource.kubernetes.io/pod-claim-name']).toBe('gpu');
    expect(claim.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Pod', name: 'trainer', controller: true });
    expect(claim.spec.devices?.requests?.[0]?.exactly?.deviceClassName).toBe(`gpu.${DRIVER}`);

    const statuses = await eventually('pod.status.resourceClaimStatuses', async () => {
      const p = await ns.kube.pods.get('trainer', ns.name);
      return p.status?.resourceClaimStatuses?.length ? p.status.resourceClaimStatuses : undefined;
    });
    expect(statuses).toEqual([{ name: 'gpu', resourceClaimName: claim.metadata.name }]);

    const out = await kubectl(['describe', 'resourceclaim', claim.metadata.name!, '-n', ns.name]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`Name:         ${claim.metadata.name}`);
    // kubectl's generic describer lists the owner reference.
    expect(out.stdout).toMatch(/Owner References:[\s\S]*Kind:\s+Pod\s+Name:\s+trainer/);
    expect(out.stdout).toContain(`gpu.${DRIVER}`);

    // Deleting the pod lets the garbage collector remove the generated claim.
    await ns.kube.pods.delete('trainer', ns.name, { gracePeriodSeconds: 0 });
    await eventually(
      'the generated claim to be garbage collected',
      async () => {
        const left: ResourceClaim[] = await ns.kube.resourceClaims.list(ns.name);
        return left.every((c) => c.metadata.name !== claim.metadata.name) || undefined;
      },
      60_000,
    );
  });
});
