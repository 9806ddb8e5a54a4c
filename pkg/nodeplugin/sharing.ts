// Which GPU sharing a claim's departure undoes: a GPU's MPS daemon or time
// slice stays while any other checkpointed claim still shares the GPU that way.
// A MIG instance shared through MPS has a daemon of its own, named by the
// instance's UUID, which only the claim holding the instance uses.
import type { ClaimCheckpoint, CheckpointState, IntendedDevice } from './checkpoint.js';

export interface SharingRelease {
  /** The device the sharing is set up for: a GPU's UUID, or a MIG device's. */
  readonly gpuUuid: string;
  readonly gpuIndex: number;
  readonly strategy: 'MPS' | 'TimeSlicing';
}

/**
 * The UUID a device's sharing is keyed by: its GPU's, or for a MIG instance the
 * instance's own (recorded when Cascade created it, or known beforehand for a
 * pre-existing one); undefined while a created instance has no UUID yet.
 */
export function sharingKey(claim: ClaimCheckpoint, d: IntendedDevice): string | undefined {
  if (d.type !== 'mig') return d.gpuUuid;
  return d.sharing?.deviceUuid ?? claim.migCreated.find((m) => m.deviceName === d.deviceName && m.confirmed && m.migUuid !== '')?.migUuid;
}

/** What leaving claim `uid` releases: sharing on devices no other claim shares the same way. */
export function sharingReleases(state: CheckpointState, uid: string): SharingRelease[] {
  const mine = state.claims[uid];
  if (!mine) return [];
  const out: SharingRelease[] = [];
  for (const d of mine.intended) {
    const s = d.sharing;
    const key = s ? sharingKey(mine, d) : undefined;
    if (!s || key === undefined || out.some((r) => r.gpuUuid === key && r.strategy === s.strategy)) continue;
    const stillShared = Object.values(state.claims).some((c) => c.uid !== uid && c.intended.some((o) => o.sharing?.strategy === s.strategy && sharingKey(c, o) === key));
    if (!stillShared) out.push({ gpuUuid: key, gpuIndex: d.gpuIndex, strategy: s.strategy });
  }
  return out;
}

/** GPUs and MIG devices that checkpointed claims share through MPS: their daemons must run. */
export function mpsGpus(state: CheckpointState): Set<string> {
  const out = new Set<string>();
  for (const c of Object.values(state.claims)) {
    for (const d of c.intended) {
      const key = d.sharing?.strategy === 'MPS' ? sharingKey(c, d) : undefined;
      if (key !== undefined) out.add(key);
    }
  }
  return out;
}
