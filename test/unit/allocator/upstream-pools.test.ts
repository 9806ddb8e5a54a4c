// Pools across nodes, pool validity and exhaustive search: the upstream
// allocator's shared test table (k8s.io/dynamic-resource-allocation v0.36.2,
// structured/internal/allocatortesting/allocator_testing.go), cases
// "allocation-mode-all-with-multi-host-resource-pool" through
// "check-combinations-with-prioritized-list", each named exactly after its
// upstream case and checked under both placement policies. Inputs are rebuilt
// with this project's builders and upstream's names (driver-a, pool-1,
// device-1...).
//
// Upstream allocates one pod's claims on one given node. Cascade picks the node
// itself, so the fleet here is upstream's two nodes (node-1 in region-1,
// node-2 in region-2, both on planet earth) and the pod is pinned to the case's
// node by a required node affinity on metadata.name.
//
// Several upstream cases also count how often the search recursed
// (expectNumAllocateOneInvocations). That is a statistic of upstream's
// implementation, not behaviour the API defines: only the allocation answer is
// checked here.
import { Allocator, type AllocatedDeviceRef, type AllocatedOutcome, type PolicyName } from '../../../pkg/allocator/index.js';
import type { Device, DeviceClass, DeviceRequest, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { claim, cls, dev, firstAvailable, req, slice, sub } from './helpers.js';
import { UPSTREAM_NODES as NODES, expectOutcome, pinnedTo as local, matchLines as matches } from './upstream-support.js';

const DRIVER_A = 'driver-a';
const CLASS_A = cls('class-a', `device.driver == "${DRIVER_A}"`);

interface PoolOpts {
  readonly count?: number;
  readonly generation?: number;
  readonly counters?: { name: string; counters: Record<string, string> }[];
}

/** A node-local slice as upstream builds it: its name, node, pool, devices; driver-a. */
function sl(name: string, node: string, pool: string, devices: Device[], more: PoolOpts = {}): ResourceSlice {
  return slice(node, devices, {
    name,
    pool,
    driver: DRIVER_A,
    ...(more.count !== undefined ? { count: more.count } : {}),
    ...(more.generation !== undefined ? { generation: more.generation } : {}),
    ...(more.counters !== undefined ? { counters: more.counters } : {}),
  });
}
/** A slice that holds only counter sets. */
const sets = (name: string, node: string, pool: string, count: number, counters: Record<string, Record<string, string>>): ResourceSlice =>
  sl(name, node, pool, [], { count, counters: Object.entries(counters).map(([n, c]) => ({ name: n, counters: c })) });
/** A device drawing `memory` from a counter set; with `own`, it also publishes that amount as its capacity. */
const drawing = (name: string, set: string, memory: string, own = true): Device => dev(name, {}, { ...(own ? { capacity: { memory } } : {}), consumes: [{ set, counters: { memory } }] });
const typed = (name: string, type: string): Device => dev(name, { type });
const ofType = (type: string): string => `device.attributes["${DRIVER_A}"].type == "${type}"`;
const atLeast = (size: string): string => `device.capacity["${DRIVER_A}"].memory.compareTo(quantity("${size}")) >= 0`;
const c = (name: string, ...requests: DeviceRequest[]): ResourceClaim => claim(name, requests);
const held = (device: string, pool = 'pool-1'): AllocatedDeviceRef => ({ driver: DRIVER_A, pool, device });

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
   * " binding=<conditions>|<failure conditions>" when the result carries binding
   * conditions. null: nothing is allocated.
   */
  readonly want: readonly string[] | null;
  /** Fragments of Cascade's explanation when nothing is allocated. */
  readonly mentions?: readonly string[];
  /** Where Cascade's answer legitimately differs from upstream's, why. */
  readonly differs?: string;
}

/** Four devices and a request for five: no combination can work. */
const fiveOfFour = [c('claim-0', req('req-0', 'class-a', { count: 5 }))];

