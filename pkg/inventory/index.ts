// The desired ResourceSlices of one node from what discovery found: one pool
// named after the node, devices per docs/devices.md, every API limit kept.
import type { DeviceTaint } from '../api/resource.js';
import { type GpuDevices, gpuDevices, nvlinkDomains, passthroughDevice, planGpus, sharingOptions } from './devices.js';
import { limitViolations, packSlices } from './slices.js';
import type { DesiredSlice, InventoryInput } from './types.js';

export type { DesiredSlice, InventoryInput, InventoryOptions, OwnedInstance, PassthroughGpu, SharingOptions } from './types.js';
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
  const passthrough = new Map((input.passthrough ?? []).map((p) => [p.address, p]));
  const seen = new Set<string>();
  const perGpu: GpuDevices[] = plans.map((plan) => {
    const p = passthrough.get(plan.gpu.pciBusId);
    const taints = input.taints?.[plan.gpu.uuid] ?? none;
    if (p) seen.add(p.address);
    // A pool GPU is for VMs only, even while nvidia-smi still sees it.
    if (p?.mode === 'pool') return { minor: plan.gpu.minor, devices: [passthroughDevice(input.driverName, p, plan.gpu, undefined, taints)], counterSet: undefined };
    return gpuDevices(plan, input.driverName, domains.get(plan.gpu.uuid), taints, sharing, p);
  });
  // GPUs nvidia-smi does not see because they are bound to vfio-pci (or to nothing): passthrough only.
  for (const [i, p] of [...passthrough.values()].filter((x) => !seen.has(x.address)).entries()) {
    perGpu.push({ minor: 100_000 + i, devices: [passthroughDevice(input.driverName, p, undefined, undefined, none)], counterSet: undefined });
  }
  const slices = packSlices(input.nodeName, input.driverName, perGpu);
  const problems = limitViolations(slices);
  if (problems.length > 0) {
    // A bug here would make the API server refuse the whole pool; say exactly what.
    throw new Error(`inventory for node ${input.nodeName} breaks API limits: ${problems.join('; ')}`);
  }
  return slices;
}
