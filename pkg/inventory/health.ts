// Health as taints: a lost or failing GPU keeps being published, tainted
// NoSchedule, so claims stop landing on it and users see why.
import type { DeviceTaint } from '../api/resource.js';
import type { Discovery } from '../nvidia/backend.js';
import type { GpuHealth } from '../nvidia/types.js';

/** Taint key for an unhealthy GPU: "<driver>/unhealthy". */
export function unhealthyTaintKey(driverName: string): string {
  return `${driverName}/unhealthy`;
}

/** Taint values are label values: 63 characters of [A-Za-z0-9_.-]. */
function taintValue(reason: string): string {
  return (
    reason
      .replace(/[^A-Za-z0-9_.-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '')
      .slice(0, 63)
      .replace(/[^A-Za-z0-9]+$/, '') || 'unhealthy'
  );
}

export function unhealthyTaint(driverName: string, reason: string): DeviceTaint {
  return { key: unhealthyTaintKey(driverName), value: taintValue(reason), effect: 'NoSchedule' };
}

/** Taints by GPU UUID for every unhealthy GPU in a health report (bus IDs resolved via `discovery`). */
export function taintsFromHealth(driverName: string, health: readonly GpuHealth[], discovery: Discovery): Record<string, DeviceTaint[]> {
  const out: Record<string, DeviceTaint[]> = {};
  for (const h of health) {
    if (h.healthy) continue;
    const uuid = h.uuid ?? discovery.gpus.find((g) => g.pciBusId === h.pciBusId)?.uuid;
    if (uuid === undefined) continue;
    out[uuid] = [unhealthyTaint(driverName, h.reason ?? 'unhealthy')];
  }
  return out;
}

/**
 * A GPU that fell off the bus disappears from nvidia-smi's output. Keep
 * publishing it from the previous discovery, tainted, rather than let it
 * vanish while a claim may still hold it.
 */
export function carryOverLostGpus(driverName: string, previous: Discovery | undefined, current: Discovery): { discovery: Discovery; taints: Record<string, DeviceTaint[]> } {
  const taints: Record<string, DeviceTaint[]> = {};
  if (!previous || current.lost.length === 0) return { discovery: current, taints };
  const present = new Set(current.gpus.map((g) => g.uuid));
  const lostBus = new Set(current.lost.map((l) => l.pciBusId));
  const carried = previous.gpus.filter((g) => !present.has(g.uuid) && lostBus.has(g.pciBusId));
  if (carried.length === 0) return { discovery: current, taints };
  for (const g of carried) taints[g.uuid] = [unhealthyTaint(driverName, 'gpu-lost')];
  const carriedIndexes = new Set(carried.map((g) => g.index));
  return {
    discovery: {
      ...current,
      gpus: [...current.gpus, ...carried].sort((a, b) => a.index - b.index),
      migProfiles: [...current.migProfiles, ...previous.migProfiles.filter((p) => carriedIndexes.has(p.gpuIndex))],
      gpuInstances: [...current.gpuInstances, ...previous.gpuInstances.filter((i) => carriedIndexes.has(i.gpuIndex))],
      computeInstances: [...current.computeInstances, ...previous.computeInstances.filter((i) => carriedIndexes.has(i.gpuIndex))],
    },
    taints,
  };
}
