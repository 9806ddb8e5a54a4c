// `kubectl cascade uninstall`: what to do before the manifests are deleted
// (`kubectl delete -k manifests/overlays/...`), so that nothing is left behind
// that waits for Cascade or refuses pods for it:
//   1. the scheduling-gate MutatingWebhookConfiguration is deleted first, so no
//      new pod is gated while the rest is undone;
//   2. every pod still carrying Cascade's scheduling gate loses it (it is then
//      the kube-scheduler's, whose built-in allocator sees the claim as it is);
//   3. every claim loses Cascade's finalizer; one no pod is using also loses
//      Cascade's allocation, so the devices it names are not held by nobody;
//      a claim a running pod uses keeps its allocation (the pod keeps its GPUs);
//   4. the driver's ResourceSlices are deleted (the node plugin leaves them on
//      stop, so that a restart does not withdraw devices).
// Running GPU pods keep running: their containers hold the devices the node
// plugin prepared; nothing unprepares them once the node plugin is gone.
// Every step is idempotent; a second run finds nothing to do.
import { KubeApiError, isNotFound } from '../k8s/client.js';
import type { Kube } from '../k8s/resources.js';
import { MUTATING_WEBHOOK_CONFIGURATIONS } from '../controller/webhook.js';
import { allocationFinalizer, gateRemovalOps } from '../controller/controller.js';

export interface UninstallReport {
  readonly webhookDeleted: boolean;
  readonly podsUngated: readonly string[];
  readonly claimsReleased: readonly string[];
  readonly claimsKept: readonly string[];
  readonly slicesDeleted: number;
}

export interface UninstallOptions {
  readonly driver: string;
  readonly webhookConfigName: string;
  /** Only say what would be done. */
  readonly dryRun?: boolean;
}

export async function uninstall(kube: Kube, o: UninstallOptions): Promise<UninstallReport> {
  // One name serves as Cascade's scheduling gate and its claim finalizer.
  const gate = allocationFinalizer(o.driver);
  let webhookDeleted = false;
  if (!o.dryRun) {
    try {
      await kube.api(MUTATING_WEBHOOK_CONFIGURATIONS).delete(o.webhookConfigName);
      webhookDeleted = true;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  const podsUngated: string[] = [];
  for (const p of await kube.pods.list()) {
    const i = (p.spec.schedulingGates ?? []).findIndex((g) => g.name === gate);
    if (i < 0) continue;
    const key = `${p.metadata.namespace ?? ''}/${p.metadata.name ?? ''}`;
    podsUngated.push(key);
    if (o.dryRun) continue;
    try {
      await kube.pods.jsonPatch(p.metadata.name ?? '', gateRemovalOps(i, gate), p.metadata.namespace);
    } catch (err) {
      if (isNotFound(err) || (err instanceof KubeApiError && err.code === 422)) continue;
      throw err;
    }
  }
  const claimsReleased: string[] = [];
  const claimsKept: string[] = [];
  for (const c of await kube.resourceClaims.list()) {
    const finalizers = c.metadata.finalizers ?? [];
    if (!finalizers.includes(gate)) continue;
    const key = `${c.metadata.namespace ?? ''}/${c.metadata.name ?? ''}`;
    const inUse = (c.status?.reservedFor ?? []).length > 0;
    (inUse ? claimsKept : claimsReleased).push(key);
    if (o.dryRun) continue;
    try {
      let rv = c.metadata.resourceVersion;
      if (!inUse && c.status?.allocation) {
        const cleared = await kube.resourceClaims.mergePatch(c.metadata.name ?? '', { metadata: { resourceVersion: rv }, status: { allocation: null } }, c.metadata.namespace, 'status');
        rv = cleared.metadata.resourceVersion;
      }
      await kube.resourceClaims.mergePatch(c.metadata.name ?? '', { metadata: { resourceVersion: rv, finalizers: finalizers.filter((f) => f !== gate) } }, c.metadata.namespace);
    } catch (err) {
      if (isNotFound(err)) continue;
      throw err;
    }
  }
  let slicesDeleted = 0;
  for (const s of await kube.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${o.driver}` })) {
    slicesDeleted++;
    if (o.dryRun) continue;
    await kube.resourceSlices.delete(s.metadata.name ?? '').catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
  return { webhookDeleted, podsUngated, claimsReleased, claimsKept, slicesDeleted };
}

export function renderUninstall(r: UninstallReport, dryRun: boolean): string {
  const verb = dryRun ? 'would' : 'did';
  return [
    `Cascade's cleanup (${dryRun ? 'dry run: nothing changed' : 'done'}); now delete the manifests (kubectl delete -k ...).`,
    `- scheduling-gate webhook: ${dryRun ? 'would be deleted' : r.webhookDeleted ? 'deleted' : 'already gone'}`,
    `- pods ungated (${verb}): ${r.podsUngated.length}${r.podsUngated.length > 0 ? ` (${r.podsUngated.slice(0, 10).join(', ')}${r.podsUngated.length > 10 ? ', ...' : ''})` : ''}`,
    `- claims released, allocation cleared (${verb}): ${r.claimsReleased.length}`,
    `- claims in use, finalizer removed, allocation kept for their running pods (${verb}): ${r.claimsKept.length}`,
    `- ResourceSlices of the driver deleted (${verb}): ${r.slicesDeleted}`,
  ].join('\n');
}
