// A board's MIG geometry: how many memory and compute slices its GPU divides
// into. Most boards have 8 memory and 7 compute slices; the A30 has 4 and 4.
// Read from the profiles themselves (the full-GPU profile spans every memory
// slice and every compute slice), so a board nobody told us about comes out
// right from its own `mig -lgip`/`-lgipp`.
import { MIG_COMPUTE_SLICES, MIG_MEMORY_SLICES } from '../api/devicemodel.js';

export interface MigGeometry {
  readonly memorySlices: number;
  readonly computeSlices: number;
}

interface ProfileShape {
  readonly computeSlices: number;
  readonly memorySlices: number;
  readonly placementStarts: readonly number[];
}

/** The geometry the profiles describe; the common 8/7 when there are none. */
export function migGeometry(profiles: readonly ProfileShape[]): MigGeometry {
  if (profiles.length === 0) return { memorySlices: MIG_MEMORY_SLICES, computeSlices: MIG_COMPUTE_SLICES };
  let memory = 0;
  let compute = 0;
  for (const p of profiles) {
    for (const start of p.placementStarts) memory = Math.max(memory, start + p.memorySlices);
    compute = Math.max(compute, p.computeSlices);
  }
  return { memorySlices: memory, computeSlices: compute };
}