const CASES: readonly Case[] = [
  {
    // One pool spans both nodes: "all" means all the pod's node can reach.
    name: 'allocation-mode-all-with-multi-host-resource-pool',
    slices: [sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }), sl('slice-2', 'node-2', 'pool-1', [dev('device-2')], { count: 2 })],
    claims: [c('claim-0', req('req-0', 'class-a', { all: true }))],
    want: ['claim-0/req-0=driver-a/pool-1/device-1'],
  },
  {
    // Generation 2 (on node-2, one of two slices) replaces node-1's generation 1.
    name: 'multi-host-resource-pool-with-stale-slice-for-current-node',
    slices: [sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }), sl('slice-2', 'node-2', 'pool-1', [dev('device-2')], { count: 2, generation: 2 })],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is incomplete: 1 of 2 slices of generation 2'],
  },
  {
    // The whole pool moved to node-2 in generation 2; node-1 has nothing left.
    name: 'multi-host-resource-pool-complete-update-from-node-1-to-node-2',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-1', 'node-1', 'pool-1', [dev('device-2')], { count: 2 }),
      sl('slice-2', 'node-2', 'pool-1', [dev('device-1')], { count: 2, generation: 2 }),
      sl('slice-2', 'node-2', 'pool-1', [dev('device-2')], { count: 2, generation: 2 }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['request req-0', 'need 1 on one node'],
    differs:
      'upstream looks only at the slices that reach the node, so it still allocates device-1 from the obsolete generation 1 on node-1 (its test says it would rather not); the API says consumers use only the highest generation of a pool, which has no device on node-1, so Cascade allocates nothing',
  },
  {
    name: 'multi-host-resource-pool-complete-update-from-node-2-to-node-1',
    slices: [
      sl('slice-1', 'node-2', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-1', 'node-2', 'pool-1', [dev('device-2')], { count: 2 }),
      sl('slice-2', 'node-1', 'pool-1', [dev('device-1')], { count: 2, generation: 2 }),
      sl('slice-2', 'node-1', 'pool-1', [dev('device-2')], { count: 2, generation: 2 }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: ['claim-0/req-0=driver-a/pool-1/device-*'],
    differs: "upstream takes device-1; device-2 of the same generation is its equal on node-1, so which one is the policy's choice",
  },
  {
    // Generation 2 is half published (one slice, on node-2).
    name: 'multi-host-resource-pool-incomplete-update-from-node-1-to-node-2',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-1', 'node-1', 'pool-1', [dev('device-2')], { count: 2 }),
      sl('slice-2', 'node-2', 'pool-1', [dev('device-1')], { count: 2, generation: 2 }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is incomplete: 1 of 2 slices of generation 2'],
    differs:
      'upstream sees only node-1 slices, all of generation 1, and allocates device-1 from them (its test says it would rather not); the API says only the highest generation counts, and generation 2 is incomplete, so Cascade waits and allocates nothing',
  },
  {
    name: 'multi-host-resource-pool-incomplete-update-from-node-2-to-node-1',
    slices: [
      sl('slice-1', 'node-2', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-1', 'node-2', 'pool-1', [dev('device-2')], { count: 2 }),
      sl('slice-2', 'node-1', 'pool-1', [dev('device-1')], { count: 2, generation: 2 }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is incomplete: 1 of 2 slices of generation 2'],
  },
  {
    // Counter set names are unique within a pool; here two slices define counter-set-1.
    name: 'partitionable-devices-same-counter-set-name-in-different-resource-slices',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 4 }),
      sets('slice-2', 'node-1', 'pool-1', 4, { 'counter-set-1': {} }),
      sl('slice-3', 'node-1', 'pool-1', [dev('device-2')], { count: 4 }),
      sets('slice-4', 'node-1', 'pool-1', 4, { 'counter-set-1': {} }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is invalid', 'counter-set-1'],
  },
  {
    name: 'partitionable-devices-device-counter-consumption-references-unknown-counter-set',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [dev('device-1', {}, { consumes: [{ set: 'counter-set-2', counters: {} }] })], { count: 2 }),
      sets('slice-2', 'node-1', 'pool-1', 2, { 'counter-set-1': {} }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is invalid', 'counter-set-2'],
  },
  {
    // A counter the set does not define makes the whole pool invalid, as upstream has it.
    name: 'partitionable-devices-device-counter-consumption-references-unknown-counter-in-counter-set',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [drawing('device-1', 'counter-set-1', '8Gi', false)], { count: 2 }),
      sets('slice-2', 'node-1', 'pool-1', 2, { 'counter-set-1': { 'other-memory': '8Gi' } }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is invalid', 'counter memory, which counter set counter-set-1 does not define'],
  },
  {
    // Counter sets are looked up in the device's own pool only.
    name: 'partitionable-devices-device-counter-consumption-references-counter-set-in-other-pool',
    slices: [sl('slice-1', 'node-1', 'pool-1', [drawing('device-1', 'counter-set-1', '8Gi', false)]), sets('slice-2', 'node-1', 'pool-2', 1, { 'counter-set-1': { memory: '8Gi' } })],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is invalid', 'counter-set-1'],
  },
  {
    // device-3 on node-2 is allocated and draws 6Gi of node-1's 8Gi counter set:
    // device-1 (6Gi) no longer fits, device-2 (2Gi) does.
    name: 'partitionable-devices-devices-on-different-nodes-consume-same-counter-set',
    slices: [
      sets('slice-1', 'node-1', 'pool-1', 3, { 'counter-set-1': { memory: '8Gi' } }),
      sl('slice-2', 'node-1', 'pool-1', [drawing('device-1', 'counter-set-1', '6Gi'), drawing('device-2', 'counter-set-1', '2Gi')], { count: 3 }),
      sl('slice-3', 'node-2', 'pool-1', [drawing('device-3', 'counter-set-1', '6Gi', false)], { count: 3 }),
    ],
    allocated: [held('device-3')],
    claims: [c('claim-0', firstAvailable('req-0', sub('subReq-0', 'class-a', { selectors: [atLeast('6Gi')] }), sub('subReq-1', 'class-a', { selectors: [atLeast('2Gi')] })))],
    want: ['claim-0/req-0/subReq-1=driver-a/pool-1/device-2'],
  },
  {
    // The broken device is on node-2, yet the whole pool is invalid for node-1 too.
    name: 'partitionable-devices-validation-error-on-non-targeting-slice',
    slices: [
      sets('slice-1', 'node-1', 'pool-1', 3, { 'counter-set-1': { memory: '8Gi' } }),
      sl('slice-2', 'node-1', 'pool-1', [drawing('device-1', 'counter-set-1', '6Gi')], { count: 3 }),
      sl('slice-3', 'node-2', 'pool-1', [drawing('device-3', 'counter-set-2', '6Gi', false)], { count: 3 }),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is invalid', 'counter-set-2'],
  },
  {
    name: 'different-resourceslices-in-pool-can-target-different-nodes',
    slices: [sl('slice-1', 'node-2', 'pool-1', [dev('device-1')], { count: 2 }), sl('slice-2', 'node-1', 'pool-1', [dev('device-2')], { count: 2 })],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: ['claim-0/req-0=driver-a/pool-1/device-2'],
  },
  {
    // pool-1 lists device-1 twice and is unusable; pool-2 serves.
    name: 'invalid-pool-is-ok-if-devices-can-be-allocated-from-other',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-2', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-3', 'node-1', 'pool-2', [dev('device-2')]),
    ],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: ['claim-0/req-0=driver-a/pool-2/device-2'],
  },
  {
    name: 'invalid-pool-is-error-if-no-other-device-can-be-allocated',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-2', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-3', 'node-1', 'pool-2', [dev('device-2')]),
    ],
    allocated: [held('device-2', 'pool-2')],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is invalid (device device-1 is listed twice)'],
  },
  {
    name: 'no-allocation-from-incomplete-pools',
    slices: [sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 })],
    claims: [c('claim-0', req('req-0', 'class-a'))],
    want: null,
    mentions: ['pool driver-a/pool-1 is incomplete: 1 of 2 slices of generation 1'],
  },
  {
    name: 'check-combinations-within-single-request-single-pool-single-slice',
    slices: [
      sl(
        'slice-1',
        'node-1',
        'pool-1',
        ['device-1', 'device-2', 'device-3', 'device-4'].map((n) => dev(n)),
      ),
    ],
    claims: fiveOfFour,
    want: null,
    mentions: ['request req-0', 'need 5'],
  },
  {
    name: 'check-combinations-within-single-request-single-pool-multiple-slices',
    slices: [sl('slice-1', 'node-1', 'pool-1', [dev('device-1'), dev('device-2')], { count: 2 }), sl('slice-2', 'node-1', 'pool-1', [dev('device-3'), dev('device-4')], { count: 2 })],
    claims: fiveOfFour,
    want: null,
    mentions: ['request req-0', 'need 5'],
  },
  {
    name: 'check-combinations-within-single-request-multiple-pools-multiple-slices',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [dev('device-1')], { count: 2 }),
      sl('slice-2', 'node-1', 'pool-1', [dev('device-2')], { count: 2 }),
      sl('slice-3', 'node-1', 'pool-2', [dev('device-3'), dev('device-4')]),
    ],
    claims: fiveOfFour,
    want: null,
    mentions: ['request req-0', 'need 5'],
  },
  {
    name: 'check-combinations-within-single-request-many-pools',
    slices: ['pool-1', 'pool-2', 'pool-3', 'pool-4'].map((p, i) => sl(`slice-${i + 1}`, 'node-1', p, [dev(`device-${i + 1}`)])),
    claims: fiveOfFour,
    want: null,
    mentions: ['request req-0', 'need 5'],
  },
  {
    // req-2 needs device-1 (the only X), so req-1 must take the two Ys.
    name: 'check-combinations-with-backtracking',
    slices: [sl('slice-1', 'node-1', 'pool-1', [typed('device-1', 'X'), typed('device-2', 'Y'), typed('device-3', 'Y')])],
    claims: [c('claim-0', req('req-1', 'class-a', { count: 2 }), req('req-2', 'class-a', { selectors: [ofType('X')] }))],
    want: ['claim-0/req-1=driver-a/pool-1/device-2', 'claim-0/req-1=driver-a/pool-1/device-3', 'claim-0/req-2=driver-a/pool-1/device-1'],
  },
  {
    // The same across two slices and two pools; device-3 carries a binding condition.
    name: 'check-combinations-with-backtracking-across-slices-and-pools',
    slices: [
      sl('slice-1', 'node-1', 'pool-1', [typed('device-1', 'X')], { count: 2 }),
      sl('slice-2', 'node-1', 'pool-1', [typed('device-2', 'Y')], { count: 2 }),
      sl('slice-3', 'node-1', 'pool-2', [dev('device-3', { type: 'Y' }, { bindingConditions: ['IsPrepare'], bindingFailureConditions: [] })]),
    ],
    claims: [c('claim-0', req('req-1', 'class-a', { count: 2 }), req('req-2', 'class-a', { selectors: [ofType('X')] }))],
    want: ['claim-0/req-1=driver-a/pool-1/device-2', 'claim-0/req-1=driver-a/pool-2/device-3 binding=IsPrepare|', 'claim-0/req-2=driver-a/pool-1/device-1'],
  },
  {
    // req-1's first choice wants three Ys (there are two); req-2's first choice
    // wants two more devices than are left. Both fall back to their second.
    name: 'check-combinations-with-prioritized-list',
    slices: [sl('slice-1', 'node-1', 'pool-1', [typed('device-1', 'X'), typed('device-2', 'Y'), typed('device-3', 'Y')])],
    claims: [
      c(
        'claim-0',
        firstAvailable('req-1', sub('subReq-0', 'class-a', { count: 3, selectors: [ofType('Y')] }), sub('subReq-1', 'class-a', { count: 2 })),
        firstAvailable('req-2', sub('subReq-0', 'class-a', { count: 2 }), sub('subReq-1', 'class-a', { selectors: [ofType('X')] })),
      ),
    ],
    want: ['claim-0/req-1/subReq-1=driver-a/pool-1/device-2', 'claim-0/req-1/subReq-1=driver-a/pool-1/device-3', 'claim-0/req-2/subReq-1=driver-a/pool-1/device-1'],
  },
];

