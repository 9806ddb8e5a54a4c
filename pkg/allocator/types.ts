// Public input and output types of Cascade's allocator: what the controller and
// the CLI hand in (a snapshot and a pod's claims) and what they get back.
import type { AllocationResult, DeviceClass, NodeSelector, ResourceClaim, ResourceSlice } from '../api/resource.js';

/** core/v1 node taint effects. */
export type NodeTaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';

export interface NodeTaint {
  readonly key: string;
  readonly value?: string;
  readonly effect: NodeTaintEffect;
}

/** core/v1 pod toleration (of node taints). */
export interface PodToleration {
  readonly key?: string;
  readonly operator?: 'Exists' | 'Equal';
  readonly value?: string;
  readonly effect?: NodeTaintEffect;
}

/** What the allocator needs to know about a node. */
export interface NodeFacts {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly taints?: readonly NodeTaint[];
  readonly unschedulable?: boolean;
  /** Allocatable minus what bound pods request, as quantities; absent means unlimited. */
  readonly free?: { readonly cpu?: string; readonly memory?: string };
}

/** A device held by an existing allocation (one result of some claim's status.allocation). */
export interface AllocatedDeviceRef {
  readonly driver: string;
  readonly pool: string;
  readonly device: string;
  /** Admin-access results neither make a device busy nor consume counters. */
  readonly adminAccess?: boolean;
  /** For a device that allows multiple allocations: what this allocation consumes (result.consumedCapacity). */
  readonly consumedCapacity?: Readonly<Record<string, string>>;
  readonly shareID?: string;
}

/** Everything the allocator decides from; it never reads anything else. */
export interface Snapshot {
  readonly slices: readonly ResourceSlice[];
  readonly classes: readonly DeviceClass[];
  /** Candidate nodes. When absent, the nodes named by node-local slices, without labels or limits. */
  readonly nodes?: readonly NodeFacts[];
  /** Devices already held by existing allocations. */
  readonly allocated?: readonly AllocatedDeviceRef[];
  /** Namespace labels by namespace name (admin access needs resource.kubernetes.io/admin-access: "true"). */
  readonly namespaceLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** The pod whose claims are allocated together, on one node. */
export interface PodFacts {
  readonly namespace?: string;
  readonly name?: string;
  /** The pod's own cpu/memory requests (quantities), checked against the node's free resources. */
  readonly cpu?: string;
  readonly memory?: string;
  /** Tolerations of node taints; without them, NoSchedule/NoExecute node taints exclude the node. */
  readonly tolerations?: readonly PodToleration[];
  /** The pod's spec.nodeSelector: nodes without these labels are not candidates. */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** The pod's requiredDuringSchedulingIgnoredDuringExecution node affinity. */
  readonly requiredNodeAffinity?: NodeSelector;
}

/** One allocation decision: the claims of one pod, or one standalone claim. */
export interface AllocationRequest {
  readonly claims: readonly ResourceClaim[];
  readonly pod?: PodFacts;
  /** Record the request shapes in the demand model (default true; false for a what-if). */
  readonly observeDemand?: boolean;
}

/** A message pair: at most 1 KiB for a Kubernetes Event, and the full text for logs. */
export interface Explanation {
  readonly short: string;
  readonly full: string;
}

/** Which entry of a request's firstAvailable list won (index 0 for an `exactly` request). */
export interface ChosenAlternative {
  readonly request: string;
  readonly index: number;
  /** The subrequest's name; absent for an `exactly` request. */
  readonly subrequest?: string;
}

/** One term of the placement score (lower total is better). */
export interface ScoreTerm {
  readonly name: string;
  readonly value: number;
  readonly reason: string;
}

export interface ClaimAllocation {
  readonly namespace: string;
  readonly name: string;
  readonly allocation: AllocationResult;
  readonly alternatives: readonly ChosenAlternative[];
  /** True when the claim came in already allocated and was kept as it was. */
  readonly preexisting: boolean;
}

export interface AllocatedOutcome {
  readonly kind: 'allocated';
  /** The chosen node; undefined when no candidate node exists and only network devices were used. */
  readonly node: string | undefined;
  readonly claims: readonly ClaimAllocation[];
  readonly score: { readonly total: number; readonly terms: readonly ScoreTerm[] };
  /** Why this node and why these devices. */
  readonly explanation: Explanation;
  /** Devices to mark in use (what commit() applies). */
  readonly devices: readonly AllocatedDeviceRef[];
  /** The pod's cpu/memory, so commit() can take it off the node. */
  readonly pod: PodFacts | undefined;
}

/** Numbers behind a failure explanation, per request and firstAvailable alternative. */
export interface AlternativeDiagnosis {
  readonly index: number;
  readonly subrequest?: string;
  readonly deviceClassName: string;
  readonly needed: number | 'All';
  readonly devices: number;
  readonly excludedByClass: number;
  readonly excludedBySelectors: number;
  readonly onIneligibleNodes: number;
  /** Devices that can never be allocated as published: their pool is incomplete or invalid, or they are malformed. */
  readonly inUnusablePools: number;
  readonly inUse: number;
  readonly countersExhausted: number;
  /** Devices that cannot give the request's capacity (lacking it, refused by the policy, or used up by shares). */
  readonly capacityShort: number;
  readonly tainted: number;
  readonly available: number;
  readonly mostOnOneNode: { readonly node: string; readonly available: number } | undefined;
  /** Constraint, counter or search problems found on nodes that had enough devices. */
  readonly problems: readonly string[];
}

export interface RequestDiagnosis {
  readonly claim: string;
  readonly request: string;
  readonly alternatives: readonly AlternativeDiagnosis[];
}

export interface Diagnosis {
  /** Claim-level errors (unknown class, CEL error, admin access not allowed...). */
  readonly errors: readonly string[];
  readonly requests: readonly RequestDiagnosis[];
  /** Nodes rejected before looking at devices, by reason. */
  readonly nodes: { readonly candidates: number; readonly rejected: Readonly<Record<string, number>> };
}

export interface UnallocatedOutcome {
  readonly kind: 'unallocated';
  readonly explanation: Explanation;
  readonly diagnosis: Diagnosis;
}

export type AllocationOutcome = AllocatedOutcome | UnallocatedOutcome;

/** Share of the fleet's partitionable capacity in use (see State.usage). */
export interface FleetUsage {
  /** Capacity units: one per counter set (a partitionable GPU) plus one per device without counters. */
  readonly units: number;
  readonly used: number;
  /** Share of partly used GPUs (counter sets) among those in use at all; 0 when none is. */
  readonly fragmentation: number;
}

export type PolicyName = 'cascade' | 'first-fit' | 'best-fit';
