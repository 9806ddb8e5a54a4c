// Partitionable devices (shared counters, per-device node selection), device
// taints and binding conditions: the cases of the upstream allocator's shared
// test table (k8s.io/dynamic-resource-allocation v0.36.2,
// structured/internal/allocatortesting/allocator_testing.go) from
// "partitionable-devices-single-device" to "tainted-all-devices-single-disabled"
// and from "device-binding-conditions" to
// "partitionable-devices-with-binding-conditions-and-taints-tolerated", each
// named after its upstream case and checked under both placement policies.
//
// Upstream allocates one pod's claims for one given node. Cascade picks the
// node itself, so every case gives it node-1 (region-1) and node-2 (region-2),
// both labelled planet=earth as upstream's nodes are, and restricts the pod to
// node-1 with a required node affinity on metadata.name. The features in these
// cases are all on in 1.36; a case that upstream runs with its gate off is
// checked for the answer 1.36 gives, with a `differs` note.
import { Allocator, type AllocatedDeviceRef, type AllocatedOutcome, type PolicyName } from '../../../pkg/allocator/index.js';
import type { Device, DeviceClass, DeviceRequestAllocationResult, DeviceTaint, DeviceToleration, NodeSelector, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { claim, cls, firstAvailable, req, sub } from './helpers.js';
import { UPSTREAM_NODES as NODES, expectOutcome, pinnedTo, podOn } from './upstream-support.js';

const DRIVER_A = 'driver-a';
const DRIVER_B = 'driver-b';
const CLASS_A = cls('class-a', `device.driver == "${DRIVER_A}"`);
const CLASS_B = cls('class-b', `device.driver == "${DRIVER_B}"`);

const ON_NODE_1 = podOn('node-1');
const LOCAL_NODE_1 = pinnedTo('node-1');

// Upstream's taints and tolerations.
const TAINT_NONE: DeviceTaint = { key: 'taint-key', value: 'taint-value', effect: 'None' };
const TAINT_NO_SCHEDULE: DeviceTaint = { key: 'taint-key', value: 'taint-value', effect: 'NoSchedule' };
const TAINT_NO_EXECUTE: DeviceTaint = { key: 'taint-key', value: 'taint-value-2', effect: 'NoExecute' };
const TAINT_KEY1: DeviceTaint = { key: 'key1', value: 'value1', effect: 'NoSchedule' };
const TOL_NO_SCHEDULE: DeviceToleration = { operator: 'Exists', key: 'taint-key', effect: 'NoSchedule' };
const TOL_NO_EXECUTE: DeviceToleration = { operator: 'Equal', key: 'taint-key', value: 'taint-value-2', effect: 'NoExecute' };
const TOL_KEY1: DeviceToleration = { operator: 'Exists', key: 'key1', effect: 'NoSchedule' };

interface DevSpec {
  /** Counter consumption per counter set, in order. */
  readonly consumes?: readonly (readonly [string, Record<string, string>])[];
  /** Capacity copied from the counters the device consumes (a later set wins a shared name). */
  readonly fromCounters?: boolean;
  readonly taints?: readonly DeviceTaint[];
  readonly conditions?: readonly [readonly string[], readonly string[]];
  readonly bindsToNode?: boolean;
  /** For per-device node selection: a node name, "all", or a selector. */
  readonly where?: string | NodeSelector;
}

function device(name: string, spec: DevSpec = {}): Device {
  const d: Device = { name };
  if (spec.consumes !== undefined) {
    d.consumesCounters = spec.consumes.map(([counterSet, counters]) => ({
      counterSet,
      counters: Object.fromEntries(Object.entries(counters).map(([k, v]) => [k, { value: v }])),
    }));
    if (spec.fromCounters === true) {
      const capacity: Record<string, { value: string }> = {};
      for (const [, counters] of spec.consumes) for (const [k, v] of Object.entries(counters)) capacity[k] = { value: v };
      d.capacity = capacity;
    }
  }
  if (spec.taints !== undefined) d.taints = [...spec.taints];
  if (spec.conditions !== undefined) {
    d.bindingConditions = [...spec.conditions[0]];
    d.bindingFailureConditions = [...spec.conditions[1]];
  }
  if (spec.bindsToNode === true) d.bindsToNode = true;
  if (typeof spec.where === 'string') {
    if (spec.where === 'all') d.allNodes = true;
    else d.nodeName = spec.where;
  } else if (spec.where !== undefined) d.nodeSelector = spec.where;
  return d;
}

/** "memory" only, as most upstream partitionable devices consume; capacity from the counters. */
const mem = (name: string, set: string, amount: string, more: Omit<DevSpec, 'consumes' | 'fromCounters'> = {}): Device =>
  device(name, { consumes: [[set, { memory: amount }]], fromCounters: true, ...more });

interface SliceSpec {
  readonly name: string;
  /** A node name, "per-device", or a node selector for the whole slice. */
  readonly where?: string | NodeSelector;
  readonly pool?: string;
  /** resourceSliceCount (generation is always 1). */
  readonly count?: number;
  readonly driver?: string;
  readonly devices?: readonly Device[];
  readonly counters?: readonly (readonly [string, Record<string, string>])[];
}

function slice(s: SliceSpec): ResourceSlice {
  const out: ResourceSlice = {
    metadata: { name: s.name },
    spec: { driver: s.driver ?? DRIVER_A, pool: { name: s.pool ?? 'pool-1', generation: 1, resourceSliceCount: s.count ?? 1 } },
  };
  const where = s.where ?? 'node-1';
  if (where === 'per-device') out.spec.perDeviceNodeSelection = true;
  else if (typeof where === 'string') out.spec.nodeName = where;
  else out.spec.nodeSelector = where;
  if (s.devices !== undefined) out.spec.devices = [...s.devices];
  if (s.counters !== undefined) out.spec.sharedCounters = s.counters.map(([name, counters]) => ({ name, counters: Object.fromEntries(Object.entries(counters).map(([k, v]) => [k, { value: v }])) }));
  return out;
}

/** One expected result; the driver defaults to driver-a and the pool to pool-1. */
function res(
  request: string,
  device: string,
  more: { pool?: string; driver?: string; tolerations?: DeviceToleration[]; conditions?: readonly [readonly string[], readonly string[]] } = {},
): DeviceRequestAllocationResult {
  const r: DeviceRequestAllocationResult = { request, driver: more.driver ?? DRIVER_A, pool: more.pool ?? 'pool-1', device };
  if (more.tolerations !== undefined) r.tolerations = more.tolerations;
  if (more.conditions !== undefined) {
    r.bindingConditions = [...more.conditions[0]];
    r.bindingFailureConditions = [...more.conditions[1]];
  }
  return r;
}

interface Case {
  readonly name: string;
  readonly slices: readonly ResourceSlice[];
  readonly classes?: readonly DeviceClass[];
  readonly allocated?: readonly AllocatedDeviceRef[];
  readonly namespaceLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly claims: readonly ResourceClaim[];
  /**
   * The results of claim-0; null: nothing allocated. When several sets are
   * listed, any one is an answer the API allows (the first is upstream's).
   */
  readonly want: readonly (readonly DeviceRequestAllocationResult[])[] | null;
  /** The allocation's node selector (default: metadata.name In [node-1]). */
  readonly selector?: NodeSelector;
  /** Fragments of Cascade's explanation of a failure. */
  readonly mentions?: readonly string[];
  /**
   * Upstream's input puts two slices in a pool whose resourceSliceCount is 1, so
   * the pool counts as incomplete before the counters are looked at. The case is
   * also run with the count corrected to the number of slices: still nothing, and
   * the explanation mentions these fragments.
   */
  readonly whenComplete?: readonly string[];
  /** Where Cascade's answer legitimately differs from upstream's, why. */
  readonly differs?: string;
}

const c0 = (requests: Parameters<typeof claim>[1]): ResourceClaim => claim('claim-0', requests);
const atLeast = (q: string): string => `device.capacity["${DRIVER_A}"].memory.compareTo(quantity("${q}")) >= 0`;
/** req-0 with a firstAvailable of ">= 6Gi", then ">= 4Gi" of memory. */
const bigThenSmall = (name: string) => firstAvailable(name, sub('subReq-0', 'class-a', { selectors: [atLeast('6Gi')] }), sub('subReq-1', 'class-a', { selectors: [atLeast('4Gi')] }));
const counters = (name: string, set: string, amounts: Record<string, string>, more: Partial<SliceSpec> = {}): ResourceSlice => slice({ name, counters: [[set, amounts]], ...more });
const all = (name: string) => ({ name, exactly: { deviceClassName: 'class-a', allocationMode: 'All' as const } });
const adminClaim = (): ResourceClaim => c0([req('req-0', 'class-a', { admin: true })]);
const ADMIN_NS = { default: { 'resource.kubernetes.io/admin-access': 'true' } };
const BC = (n = ''): readonly [string[], string[]] => [[`IsPrepare${n}`], [`BindingFailed${n}`]];
/** Both ways of giving two requests the two devices. */
const eitherWay = (r0: string, r1: string, d0: string, d1: string, more: Parameters<typeof res>[2] = {}) => [
  [res(r0, d0, more), res(r1, d1, more)],
  [res(r0, d1, more), res(r1, d0, more)],
];

const CASES: readonly Case[] = [
  // ---- partitionable devices ----
  {
    name: 'partitionable-devices-single-device',
    slices: [
      slice({ name: 'slice-1', count: 2, devices: [device('device-1', { consumes: [['counter-set-1', { memory: '4Gi' }]] })] }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-1')]],
  },
  {
    name: 'partitionable-devices-prioritized-list',
    slices: [
      slice({ name: 'slice-1', count: 2, devices: [mem('device-1', 'counter-set-1', '4Gi'), mem('device-2', 'counter-set-1', '6Gi'), mem('device-3', 'counter-set-1', '4Gi')] }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a'), bigThenSmall('req-1')])],
    want: eitherWay('req-0', 'req-1/subReq-1', 'device-1', 'device-3'),
    differs: 'upstream gives device-1 to req-0 and device-3 to req-1; the two are identical, so a policy may swap them',
  },
  {
    name: 'partitionable-devices-multiple-devices',
    slices: [
      slice({ name: 'slice-1', count: 2, devices: [mem('device-1', 'counter-set-1', '4Gi'), mem('device-2', 'counter-set-1', '6Gi'), mem('device-3', 'counter-set-1', '4Gi')] }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a'), req('req-1', 'class-a')])],
    want: eitherWay('req-0', 'req-1', 'device-1', 'device-3'),
    differs: 'device-1 and device-3 are identical: either may serve req-0',
  },
  {
    name: 'partitionable-devices-multiple-capacity-pools',
    slices: [
      slice({
        name: 'slice-1',
        count: 2,
        devices: [
          device('device-1', {
            fromCounters: true,
            consumes: [
              ['counter-set-1', { memory: '4Gi' }],
              ['counter-set-2', { cpus: '4' }],
            ],
          }),
          device('device-2', {
            fromCounters: true,
            consumes: [
              ['counter-set-1', { memory: '6Gi' }],
              ['counter-set-2', { cpus: '6' }],
            ],
          }),
          device('device-3', {
            fromCounters: true,
            consumes: [
              ['counter-set-1', { memory: '4Gi' }],
              ['counter-set-2', { cpus: '4' }],
            ],
          }),
        ],
      }),
      slice({
        name: 'slice-2',
        count: 2,
        counters: [
          ['counter-set-1', { memory: '18Gi' }],
          ['counter-set-2', { cpus: '8' }],
        ],
      }),
    ],
    claims: [c0([req('req-0', 'class-a'), bigThenSmall('req-1')])],
    want: eitherWay('req-0', 'req-1/subReq-1', 'device-1', 'device-3'),
    differs: 'device-1 and device-3 are identical: either may serve req-0',
  },
  {
    name: 'partitionable-devices-multiple-counters',
    slices: [
      slice({
        name: 'slice-1',
        count: 2,
        devices: [
          device('device-1', {
            fromCounters: true,
            consumes: [
              ['counter-set-1', { memory: '4Gi', cpus: '6' }],
              ['counter-set-2', { cpus: '4', memory: '2Gi' }],
            ],
          }),
          device('device-2', {
            fromCounters: true,
            consumes: [
              ['counter-set-1', { memory: '6Gi', cpus: '4' }],
              ['counter-set-2', { cpus: '6', memory: '6Gi' }],
            ],
          }),
          device('device-3', {
            fromCounters: true,
            consumes: [
              ['counter-set-1', { memory: '4Gi', cpus: '4' }],
              ['counter-set-2', { cpus: '4', memory: '4Gi' }],
            ],
          }),
        ],
      }),
      slice({
        name: 'slice-2',
        count: 2,
        counters: [
          ['counter-set-1', { cpus: '8', memory: '18Gi' }],
          ['counter-set-2', { cpus: '12', memory: '18Gi' }],
        ],
      }),
    ],
    claims: [c0([req('req-0', 'class-a'), req('req-1', 'class-a')])],
    // Only device-2 with device-3 fits both counter sets; which request takes which is free.
    want: eitherWay('req-0', 'req-1', 'device-2', 'device-3'),
    differs: 'upstream gives device-2 to req-0; the requests are alike, so swapping them is as valid',
  },
  {
    name: 'partitionable-devices-multiple-pools',
    slices: [
      slice({
        name: 'slice-1',
        count: 2,
        devices: [
          device('device-1', { fromCounters: true, consumes: [['counter-set-1', { cpus: '6', memory: '4Gi' }]] }),
          device('device-2', { fromCounters: true, consumes: [['counter-set-1', { cpus: '4', memory: '6Gi' }]] }),
          device('device-3', { fromCounters: true, consumes: [['counter-set-1', { cpus: '4', memory: '4Gi' }]] }),
        ],
      }),
      counters('slice-2', 'counter-set-1', { cpus: '8', memory: '18Gi' }, { count: 2 }),
      slice({
        name: 'slice-3',
        pool: 'pool-2',
        count: 2,
        devices: [
          device('device-1', { fromCounters: true, consumes: [['counter-set-1', { cpus: '6', memory: '4Gi' }]] }),
          device('device-2', { fromCounters: true, consumes: [['counter-set-1', { cpus: '1', memory: '7Gi' }]] }),
          device('device-3', { fromCounters: true, consumes: [['counter-set-1', { cpus: '1', memory: '7Gi' }]] }),
        ],
      }),
      counters('slice-4', 'counter-set-1', { cpus: '8', memory: '18Gi' }, { pool: 'pool-2', count: 2 }),
    ],
    allocated: [
      { driver: DRIVER_A, pool: 'pool-1', device: 'device-2' },
      { driver: DRIVER_A, pool: 'pool-1', device: 'device-3' },
      { driver: DRIVER_A, pool: 'pool-2', device: 'device-1' },
    ],
    claims: [c0([req('req-0', 'class-a'), req('req-1', 'class-a')])],
    want: eitherWay('req-0', 'req-1', 'device-2', 'device-3', { pool: 'pool-2' }),
    differs: 'pool-2 device-2 and device-3 are identical: either may serve req-0',
  },
  {
    name: 'partitionable-devices-unused-counters-in-counter-set',
    slices: [
      slice({
        name: 'slice-1',
        count: 2,
        devices: [
          device('device-1', { consumes: [['counter-set-1', { memory: '5Gi' }]] }),
          device('device-2', { consumes: [['counter-set-1', { memory: '4Gi' }]] }),
          device('device-3', { consumes: [['counter-set-1', { memory: '4Gi' }]] }),
        ],
      }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi', unused: '1Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a', { count: 2 })])],
    want: [[res('req-0', 'device-2'), res('req-0', 'device-3')]],
  },
  {
    name: 'partitionable-devices-no-capacity-available',
    slices: [slice({ name: 'slice-1', devices: [mem('device-1', 'counter-set-1', '4Gi'), mem('device-2', 'counter-set-1', '16Gi')] }), counters('slice-2', 'counter-set-1', { memory: '18Gi' })],
    allocated: [{ driver: DRIVER_A, pool: 'pool-1', device: 'device-2' }],
    claims: [c0([req('req-0', 'class-a')])],
    want: null,
    mentions: ['pool driver-a/pool-1 is inconsistent'],
    whenComplete: ['1 blocked by shared counters', '1 in use'],
  },
  {
    name: 'partitionable-devices-overallocated-capacity-pool',
    slices: [slice({ name: 'slice-1', devices: [mem('device-1', 'counter-set-1', '4Gi'), mem('device-2', 'counter-set-1', '20Gi')] }), counters('slice-2', 'counter-set-1', { memory: '18Gi' })],
    allocated: [{ driver: DRIVER_A, pool: 'pool-1', device: 'device-2' }],
    claims: [c0([req('req-0', 'class-a')])],
    want: null,
    mentions: ['pool driver-a/pool-1 is inconsistent'],
    whenComplete: ['1 blocked by shared counters'],
  },
  {
    name: 'partitionable-devices-disabled-device-consumes-counters',
    differs:
      'upstream runs this with DRAPartitionableDevices off and refuses the device for consuming counters; in 1.36 the gate is on, and nothing is allocated because the pool has two slices where its resourceSliceCount says one (with the count right, device-1 would be allocated)',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { consumes: [['counter-set-1', { memory: '4Gi' }]] })] }), counters('slice-2', 'counter-set-1', { memory: '18Gi' })],
    claims: [c0([req('req-0', 'class-a')])],
    want: null,
    mentions: ['pool driver-a/pool-1 is inconsistent', '1 unusable (incomplete or invalid pool)'],
  },
  {
    name: 'partitionable-devices-disabled-other-device-do-not-consume-counters',
    differs:
      'upstream runs this with DRAPartitionableDevices off, where only device-2 (no counters) may be allocated; in 1.36 the gate is on and device-1 fits its counter set too, so either is an answer',
    slices: [
      slice({ name: 'slice-1', count: 2, devices: [device('device-1', { consumes: [['counter-set-1', { memory: '4Gi' }]] }), device('device-2')] }),
      counters('slice-2', 'counter-set-1', { memory: '18Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-2')], [res('req-0', 'device-1')]],
  },
  {
    name: 'partitionable-devices-disabled-per-device-node-selection',
    differs: 'upstream runs this with DRAPartitionableDevices off and refuses per-device node selection; in 1.36 the gate is on, so the device that names node-1 is allocated there',
    slices: [slice({ name: 'slice-1', where: 'per-device', devices: [device('device-2', { where: 'node-1' })] })],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-2')]],
  },
  {
    name: 'partitionable-devices-per-device-node-selection-nodename',
    slices: [
      slice({
        name: 'slice-1',
        where: 'per-device',
        count: 2,
        devices: [mem('device-1', 'counter-set-1', '4Gi', { where: 'node-1' }), mem('device-2', 'counter-set-1', '6Gi', { where: 'node-2' })],
      }),
      counters('slice-2', 'counter-set-1', { memory: '18Gi' }, { where: 'per-device', count: 2 }),
    ],
    claims: [c0([bigThenSmall('req-0')])],
    want: [[res('req-0/subReq-1', 'device-1')]],
  },
  {
    name: 'partitionable-devices-per-device-node-selection-node-selector',
    slices: [
      slice({
        name: 'slice-1',
        where: 'per-device',
        count: 2,
        devices: [mem('device-1', 'counter-set-1', '4Gi', { where: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'region', operator: 'In', values: ['region-1'] }] }] } })],
      }),
      counters('slice-2', 'counter-set-1', { memory: '18Gi' }, { where: 'per-device', count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-1')]],
    selector: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'region', operator: 'In', values: ['region-1'] }] }] },
  },
  {
    name: 'partitionable-devices-per-device-node-selection-node-selector-multiple-devices',
    classes: [CLASS_A, CLASS_B],
    slices: [
      slice({
        name: 'slice-1',
        where: 'per-device',
        count: 2,
        devices: [
          mem('device-1', 'counter-set-1', '4Gi', { where: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'region', operator: 'In', values: ['region-1'] }] }] } }),
          mem('device-2', 'counter-set-1', '4Gi', { where: 'node-1' }),
          mem('device-3', 'counter-set-1', '4Gi', { where: 'all' }),
        ],
      }),
      counters('slice-2', 'counter-set-1', { memory: '18Gi' }, { where: 'per-device', count: 2 }),
      slice({
        name: 'slice-3',
        pool: 'pool-2',
        driver: DRIVER_B,
        count: 2,
        devices: [mem('device-1', 'counter-set-2', '4Gi'), mem('device-2', 'counter-set-2', '4Gi'), mem('device-3', 'counter-set-2', '4Gi')],
      }),
      counters('slice-4', 'counter-set-2', { memory: '12Gi' }, { pool: 'pool-2', driver: DRIVER_B, count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a', { count: 3 }), req('req-1', 'class-b', { count: 3 })])],
    want: [
      [
        res('req-0', 'device-1'),
        res('req-0', 'device-2'),
        res('req-0', 'device-3'),
        res('req-1', 'device-1', { driver: DRIVER_B, pool: 'pool-2' }),
        res('req-1', 'device-2', { driver: DRIVER_B, pool: 'pool-2' }),
        res('req-1', 'device-3', { driver: DRIVER_B, pool: 'pool-2' }),
      ],
    ],
  },

  // ---- device taints ----
  {
    name: 'tainted-two-devices',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] }), device('device-2', { taints: [TAINT_NO_EXECUTE] })] })],
    claims: [c0([req('req-0', 'class-a')])],
    want: null,
    mentions: ['2 tainted'],
  },
  {
    name: 'tainted-one-device-two-taints',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE, TAINT_NO_EXECUTE] })] })],
    claims: [c0([req('req-0', 'class-a')])],
    want: null,
    mentions: ['1 tainted'],
  },
  {
    name: 'tainted-two-devices-tolerated',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] }), device('device-2', { taints: [TAINT_NO_EXECUTE] })] })],
    claims: [c0([req('req-0', 'class-a', { tolerations: [TOL_NO_EXECUTE] })])],
    want: [[res('req-0', 'device-2', { tolerations: [TOL_NO_EXECUTE] })]],
  },
  {
    name: 'tainted-two-devices-prioritized-list-tolerated',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] }), device('device-2', { taints: [TAINT_NO_EXECUTE] })] })],
    claims: [c0([firstAvailable('req-0', sub('subReq-0', 'class-a'), sub('subReq-1', 'class-a', { tolerations: [TOL_NO_EXECUTE] }))])],
    want: [[res('req-0/subReq-1', 'device-2', { tolerations: [TOL_NO_EXECUTE] })]],
  },
  {
    name: 'tainted-no-effect',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NONE] })] })],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-1')]],
  },
  {
    name: 'tainted-one-device-two-taints-both-tolerated',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE, TAINT_NO_EXECUTE] })] })],
    claims: [c0([req('req-0', 'class-a', { tolerations: [TOL_NO_SCHEDULE, TOL_NO_EXECUTE] })])],
    want: [[res('req-0', 'device-1', { tolerations: [TOL_NO_SCHEDULE, TOL_NO_EXECUTE] })]],
  },
  {
    name: 'tainted-disabled',
    differs: 'upstream runs this with DRADeviceTaints off, where taints are ignored; in 1.36 the gate is on and the untolerated taints keep the only device out',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE, TAINT_NO_EXECUTE] })] })],
    claims: [c0([req('req-0', 'class-a')])],
    want: null,
    mentions: ['1 tainted'],
  },
  {
    name: 'tainted-prioritized-list',
    classes: [CLASS_A, CLASS_B],
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] })] })],
    claims: [c0([firstAvailable('req-0', sub('subReq-0', 'class-b'), sub('subReq-1', 'class-a'))])],
    want: null,
    mentions: ['1 tainted'],
  },
  {
    name: 'tainted-prioritized-list-disabled',
    differs: 'upstream runs this with DRADeviceTaints off and allocates the tainted device to subReq-1; in 1.36 the gate is on and neither subrequest finds an untainted device',
    classes: [CLASS_A, CLASS_B],
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] })] })],
    claims: [c0([firstAvailable('req-0', sub('subReq-0', 'class-b'), sub('subReq-1', 'class-a'))])],
    want: null,
    mentions: ['1 tainted'],
  },
  {
    name: 'tainted-admin-access',
    // Upstream's allocator does not look at namespaces; Cascade needs the admin-access label.
    namespaceLabels: ADMIN_NS,
    // device-2 is named by an allocation but is in no slice.
    allocated: [
      { driver: DRIVER_A, pool: 'pool-1', device: 'device-1' },
      { driver: DRIVER_A, pool: 'pool-1', device: 'device-2' },
    ],
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] })] })],
    claims: [adminClaim()],
    want: null,
    mentions: ['1 tainted'],
  },
  {
    name: 'tainted-admin-access-disabled',
    differs: 'upstream runs this with DRADeviceTaints off and gives the admin the tainted device; in 1.36 the gate is on, and admin access does not override a device taint',
    namespaceLabels: ADMIN_NS,
    allocated: [
      { driver: DRIVER_A, pool: 'pool-1', device: 'device-1' },
      { driver: DRIVER_A, pool: 'pool-1', device: 'device-2' },
    ],
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] })] })],
    claims: [adminClaim()],
    want: null,
    mentions: ['1 tainted'],
  },
  {
    name: 'tainted-all-devices-single',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] })] })],
    claims: [c0([all('req-0')])],
    want: null,
    mentions: ['1 tainted'],
  },
  {
    name: 'tainted-all-devices-single-disabled',
    differs: 'upstream runs this with DRADeviceTaints off and allocates the tainted device; in 1.36 the gate is on and allocationMode All cannot take it',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { taints: [TAINT_NO_SCHEDULE] })] })],
    claims: [c0([all('req-0')])],
    want: null,
    mentions: ['1 tainted'],
  },

  // ---- binding conditions ----
  {
    name: 'device-binding-conditions',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { conditions: BC() })] })],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-1', { conditions: BC() })]],
  },
  {
    name: 'binding-conditions-multiple-devices',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { conditions: BC() }), device('device-2', { conditions: BC('2') }), device('device-3', { conditions: BC('3') })] })],
    claims: [c0([req('req-0', 'class-a', { count: 2 }), req('req-1', 'class-a')])],
    // Any one device may serve req-1; each result carries its own device's conditions.
    want: (
      [
        ['device-3', 'device-1', 'device-2'],
        ['device-2', 'device-1', 'device-3'],
        ['device-1', 'device-2', 'device-3'],
      ] as const
    ).map(([single, a, b]) => {
      const cond = (d: string) => BC(d === 'device-1' ? '' : d.slice('device-'.length));
      return [res('req-0', a, { conditions: cond(a) }), res('req-0', b, { conditions: cond(b) }), res('req-1', single, { conditions: cond(single) })];
    }),
    differs: 'upstream gives device-3 to req-1; the devices differ only in their conditions, so any of them may serve req-1',
  },
  {
    name: 'binding-conditions-with-and-without',
    slices: [slice({ name: 'slice-1', devices: [device('device-1'), device('device-2', { conditions: BC() })] })],
    claims: [c0([req('req-0', 'class-a'), req('req-1', 'class-a')])],
    want: [
      [res('req-0', 'device-1'), res('req-1', 'device-2', { conditions: BC() })],
      [res('req-0', 'device-2', { conditions: BC() }), res('req-1', 'device-1')],
    ],
    differs: 'upstream gives device-1 to req-0; the requests are alike, so swapping them is as valid',
  },
  {
    name: 'binding-conditions-without-feature-gate',
    differs:
      'upstream runs this with DRADeviceBindingConditions off and does not allocate a device that has binding conditions; in 1.36 the gate is on, so the device is allocated and its conditions copied',
    slices: [slice({ name: 'slice-1', devices: [device('device-1', { conditions: BC() })] })],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-1', { conditions: BC() })]],
  },
  {
    name: 'node-restriction',
    // The slice reaches every node on earth; the device binds to the node it is allocated for.
    slices: [
      slice({
        name: 'slice-1',
        where: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'planet', operator: 'In', values: ['earth'] }] }] },
        devices: [device('device-1', { bindsToNode: true })],
      }),
    ],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-1')]],
  },
  {
    name: 'partitionable-devices-with-binding-conditions',
    slices: [slice({ name: 'slice-1', count: 2, devices: [mem('device-1', 'counter-set-1', '4Gi', { conditions: BC() })] }), counters('slice-2', 'counter-set-1', { memory: '8Gi' }, { count: 2 })],
    claims: [c0([req('req-0', 'class-a')])],
    want: [[res('req-0', 'device-1', { conditions: BC() })]],
  },
  {
    name: 'partitionable-devices-with-binding-conditions-multiple',
    slices: [
      slice({ name: 'slice-1', count: 2, devices: [mem('device-1', 'counter-set-1', '4Gi', { conditions: BC() }), mem('device-2', 'counter-set-1', '4Gi', { conditions: BC('2') })] }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a', { count: 2 })])],
    want: [[res('req-0', 'device-1', { conditions: BC() }), res('req-0', 'device-2', { conditions: BC('2') })]],
  },
  {
    name: 'partitionable-devices-with-binding-conditions-some-devices-no-conditions',
    slices: [
      slice({
        name: 'slice-1',
        count: 2,
        devices: [
          mem('device-1', 'counter-set-1', '2Gi', { conditions: BC() }),
          mem('device-2', 'counter-set-1', '2Gi'),
          mem('device-3', 'counter-set-1', '4Gi', { conditions: [['IsReady'], ['BindingTimeout']] }),
        ],
      }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a', { count: 3 })])],
    want: [[res('req-0', 'device-1', { conditions: BC() }), res('req-0', 'device-2'), res('req-0', 'device-3', { conditions: [['IsReady'], ['BindingTimeout']] })]],
  },
  {
    name: 'partitionable-devices-with-binding-conditions-multi-slices',
    slices: [
      slice({ name: 'slice-4', count: 4, devices: [mem('device-1', 'counter-set-1', '4Gi', { conditions: BC() })] }),
      counters('slice-3', 'counter-set-1', { memory: '8Gi' }, { count: 4 }),
      slice({ name: 'slice-2', count: 4, devices: [mem('device-2', 'counter-set-2', '4Gi')] }),
      counters('slice-1', 'counter-set-2', { memory: '8Gi' }, { count: 4 }),
    ],
    claims: [c0([req('req-0', 'class-a', { count: 2 })])],
    want: [[res('req-0', 'device-2'), res('req-0', 'device-1', { conditions: BC() })]],
  },
  {
    name: 'partitionable-devices-with-binding-conditions-and-taints',
    slices: [
      slice({ name: 'slice-1', devices: [mem('device-1', 'counter-set-1', '4Gi', { conditions: BC(), taints: [TAINT_KEY1] }), mem('device-2', 'counter-set-1', '4Gi')] }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi' }),
    ],
    claims: [c0([req('req-0', 'class-a', { count: 2 })])],
    want: null,
    mentions: ['pool driver-a/pool-1 is inconsistent'],
    whenComplete: ['1 tainted'],
  },
  {
    name: 'partitionable-devices-with-binding-conditions-and-taints-tolerated',
    slices: [
      slice({ name: 'slice-1', count: 2, devices: [mem('device-1', 'counter-set-1', '4Gi', { conditions: BC(), taints: [TAINT_KEY1] }), mem('device-2', 'counter-set-1', '4Gi')] }),
      counters('slice-2', 'counter-set-1', { memory: '8Gi' }, { count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-a', { count: 2, tolerations: [TOL_KEY1] })])],
    want: [[res('req-0', 'device-1', { conditions: BC(), tolerations: [TOL_KEY1] }), res('req-0', 'device-2', { tolerations: [TOL_KEY1] })]],
  },
];

const N = 39;

function allocate(c: Pick<Case, 'slices' | 'classes' | 'allocated' | 'namespaceLabels' | 'claims'>, policy: PolicyName) {
  const allocator = new Allocator({ slices: c.slices, classes: c.classes ?? [CLASS_A], nodes: NODES, allocated: c.allocated ?? [], namespaceLabels: c.namespaceLabels ?? {} }, { policy });
  return allocator.allocate({ claims: c.claims, pod: ON_NODE_1 });
}

const order = (r: DeviceRequestAllocationResult): string => `${r.request}\u0000${r.driver}\u0000${r.pool}\u0000${r.device}`;
const sorted = (rs: readonly DeviceRequestAllocationResult[]): DeviceRequestAllocationResult[] => [...rs].sort((a, b) => (order(a) < order(b) ? -1 : 1));

function check(c: Case, outcome: ReturnType<typeof allocate>): void {
  const allocated = expectOutcome(outcome, c);
  if (allocated) checkAllocated(c, allocated);
}

function checkAllocated(c: Case, outcome: AllocatedOutcome): void {
  expect(outcome.node).toBe('node-1');
  expect(outcome.claims).toHaveLength(1);
  const allocation = outcome.claims[0]?.allocation;
  const got = sorted(allocation?.devices?.results ?? []);
  const wants = (c.want ?? []).map(sorted);
  const hit = wants.find((w) => JSON.stringify(w) === JSON.stringify(got));
  // The exact comparison gives a readable diff against upstream's answer.
  expect(got).toEqual(hit ?? wants[0]);
  // No class or claim config in any of these cases.
  expect(allocation?.devices?.config).toBeUndefined();
  expect(allocation?.nodeSelector).toEqual(c.selector ?? LOCAL_NODE_1);
}

/** The same slices with each pool's resourceSliceCount set to the slices it really has. */
function completed(slices: readonly ResourceSlice[]): ResourceSlice[] {
  const count = new Map<string, number>();
  for (const s of slices) count.set(`${s.spec.driver}/${s.spec.pool.name}`, (count.get(`${s.spec.driver}/${s.spec.pool.name}`) ?? 0) + 1);
  return slices.map((s) => ({ ...s, spec: { ...s.spec, pool: { ...s.spec.pool, resourceSliceCount: count.get(`${s.spec.driver}/${s.spec.pool.name}`) ?? 1 } } }));
}

describe.each<PolicyName>(['cascade', 'first-fit'])('upstream partitionable-device, taint and binding-condition cases under the %s policy', (policy) => {
  it(`ports exactly ${N} cases with unique names`, () => {
    expect(CASES).toHaveLength(N);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(N);
  });

  for (const c of CASES) {
    it(c.name, () => {
      check(c, allocate(c, policy));
      if (c.whenComplete !== undefined) {
        const again = allocate({ ...c, slices: completed(c.slices) }, policy);
        expect(again.kind).toBe('unallocated');
        if (again.kind === 'unallocated') for (const m of c.whenComplete) expect(again.explanation.full).toContain(m);
      }
    });
  }
});
