// Builders for compact allocator test fixtures: devices, slices, classes, claims.
import type {
  DeviceAttribute,
  DeviceCapacity,
  DeviceClass,
  DeviceConstraint,
  DeviceRequest,
  DeviceSubRequest,
  DeviceTaint,
  DeviceToleration,
  Device,
  NodeSelector,
  ResourceClaim,
  ResourceSlice,
  DeviceClaimConfiguration,
} from '../../../pkg/api/resource.js';
import type { Allocator } from '../../../pkg/allocator/index.js';

export const DRIVER = 'dra.example.com';

export type AttrValue = string | number | boolean | { version: string };

export interface DevOpts {
  capacity?: Record<string, string | DeviceCapacity>;
  consumes?: { set: string; counters: Record<string, string> }[];
  taints?: DeviceTaint[];
  allowMultiple?: boolean;
  nodeName?: string;
  allNodes?: boolean;
  nodeSelector?: NodeSelector;
  bindsToNode?: boolean;
  bindingConditions?: string[];
  bindingFailureConditions?: string[];
}

export function attr(v: AttrValue): DeviceAttribute {
  if (typeof v === 'string') return { string: v };
  if (typeof v === 'number') return { int: v };
  if (typeof v === 'boolean') return { bool: v };
  return { version: v.version };
}

export function dev(name: string, attrs: Record<string, AttrValue> = {}, opts: DevOpts = {}): Device {
  const d: Device = { name, attributes: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, attr(v)])) };
  if (opts.capacity) d.capacity = Object.fromEntries(Object.entries(opts.capacity).map(([k, v]) => [k, typeof v === 'string' ? { value: v } : v]));
  if (opts.consumes) d.consumesCounters = opts.consumes.map((c) => ({ counterSet: c.set, counters: Object.fromEntries(Object.entries(c.counters).map(([k, v]) => [k, { value: v }])) }));
  if (opts.taints) d.taints = opts.taints;
  if (opts.allowMultiple) d.allowMultipleAllocations = true;
  if (opts.nodeName) d.nodeName = opts.nodeName;
  if (opts.allNodes) d.allNodes = true;
  if (opts.nodeSelector) d.nodeSelector = opts.nodeSelector;
  if (opts.bindsToNode) d.bindsToNode = true;
  if (opts.bindingConditions) d.bindingConditions = opts.bindingConditions;
  if (opts.bindingFailureConditions) d.bindingFailureConditions = opts.bindingFailureConditions;
  return d;
}

export interface SliceOpts {
  pool?: string;
  generation?: number;
  count?: number;
  name?: string;
  driver?: string;
  counters?: { name: string; counters: Record<string, string> }[];
  nodeSelector?: NodeSelector;
  allNodes?: boolean;
  perDevice?: boolean;
}

let sliceSeq = 0;

/** A slice local to `node` (or not node-local, via opts), its pool named after the node by default. */
export function slice(node: string | undefined, devices: Device[], opts: SliceOpts = {}): ResourceSlice {
  const pool = opts.pool ?? node ?? 'pool';
  const s: ResourceSlice = {
    metadata: { name: opts.name ?? `${pool}-${String(++sliceSeq).padStart(6, '0')}` },
    spec: { driver: opts.driver ?? DRIVER, pool: { name: pool, generation: opts.generation ?? 1, resourceSliceCount: opts.count ?? 1 } },
  };
  if (devices.length > 0) s.spec.devices = devices;
  if (opts.counters) s.spec.sharedCounters = opts.counters.map((c) => ({ name: c.name, counters: Object.fromEntries(Object.entries(c.counters).map(([k, v]) => [k, { value: v }])) }));
  if (opts.perDevice) s.spec.perDeviceNodeSelection = true;
  else if (opts.allNodes) s.spec.allNodes = true;
  else if (opts.nodeSelector) s.spec.nodeSelector = opts.nodeSelector;
  else if (node !== undefined) s.spec.nodeName = node;
  return s;
}

export function cls(name: string, ...expressions: string[]): DeviceClass {
  return { metadata: { name }, spec: { selectors: expressions.map((expression) => ({ cel: { expression } })) } };
}

export interface ReqOpts {
  count?: number;
  all?: boolean;
  selectors?: string[];
  admin?: boolean;
  tolerations?: DeviceToleration[];
  /** capacity.requests (consumable capacity). */
  capacity?: Record<string, string>;
}

export function req(name: string, className: string, opts: ReqOpts = {}): DeviceRequest {
  return {
    name,
    exactly: {
      deviceClassName: className,
      ...(opts.count !== undefined ? { count: opts.count } : {}),
      ...(opts.all ? { allocationMode: 'All' as const } : {}),
      ...(opts.selectors ? { selectors: opts.selectors.map((expression) => ({ cel: { expression } })) } : {}),
      ...(opts.admin ? { adminAccess: true } : {}),
      ...(opts.tolerations ? { tolerations: opts.tolerations } : {}),
      ...(opts.capacity ? { capacity: { requests: opts.capacity } } : {}),
    },
  };
}

export function sub(name: string, className: string, opts: Omit<ReqOpts, 'admin'> = {}): DeviceSubRequest {
  return {
    name,
    deviceClassName: className,
    ...(opts.count !== undefined ? { count: opts.count } : {}),
    ...(opts.all ? { allocationMode: 'All' as const } : {}),
    ...(opts.selectors ? { selectors: opts.selectors.map((expression) => ({ cel: { expression } })) } : {}),
    ...(opts.tolerations ? { tolerations: opts.tolerations } : {}),
    ...(opts.capacity ? { capacity: { requests: opts.capacity } } : {}),
  };
}

export function firstAvailable(name: string, ...subs: DeviceSubRequest[]): DeviceRequest {
  return { name, firstAvailable: subs };
}

export interface ClaimOpts {
  namespace?: string;
  constraints?: DeviceConstraint[];
  config?: DeviceClaimConfiguration[];
}

export function claim(name: string, requests: DeviceRequest[], opts: ClaimOpts = {}): ResourceClaim {
  return {
    metadata: { name, namespace: opts.namespace ?? 'default' },
    spec: { devices: { requests, ...(opts.constraints ? { constraints: opts.constraints } : {}), ...(opts.config ? { config: opts.config } : {}) } },
  };
}

/** An "any device" class of the test driver. */
export const ANY = cls('any', `device.driver == "${DRIVER}"`);

/** Places each claim in turn (committing what fits) and says where it went: "name: pool/device ...", or "name: none". */
export function placeEach(a: Allocator, claims: readonly ResourceClaim[]): string[] {
  return claims.map((c) => {
    const o = a.allocate({ claims: [c] });
    if (o.kind !== 'allocated') return `${c.metadata.name ?? ''}: none`;
    a.commit(o);
    const results = o.claims[0]?.allocation.devices?.results ?? [];
    return `${c.metadata.name ?? ''}: ${results.map((r) => `${r.pool}/${r.device}${r.consumedCapacity ? ` ${JSON.stringify(r.consumedCapacity)}` : ''}`).join(' ')}`;
  });
}
