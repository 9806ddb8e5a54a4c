// Consumable capacity (resource.k8s.io/v1, KEP-5075, beta and on in 1.36):
// every consumable-capacity and allow-multiple-allocations case of the upstream
// allocator's shared test table (k8s.io/dynamic-resource-allocation v0.36.2,
// structured/internal/allocatortesting), each named after its upstream case and
// checked under both placement policies. Upstream's inputs are rebuilt with this
// project's fixture helpers: node node-1, pool pool-1, the test driver.
import { Allocator, type AllocatedDeviceRef, type AllocatedOutcome, type PolicyName } from '../../../pkg/allocator/index.js';
import type { DeviceCapacity, DeviceClass, DeviceConstraint, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { DRIVER, claim, cls, dev, firstAvailable, req, slice, sub, type DevOpts } from './helpers.js';
import { expectOutcome, matchLines as matches } from './upstream-support.js';

const PLAIN = cls('class-plain', `device.driver == "${DRIVER}"`);
const MULTI = cls('class-multi', `device.driver == "${DRIVER}" && device.allowMultipleAllocations == true`);
const DEDICATED = cls('class-dedicated', `device.driver == "${DRIVER}" && device.allowMultipleAllocations == false`);
const CLASSES = [PLAIN, MULTI, DEDICATED];

/** Upstream's range policy: default 2, min 2, step 2, max 4. */
const RANGE = (value: string): DeviceCapacity => ({ value, requestPolicy: { default: '2', validRange: { min: '2', step: '2', max: '4' } } });
/** Upstream's value-list policy: the default first, then the others. */
const VALUES = (value: string, def: string, ...extra: string[]): DeviceCapacity => ({ value, requestPolicy: { default: def, validValues: [def, ...extra] } });

const multi = (name: string, capacity: Record<string, string | DeviceCapacity> = {}, attrs: Record<string, string | number | boolean | { version: string }> = {}, more: DevOpts = {}) =>
  dev(name, attrs, { allowMultiple: true, ...(Object.keys(capacity).length > 0 ? { capacity } : {}), ...more });
const pool = (...devices: ReturnType<typeof dev>[]): ResourceSlice[] => [slice('node-1', devices, { pool: 'pool-1' })];
const cap = (n: string): Record<string, string> => ({ 'capacity-0': n });
/** An existing share of a device, as a claim's status.allocation records it. */
const share = (device: string, consumed: Record<string, string>): AllocatedDeviceRef => ({
  driver: DRIVER,
  pool: 'pool-1',
  device,
  shareID: '00000000-0000-4000-8000-000000000000',
  consumedCapacity: consumed,
});

interface Case {
  readonly name: string;
  readonly slices: readonly ResourceSlice[];
  readonly classes?: readonly DeviceClass[];
  readonly allocated?: readonly AllocatedDeviceRef[];
  readonly claims: readonly ResourceClaim[];
  /**
   * Expected results as "claim/request=device", with " share" when the result
   * carries a share ID and the consumed capacity after it; null: no allocation.
   */
  readonly want: readonly string[] | null;
  /** Where Cascade's answer legitimately differs from upstream's, why. */
  readonly differs?: string;
  readonly mentions?: readonly string[];
  /** Checked by a test of its own below (several answers are right). */
  readonly custom?: true;
}

const c0 = (requests: Parameters<typeof claim>[1], constraints?: DeviceConstraint[]) => claim('claim-0', requests, constraints ? { constraints } : {});
const c1 = (requests: Parameters<typeof claim>[1]) => claim('claim-1', requests);

const CASES: readonly Case[] = [
  {
    name: 'consumable-capacity-disabled-feature',
    differs:
      'upstream runs this with the DRAConsumableCapacity gate off and fails with "the feature is disabled"; 1.36 has the gate on, so the request is honoured: the only device has no capacity-0 and nothing is allocated',
    slices: pool(dev('device-1')),
    claims: [c0([req('req-0', 'class-plain', { capacity: cap('1') })])],
    want: null,
    mentions: ['the device has no capacity capacity-0'],
  },
  {
    name: 'consumable-capacity-disabled-feature-with-prioritized-list',
    differs: 'as above: with the gate on (the 1.36 default) the capacity request is honoured and neither subrequest fits',
    slices: pool(dev('device-1')),
    claims: [c0([firstAvailable('req-0', sub('subReq-0', 'class-plain', { capacity: cap('1') }), sub('subReq-1', 'class-plain', { capacity: cap('1') }))])],
    want: null,
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-missing-capacity-request',
    slices: pool(multi('device-1', { 'capacity-1': '1' })),
    claims: [c0([req('req-0', 'class-plain', { capacity: cap('1') })])],
    want: null,
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-allocation-mode-all-with-missing-capacity-request',
    slices: pool(multi('device-1', { 'capacity-1': '1' })),
    claims: [c0([req('req-0', 'class-multi', { all: true, capacity: cap('1') })])],
    want: null,
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-without-capacity-without-capacity-request',
    slices: pool(multi('device-1')),
    claims: [c0([req('req-0', 'class-multi')]), c1([req('req-0', 'class-multi')])],
    want: ['claim-0/req-0=device-1 share', 'claim-1/req-0=device-1 share'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-without-policy-without-capacity-request',
    slices: pool(multi('device-1', { 'capacity-0': '1' }), multi('device-2', { 'capacity-0': '1' })),
    claims: [c0([req('req-0', 'class-multi')]), c1([req('req-0', 'class-multi')])],
    // Either claim may take either device; each takes all of one.
    want: ['claim-*/req-0=device-1 share capacity-0=1', 'claim-*/req-0=device-2 share capacity-0=1'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-without-policy-without-capacity-request-block',
    slices: pool(multi('device-1', { 'capacity-0': '2' })),
    claims: [c0([req('req-0', 'class-multi')]), c1([req('req-0', 'class-multi')])],
    want: null,
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-without-policy-with-capacity-request',
    slices: pool(multi('device-1', { 'capacity-0': '2' })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1') })]), c1([req('req-0', 'class-multi', { capacity: cap('1') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=1', 'claim-1/req-0=device-1 share capacity-0=1'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-policy-without-capacity-request',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('4') })),
    claims: [c0([req('req-0', 'class-multi')]), c1([req('req-0', 'class-multi')])],
    want: ['claim-0/req-0=device-1 share capacity-0=2', 'claim-1/req-0=device-1 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-zero-request-policy',
    slices: pool(multi('device-1', { 'capacity-0': VALUES('1', '0') })),
    claims: [c0([req('req-0', 'class-multi')]), c1([req('req-0', 'class-multi')])],
    want: ['claim-0/req-0=device-1 share capacity-0=0', 'claim-1/req-0=device-1 share capacity-0=0'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-violates-zero-request-policy',
    slices: pool(multi('device-1', { 'capacity-0': VALUES('1', '0') })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1') })])],
    want: null,
    mentions: ['is more than the largest valid value 0'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-range-policy-with-capacity-request',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('4') })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1') })]), c1([req('req-0', 'class-multi', { capacity: cap('1') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=2', 'claim-1/req-0=device-1 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-range-policy-step',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('4') })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('3') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=4'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-valid-values-policy',
    slices: pool(multi('device-1', { 'capacity-0': VALUES('4', '1', '2') })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('2') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-valid-values-policy-round-up',
    slices: pool(multi('device-1', { 'capacity-0': VALUES('3', '1', '3') })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('2') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=3'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-exceeded-consumable-capacity-request',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('2') })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1') })]), c1([req('req-0', 'class-multi', { capacity: cap('2') })])],
    want: null,
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-request-over-max-sharing-policy',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('10') })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('6') })])],
    want: null,
    mentions: ['is more than the most one allocation may take (4)'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-allocated-capacity-use-remaining',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('4') })),
    allocated: [share('device-1', { 'capacity-0': '2' })],
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('2') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-allocated-capacity-next-device',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('2') }), multi('device-2', { 'capacity-0': RANGE('2') })),
    allocated: [share('device-1', { 'capacity-0': '2' })],
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('2') })])],
    want: ['claim-0/req-0=device-2 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-with-multi-allocatable-device-backtrack',
    slices: pool(
      multi('device-2', { 'capacity-0': RANGE('2') }, { stringAttribute: 'stringAttributeValue1' }),
      multi('device-1', { 'capacity-0': RANGE('4') }, { stringAttribute: 'stringAttributeValue2' }),
    ),
    claims: [
      c0([req('req-0', 'class-plain', { capacity: cap('2') }), req('req-1', 'class-plain', { capacity: cap('2') })], [{ matchAttribute: `${DRIVER}/stringAttribute` }]),
      c1([req('req-0', 'class-plain', { capacity: cap('2') })]),
    ],
    want: ['claim-0/req-0=device-1 share capacity-0=2', 'claim-0/req-1=device-1 share capacity-0=2', 'claim-1/req-0=device-2 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-subrequest',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('2') })),
    claims: [c0([firstAvailable('req-0', sub('subReq-0', 'class-multi', { capacity: cap('4') }), sub('subReq-1', 'class-multi', { capacity: cap('2') }), sub('subReq-1', 'class-multi'))])],
    want: ['claim-0/req-0/subReq-1=device-1 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-with-no-available-consumable-capacity',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('2') })),
    allocated: [share('device-1', { 'capacity-0': '2' })],
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('2') })])],
    want: null,
    mentions: ['1 without the capacity asked for', 'other shares leave too little capacity on the shared device'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-allocation-mode-all-filter-out-no-capacity',
    slices: pool(multi('device-1', { 'capacity-0': '2' }), multi('device-2')),
    claims: [c0([req('req-0', 'class-multi', { all: true, capacity: cap('2') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-allocation-mode-all-filter-out-insufficient-capacity',
    slices: pool(multi('device-1', { 'capacity-0': '2' }), multi('device-2', { 'capacity-0': '1' })),
    claims: [c0([req('req-0', 'class-multi', { all: true, capacity: cap('2') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=2'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-allocation-mode-all-allocating-sufficient',
    slices: pool(multi('device-1', { 'capacity-0': '2' }), multi('device-2', { 'capacity-0': '1' })),
    claims: [c0([req('req-0', 'class-plain', { capacity: cap('1') }), req('req-1', 'class-plain', { all: true, capacity: cap('1') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=1', 'claim-0/req-1=device-1 share capacity-0=1', 'claim-0/req-1=device-2 share capacity-0=1'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-allocation-mode-all-in-use-sufficient',
    slices: pool(multi('device-1', { 'capacity-0': '2' }), multi('device-2', { 'capacity-0': '1' })),
    allocated: [share('device-1', { 'capacity-0': '1' })],
    claims: [c0([req('req-0', 'class-plain', { all: true, capacity: cap('1') })])],
    want: ['claim-0/req-0=device-1 share capacity-0=1', 'claim-0/req-0=device-2 share capacity-0=1'],
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-allocation-mode-all-allocating-insufficient',
    slices: pool(multi('device-1', { 'capacity-0': '1' }), multi('device-2', { 'capacity-0': '1' })),
    claims: [c0([req('req-0', 'class-plain', { capacity: cap('1') }), req('req-1', 'class-plain', { all: true, capacity: cap('1') })])],
    want: null,
  },
  {
    name: 'consumable-capacity-multi-allocatable-device-allocation-mode-all-in-use-insufficient',
    slices: pool(multi('device-1', { 'capacity-0': '1' }), multi('device-2', { 'capacity-0': '1' })),
    allocated: [share('device-1', { 'capacity-0': '1' })],
    claims: [c0([req('req-0', 'class-plain', { all: true, capacity: cap('1') })])],
    want: ['claim-0/req-0=device-2 share capacity-0=1'],
  },
  {
    name: 'consumable-capacity-dedicated-device-with-consumable-capacity-request',
    slices: pool(dev('device-1', {}, { capacity: { 'capacity-0': '1' } })),
    claims: [c0([req('req-0', 'class-dedicated', { capacity: cap('1') })])],
    want: ['claim-0/req-0=device-1'],
  },
  {
    name: 'consumable-capacity-dedicated-device-with-multiple-consumable-capacity-request',
    slices: pool(dev('device-1', {}, { capacity: { 'capacity-0': RANGE('2') } })),
    claims: [c0([req('req-0', 'class-dedicated', { capacity: cap('1') })]), c1([req('req-0', 'class-dedicated', { capacity: cap('1') })])],
    want: null,
  },
  {
    name: 'allow-multiple-allocations-exclude-multi-allocatable-device-by-class-selector',
    slices: pool(multi('device-1', { 'capacity-0': '1' })),
    claims: [c0([req('req-0', 'class-dedicated', { capacity: cap('1') })])],
    want: null,
  },
  {
    name: 'allow-multiple-allocations-not-allocate-multi-allocatable-device-which-already-dedicated',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('2') })),
    // Held by a result without a share ID: taken whole.
    allocated: [{ driver: DRIVER, pool: 'pool-1', device: 'device-1' }],
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1') })])],
    want: null,
  },
  {
    name: 'allow-multiple-allocations-not-allocate-dedicated-device-which-change-from-multi-allocatable',
    slices: pool(dev('device-1', {}, { capacity: { 'capacity-0': RANGE('2') } })),
    allocated: [share('device-1', { 'capacity-0': '1' })],
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1') })])],
    want: null,
  },
  {
    name: 'allow-multiple-allocations-with-partitionable-device',
    slices: [
      slice(
        'node-1',
        [
          multi('device-1', { memory: '4Gi' }, {}, { consumes: [{ set: 'counter-set-1', counters: { memory: '4Gi' } }] }),
          multi('device-2', { memory: '6Gi' }, {}, { consumes: [{ set: 'counter-set-1', counters: { memory: '6Gi' } }] }),
          multi('device-3', { memory: '4Gi' }, {}, { consumes: [{ set: 'counter-set-1', counters: { memory: '4Gi' } }] }),
        ],
        { pool: 'pool-1', count: 2 },
      ),
      slice('node-1', [], { pool: 'pool-1', count: 2, counters: [{ name: 'counter-set-1', counters: { memory: '8Gi' } }] }),
    ],
    claims: [
      c0([
        req('req-0', 'class-multi'),
        firstAvailable(
          'req-1',
          sub('subReq-0', 'class-multi', { selectors: [`device.capacity["${DRIVER}"].memory.compareTo(quantity("6Gi")) >= 0`] }),
          sub('subReq-1', 'class-multi', { selectors: [`device.capacity["${DRIVER}"].memory.compareTo(quantity("4Gi")) >= 0`] }),
        ),
      ]),
    ],
    want: ['claim-0/req-0=device-* share memory=4Gi', 'claim-0/req-1/subReq-1=device-* share memory=4Gi'],
    differs: 'upstream names device-1 for req-0 and device-3 for req-1; device-1 and device-3 are identical, so a policy may swap them',
  },
  {
    name: 'allow-multiple-allocations-with-shared-device-counter-cross-cycle',
    slices: [
      slice(
        'node-1',
        [
          multi('device-1', { 'capacity-0': '1' }, { mode: 'a' }, { consumes: [{ set: 'counter-set-1', counters: { 'capacity-0': '1' } }] }),
          multi('device-2', { 'capacity-0': '1' }, { mode: 'b' }, { consumes: [{ set: 'counter-set-1', counters: { 'capacity-0': '1' } }] }),
        ],
        { pool: 'pool-1', count: 2 },
      ),
      slice('node-1', [], { pool: 'pool-1', count: 2, counters: [{ name: 'counter-set-1', counters: { 'capacity-0': '1' } }] }),
    ],
    allocated: [share('device-1', { 'capacity-0': '1' })],
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1'), selectors: [`device.attributes["${DRIVER}"].mode == "b"`] })])],
    want: null,
  },
  {
    name: 'consumable-capacity-with-partitionable-device-multiple-capacity-pools',
    slices: [
      slice(
        'node-1',
        [
          multi(
            'device-1',
            { 'capacity-0': '2', 'capacity-1': RANGE('4') },
            {},
            {
              consumes: [
                { set: 'counter-set-1', counters: { 'capacity-0': '2' } },
                { set: 'counter-set-2', counters: { 'capacity-1': '4' } },
              ],
            },
          ),
          multi(
            'device-2',
            { 'capacity-0': '4', 'capacity-1': RANGE('4') },
            {},
            {
              consumes: [
                { set: 'counter-set-1', counters: { 'capacity-0': '4' } },
                { set: 'counter-set-2', counters: { 'capacity-1': '4' } },
              ],
            },
          ),
          multi(
            'device-3',
            { 'capacity-0': '2', 'capacity-1': RANGE('4') },
            {},
            {
              consumes: [
                { set: 'counter-set-1', counters: { 'capacity-0': '2' } },
                { set: 'counter-set-2', counters: { 'capacity-1': '4' } },
              ],
            },
          ),
        ],
        { pool: 'pool-1', count: 2 },
      ),
      slice('node-1', [], {
        pool: 'pool-1',
        count: 2,
        counters: [
          { name: 'counter-set-1', counters: { 'capacity-0': '4' } },
          { name: 'counter-set-2', counters: { 'capacity-1': '8' } },
        ],
      }),
    ],
    claims: [
      c0([
        req('req-0', 'class-plain', { capacity: cap('1') }),
        req('req-2', 'class-plain', { capacity: cap('2') }),
        firstAvailable(
          'req-1',
          sub('subReq-0', 'class-plain', { capacity: cap('1'), selectors: [`device.capacity["${DRIVER}"]["capacity-0"].compareTo(quantity("4")) >= 0`] }),
          sub('subReq-1', 'class-plain', { capacity: cap('1'), selectors: [`device.capacity["${DRIVER}"]["capacity-0"].compareTo(quantity("2")) >= 0`] }),
        ),
      ]),
    ],
    want: null,
    custom: true,
    differs: "which of the identical device-1 and device-3 takes the 1-unit requests is the policy's choice",
  },
  {
    name: 'with-distinct-constraints',
    slices: pool(
      multi('device-1', {}, { driverVersion: { version: '1.0.0' }, numa: 0, boolAttribute: true }),
      multi('device-2', {}, { driverVersion: { version: '1.0.1' }, numa: 1, boolAttribute: false }),
      multi('device-3', {}, { driverVersion: { version: '1.0.2' }, numa: 2, boolAttribute: true }),
      multi('device-4', {}, { driverVersion: { version: '1.0.0' }, numa: 3, boolAttribute: true }),
    ),
    claims: [
      c0(
        [req('req-0', 'class-plain'), req('req-1', 'class-plain'), req('req-2', 'class-plain'), req('req-3', 'class-plain')],
        [
          { distinctAttribute: `${DRIVER}/boolAttribute`, requests: ['req-0', 'req-1'] },
          { distinctAttribute: `${DRIVER}/driverVersion`, requests: ['req-0', 'req-1', 'req-2'] },
          { distinctAttribute: `${DRIVER}/numa`, requests: ['req-0', 'req-1', 'req-2', 'req-3'] },
        ],
      ),
    ],
    want: null,
    custom: true,
    differs: 'any assignment that keeps the three attributes distinct is an answer the API allows',
  },
  {
    name: 'with-distinct-constraints-attribute-not-set',
    slices: pool(multi('device-1')),
    claims: [c0([req('req-0', 'class-plain')], [{ distinctAttribute: `${DRIVER}/boolAttribute`, requests: ['req-0'] }])],
    want: null,
  },
  {
    name: 'with-distinct-constraints-unknown-type-attribute',
    differs:
      'upstream fails with "unsupported attribute value" for an attribute with no value; the API server never accepts such a slice, and Cascade treats the attribute as absent, so the claim is not allocated either',
    slices: pool({ ...multi('device-1'), attributes: { boolAttribute: {} } }),
    claims: [c0([req('req-0', 'class-plain')], [{ distinctAttribute: `${DRIVER}/boolAttribute`, requests: ['req-0'] }])],
    want: null,
  },
  {
    name: 'with-distinct-constraints-with-subrequests',
    slices: pool(multi('device-1', {}, { boolAttribute: true }), multi('device-2', {}, { boolAttribute: false })),
    claims: [
      c0(
        ['req-0', 'req-1', 'req-2'].map((r) => firstAvailable(r, sub('subReq-0', 'class-plain', { selectors: [`device.attributes["${DRIVER}"].boolAttribute`] }), sub('subReq-1', 'class-plain'))),
        [{ distinctAttribute: `${DRIVER}/boolAttribute`, requests: ['req-0', 'req-1'] }],
      ),
    ],
    want: ['claim-0/req-0/subReq-0=device-1 share', 'claim-0/req-1/subReq-1=device-2 share', 'claim-0/req-2/subReq-0=device-1 share'],
  },
  {
    name: 'distinct-constraint-one-multi-allocatable-device-with-distinct-constraint',
    slices: pool(multi('device-1', { 'capacity-0': RANGE('2') }, { stringAttribute: 'stringAttributeValue' })),
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('1') }), req('req-1', 'class-multi', { capacity: cap('1') })], [{ distinctAttribute: `${DRIVER}/stringAttribute` }])],
    want: null,
  },
  {
    name: 'distinct-constraint-two-multi-allocatable-devices-with-distinct-constraint',
    slices: [
      slice('node-1', [multi('device-1', { 'capacity-0': RANGE('4') }, { stringAttribute: 'stringAttributeValue1' })], { pool: 'pool-1', count: 2 }),
      slice('node-1', [multi('device-2', { 'capacity-0': RANGE('4') }, { stringAttribute: 'stringAttributeValue2' })], { pool: 'pool-1', count: 2 }),
    ],
    claims: [c0([req('req-0', 'class-multi', { capacity: cap('2') }), req('req-1', 'class-multi', { capacity: cap('2') })], [{ distinctAttribute: `${DRIVER}/stringAttribute` }])],
    want: ['claim-0/req-0=device-* share capacity-0=2', 'claim-0/req-1=device-* share capacity-0=2'],
    differs: 'upstream gives device-1 to req-0; the two devices are equivalent, so a policy may swap them',
  },
];

function describeResults(o: AllocatedOutcome): string[] {
  return o.claims
    .flatMap((c) =>
      (c.allocation.devices?.results ?? []).map((r) => {
        const consumed = Object.entries(r.consumedCapacity ?? {})
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([k, v]) => ` ${k}=${v}`)
          .join('');
        return `${c.name}/${r.request}=${r.device}${r.shareID !== undefined ? ' share' : ''}${consumed}`;
      }),
    )
    .sort();
}

function allocate(c: Pick<Case, 'slices' | 'allocated' | 'claims' | 'classes'>, policy: PolicyName) {
  const allocator = new Allocator({ slices: c.slices, classes: c.classes ?? CLASSES, allocated: c.allocated ?? [] }, { policy });
  return allocator.allocate({ claims: c.claims });
}

describe.each<PolicyName>(['cascade', 'first-fit'])('upstream consumable-capacity cases under the %s policy', (policy) => {
  it('ports all 42 consumable-capacity and allow-multiple-allocations cases', () => {
    expect(CASES).toHaveLength(42);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(42);
  });

  it.each(CASES.filter((c) => c.custom !== true).map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const outcome = expectOutcome(allocate(c, policy), c);
    if (!outcome || c.want === null) return;
    const got = describeResults(outcome);
    if (!matches(got, c.want)) expect(got).toEqual(c.want);
    // Every share has its own ID, in the lower-case UUID form the API validates.
    const ids = outcome.claims.flatMap((x) => (x.allocation.devices?.results ?? []).flatMap((r) => (r.shareID !== undefined ? [r.shareID] : [])));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('consumable-capacity-with-partitionable-device-multiple-capacity-pools: device-2 is blocked by its counters, the others shared', () => {
    const c = CASES.find((x) => x.name === 'consumable-capacity-with-partitionable-device-multiple-capacity-pools');
    if (c === undefined) throw new Error('case missing');
    const outcome = allocate(c, policy);
    if (outcome.kind !== 'allocated') throw new Error(outcome.explanation.full);
    const got = describeResults(outcome);
    expect(got).toHaveLength(3);
    expect(got.some((g) => g.includes('device-2'))).toBe(false);
    // capacity-1 is not asked for: each share takes its policy default, 2.
    for (const g of got) expect(g).toMatch(/ share capacity-0=[12] capacity-1=2$/);
    expect(got.find((g) => g.startsWith('claim-0/req-2='))).toMatch(/capacity-0=2 /);
    expect(got.find((g) => g.startsWith('claim-0/req-1/'))).toMatch(/^claim-0\/req-1\/subReq-1=/);
    // The 1-unit requests share one device; its counters are charged once.
    const one = got.filter((g) => / capacity-0=1 /.test(g)).map((g) => g.split('=')[1]?.split(' ')[0]);
    expect(new Set(one).size).toBe(1);
  });

  it('with-distinct-constraints: every constrained attribute differs where the constraints say', () => {
    const c = CASES.find((x) => x.name === 'with-distinct-constraints');
    if (c === undefined) throw new Error('case missing');
    const outcome = allocate(c, policy);
    if (outcome.kind !== 'allocated') throw new Error(outcome.explanation.full);
    const byReq = new Map((outcome.claims[0]?.allocation.devices?.results ?? []).map((r) => [r.request, r.device]));
    const attrs: Record<string, { v: string; numa: number; b: boolean }> = {
      'device-1': { v: '1.0.0', numa: 0, b: true },
      'device-2': { v: '1.0.1', numa: 1, b: false },
      'device-3': { v: '1.0.2', numa: 2, b: true },
      'device-4': { v: '1.0.0', numa: 3, b: true },
    };
    const at = (r: string) => attrs[byReq.get(r) ?? ''];
    expect(at('req-0')?.b).not.toBe(at('req-1')?.b);
    expect(new Set(['req-0', 'req-1', 'req-2'].map((r) => at(r)?.v)).size).toBe(3);
    expect(new Set(['req-0', 'req-1', 'req-2', 'req-3'].map((r) => at(r)?.numa)).size).toBe(4);
  });
});

describe('consumable capacity across decisions', () => {
  const gpu = (name: string): ReturnType<typeof dev> =>
    multi(name, {
      memory: { value: '80Gi', requestPolicy: { default: '80Gi', validRange: { min: '1Gi', step: '1Gi' } } },
      compute: { value: '100', requestPolicy: { default: '10', validRange: { min: '1', max: '100', step: '1' } } },
    });

  it('counts committed shares and frees them on release, exactly', () => {
    const allocator = new Allocator({ slices: pool(gpu('shared-0')), classes: CLASSES });
    const ask = (name: string, memory: string, compute: string) => claim(name, [req('r', 'class-multi', { capacity: { memory, compute } })]);
    const first = allocator.allocate({ claims: [ask('a', '20Gi', '30')] });
    if (first.kind !== 'allocated') throw new Error(first.explanation.full);
    expect(first.claims[0]?.allocation.devices?.results?.[0]?.consumedCapacity).toEqual({ memory: '20Gi', compute: '30' });
    allocator.commit(first);
    const second = allocator.allocate({ claims: [ask('b', '19.5Gi', '30')] });
    if (second.kind !== 'allocated') throw new Error(second.explanation.full);
    // Rounded up to the 1Gi step.
    expect(second.claims[0]?.allocation.devices?.results?.[0]?.consumedCapacity).toEqual({ memory: '20Gi', compute: '30' });
    allocator.commit(second);
    // 40Gi and 60% left: 41Gi does not fit, 40Gi does.
    expect(allocator.allocate({ claims: [ask('c', '41Gi', '10')] }).kind).toBe('unallocated');
    expect(allocator.allocate({ claims: [ask('c', '40Gi', '41')] }).kind).toBe('unallocated');
    expect(allocator.allocate({ claims: [ask('c', '40Gi', '40')] }).kind).toBe('allocated');
    allocator.release(first.devices);
    allocator.release(second.devices);
    expect(allocator.allocate({ claims: [ask('c', '80Gi', '100')] }).kind).toBe('allocated');
  });

  it('a request that does not ask for memory takes the default, all of it', () => {
    const allocator = new Allocator({ slices: pool(gpu('shared-0')), classes: CLASSES });
    const o = allocator.allocate({ claims: [claim('a', [req('r', 'class-multi')])] });
    if (o.kind !== 'allocated') throw new Error(o.explanation.full);
    expect(o.claims[0]?.allocation.devices?.results?.[0]?.consumedCapacity).toEqual({ memory: '80Gi', compute: '10' });
  });

  it('refuses a capacity request that is not a quantity as an invalid claim', () => {
    const o = allocate({ slices: pool(gpu('shared-0')), claims: [claim('a', [req('r', 'class-multi', { capacity: { memory: 'lots' } })])] }, 'cascade');
    expect(o.kind).toBe('unallocated');
    if (o.kind === 'unallocated') expect(o.explanation.full).toContain('capacity request memory: "lots" is not a quantity');
  });
});
