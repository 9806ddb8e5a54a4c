// Plain JSON shapes of the resource.k8s.io/v1 objects Cascade reads and writes.
// We keep our own types (not the client's typed models, which are generated from
// 1.34 and drop newer fields) and send/receive these objects as raw JSON.

export const RESOURCE_GROUP = 'resource.k8s.io';
export const RESOURCE_VERSION = 'v1';
export const RESOURCE_API_VERSION = `${RESOURCE_GROUP}/${RESOURCE_VERSION}`;

/** Default driver name; every component takes another through its config. */
export const DEFAULT_DRIVER_NAME = 'gpu.cascade.dev';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

// ---- Device attributes and capacity ----

/** Exactly one field is set. */
export interface DeviceAttribute {
  int?: number;
  bool?: boolean;
  string?: string;
  version?: string;
  /** List-type values (KEP-5491, alpha in 1.36, gate DRAListTypeAttributes): non-empty lists. */
  ints?: number[];
  bools?: boolean[];
  strings?: string[];
  versions?: string[];
}

export interface DeviceCapacity {
  /** A Kubernetes quantity, e.g. "40Gi", "7". */
  value: string;
  /** How much one allocation of a shareable device consumes (consumable capacity, KEP-5075). */
  requestPolicy?: CapacityRequestPolicy;
}

/** At most one of validValues and validRange is set. */
export interface CapacityRequestPolicy {
  /** Consumed when a request does not ask for this capacity (else the whole value). */
  default?: string;
  /** Sorted, distinct; a request is rounded up to the next one. */
  validValues?: string[];
  validRange?: CapacityRequestPolicyRange;
}

export interface CapacityRequestPolicyRange {
  min?: string;
  max?: string;
  /** A request is rounded up to min + k * step. */
  step?: string;
}

export interface CapacityRequirements {
  /** Capacity name -> the least amount the request needs. */
  requests?: Record<string, string>;
}

export interface Counter {
  value: string;
}

export interface CounterSet {
  name: string;
  counters: Record<string, Counter>;
}

export interface DeviceCounterConsumption {
  counterSet: string;
  counters: Record<string, Counter>;
}

export type TaintEffect = 'None' | 'NoSchedule' | 'NoExecute';

export interface DeviceTaint {
  key: string;
  value?: string;
  effect: TaintEffect;
  timeAdded?: string;
}

export interface DeviceToleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: TaintEffect;
  tolerationSeconds?: number;
}

export interface Device {
  name: string;
  attributes?: Record<string, DeviceAttribute>;
  capacity?: Record<string, DeviceCapacity>;
  consumesCounters?: DeviceCounterConsumption[];
  nodeName?: string;
  nodeSelector?: NodeSelector;
  allNodes?: boolean;
  taints?: DeviceTaint[];
  allowMultipleAllocations?: boolean;
  /** The allocation is used on the node chosen at allocation only (its node selector names that node). */
  bindsToNode?: boolean;
  /** Device status conditions that must be True before the pod is bound (at most 4). */
  bindingConditions?: string[];
  /** Device status conditions any of which True means binding failed (at most 4). */
  bindingFailureConditions?: string[];
}

export interface ResourcePool {
  name: string;
  generation: number;
  resourceSliceCount: number;
}

export interface ResourceSliceSpec {
  driver: string;
  pool: ResourcePool;
  nodeName?: string;
  nodeSelector?: NodeSelector;
  allNodes?: boolean;
  perDeviceNodeSelection?: boolean;
  devices?: Device[];
  sharedCounters?: CounterSet[];
}

export interface ResourceSlice {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: ResourceSliceSpec;
}

// ---- Node selectors (core/v1 shape) ----

export interface NodeSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface NodeSelector {
  nodeSelectorTerms: NodeSelectorTerm[];
}

// ---- DeviceClass ----

export interface CELDeviceSelector {
  expression: string;
}

export interface DeviceSelector {
  cel?: CELDeviceSelector;
}

export interface OpaqueDeviceConfiguration {
  driver: string;
  parameters: unknown;
}

export interface DeviceClassConfiguration {
  opaque?: OpaqueDeviceConfiguration;
}

export interface DeviceClassSpec {
  selectors?: DeviceSelector[];
  config?: DeviceClassConfiguration[];
  extendedResourceName?: string;
}

