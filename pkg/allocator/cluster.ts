// What `cascade allocate --kubeconfig` reads from a live cluster: the objects
// that describe the fleet now, as documents for runAllocate. Lists only; nothing
// is written.
import type { Kube } from '../k8s/resources.js';

/** List items come without their kind; documents need it. */
function as(kind: string, items: readonly object[]): unknown[] {
  return items.map((o) => ({ ...o, kind }));
}

export async function clusterDocuments(kube: Kube, driver: string): Promise<unknown[]> {
  const [classes, slices, nodes, namespaces, claims, pods] = await Promise.all([
    kube.deviceClasses.list(),
    kube.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${driver}` }),
    kube.nodes.list(),
    kube.namespaces.list(),
    kube.resourceClaims.list(),
    kube.pods.list(),
  ]);
  return [...as('DeviceClass', classes), ...as('ResourceSlice', slices), ...as('Node', nodes), ...as('Namespace', namespaces), ...as('ResourceClaim', claims), ...as('Pod', pods)];
}