function describeResults(o: AllocatedOutcome): string[] {
  return o.claims
    .flatMap((x) =>
      (x.allocation.devices?.results ?? []).map((r) => {
        const binding = (r.bindingConditions ?? []).length > 0 ? ` binding=${(r.bindingConditions ?? []).join(',')}|${(r.bindingFailureConditions ?? []).join(',')}` : '';
        return `${x.name}/${r.request}=${r.driver}/${r.pool}/${r.device}${binding}`;
      }),
    )
    .sort();
}

function allocate(c: Case, policy: PolicyName) {
  const allocator = new Allocator({ slices: c.slices, classes: c.classes ?? [CLASS_A], nodes: NODES, allocated: c.allocated ?? [] }, { policy });
  return allocator.allocate({ claims: c.claims, pod: { requiredNodeAffinity: local(c.node ?? 'node-1') } });
}

describe.each<PolicyName>(['cascade', 'first-fit'])('upstream pool and search cases under the %s policy', (policy) => {
  it('ports all 23 cases from "allocation-mode-all-with-multi-host-resource-pool" through "check-combinations-with-prioritized-list", with unique names', () => {
    expect(CASES).toHaveLength(23);
    expect(new Set(CASES.map((x) => x.name)).size).toBe(23);
  });

  for (const c of CASES) {
    it(c.name, () => {
      const outcome = expectOutcome(allocate(c, policy), c);
      if (!outcome || c.want === null) return;
      expect(outcome.claims).toHaveLength(c.claims.length);
      const got = describeResults(outcome);
      if (!matches(got, c.want)) expect(got).toEqual([...c.want].sort());
      for (const x of outcome.claims) {
        // Every device here is local to the pod's node.
        expect(x.allocation.nodeSelector).toEqual(local(c.node ?? 'node-1'));
        // Upstream's cases in this range carry no config.
        expect(x.allocation.devices?.config).toBeUndefined();
      }
    });
  }
});
