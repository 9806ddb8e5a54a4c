// Helpers for building a Snapshot from API objects the caller already holds.
import type { DeviceRequestAllocationResult, ResourceClaim } from '../api/resource.js';
import type { AllocatedDeviceRef } from './types.js';

/** The in-use record of one allocation result. */
export function refOfResult(r: DeviceRequestAllocationResult): AllocatedDeviceRef {
  return {
    driver: r.driver,
    pool: r.pool,
    device: r.device,
    ...(r.adminAccess === true ? { adminAccess: true } : {}),
    ...(r.consumedCapacity !== undefined ? { consumedCapacity: { ...r.consumedCapacity } } : {}),
    ...(r.shareID !== undefined ? { shareID: r.shareID } : {}),
  };
}

/** The devices held by existing claims (the `allocated` input of a Snapshot). */
export function allocatedDevicesOf(claims: readonly ResourceClaim[]): AllocatedDeviceRef[] {
  const out: AllocatedDeviceRef[] = [];
  for (const c of claims) {
    for (const r of c.status?.allocation?.devices?.results ?? []) {
      out.push(refOfResult(r));
    }
  }
  return out;
}
