// Event reasons and condition types, in one place: every Event Cascade writes
// uses one of these, and docs/troubleshooting.md explains each.
export const REASON = {
  /** A claim got devices; the note says which alternative won, which devices, which node and why. */
  Allocated: 'Allocated',
  /** Nothing fits right now; the note is the allocator's explanation. Retried when the fleet changes. */
  AllocationFailed: 'AllocationFailed',
  /** The claim's devices were released (claim deleted, or no pod uses it any more). */
  Deallocated: 'Deallocated',
  /** All of a pod's claims are allocated; the scheduling gate was removed so the scheduler can bind it. */
  SchedulingGateRemoved: 'SchedulingGateRemoved',
  /** The claim cannot be handled at all (invalid spec, mixed drivers); the note says what to change. */
  InvalidClaim: 'InvalidClaim',
  /** A gated pod names a ResourceClaim that does not exist; it stays gated until the claim is created. */
  ClaimNotFound: 'ClaimNotFound',
  /** A higher-priority pod fits nowhere: Cascade evicts the cheapest lower-priority pods on one node for it. */
  Preempting: 'Preempting',
  /** This pod was evicted so that a higher-priority pod gets its devices; the note names that pod. */
  Preempted: 'Preempted',
  /** A higher-priority pod fits nowhere and preempts no one (preemptionPolicy Never, or no set of victims would do). */
  NotPreempting: 'NotPreempting',
  /** The claim fits, but only by taking capacity a FailoverReserve keeps free for pods of higher priority. */
  FailoverReserveHeld: 'FailoverReserveHeld',
  /** The pod's node is lost (NotReady past the reserve's grace period): evicted so that its owner creates it again. */
  NodeLost: 'NodeLost',
  /** The defragmenter moves pods so that this waiting pod gets room (controller --defrag-interval). */
  Defragmenting: 'Defragmenting',
  /** A device's binding failure condition turned True (KEP-5007): the scheduler releases the allocation; Cascade allocates again without that device. */
  BindingFailed: 'BindingFailed',
  /** This movable pod was evicted so that its owner creates it again where it fits, leaving room for a waiting pod. */
  Moved: 'Moved',
} as const;

export type Reason = (typeof REASON)[keyof typeof REASON];

export const ACTION = {
  Allocate: 'Allocate',
  Deallocate: 'Deallocate',
  Ungate: 'RemoveSchedulingGate',
  Preempt: 'Preempt',
} as const;
