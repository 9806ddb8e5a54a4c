// Which GPU sharing a claim's departure undoes: a GPU's MPS daemon or time
// slice stays while any other checkpointed claim still shares the GPU that way.
import type { CheckpointState } from '../kubeletplugin/checkpoint.js';

export interface SharingRelease {
  readonly gpuUuid: string;
  readonly gpuIndex: number;
  readonly strategy: 'MPS' | 'TimeSlicing';
}

/** What leaving claim `uid` releases: sharing on GPUs no other claim shares the same way. */
export function sharingReleases(state: CheckpointState, uid: string): SharingRelease[] {
  const mine = state.claims[uid];
  if (!mine) return [];
  const out: SharingRelease[] = [];
  for (const d of mine.intended) {
    const s = d.sharing;
    if (!s || out.some((r) => r.gpuUuid === d.gpuUuid && r.strategy === s.strategy)) continue;
    const stillShared = Object.values(state.claims).some((c) => c.uid !== uid && c.intended.some((o) => o.gpuUuid === d.gpuUuid && o.sharing?.strategy === s.strategy));
    if (!stillShared) out.push({ gpuUuid: d.gpuUuid, gpuIndex: d.gpuIndex, strategy: s.strategy });
  }
  return out;
}

/** GPUs that checkpointed claims share through MPS: their daemons must run. */
export function mpsGpus(state: CheckpointState): Set<string> {
  const out = new Set<string>();
  for (const c of Object.values(state.claims)) for (const d of c.intended) if (d.sharing?.strategy === 'MPS') out.add(d.gpuUuid);
  return out;
}
