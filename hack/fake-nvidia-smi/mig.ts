// MIG rules of the simulator: 8 memory slices, 7 compute slices, fixed
// placements and maximum counts per profile, GPU-instance IDs as the driver
// numbers them (by placement: 7g=0, 4-slice=1..2, 2-slice=3..6, 1-slice=7..13).
import type { CatalogProfile, GpuModel } from '../../pkg/nvidia/catalog.js';
import { migGeometry } from '../../pkg/nvidia/geometry.js';

export interface FakeComputeInstance {
  id: number;
  profileId: number;
  /** Compute slices the instance spans (all of its GPU instance). */
  size: number;
  uuid: string;
}

export interface FakeGpuInstance {
  id: number;
  profileId: number;
  start: number;
  computeInstances: FakeComputeInstance[];
}

/** Compute-instance profile IDs by compute slices, as NVML numbers them. */
const CI_PROFILE_BY_SLICES: Readonly<Record<number, number>> = { 1: 0, 2: 1, 3: 2, 4: 3, 7: 4 };

export function computeProfileId(slices: number): number {
  return CI_PROFILE_BY_SLICES[slices] ?? 0;
}

/**
 * The GPU-instance ID the driver gives a placement: the full GPU is 0, halves
 * 1-2, quarters 3-6, eighths 7-14 (on an A30, of 4 slices: 0, 1-2, 3-6).
 */
export function gpuInstanceId(model: GpuModel, memorySlices: number, start: number): number {
  const total = migGeometry(model.migProfiles).memorySlices;
  return Math.max(0, Math.round(total / memorySlices) - 1) + Math.floor(start / memorySlices);
}

export function profileById(model: GpuModel, id: number): CatalogProfile | undefined {
  return model.migProfiles.find((p) => p.id === id);
}

/** Accepts "9", "3g.40gb" and "MIG 3g.40gb", like nvidia-smi. */
export function findProfile(model: GpuModel, ref: string | number): CatalogProfile | undefined {
  if (typeof ref === 'number' || /^\d+$/.test(ref)) return profileById(model, Number(ref));
  const name = ref.replace(/^MIG\s+/i, '').toLowerCase();
  return model.migProfiles.find((p) => p.name.toLowerCase() === name);
}

export type CreateRefusal = 'Insufficient Resources' | 'Invalid Argument';

function overlaps(aStart: number, aSize: number, bStart: number, bSize: number): boolean {
  return aStart < bStart + bSize && bStart < aStart + aSize;
}

/** Why a GPU instance of `profile` cannot go at `start`, or undefined when it can. */
export function placementRefusal(model: GpuModel, existing: readonly FakeGpuInstance[], profile: CatalogProfile, start: number): CreateRefusal | undefined {
  if (!profile.placementStarts.includes(start)) return 'Invalid Argument';
  const sameProfile = existing.filter((g) => g.profileId === profile.id).length;
  if (sameProfile >= profile.maxInstances) return 'Insufficient Resources';
  let computeUsed = 0;
  for (const gi of existing) {
    const p = profileById(model, gi.profileId);
    if (!p) continue;
    computeUsed += p.computeSlices;
    if (overlaps(gi.start, p.memorySlices, start, profile.memorySlices)) return 'Insufficient Resources';
  }
  if (computeUsed + profile.computeSlices > migGeometry(model.migProfiles).computeSlices) return 'Insufficient Resources';
  return undefined;
}

/** The first placement where a new instance fits, as the driver picks when none is given. */
export function firstFreePlacement(model: GpuModel, existing: readonly FakeGpuInstance[], profile: CatalogProfile): number | undefined {
  return profile.placementStarts.find((s) => placementRefusal(model, existing, profile, s) === undefined);
}

/** How many more instances of `profile` could exist at once (the "Free" of -lgip). */
export function freeInstances(model: GpuModel, existing: readonly FakeGpuInstance[], profile: CatalogProfile): number {
  const start = firstFreePlacement(model, existing, profile);
  if (start === undefined) return 0;
  const next: FakeGpuInstance = { id: -1, profileId: profile.id, start, computeInstances: [] };
  return 1 + freeInstances(model, [...existing, next], profile);
}
