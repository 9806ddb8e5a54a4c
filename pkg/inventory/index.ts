// The desired ResourceSlices of one node from what discovery found: one pool
// named after the node, devices per docs/devices.md, every API limit kept.
import type { DeviceTaint } from '../api/resource.js';
import { gpuDevices, nvlinkDomains, planGpus, sharingOptions } from './devices.js';
import { limitViolations, packSlices } from './slices.js';
import type { DesiredSlice, InventoryInput } from './types.js';

export type { DesiredSlice, InventoryInput, InventoryOptions, OwnedInstance, SharingOptions } from './types.js';
export { DEFAULT_SHARING } from './types.js';
export { counterTotals, nvlinkDomains, planGpus, profileNotes, toSemver } from './devices.js';
export { deviceLimit, fingerprint, limitViolations, sliceName, toResourceSlices } from './slices.js';
export { carryOverLostGpus, taintsFromHealth, unhealthyTaint, unhealthyTaintKey } from './health.js';

/**
 * Builds the slices to publish. Pure and deterministic: the same input gives
 * byte-identical output, so a publisher can compare it with what the server
 * holds and bump the pool generation only on change.
 */
export function buildDesiredSlices(input: InventoryInput): DesiredSlice[] {
  const plans = planGpus(input.discovery, input.ownedInstances ?? [], input.options ?? {});
  const domains = nvlinkDomains(input.nodeName, input.discovery.gpus);
  const none: readonly DeviceTaint[] = [];
  const sharing = sharingOptions(input.options ?? {});
  const perGpu = plans.map((plan) => gpuDevices(plan, input.driverName, domains.get(plan.gpu.uuid), input.taints?.[plan.gpu.uuid] ?? none, sharing));
  const slices = packSlices(input.nodeName, input.driverName, perGpu);
  const problems = limitViolations(slices);
  if (problems.length > 0) {
    // A bug here would make the API server refuse the whole pool; say exactly what.
    throw new Error(`inventory for node ${input.nodeName} breaks API limits: ${problems.join('; ')}`);
  }
  return slices;
}
