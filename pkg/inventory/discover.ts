// One discovery pass: ask the backend, keep lost GPUs (tainted) from the
// previous pass, and turn the result into the desired slices.
import type { DeviceTaint } from '../api/resource.js';
import type { Discovery, GpuBackend } from '../nvidia/backend.js';
import { carryOverLostGpus } from './health.js';
import { buildDesiredSlices, profileNotes } from './index.js';
import type { DesiredSlice, InventoryOptions, OwnedInstance } from './types.js';

export interface DiscoverOptions {
  readonly nodeName: string;
  readonly driverName: string;
  readonly ownedInstances?: readonly OwnedInstance[];
  /** Extra taints by GPU UUID (from a health check), merged with those of lost GPUs. */
  readonly taints?: Readonly<Record<string, readonly DeviceTaint[]>>;
  /** The previous pass's discovery, so a GPU that fell off the bus stays published, tainted. */
  readonly previous?: Discovery;
  readonly options?: InventoryOptions;
}

export interface DiscoverResult {
  /** What to keep as `previous` for the next pass. */
  readonly discovery: Discovery;
  readonly slices: DesiredSlice[];
  /** Which values are catalog knowledge rather than the board's (profileNotes). */
  readonly notes: string[];
}

export async function discoverDesiredSlices(backend: GpuBackend, o: DiscoverOptions): Promise<DiscoverResult> {
  const current = await backend.discover();
  const { discovery, taints } = carryOverLostGpus(o.driverName, o.previous, current);
  const merged: Record<string, readonly DeviceTaint[]> = { ...(o.taints ?? {}) };
  for (const [uuid, t] of Object.entries(taints)) merged[uuid] = [...(merged[uuid] ?? []), ...t];
  const slices = buildDesiredSlices({
    nodeName: o.nodeName,
    driverName: o.driverName,
    discovery,
    ownedInstances: o.ownedInstances ?? [],
    taints: merged,
    options: o.options ?? {},
  });
  return { discovery, slices, notes: profileNotes(discovery, o.options ?? {}) };
}
