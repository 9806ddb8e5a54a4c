// Basic allocation, allocationMode All, admin access and node selection: the
// upstream allocator's shared test table (k8s.io/dynamic-resource-allocation
// v0.36.2, structured/internal/allocatortesting/allocator_testing.go), cases
// "empty" through "admin-access-enabled", each named exactly after its upstream
// case and checked under both placement policies. Inputs are rebuilt with this
// project's builders and upstream's names (driver-a, pool-1, device-1...).
//
// Upstream allocates one pod's claims on one given node. Cascade picks the node
// itself, so the fleet here is upstream's two nodes (node-1 in region-1,
// node-2 in region-2, both on planet earth) and the pod is pinned to the case's
// node by a required node affinity on metadata.name.
//
// Upstream's allocator does not check the namespace label that admission
// demands for admin access; every claim here lives in a namespace carrying it.
import { ADMIN_ACCESS_LABEL, Allocator, type AllocatedDeviceRef, type AllocatedOutcome, type PolicyName } from '../../../pkg/allocator/index.js';
import type { Device, DeviceClass, DeviceRequest, NodeSelector, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { claim, cls, dev, firstAvailable, req, slice, sub } from './helpers.js';
import { UPSTREAM_NODES as NODES, expectOutcome, pinnedTo as local, matchLines as matches } from './upstream-support.js';

const DRIVER_A = 'driver-a';
const DRIVER_B = 'driver-b';
const CLASS_A = cls('class-a', `device.driver == "${DRIVER_A}"`);
const CLASS_B = cls('class-b', `device.driver == "${DRIVER_B}"`);

const labelSel = (key: string, value: string): NodeSelector => ({ nodeSelectorTerms: [{ matchExpressions: [{ key, operator: 'In', values: [value] }] }] });

/** A node name, a node selector, or 'all' for every node. */
type Where = string | NodeSelector;
interface PoolOpts {
  readonly count?: number;
  readonly generation?: number;
  readonly counters?: { name: string; counters: Record<string, string> }[];
}

/** A slice as upstream builds it: its name, where it is reachable, its pool and driver. */
function sl(name: string, where: Where, pool: string, driver: string, devices: Device[], more: PoolOpts = {}): ResourceSlice {
  const node = typeof where === 'string' && where !== 'all' ? where : undefined;
  return slice(node, devices, {
    name,
    pool,
    driver,
    ...(more.count !== undefined ? { count: more.count } : {}),
    ...(more.generation !== undefined ? { generation: more.generation } : {}),
    ...(more.counters !== undefined ? { counters: more.counters } : {}),
    ...(where === 'all' ? { allNodes: true } : typeof where === 'object' ? { nodeSelector: where } : {}),
  });
}
const one = (name: string, where: Where, pool: string, driver: string): ResourceSlice => sl(name, where, pool, driver, [dev('device-1')]);
const mem = (name: string, size: string): Device => dev(name, {}, { capacity: { memory: size } });
const atLeast = (size: string): string => `device.capacity["${DRIVER_A}"].memory.compareTo(quantity("${size}")) >= 0`;
const c = (name: string, ...requests: DeviceRequest[]): ResourceClaim => claim(name, requests);
const held = (device: string, pool = 'pool-1', driver = DRIVER_A): AllocatedDeviceRef => ({ driver, pool, device });

interface Case {
  readonly name: string;
  readonly slices: readonly ResourceSlice[];
  readonly classes?: readonly DeviceClass[];
  readonly allocated?: readonly AllocatedDeviceRef[];
  readonly claims: readonly ResourceClaim[];
  /** Upstream's node; node-1 when absent. */
  readonly node?: string;
  /**
   * Expected results of all claims as "claim/request=driver/pool/device", with
   * " admin" for admin access; "*" matches anything (equivalent devices).
   * null: nothing is allocated.
   */
  readonly want: readonly string[] | null;
  /** Expected nodeSelector of every allocated claim; the node's metadata.name when absent. */
  readonly selector?: NodeSelector;
  /** Fragments of Cascade's explanation when nothing is allocated. */
  readonly mentions?: readonly string[];
  /** Where Cascade's answer legitimately differs from upstream's, why. */
  readonly differs?: string;
}

const CASES: readonly Case[] = [
  { name: 'empty', slices: [], classes: [], claims: [], want: [] },
  {
    name: 'simple',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1'],
  },
  {
    name: 'other-node',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_B), one('slice-2', 'node-2', 'pool-2', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    node: 'node-2',
    want: ['claim-0/req-0=driver-a/pool-2/device-1'],
  },
  {
    name: 'small-and-large',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [mem('device-1', '1Gi'), mem('device-2', '2Gi')])],
    claims: [c('claim-0', req('req-0', 'class-a', { selectors: [atLeast('1Gi')] }), req('req-1', 'class-a', { selectors: [atLeast('2Gi')] }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-0/req-1=driver-a/pool-1/device-2'],
  },
  {
    // The large device comes first: taking it for the small request must be undone.
    name: 'small-and-large-backtrack-requests',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [mem('device-2', '2Gi'), mem('device-1', '1Gi')])],
    claims: [c('claim-0', req('req-0', 'class-a', { selectors: [atLeast('1Gi')] }), req('req-1', 'class-a', { selectors: [atLeast('2Gi')] }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-0/req-1=driver-a/pool-1/device-2'],
  },
  {
    name: 'small-and-large-backtrack-claims',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [mem('device-2', '2Gi'), mem('device-1', '1Gi')])],
    claims: [c('claim-0', req('req-0', 'class-a', { selectors: [atLeast('1Gi')] })), c('claim-1', req('req-1', 'class-a', { selectors: [atLeast('2Gi')] }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-1/req-1=driver-a/pool-1/device-2'],
  },
  {
    name: 'devices-split-across-different-slices',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A), one('slice-2', 'node-1', 'pool-2', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a', { count: 2 }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-0/req-0=driver-a/pool-2/device-1'],
  },
  {
    // Generation 2 makes generation 1 obsolete, and has only one of its two slices.
    name: 'obsolete-slice',
    slices: [
      sl('slice-1-obsolete', 'node-1', 'pool-1', DRIVER_A, [dev('device-1')], { count: 2 }),
      sl('slice-1-obsolete', 'node-1', 'pool-1', DRIVER_A, [dev('device-2')], { count: 2, generation: 2 }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is incomplete: 1 of 2 slices of generation 2'],
  },
  {
    // The same slice published twice under two names: the pool lists device-1 twice.
    name: 'duplicate-slice',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1')], { count: 2 }), sl('slice-1-2', 'node-1', 'pool-1', DRIVER_A, [dev('device-1')], { count: 2 })],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['is invalid (device device-1 is listed twice)'],
  },
  { name: 'no-slices', slices: [], claims: [c('claim-0', req('req-0', 'class-a'))], want: null, mentions: ['0 match'] },
  {
    // Upstream gives both claims the same name; so does this port.
    name: 'not-enough-suitable-devices',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a')), c('claim-0', req('req-1', 'class-a'))],
    want: null,
    mentions: ['request req-1', 'at most 1 free on one node (node-1)'],
  },
  {
    name: 'no-classes',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    classes: [],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['device class class-a not found'],
  },
  {
    name: 'unknown-class',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'unknown-class'))],
    want: null,
    mentions: ['device class unknown-class not found'],
  },
  {
    name: 'empty-class',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', ''))],
    want: null,
    mentions: ['request req-0: device class ', ' not found'],
  },
  { name: 'no-claims-to-allocate', slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)], claims: [], want: [] },
  {
    name: 'all-devices-single',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1'],
  },
  {
    name: 'all-devices-with-consumed-counters',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1', {}, { consumes: [{ set: 'counter-set-1', counters: { memory: '4Gi' } }] })], { count: 2 }),
      sl('slice-2', 'node-1', 'pool-1', DRIVER_A, [], { count: 2, counters: [{ name: 'counter-set-1', counters: { memory: '8Gi' } }] }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1'],
  },
  {
    name: 'all-devices-many',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A), one('slice-1', 'node-1', 'pool-2', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-0/req-0=driver-a/pool-2/device-1'],
  },
  {
    name: 'all-devices-of-the-incomplete-pool',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1')], { count: 2 })],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: null,
    mentions: ['request req-0: all of class-a', 'pool driver-a/pool-1 is incomplete'],
    differs: 'upstream also sets count 1 on the All request; the API server rejects count with allocationMode All, so it is left out here',
  },
  {
    name: 'all-devices-plus-another',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A), one('slice-1', 'node-1', 'pool-1', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true })), c('claim-1', req('req-0', 'class-b', { count: 1 }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-1/req-0=driver-b/pool-1/device-1'],
  },
  {
    name: 'all-devices-plus-another-reversed',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A), one('slice-1', 'node-1', 'pool-1', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    claims: [c('claim-1', req('req-0', 'class-b', { count: 1 })), c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: ['claim-1/req-0=driver-b/pool-1/device-1', 'claim-0/req-0=driver-a/pool-1/device-1'],
  },
  {
    name: 'all-devices-many-plus-another',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')]), one('slice-1', 'node-1', 'pool-1', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true })), c('claim-1', req('req-0', 'class-b', { count: 1 }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-0/req-0=driver-a/pool-1/device-2', 'claim-1/req-0=driver-b/pool-1/device-1'],
  },
  {
    name: 'all-devices-many-plus-another-reversed',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')]), one('slice-1', 'node-1', 'pool-1', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    claims: [c('claim-1', req('req-0', 'class-b', { count: 1 })), c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: ['claim-1/req-0=driver-b/pool-1/device-1', 'claim-0/req-0=driver-a/pool-1/device-1', 'claim-0/req-0=driver-a/pool-1/device-2'],
  },
  {
    // One device, wanted by one claim and by all of another.
    name: 'all-devices-no-solution',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-1', req('req-0', 'class-a', { count: 1 })), c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: null,
    mentions: ['allocationMode All: device device-1 is in use'],
  },
  {
    name: 'all-devices-no-solution-reversed',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true })), c('claim-1', req('req-0', 'class-a', { count: 1 }))],
    want: null,
    mentions: ['only 0 usable devices for req-0, need 1'],
  },
  {
    name: 'all-devices-slice-without-devices',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [])],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: null,
    mentions: ['all of class-a', '0 match'],
  },
  { name: 'all-devices-no-slices', slices: [], claims: [c('claim-0', req('req-0', 'class-a', { all: true }))], want: null, mentions: ['all of class-a', '0 match'] },
  {
    name: 'all-devices-some-allocated',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')])],
    allocated: [held('device-1')],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: null,
    mentions: ['all of class-a', '1 in use'],
  },
  {
    name: 'all-devices-some-allocated-admin-access',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')])],
    allocated: [held('device-1')],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true, admin: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1 admin', 'claim-0/req-0=driver-a/pool-1/device-2 admin'],
  },
  {
    // One claim may not name a device twice, admin access or not: req-0 takes a device All needs.
    name: 'all-devices-some-allocating-admin-access',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')])],
    claims: [c('claim-0', req('req-0', 'class-a', { admin: true }), req('req-1', 'class-a', { all: true, admin: true }))],
    want: null,
    mentions: ['allocationMode All: device device-1 is in use'],
  },
  {
    name: 'count-devices-some-allocated-admin-access',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')])],
    allocated: [held('device-1')],
    claims: [c('claim-0', req('req-0', 'class-a', { count: 2, admin: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1 admin', 'claim-0/req-0=driver-a/pool-1/device-2 admin'],
  },
  {
    name: 'separate-claims-share-device-admin-access',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')])],
    claims: [c('claim-0', req('req-0', 'class-a', { admin: true })), c('claim-1', req('req-0', 'class-a', { admin: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-* admin', 'claim-1/req-0=driver-a/pool-1/device-* admin'],
    differs: 'upstream gives device-1 to both claims; either device serves either admin-access claim, so a policy may choose another',
  },
  {
    name: 'admin-access-claims-device-allocating-for-non-admin-access',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')])],
    claims: [c('claim-0', req('req-0', 'class-a')), c('claim-1', req('req-0', 'class-a', { admin: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-*', 'claim-1/req-0=driver-a/pool-1/device-* admin'],
    differs: 'upstream gives device-1 to both claims (admin access may use a device the other claim is taking); both devices are free, so a policy may choose another for either',
  },
  {
    name: 'all-devices-slice-without-devices-prioritized-list',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, []), one('slice-2', 'node-1', 'pool-2', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    claims: [c('claim-0', firstAvailable('req-0', sub('subReq-0', 'class-a', { all: true }), sub('subReq-1', 'class-b', { count: 1 })))],
    want: ['claim-0/req-0/subReq-1=driver-b/pool-2/device-1'],
  },
  {
    name: 'all-devices-no-slices-prioritized-list',
    slices: [one('slice-2', 'node-1', 'pool-2', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    claims: [c('claim-0', firstAvailable('req-0', sub('subReq-0', 'class-a', { all: true }), sub('subReq-1', 'class-b', { count: 1 })))],
    want: ['claim-0/req-0/subReq-1=driver-b/pool-2/device-1'],
  },
  {
    name: 'all-devices-some-allocated-prioritized-list',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')]), one('slice-2', 'node-1', 'pool-2', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    allocated: [held('device-1')],
    claims: [c('claim-0', firstAvailable('req-0', sub('subReq-0', 'class-a', { all: true }), sub('subReq-1', 'class-b', { count: 1 })))],
    want: ['claim-0/req-0/subReq-1=driver-b/pool-2/device-1'],
  },
  {
    name: 'network-attached-device',
    slices: [one('slice-1', labelSel('region', 'region-1'), 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1'],
    selector: labelSel('region', 'region-1'),
  },
  {
    name: 'unsuccessful-allocation-network-attached-device',
    slices: [one('slice-1', labelSel('region', 'region-1'), 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    node: 'node-2',
    want: null,
    mentions: ['need 1 on one node'],
  },
  {
    name: 'many-network-attached-devices',
    slices: [
      one('slice-1', labelSel('region', 'region-1'), 'pool-1', DRIVER_A),
      one('slice-1', 'all', 'pool-2', DRIVER_A),
      one('slice-1', labelSel('planet', 'earth'), 'pool-3', DRIVER_A),
      one('slice-1', local('node-1'), 'pool-4', DRIVER_A),
    ],
    claims: [c('claim-0', req('req-0', 'class-a', { count: 4 }))],
    want: ['pool-1', 'pool-2', 'pool-3', 'pool-4'].map((p) => `claim-0/req-0=driver-a/${p}/device-1`),
    // One term: the union of the slices' requirements.
    selector: {
      nodeSelectorTerms: [
        {
          matchExpressions: [
            { key: 'region', operator: 'In', values: ['region-1'] },
            { key: 'planet', operator: 'In', values: ['earth'] },
          ],
          matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }],
        },
      ],
    },
  },
  {
    // A node-local device among them: the claim is pinned to that node.
    name: 'local-and-network-attached-devices',
    slices: [one('slice-1', labelSel('region', 'region-1'), 'pool-1', DRIVER_A), one('slice-1', 'node-1', 'pool-2', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a', { count: 2 }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1', 'claim-0/req-0=driver-a/pool-2/device-1'],
  },
  {
    // Upstream gives both claims the same name; so does this port.
    name: 'several-different-drivers',
    slices: [sl('slice-1', 'node-1', 'pool-1', DRIVER_A, [dev('device-1'), dev('device-2')]), one('slice-1', 'node-1', 'pool-1', DRIVER_B)],
    classes: [CLASS_A, CLASS_B],
    claims: [c('claim-0', req('req-0', 'class-a')), c('claim-0', req('req-0', 'class-b'))],
    want: ['claim-0/req-0=driver-a/pool-1/device-*', 'claim-0/req-0=driver-b/pool-1/device-1'],
    differs: "upstream takes device-1 of driver-a; device-2 is its equal, so which one is the policy's choice",
  },
  {
    // device-2 is named by an allocation but published nowhere.
    name: 'already-allocated-devices',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    allocated: [held('device-1'), held('device-2')],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['1 in use, 0 free'],
  },
  {
    name: 'admin-access-disabled',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    claims: [c('claim-0', req('req-0', 'class-a', { admin: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1 admin'],
    differs:
      'upstream runs this with the DRAAdminAccess gate off and fails with "the feature is disabled"; admin access is GA in 1.36 (gate locked on), so the request reaches the allocator and is honoured',
  },
  {
    name: 'admin-access-enabled',
    slices: [one('slice-1', 'node-1', 'pool-1', DRIVER_A)],
    allocated: [held('device-1'), held('device-2')],
    claims: [c('claim-0', req('req-0', 'class-a', { admin: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1 admin'],
  },
];

function describeResults(o: AllocatedOutcome): string[] {
  return o.claims.flatMap((x) => (x.allocation.devices?.results ?? []).map((r) => `${x.name}/${r.request}=${r.driver}/${r.pool}/${r.device}${r.adminAccess === true ? ' admin' : ''}`)).sort();
}

function allocate(c: Case, policy: PolicyName) {
  const allocator = new Allocator(
    { slices: c.slices, classes: c.classes ?? [CLASS_A], nodes: NODES, allocated: c.allocated ?? [], namespaceLabels: { default: { [ADMIN_ACCESS_LABEL]: 'true' } } },
    { policy },
  );
  return allocator.allocate({ claims: c.claims, pod: { requiredNodeAffinity: local(c.node ?? 'node-1') } });
}

describe.each<PolicyName>(['cascade', 'first-fit'])('upstream basic cases under the %s policy', (policy) => {
  it('ports all 44 cases from "empty" through "admin-access-enabled", with unique names', () => {
    expect(CASES).toHaveLength(44);
    expect(new Set(CASES.map((x) => x.name)).size).toBe(44);
  });

  for (const c of CASES) {
    it(c.name, () => {
      const outcome = expectOutcome(allocate(c, policy), c);
      if (!outcome || c.want === null) return;
      expect(outcome.claims).toHaveLength(c.claims.length);
      const got = describeResults(outcome);
      if (!matches(got, c.want)) expect(got).toEqual([...c.want].sort());
      for (const x of outcome.claims) {
        expect(x.allocation.nodeSelector).toEqual(c.selector ?? local(c.node ?? 'node-1'));
        // Upstream's cases in this range carry no config.
        expect(x.allocation.devices?.config).toBeUndefined();
      }
    });
  }
});
