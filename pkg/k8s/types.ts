// Minimal JSON shapes of the core objects Cascade touches (only the fields we
// read or write). Timestamps are strings, as on the wire.
import type { NodeSelector, ObjectMeta } from '../api/resource.js';

export interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

export interface Taint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
}

export interface NodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

export interface Node {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: { unschedulable?: boolean; taints?: Taint[]; providerID?: string };
  status?: {
    capacity?: Record<string, string>;
    allocatable?: Record<string, string>;
    conditions?: NodeCondition[];
  };
}

export interface PodResourceClaim {
  name: string;
  resourceClaimName?: string;
  resourceClaimTemplateName?: string;
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  resources?: {
    requests?: Record<string, string>;
    limits?: Record<string, string>;
    claims?: { name: string; request?: string }[];
  };
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    containers: Container[];
    initContainers?: Container[];
    nodeName?: string;
    nodeSelector?: Record<string, string>;
    schedulingGates?: { name: string }[];
    resourceClaims?: PodResourceClaim[];
    tolerations?: Toleration[];
    affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: NodeSelector } };
    restartPolicy?: string;
    terminationGracePeriodSeconds?: number;
    serviceAccountName?: string;
    automountServiceAccountToken?: boolean;
    /** Set by the API server's Priority admission from priorityClassName. */
    priorityClassName?: string;
    priority?: number;
    /** "PreemptLowerPriority" (default) or "Never". */
    preemptionPolicy?: string;
  };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    resourceClaimStatuses?: { name: string; resourceClaimName?: string }[];
  };
}

export interface Namespace {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  status?: { phase?: string };
}

export interface ServiceAccount {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface Secret {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** events.k8s.io/v1 Event. */
export interface EventV1 {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  eventTime: string;
  series?: { count: number; lastObservedTime: string };
  reportingController: string;
  reportingInstance: string;
  action: string;
  reason: string;
  regarding: ObjectReference;
  related?: ObjectReference;
  note?: string;
  type: 'Normal' | 'Warning';
}

/** core/v1 Event (the same objects, seen through the old API). */
export interface CoreEvent {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  involvedObject: ObjectReference;
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  reportingComponent?: string;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** policy/v1 PodDisruptionBudget: what preemption must respect. */
export interface PodDisruptionBudget {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    /** A null selector selects no pods; an empty one selects every pod of the namespace. */
    selector?: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
    minAvailable?: number | string;
    maxUnavailable?: number | string;
  };
  status?: { disruptionsAllowed?: number; currentHealthy?: number; desiredHealthy?: number; expectedPods?: number };
}
