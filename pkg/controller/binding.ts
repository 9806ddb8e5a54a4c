// Binding conditions (KEP-5007, beta in 1.36): some devices are usable only
// after something outside the allocator has happened (a GPU attached to the
// node through a fabric, a network port configured). Their results carry the
// device's bindingConditions; the kube-scheduler holds the pod in PreBind until
// all of them are True in the claim's status.devices, and gives up when one of
// the bindingFailureConditions turns True (or after its binding timeout): it
// then clears the allocation, and the claim is allocated again.
//
// Cascade's part: say in the Allocated event what the pod waits for; notice a
// failed binding, say so where the user looks, and keep the failed device out
// of the claim's next allocation so that it does not fail the same way twice.
import type { AllocatedDeviceStatus, AllocationResult, DeviceRequestAllocationResult, ResourceClaim } from '../api/resource.js';
import type { AllocatedDeviceRef } from '../allocator/types.js';

/** One device of a claim whose binding failed, with the condition that said so. */
export interface BindingFailure {
  readonly ref: AllocatedDeviceRef;
  readonly condition: string;
  readonly reason: string;
  readonly message: string;
}

const statusOf = (claim: ResourceClaim, r: DeviceRequestAllocationResult): AllocatedDeviceStatus | undefined =>
  (claim.status?.devices ?? []).find((s) => s.driver === r.driver && s.pool === r.pool && s.device === r.device && (s.shareID ?? '') === (r.shareID ?? ''));

/** Devices of the claim's allocation with a binding failure condition that is True now. */
export function failedBindings(claim: ResourceClaim): BindingFailure[] {
  const out: BindingFailure[] = [];
  for (const r of claim.status?.allocation?.devices?.results ?? []) {
    if ((r.bindingFailureConditions ?? []).length === 0) continue;
    const st = statusOf(claim, r);
    const failed = (st?.conditions ?? []).find((c) => c.status === 'True' && (r.bindingFailureConditions ?? []).includes(c.type));
    if (failed === undefined) continue;
    out.push({
      ref: { driver: r.driver, pool: r.pool, device: r.device },
      condition: failed.type,
      reason: failed.reason ?? '',
      message: failed.message ?? '',
    });
  }
  return out;
}

/**
 * What the pod waits for before the kube-scheduler binds it, as a sentence for
 * the Allocated event; undefined when no device has binding conditions.
 */
export function bindingWait(allocation: AllocationResult | undefined): string | undefined {
  const waiting = (allocation?.devices?.results ?? []).filter((r) => (r.bindingConditions ?? []).length > 0);
  if (waiting.length === 0) return undefined;
  const parts = waiting.map((r) => `${r.device} (${r.driver}: ${(r.bindingConditions ?? []).join(', ')})`);
  return `The kube-scheduler binds the pod only once these conditions are True in the claim's status: ${parts.join('; ')}.`;
}

/** A person's sentence for a failed binding: what happened, then what comes next. */
export function describeFailure(f: BindingFailure, node: string | undefined): string {
  const why = [f.reason, f.message].filter((s) => s !== '').join(': ');
  return (
    `Device ${f.ref.pool}/${f.ref.device} of ${f.ref.driver} could not be made ready${node ? ` for node ${node}` : ''} (${f.condition}${why ? `, ${why}` : ''}). ` +
    'The kube-scheduler releases the allocation; Cascade allocates the claim again without that device.'
  );
}

/**
 * Devices each claim must not get again because binding them failed, kept per
 * claim (by namespace/name and UID) and bounded in size; forgotten with the claim.
 */
export class BindingFailures {
  private readonly byClaim = new Map<string, { uid: string; refs: AllocatedDeviceRef[] }>();

  constructor(private readonly max = 10_000) {}

  /** Records the failures; returns those not known before (to report once). */
  add(key: string, uid: string, failures: readonly BindingFailure[]): BindingFailure[] {
    let e = this.byClaim.get(key);
    if (e === undefined || e.uid !== uid) {
      e = { uid, refs: [] };
      this.byClaim.delete(key);
      if (this.byClaim.size >= this.max) {
        const oldest = this.byClaim.keys().next().value;
        if (oldest !== undefined) this.byClaim.delete(oldest);
      }
      this.byClaim.set(key, e);
    }
    const entry = e;
    const fresh = failures.filter((f) => !entry.refs.some((r) => sameDevice(r, f.ref)));
    entry.refs.push(...fresh.map((f) => f.ref));
    return fresh;
  }

  /** The devices to keep away from this claim. */
  avoid(key: string, uid: string): readonly AllocatedDeviceRef[] {
    const e = this.byClaim.get(key);
    return e !== undefined && e.uid === uid ? e.refs : [];
  }

  forget(key: string): void {
    this.byClaim.delete(key);
  }

  get size(): number {
    return this.byClaim.size;
  }
}

const sameDevice = (a: AllocatedDeviceRef, b: AllocatedDeviceRef): boolean => a.driver === b.driver && a.pool === b.pool && a.device === b.device;