export interface DeviceClass {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: DeviceClassSpec;
}

// ---- ResourceClaim ----

export type AllocationMode = 'ExactCount' | 'All';

export interface ExactDeviceRequest {
  deviceClassName: string;
  selectors?: DeviceSelector[];
  allocationMode?: AllocationMode;
  count?: number;
  adminAccess?: boolean;
  tolerations?: DeviceToleration[];
  capacity?: CapacityRequirements;
}

export interface DeviceSubRequest {
  name: string;
  deviceClassName: string;
  selectors?: DeviceSelector[];
  allocationMode?: AllocationMode;
  count?: number;
  tolerations?: DeviceToleration[];
  capacity?: CapacityRequirements;
}

export interface DeviceRequest {
  name: string;
  exactly?: ExactDeviceRequest;
  firstAvailable?: DeviceSubRequest[];
}

export interface DeviceConstraint {
  requests?: string[];
  matchAttribute?: string;
  distinctAttribute?: string;
}

export interface DeviceClaimConfiguration {
  requests?: string[];
  opaque?: OpaqueDeviceConfiguration;
}

export interface DeviceClaim {
  requests?: DeviceRequest[];
  constraints?: DeviceConstraint[];
  config?: DeviceClaimConfiguration[];
}

export interface ResourceClaimSpec {
  devices?: DeviceClaim;
}

export interface DeviceRequestAllocationResult {
  request: string;
  driver: string;
  pool: string;
  device: string;
  adminAccess?: boolean;
  tolerations?: DeviceToleration[];
  /** Set for a device that allows multiple allocations: tells this share from the others. */
  shareID?: string;
  /** What this allocation takes of each capacity of a shareable device (after the request policy). */
  consumedCapacity?: Record<string, string>;
  /** Copies of the device's binding conditions at the time of allocation. */
  bindingConditions?: string[];
  bindingFailureConditions?: string[];
}

export interface DeviceAllocationConfiguration {
  source: 'FromClass' | 'FromClaim';
  requests?: string[];
  opaque?: OpaqueDeviceConfiguration;
}

export interface DeviceAllocationResult {
  results?: DeviceRequestAllocationResult[];
  config?: DeviceAllocationConfiguration[];
}

export interface AllocationResult {
  devices?: DeviceAllocationResult;
  nodeSelector?: NodeSelector;
  allocationTimestamp?: string;
}

export interface ResourceClaimConsumerReference {
  apiGroup?: string;
  resource: string;
  name: string;
  uid: string;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface NetworkDeviceData {
  interfaceName?: string;
  ips?: string[];
  hardwareAddress?: string;
}

export interface AllocatedDeviceStatus {
  driver: string;
  pool: string;
  device: string;
  shareID?: string;
  conditions?: Condition[];
  data?: unknown;
  networkData?: NetworkDeviceData;
}

export interface ResourceClaimStatus {
  allocation?: AllocationResult;
  reservedFor?: ResourceClaimConsumerReference[];
  devices?: AllocatedDeviceStatus[];
}

export interface ResourceClaim {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: ResourceClaimSpec;
  status?: ResourceClaimStatus;
}

export interface ResourceClaimTemplate {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: { metadata?: ObjectMeta; spec: ResourceClaimSpec };
}

// ---- API limits (REFERENCE section 2) pinned by tests against the server ----

export const LIMITS = {
  devicesPerSlice: 128,
  devicesPerSliceWithTaintsOrCounters: 64,
  attributesAndCapacitiesPerDevice: 32,
  attributeStringLength: 64,
  sharedCountersPerSlice: 8,
  countersPerSet: 32,
  consumesCountersPerDevice: 2,
  requestsPerClaim: 32,
  subrequestsPerRequest: 8,
  allocationResults: 32,
  celExpressionBytes: 10 * 1024,
  celCostLimit: 1_000_000,
  opaqueParametersBytes: 10 * 1024,
  reservedFor: 256,
} as const;

/** Standard attribute names. */
export const STANDARD_ATTRIBUTES = {
  pciBusID: 'resource.kubernetes.io/pciBusID',
  pcieRoot: 'resource.kubernetes.io/pcieRoot',
  numaNode: 'resource.kubernetes.io/numaNode',
} as const;
