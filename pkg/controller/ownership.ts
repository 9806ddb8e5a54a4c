// Which claims are Cascade's. The rule (documented in docs/architecture.md):
// a DeviceClass is ours when one of its CEL selectors compares device.driver
// with our driver name; a claim is ours when every device class its requests
// name (in `exactly` or in any `firstAvailable` entry) exists and is ours.
// Claims that mix drivers, or name a class that does not exist, are left to
// the kube-scheduler's built-in allocator.
import type { DeviceClass, ResourceClaim, ResourceClaimSpec } from '../api/resource.js';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function classIsOurs(dc: DeviceClass, driver: string): boolean {
  const re = new RegExp(`device\\.driver\\s*==\\s*["']${escapeRegExp(driver)}["']`);
  return (dc.spec.selectors ?? []).some((s) => s.cel?.expression !== undefined && re.test(s.cel.expression));
}

/** Every device class name a claim spec refers to. */
export function classNamesOf(spec: ResourceClaimSpec): string[] {
  const names = new Set<string>();
  for (const r of spec.devices?.requests ?? []) {
    if (r.exactly) names.add(r.exactly.deviceClassName);
    for (const s of r.firstAvailable ?? []) names.add(s.deviceClassName);
  }
  return [...names];
}

export type Ownership = { readonly ours: true } | { readonly ours: false; readonly why: string };

export function claimOwnership(spec: ResourceClaimSpec, classes: ReadonlyMap<string, DeviceClass>, driver: string): Ownership {
  const names = classNamesOf(spec);
  if (names.length === 0) return { ours: false, why: 'the claim requests no devices' };
  for (const n of names) {
    const dc = classes.get(n);
    if (!dc) return { ours: false, why: `device class ${n} does not exist` };
    if (!classIsOurs(dc, driver)) return { ours: false, why: `device class ${n} does not select driver ${driver}` };
  }
  return { ours: true };
}

export function claimIsOurs(claim: ResourceClaim, classes: ReadonlyMap<string, DeviceClass>, driver: string): boolean {
  return claimOwnership(claim.spec, classes, driver).ours;
}
