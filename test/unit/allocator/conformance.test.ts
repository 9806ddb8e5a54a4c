// Conformance table: the answers resource.k8s.io/v1 defines, checked under both
// placement policies (a policy may only choose among answers the API allows).
import { Allocator, type AllocatedOutcome, type AllocatedDeviceRef, type NodeFacts, type PodFacts, type PolicyName } from '../../../pkg/allocator/index.js';
import type { DeviceClass, ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { ANY, DRIVER, claim, cls, dev, firstAvailable, req, slice, sub } from './helpers.js';

type Want =
  | {
      readonly allocated: true;
      /** Expected node (the nodeSelector's metadata.name), or null for no selector. */
      readonly node?: string | null;
      /** Exact results of all claims, as "request=pool/device", sorted. */
      readonly devices?: readonly string[];
      readonly count?: number;
      readonly check?: (o: AllocatedOutcome) => void;
    }
  | { readonly allocated: false; readonly mentions?: readonly string[] };

interface Case {
  readonly name: string;
  readonly slices: readonly ResourceSlice[];
  readonly classes?: readonly DeviceClass[];
  readonly nodes?: readonly NodeFacts[];
  readonly allocated?: readonly AllocatedDeviceRef[];
  readonly namespaceLabels?: Record<string, Record<string, string>>;
  /** Claims allocated (and committed) first, one by one; each must succeed. */
  readonly before?: readonly ResourceClaim[];
  readonly claims: readonly ResourceClaim[];
  readonly pod?: PodFacts;
  readonly want: Want;
}

const A = `${DRIVER}/`;
const model = (m: string): string => `device.attributes["${DRIVER}"].model == "${m}"`;
const gpus = (n: number, prefix = 'gpu', attrs: (i: number) => Record<string, string | number | boolean | { version: string }> = () => ({})) =>
  Array.from({ length: n }, (_, i) => dev(`${prefix}-${i}`, attrs(i)));
// A GPU with two halves: whole "g" consumes both halves' counters; "h0"/"h1" one each.
const partitioned = (node: string): ResourceSlice[] => [
  slice(node, [], { count: 2, counters: [{ name: 'set', counters: { 'half-0': '1', 'half-1': '1', mem: '80Gi' } }] }),
  slice(
    node,
    [
      dev('g', { kind: 'whole' }, { consumes: [{ set: 'set', counters: { 'half-0': '1', 'half-1': '1', mem: '80Gi' } }] }),
      dev('h0', { kind: 'half' }, { consumes: [{ set: 'set', counters: { 'half-0': '1', mem: '40Gi' } }] }),
      dev('h1', { kind: 'half' }, { consumes: [{ set: 'set', counters: { 'half-1': '1', mem: '40Gi' } }] }),
    ],
    { count: 2 },
  ),
];
const tainted = (effect: 'NoSchedule' | 'NoExecute' | 'None'): ResourceSlice[] => [slice('n1', [dev('d0', {}, { taints: [{ key: 'broken', value: 'yes', effect }] })])];
const node = (name: string, extra: Partial<NodeFacts> = {}): NodeFacts => ({ name, labels: { zone: name === 'n1' ? 'a' : 'b' }, ...extra });

const CASES: readonly Case[] = [
  // ---- exactly, count, All ----
  {
    name: 'allocates one device and pins the claim to its node by metadata.name',
    slices: [slice('n1', [dev('d0')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, node: 'n1', devices: ['r=n1/d0'] },
  },
  { name: 'defaults an ExactCount request to one device', slices: [slice('n1', gpus(3))], claims: [claim('c', [req('r', 'any')])], want: { allocated: true, count: 1 } },
  { name: 'allocates exactly count devices', slices: [slice('n1', gpus(4))], claims: [claim('c', [req('r', 'any', { count: 3 })])], want: { allocated: true, count: 3 } },
  {
    name: 'needs all counted devices on one node',
    slices: [slice('n1', gpus(2)), slice('n2', gpus(2))],
    claims: [claim('c', [req('r', 'any', { count: 3 })])],
    want: { allocated: false, mentions: ['need 3'] },
  },
  {
    name: 'never allocates a device held by an existing allocation',
    slices: [slice('n1', gpus(2))],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'gpu-0' }],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, devices: ['r=n1/gpu-1'] },
  },
  {
    name: 'fails when every matching device is in use',
    slices: [slice('n1', gpus(1))],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'gpu-0' }],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: false, mentions: ['1 in use'] },
  },
  {
    name: 'allocationMode All takes every matching device of the node',
    slices: [slice('n1', gpus(3))],
    claims: [claim('c', [req('r', 'any', { all: true })])],
    want: { allocated: true, devices: ['r=n1/gpu-0', 'r=n1/gpu-1', 'r=n1/gpu-2'] },
  },
  {
    name: 'allocationMode All fails when one matching device is in use',
    slices: [slice('n1', gpus(2))],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'gpu-1' }],
    claims: [claim('c', [req('r', 'any', { all: true })])],
    want: { allocated: false },
  },
  {
    name: 'allocationMode All needs at least one matching device',
    slices: [slice('n1', [dev('d0', { model: 'a' })])],
    claims: [claim('c', [req('r', 'any', { all: true, selectors: [model('b')] })])],
    want: { allocated: false },
  },
  {
    name: 'allocationMode All takes only the devices that match the selectors',
    slices: [slice('n1', [dev('a0', { model: 'a' }), dev('b0', { model: 'b' }), dev('a1', { model: 'a' })])],
    claims: [claim('c', [req('r', 'any', { all: true, selectors: [model('a')] })])],
    want: { allocated: true, devices: ['r=n1/a0', 'r=n1/a1'] },
  },
  {
    name: 'allocationMode All picks the node where the matching devices are free',
    slices: [slice('n1', gpus(2)), slice('n2', gpus(2))],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'gpu-0' }],
    claims: [claim('c', [req('r', 'any', { all: true })])],
    want: { allocated: true, node: 'n2', count: 2 },
  },

  // ---- classes and selectors ----
  {
    name: 'class selectors exclude devices',
    classes: [cls('only-b', model('b'))],
    slices: [slice('n1', [dev('a', { model: 'a' }), dev('b', { model: 'b' })])],
    claims: [claim('c', [req('r', 'only-b')])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'request selectors are ANDed with class selectors',
    classes: [cls('big', `device.attributes["${DRIVER}"].mem >= 40`)],
    slices: [slice('n1', [dev('a', { model: 'a', mem: 80 }), dev('b', { model: 'b', mem: 80 }), dev('c', { model: 'b', mem: 10 })])],
    claims: [claim('c', [req('r', 'big', { selectors: [model('b')] })])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'several request selectors must all match',
    slices: [slice('n1', [dev('a', { model: 'x', ok: true }), dev('b', { model: 'x', ok: false })])],
    claims: [claim('c', [req('r', 'any', { selectors: [model('x'), `device.attributes["${DRIVER}"].ok`] })])],
    want: { allocated: true, devices: ['r=n1/a'] },
  },
  {
    name: 'an unknown device class fails the claim and names the class',
    slices: [slice('n1', [dev('d0')])],
    claims: [claim('c', [req('r', 'nope')])],
    want: { allocated: false, mentions: ['device class nope not found'] },
  },
  {
    name: 'a pool that lists a device twice is invalid: none of its devices is allocated',
    slices: [slice('n1', [dev('gpu-0'), dev('gpu-0'), dev('gpu-1')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: false, mentions: ['is invalid (device gpu-0 is listed twice); none of its devices is allocated'] },
  },
  {
    name: 'an invalid pool does not stop a claim another pool can satisfy',
    slices: [slice('n1', [dev('gpu-0'), dev('gpu-0')]), slice('n2', [dev('gpu-0')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, devices: ['r=n2/gpu-0'] },
  },
  {
    name: 'a device that uses a counter set its pool does not define makes the pool invalid',
    slices: [slice('n1', [dev('part', {}, { consumes: [{ set: 'nowhere', counters: { mem: '1' } }] }), dev('whole')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: false, mentions: ['uses counter set nowhere, which the pool does not define); none of its devices is allocated'] },
  },
  {
    name: 'a count above the 32 results a claim may have is an invalid claim, not a shortage',
    slices: [slice('n1', gpus(40))],
    claims: [claim('c', [req('r', 'any', { count: 33 })])],
    want: { allocated: false, mentions: ['count 33 is more than the 32 devices one claim can be allocated'] },
  },
  {
    name: 'an unknown allocationMode is refused rather than read as a count',
    slices: [slice('n1', gpus(2))],
    claims: [claim('c', [{ name: 'r', exactly: { deviceClassName: 'any', allocationMode: 'Some' as never } }])],
    want: { allocated: false, mentions: ['allocationMode "Some" is not ExactCount or All'] },
  },
  {
    name: 'an empty constraint is refused rather than ignored',
    slices: [slice('n1', gpus(2))],
    claims: [{ ...claim('c', [req('r', 'any')]), spec: { devices: { requests: [req('r', 'any')], constraints: [{}] } } }],
    want: { allocated: false, mentions: ['a constraint sets neither matchAttribute nor distinctAttribute'] },
  },
  {
    name: 'a request with neither exactly nor firstAvailable fails',
    slices: [slice('n1', [dev('d0')])],
    claims: [claim('c', [{ name: 'r' }])],
    want: { allocated: false, mentions: ['needs exactly or firstAvailable'] },
  },
  {
    name: 'devices of another driver do not match a class that names the driver',
    slices: [slice('n1', [dev('x')], { driver: 'other.example.com' })],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: false },
  },

  // ---- pools ----
  { name: 'skips a pool that has fewer slices than resourceSliceCount', slices: [slice('n1', [dev('d0')], { count: 2 })], claims: [claim('c', [req('r', 'any')])], want: { allocated: false } },
  {
    name: 'uses only the highest generation of a pool',
    slices: [slice('n1', [dev('old')], { generation: 1 }), slice('n1', [dev('new')], { generation: 2 })],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, devices: ['r=n1/new'] },
  },
  {
    name: 'a pool split over two complete slices is usable',
    slices: [slice('n1', [dev('d0')], { count: 2 }), slice('n1', [dev('d1')], { count: 2 })],
    claims: [claim('c', [req('r', 'any', { count: 2 })])],
    want: { allocated: true, count: 2 },
  },
  {
    name: 'allocationMode All fails while a pool with a matching device is incomplete',
    slices: [slice('n1', [dev('d0')], { pool: 'p1' }), slice('n1', [dev('d1')], { pool: 'p2', count: 2 })],
    claims: [claim('c', [req('r', 'any', { all: true })])],
    want: { allocated: false, mentions: ['incomplete'] },
  },
  { name: 'devices of a node that is not a candidate are not allocated', nodes: [node('n2')], slices: [slice('n1', [dev('d0')])], claims: [claim('c', [req('r', 'any')])], want: { allocated: false } },

  // ---- CEL ----
  {
    name: 'selects on a string attribute',
    slices: [slice('n1', [dev('a', { model: 'a' }), dev('b', { model: 'b' })])],
    claims: [claim('c', [req('r', 'any', { selectors: [model('b')] })])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'selects on an int attribute',
    slices: [slice('n1', [dev('a', { mem: 10 }), dev('b', { mem: 80 })])],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].mem > 40`] })])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'selects on a bool attribute',
    slices: [slice('n1', [dev('a', { mig: false }), dev('b', { mig: true })])],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].mig`] })])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'version attributes compare as semantic versions',
    slices: [slice('n1', [dev('a', { fw: { version: '1.10.0' } }), dev('b', { fw: { version: '1.9.0' } })])],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].fw.isGreaterThan(semver("1.9.5"))`] })])],
    want: { allocated: true, devices: ['r=n1/a'] },
  },
  {
    name: 'capacity compares as quantities',
    slices: [slice('n1', [dev('a', {}, { capacity: { memory: '40Gi' } }), dev('b', {}, { capacity: { memory: '81920Mi' } })])],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.capacity["${DRIVER}"].memory.compareTo(quantity("80Gi")) >= 0`] })])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'an unknown attribute domain reads as an empty map',
    slices: [slice('n1', [dev('a', { 'other.io/x': 'y' }), dev('b')])],
    claims: [claim('c', [req('r', 'any', { selectors: ['device.attributes["other.io"].size() == 0'] })])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'attributes of another domain are grouped under that domain',
    slices: [slice('n1', [dev('a', { 'other.io/x': 'y' }), dev('b')])],
    claims: [claim('c', [req('r', 'any', { selectors: ['device.attributes["other.io"].x == "y"'] })])],
    want: { allocated: false, mentions: ['No such key'] },
  },
  {
    name: 'a runtime error on a device of a node that is not a candidate does not fail the claim',
    nodes: [node('n1'), node('n2')],
    slices: [slice('n1', [dev('b')]), slice('n2', [dev('a', { model: 'x' })])],
    claims: [claim('c', [req('r', 'any', { selectors: [model('x')] })])],
    pod: { nodeSelector: { zone: 'b' } },
    want: { allocated: true, node: 'n2', devices: ['r=n2/a'] },
  },
  {
    name: 'a runtime error on a device reachable from every node fails the claim',
    nodes: [node('n1')],
    slices: [slice('n1', [dev('a', { model: 'x' })]), slice(undefined, [dev('net')], { pool: 'fabric', allNodes: true })],
    claims: [claim('c', [req('r', 'any', { selectors: [model('x')] })])],
    want: { allocated: false, mentions: ['failed on device', 'fabric/net'] },
  },
  {
    name: 'a missing attribute is a runtime error that fails the claim with the expression',
    slices: [slice('n1', [dev('a', { model: 'x' }), dev('b')])],
    claims: [claim('c', [req('r', 'any', { selectors: [model('x')] })])],
    want: { allocated: false, mentions: [model('x').replace(/"/g, '\\"'), 'No such key: model'] },
  },
  {
    name: 'a selector that does not compile fails the claim',
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any', { selectors: ['device.driver =='] })])],
    want: { allocated: false, mentions: ['compile error'] },
  },
  {
    name: 'a selector that does not return a bool fails the claim',
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any', { selectors: ['device.driver'] })])],
    want: { allocated: false, mentions: ['bool'] },
  },
  {
    name: 'bare attribute names belong to the driver domain',
    slices: [slice('n1', [dev('a', { model: 'q' })])],
    claims: [claim('c', [req('r', 'any', { selectors: [model('q')] })])],
    want: { allocated: true, devices: ['r=n1/a'] },
  },
  {
    name: 'has() tests whether a device carries an attribute',
    slices: [slice('n1', [dev('a'), dev('b', { pcie: 'x' })])],
    claims: [claim('c', [req('r', 'any', { selectors: [`has(device.attributes["${DRIVER}"].pcie)`] })])],
    want: { allocated: true, devices: ['r=n1/b'] },
  },
  {
    name: 'an expression longer than 10 KiB is rejected',
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.driver == "${'x'.repeat(10 * 1024)}"`] })])],
    want: { allocated: false, mentions: ['limit is 10240'] },
  },

  // ---- firstAvailable ----
  {
    name: 'firstAvailable takes the first alternative that fits',
    slices: [slice('n1', [dev('a', { model: 'a' }), dev('b', { model: 'b' })])],
    claims: [claim('c', [firstAvailable('r', sub('pa', 'any', { selectors: [model('a')] }), sub('pb', 'any', { selectors: [model('b')] }))])],
    want: { allocated: true, devices: ['r/pa=n1/a'] },
  },
  {
    name: 'a selector error in a later alternative does not fail a claim whose first alternative fits',
    slices: [slice('n1', [dev('a', { model: 'a' })])],
    claims: [claim('c', [firstAvailable('r', sub('pa', 'any', { selectors: [model('a')] }), sub('broken', 'any', { selectors: [`device.attributes["${DRIVER}"].missing == 1`] }))])],
    want: { allocated: true, devices: ['r/pa=n1/a'] },
  },
  {
    name: 'a selector error in a later alternative is reported when the earlier ones do not fit',
    slices: [slice('n1', [dev('a', { model: 'a' })])],
    claims: [claim('c', [firstAvailable('r', sub('pb', 'any', { selectors: [model('b')] }), sub('broken', 'any', { selectors: [`device.attributes["${DRIVER}"].missing == 1`] }))])],
    want: { allocated: false, mentions: ['request r/broken', 'missing'] },
  },
  {
    name: 'firstAvailable falls back to the next alternative',
    slices: [slice('n1', [dev('b', { model: 'b' })])],
    claims: [claim('c', [firstAvailable('r', sub('pa', 'any', { selectors: [model('a')] }), sub('pb', 'any', { selectors: [model('b')] }))])],
    want: { allocated: true, devices: ['r/pb=n1/b'], check: (o) => expect(o.claims[0]?.alternatives).toEqual([{ request: 'r', index: 1, subrequest: 'pb' }]) },
  },
  {
    name: 'an earlier alternative on any node beats a later one on another node',
    slices: [slice('n1', [dev('b', { model: 'b' })]), slice('n2', [dev('a', { model: 'a' })])],
    claims: [claim('c', [firstAvailable('r', sub('pa', 'any', { selectors: [model('a')] }), sub('pb', 'any', { selectors: [model('b')] }))])],
    want: { allocated: true, node: 'n2', devices: ['r/pa=n2/a'] },
  },
  {
    name: 'firstAvailable falls back when the first alternative needs more devices than a node has',
    slices: [slice('n1', gpus(2))],
    claims: [claim('c', [firstAvailable('r', sub('four', 'any', { count: 4 }), sub('two', 'any', { count: 2 }))])],
    want: { allocated: true, devices: ['r/two=n1/gpu-0', 'r/two=n1/gpu-1'] },
  },
  {
    name: 'firstAvailable fails when no alternative fits and explains each one',
    slices: [slice('n1', [dev('c', { model: 'c' })])],
    claims: [claim('c', [firstAvailable('r', sub('pa', 'any', { selectors: [model('a')] }), sub('pb', 'any', { selectors: [model('b')] }))])],
    want: { allocated: false, mentions: ['#0 pa', '#1 pb'] },
  },
  {
    name: 'firstAvailable reports index 0 and no subrequest for an exactly request',
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, check: (o) => expect(o.claims[0]?.alternatives).toEqual([{ request: 'r', index: 0 }]) },
  },

  // ---- constraints ----
  {
    name: 'matchAttribute keeps devices on one attribute value',
    slices: [
      slice(
        'n1',
        gpus(4, 'gpu', (i) => ({ domain: i === 0 || i === 2 ? 'x' : 'y', idx: i })),
      ),
    ],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'gpu-1' }],
    claims: [claim('c', [req('r', 'any', { count: 2 })], { constraints: [{ matchAttribute: `${A}domain` }] })],
    want: { allocated: true, devices: ['r=n1/gpu-0', 'r=n1/gpu-2'] },
  },
  {
    name: 'matchAttribute fails when no value has enough devices',
    slices: [
      slice(
        'n1',
        gpus(4, 'gpu', (i) => ({ domain: i < 2 ? 'x' : 'y' })),
      ),
    ],
    claims: [claim('c', [req('r', 'any', { count: 3 })], { constraints: [{ matchAttribute: `${A}domain` }] })],
    want: { allocated: false, mentions: ['matchAttribute', `${A}domain`] },
  },
  {
    name: 'devices lacking the attribute do not satisfy matchAttribute',
    slices: [slice('n1', [dev('a', { domain: 'x' }), dev('b')])],
    claims: [claim('c', [req('r', 'any', { count: 2 })], { constraints: [{ matchAttribute: `${A}domain` }] })],
    want: { allocated: false },
  },
  {
    name: 'matchAttribute spans two requests of a claim',
    slices: [slice('n1', [dev('a', { kind: 'k1', domain: 'x' }), dev('b', { kind: 'k2', domain: 'y' }), dev('c', { kind: 'k2', domain: 'x' })])],
    claims: [
      claim('c', [req('r1', 'any', { selectors: [`device.attributes["${DRIVER}"].kind == "k1"`] }), req('r2', 'any', { selectors: [`device.attributes["${DRIVER}"].kind == "k2"`] })], {
        constraints: [{ requests: ['r1', 'r2'], matchAttribute: `${A}domain` }],
      }),
    ],
    want: { allocated: true, devices: ['r1=n1/a', 'r2=n1/c'] },
  },
  {
    name: 'a constraint listing some requests leaves the others free',
    slices: [slice('n1', [dev('a', { domain: 'x' }), dev('b', { domain: 'x' }), dev('c', { domain: 'y' })])],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'b' }],
    claims: [claim('c', [req('r1', 'any'), req('r2', 'any')], { constraints: [{ requests: ['r1'], matchAttribute: `${A}domain` }] })],
    want: { allocated: true, count: 2 },
  },
  {
    name: 'distinctAttribute picks devices with different values',
    slices: [slice('n1', [dev('a', { parent: 'p0' }), dev('b', { parent: 'p0' }), dev('c', { parent: 'p1' })])],
    claims: [claim('c', [req('r', 'any', { count: 2 })], { constraints: [{ distinctAttribute: `${A}parent` }] })],
    want: { allocated: true, check: (o) => expect(new Set(o.devices.map((d) => (d.device === 'c' ? 'p1' : 'p0'))).size).toBe(2) },
  },
  {
    name: 'distinctAttribute fails when the values repeat',
    slices: [slice('n1', [dev('a', { parent: 'p0' }), dev('b', { parent: 'p0' })])],
    claims: [claim('c', [req('r', 'any', { count: 2 })], { constraints: [{ distinctAttribute: `${A}parent` }] })],
    want: { allocated: false, mentions: ['distinctAttribute'] },
  },
  {
    name: 'a constraint naming a request covers its subrequests',
    slices: [slice('n1', [dev('a', { domain: 'x' }), dev('b', { domain: 'y' })])],
    claims: [claim('c', [firstAvailable('r', sub('two', 'any', { count: 2 }))], { constraints: [{ requests: ['r'], matchAttribute: `${A}domain` }] })],
    want: { allocated: false },
  },
  {
    name: 'a constraint naming one subrequest does not bind the others',
    slices: [slice('n1', [dev('a', { domain: 'x' }), dev('b', { domain: 'y' })])],
    claims: [
      claim('c', [firstAvailable('r', sub('pair', 'any', { count: 2, selectors: ['false'] }), sub('two', 'any', { count: 2 }))], {
        constraints: [{ requests: ['r/pair'], matchAttribute: `${A}domain` }],
      }),
    ],
    want: { allocated: true, devices: ['r/two=n1/a', 'r/two=n1/b'] },
  },
  {
    name: 'a constraint on a subrequest applies when that subrequest is chosen',
    slices: [slice('n1', [dev('a', { domain: 'x' }), dev('b', { domain: 'y' }), dev('c', { domain: 'y' })])],
    claims: [claim('c', [firstAvailable('r', sub('pair', 'any', { count: 2 }))], { constraints: [{ requests: ['r/pair'], matchAttribute: `${A}domain` }] })],
    want: { allocated: true, devices: ['r/pair=n1/b', 'r/pair=n1/c'] },
  },
  {
    name: 'matchAttribute compares version attributes exactly',
    slices: [slice('n1', [dev('a', { fw: { version: '1.0.0' } }), dev('b', { fw: { version: '1.0.1' } }), dev('c', { fw: { version: '1.0.1' } })])],
    claims: [claim('c', [req('r', 'any', { count: 2 })], { constraints: [{ matchAttribute: `${A}fw` }] })],
    want: { allocated: true, devices: ['r=n1/b', 'r=n1/c'] },
  },
  {
    name: 'eight devices on one domain fail quickly when domains hold four',
    slices: [
      slice(
        'n1',
        gpus(8, 'gpu', (i) => ({ domain: i < 4 ? 'x' : 'y' })),
      ),
    ],
    claims: [claim('c', [req('r', 'any', { count: 8 })], { constraints: [{ matchAttribute: `${A}domain` }] })],
    want: { allocated: false, mentions: ['at most 4 free devices share one'] },
  },
  {
    name: 'matchAttribute over two requests fails when no value has devices for both',
    slices: [
      slice(
        'n1',
        gpus(6, 'gpu', (i) => ({ domain: i < 3 ? 'x' : 'y' })),
      ),
    ],
    claims: [claim('c', [req('a', 'any', { count: 2 }), req('b', 'any', { count: 2 })], { constraints: [{ matchAttribute: `${A}domain` }] })],
    want: { allocated: false, mentions: ['has too few devices'] },
  },
  {
    name: 'constraints do not reach across claims of one pod',
    slices: [slice('n1', [dev('a', { domain: 'x' }), dev('b', { domain: 'y' })])],
    claims: [claim('c1', [req('r', 'any')], { constraints: [{ matchAttribute: `${A}domain` }] }), claim('c2', [req('r', 'any')], { constraints: [{ matchAttribute: `${A}domain` }] })],
    want: { allocated: true, count: 2 },
  },

  // ---- shared counters ----
  {
    name: 'a whole device is blocked while a partition of it is allocated',
    slices: partitioned('n1'),
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'h0' }],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].kind == "whole"`] })])],
    want: { allocated: false, mentions: ['blocked by shared counters'] },
  },
  {
    name: 'partitions that fit the counters together are both allocated',
    slices: partitioned('n1'),
    claims: [claim('c', [req('r', 'any', { count: 2, selectors: [`device.attributes["${DRIVER}"].kind == "half"`] })])],
    want: { allocated: true, devices: ['r=n1/h0', 'r=n1/h1'] },
  },
  {
    name: 'a claim cannot take a partition and the whole device',
    slices: partitioned('n1'),
    claims: [claim('c', [req('r', 'any', { count: 2, selectors: [`device.attributes["${DRIVER}"].kind in ["whole", "half"]`] })])],
    want: { allocated: true, devices: ['r=n1/h0', 'r=n1/h1'] },
  },
  {
    name: 'counters consumed by existing allocations are respected',
    slices: partitioned('n1'),
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'h1' }],
    claims: [claim('c', [req('r', 'any', { count: 2, selectors: [`device.attributes["${DRIVER}"].kind == "half"`] })])],
    want: { allocated: false },
  },
  {
    name: 'counter quantities with suffixes add up exactly',
    slices: [
      slice('n1', [], { count: 2, counters: [{ name: 's', counters: { mem: '80Gi' } }] }),
      slice(
        'n1',
        [
          dev('a', {}, { consumes: [{ set: 's', counters: { mem: '40960Mi' } }] }),
          dev('b', {}, { consumes: [{ set: 's', counters: { mem: '40Gi' } }] }),
          dev('c', {}, { consumes: [{ set: 's', counters: { mem: '1' } }] }),
        ],
        { count: 2 },
      ),
    ],
    claims: [claim('c', [req('r', 'any', { count: 2, selectors: ['device.attributes["dra.example.com"].size() == 0'] })])],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'c' }],
    want: { allocated: false },
  },
  {
    name: 'a device whose counter set is not in its pool is never allocated',
    slices: [slice('n1', [dev('a', {}, { consumes: [{ set: 'missing', counters: { x: '1' } }] })])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: false },
  },
  {
    name: 'two pods cannot overcommit a counter set one after the other',
    slices: partitioned('n1'),
    before: [claim('first', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].kind == "half"`] })])],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].kind == "whole"`] })])],
    want: { allocated: false },
  },

  // ---- taints and tolerations ----
  { name: 'a NoSchedule device taint excludes the device', slices: tainted('NoSchedule'), claims: [claim('c', [req('r', 'any')])], want: { allocated: false, mentions: ['tainted'] } },
  { name: 'a NoExecute device taint excludes the device', slices: tainted('NoExecute'), claims: [claim('c', [req('r', 'any')])], want: { allocated: false } },
  { name: 'a device taint with effect None does not exclude the device', slices: tainted('None'), claims: [claim('c', [req('r', 'any')])], want: { allocated: true, devices: ['r=n1/d0'] } },
  {
    name: 'an Exists toleration of the key allows a tainted device',
    slices: tainted('NoSchedule'),
    claims: [claim('c', [req('r', 'any', { tolerations: [{ key: 'broken', operator: 'Exists' }] })])],
    want: { allocated: true, count: 1 },
  },
  {
    name: 'an Equal toleration needs the same value',
    slices: tainted('NoSchedule'),
    claims: [claim('c', [req('r', 'any', { tolerations: [{ key: 'broken', operator: 'Equal', value: 'no' }] })])],
    want: { allocated: false },
  },
  {
    name: 'an Equal toleration with the same value allows the device',
    slices: tainted('NoExecute'),
    claims: [claim('c', [req('r', 'any', { tolerations: [{ key: 'broken', value: 'yes' }] })])],
    want: { allocated: true, count: 1 },
  },
  {
    name: 'Exists with an empty key tolerates every taint',
    slices: tainted('NoExecute'),
    claims: [claim('c', [req('r', 'any', { tolerations: [{ operator: 'Exists' }] })])],
    want: { allocated: true, count: 1 },
  },
  {
    name: 'a toleration for another effect does not tolerate',
    slices: tainted('NoExecute'),
    claims: [claim('c', [req('r', 'any', { tolerations: [{ key: 'broken', operator: 'Exists', effect: 'NoSchedule' }] })])],
    want: { allocated: false },
  },
  {
    name: 'request tolerations are copied into the results',
    slices: tainted('NoSchedule'),
    claims: [claim('c', [req('r', 'any', { tolerations: [{ key: 'broken', operator: 'Exists' }] })])],
    want: { allocated: true, check: (o) => expect(o.claims[0]?.allocation.devices?.results?.[0]?.tolerations).toEqual([{ key: 'broken', operator: 'Exists' }]) },
  },
  {
    name: 'a subrequest toleration lets a later alternative use a tainted device',
    slices: [slice('n1', [dev('d0', { model: 'b' }, { taints: [{ key: 'k', effect: 'NoSchedule' }] })])],
    claims: [claim('c', [firstAvailable('r', sub('plain', 'any'), sub('tolerant', 'any', { tolerations: [{ key: 'k', operator: 'Exists' }] }))])],
    want: { allocated: true, devices: ['r/tolerant=n1/d0'] },
  },

  // ---- admin access ----
  {
    name: 'admin access may use a device in use and says so in the result',
    namespaceLabels: { default: { 'resource.kubernetes.io/admin-access': 'true' } },
    slices: [slice('n1', [dev('d0')])],
    allocated: [{ driver: DRIVER, pool: 'n1', device: 'd0' }],
    claims: [claim('c', [req('r', 'any', { admin: true })])],
    want: { allocated: true, check: (o) => expect(o.claims[0]?.allocation.devices?.results).toEqual([{ request: 'r', driver: DRIVER, pool: 'n1', device: 'd0', adminAccess: true }]) },
  },
  {
    name: 'admin access needs the admin-access label on the namespace',
    slices: [slice('n1', [dev('d0')])],
    claims: [claim('c', [req('r', 'any', { admin: true })])],
    want: { allocated: false, mentions: ['resource.kubernetes.io/admin-access'] },
  },
  {
    name: 'an admin-access allocation does not make the device busy',
    namespaceLabels: { ops: { 'resource.kubernetes.io/admin-access': 'true' } },
    slices: [slice('n1', [dev('d0')])],
    before: [claim('admin', [req('r', 'any', { admin: true })], { namespace: 'ops' })],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, devices: ['r=n1/d0'] },
  },
  {
    name: 'admin access does not consume shared counters',
    namespaceLabels: { ops: { 'resource.kubernetes.io/admin-access': 'true' } },
    slices: partitioned('n1'),
    before: [claim('admin', [req('r', 'any', { admin: true, selectors: [`device.attributes["${DRIVER}"].kind == "half"`] })], { namespace: 'ops' })],
    claims: [claim('c', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].kind == "whole"`] })])],
    want: { allocated: true, devices: ['r=n1/g'] },
  },

  // ---- pods with several claims ----
  {
    name: 'all claims of a pod land on one node',
    slices: [slice('n1', [dev('a', { model: 'a' })]), slice('n2', [dev('a', { model: 'a' }), dev('b', { model: 'b' })])],
    claims: [claim('c1', [req('r', 'any', { selectors: [model('a')] })]), claim('c2', [req('r', 'any', { selectors: [model('b')] })])],
    want: { allocated: true, node: 'n2', count: 2 },
  },
  { name: 'two claims of a pod never share a device', slices: [slice('n1', [dev('d0')])], claims: [claim('c1', [req('r', 'any')]), claim('c2', [req('r', 'any')])], want: { allocated: false } },
  {
    name: 'a pod whose claims only fit on different nodes is not allocated',
    slices: [slice('n1', [dev('a', { model: 'a' })]), slice('n2', [dev('b', { model: 'b' })])],
    claims: [claim('c1', [req('r', 'any', { selectors: [model('a')] })]), claim('c2', [req('r', 'any', { selectors: [model('b')] })])],
    want: { allocated: false },
  },
  {
    name: 'an already allocated claim of the pod pins the node',
    slices: [slice('n1', [dev('a')]), slice('n2', [dev('a'), dev('b')])],
    allocated: [{ driver: DRIVER, pool: 'n2', device: 'b' }],
    claims: [
      {
        ...claim('done', [req('r', 'any')]),
        status: {
          allocation: {
            devices: { results: [{ request: 'r', driver: DRIVER, pool: 'n2', device: 'b' }] },
            nodeSelector: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n2'] }] }] },
          },
        },
      },
      claim('new', [req('r', 'any')]),
    ],
    want: { allocated: true, node: 'n2', check: (o) => expect(o.claims[0]?.preexisting).toBe(true) },
  },

  // ---- config ----
  {
    name: 'class config is copied with source FromClass for the requests that used the class',
    classes: [
      {
        ...cls('cfg', `device.driver == "${DRIVER}"`),
        spec: { selectors: [{ cel: { expression: `device.driver == "${DRIVER}"` } }], config: [{ opaque: { driver: DRIVER, parameters: { mode: 'x' } } }] },
      },
    ],
    slices: [slice('n1', gpus(2))],
    claims: [claim('c', [req('a', 'cfg'), req('b', 'cfg')])],
    want: {
      allocated: true,
      check: (o) => expect(o.claims[0]?.allocation.devices?.config).toEqual([{ source: 'FromClass', requests: ['a', 'b'], opaque: { driver: DRIVER, parameters: { mode: 'x' } } }]),
    },
  },
  {
    name: 'claim config without requests applies to every request',
    slices: [slice('n1', gpus(1))],
    claims: [claim('c', [req('a', 'any')], { config: [{ opaque: { driver: DRIVER, parameters: { p: 1 } } }] })],
    want: { allocated: true, check: (o) => expect(o.claims[0]?.allocation.devices?.config).toEqual([{ source: 'FromClaim', opaque: { driver: DRIVER, parameters: { p: 1 } } }]) },
  },
  {
    name: 'claim config for a subrequest that was not chosen is left out',
    slices: [slice('n1', [dev('b', { model: 'b' })])],
    claims: [
      claim('c', [firstAvailable('r', sub('pa', 'any', { selectors: [model('a')] }), sub('pb', 'any'))], {
        config: [
          { requests: ['r/pa'], opaque: { driver: DRIVER, parameters: { for: 'pa' } } },
          { requests: ['r/pb'], opaque: { driver: DRIVER, parameters: { for: 'pb' } } },
          { requests: ['r'], opaque: { driver: DRIVER, parameters: { for: 'r' } } },
        ],
      }),
    ],
    want: {
      allocated: true,
      check: (o) =>
        expect(o.claims[0]?.allocation.devices?.config).toEqual([
          { source: 'FromClaim', requests: ['r/pb'], opaque: { driver: DRIVER, parameters: { for: 'pb' } } },
          { source: 'FromClaim', requests: ['r'], opaque: { driver: DRIVER, parameters: { for: 'r' } } },
        ]),
    },
  },

  // ---- node facts ----
  {
    name: 'a node without enough free cpu for the pod is skipped',
    nodes: [node('n1', { free: { cpu: '2' } }), node('n2', { free: { cpu: '8' } })],
    slices: [slice('n1', [dev('a')]), slice('n2', [dev('a')])],
    claims: [claim('c', [req('r', 'any')])],
    pod: { cpu: '4' },
    want: { allocated: true, node: 'n2' },
  },
  {
    name: 'a node without enough free memory for the pod is skipped',
    nodes: [node('n1', { free: { memory: '1Gi' } })],
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any')])],
    pod: { memory: '2Gi' },
    want: { allocated: false, mentions: ['not enough memory'] },
  },
  {
    name: 'a node taint the pod does not tolerate excludes the node',
    nodes: [node('n1', { taints: [{ key: 'gpu', effect: 'NoSchedule' }] }), node('n2')],
    slices: [slice('n1', [dev('a')]), slice('n2', [dev('a')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, node: 'n2' },
  },
  {
    name: 'a tolerated node taint does not exclude the node',
    nodes: [node('n1', { taints: [{ key: 'gpu', effect: 'NoSchedule' }] })],
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any')])],
    pod: { tolerations: [{ key: 'gpu', operator: 'Exists' }] },
    want: { allocated: true, node: 'n1' },
  },
  {
    name: 'an unschedulable node is skipped',
    nodes: [node('n1', { unschedulable: true })],
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: false, mentions: ['unschedulable'] },
  },

  // ---- node selection of slices ----
  {
    name: 'devices of a slice with a node selector carry that selector into the allocation',
    nodes: [node('n1'), node('n2')],
    slices: [slice(undefined, [dev('net')], { pool: 'fabric', nodeSelector: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }] } })],
    claims: [claim('c', [req('r', 'any')])],
    want: {
      allocated: true,
      node: 'n2',
      check: (o) => expect(o.claims[0]?.allocation.nodeSelector).toEqual({ nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }] }),
    },
  },
  {
    name: 'devices available on all nodes need no node selector',
    nodes: [node('n1')],
    slices: [slice(undefined, [dev('net')], { pool: 'fabric', allNodes: true })],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, node: null },
  },
  {
    name: 'per-device node selection uses the device node name',
    nodes: [node('n1'), node('n2')],
    slices: [slice(undefined, [dev('x', {}, { nodeName: 'n2' })], { pool: 'p', perDevice: true })],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, node: 'n2' },
  },
  {
    name: 'a node-local device pins the claim even next to an all-nodes device',
    nodes: [node('n1')],
    slices: [slice(undefined, [dev('net', { kind: 'net' })], { pool: 'fabric', allNodes: true }), slice('n1', [dev('gpu', { kind: 'gpu' })])],
    claims: [claim('c', [req('r', 'any', { count: 2 })])],
    want: { allocated: true, node: 'n1', count: 2 },
  },

  // ---- binding conditions (resource.k8s.io/v1, beta in 1.36) ----
  {
    name: "a device's binding conditions are copied into its result",
    slices: [slice('n1', [dev('fabric-gpu', {}, { bindingConditions: ['dra.example.com/attached'], bindingFailureConditions: ['dra.example.com/attach-failed'] })])],
    claims: [claim('c', [req('r', 'any')])],
    want: {
      allocated: true,
      node: 'n1',
      check: (o) =>
        expect(o.claims[0]?.allocation.devices?.results?.[0]).toMatchObject({ bindingConditions: ['dra.example.com/attached'], bindingFailureConditions: ['dra.example.com/attach-failed'] }),
    },
  },
  {
    name: 'a device without binding conditions gets none in its result',
    slices: [slice('n1', [dev('a')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, check: (o) => expect(Object.keys(o.claims[0]?.allocation.devices?.results?.[0] ?? {})).not.toContain('bindingConditions') },
  },
  {
    name: 'a device that binds to its node pins the claim to the node it was allocated for, though all nodes reach it',
    nodes: [node('n1'), node('n2')],
    slices: [slice(undefined, [dev('attachable', {}, { bindsToNode: true, bindingConditions: ['attached'] })], { pool: 'fabric', allNodes: true })],
    claims: [claim('c', [req('r', 'any')])],
    want: {
      allocated: true,
      check: (o) => {
        expect(o.node === 'n1' || o.node === 'n2').toBe(true);
        expect(o.claims[0]?.allocation.nodeSelector).toEqual({ nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [o.node] }] }] });
      },
    },
  },
  {
    name: 'a device that binds to its node replaces its slice selector by the chosen node',
    nodes: [node('n1'), node('n2')],
    slices: [
      slice(undefined, [dev('net', {}, { bindsToNode: true })], { pool: 'fabric', nodeSelector: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }] } }),
    ],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, node: 'n2', check: (o) => expect(o.claims[0]?.allocation.nodeSelector?.nodeSelectorTerms[0]?.matchExpressions).toBeUndefined() },
  },

  // ---- sharing and limits ----
  {
    name: 'a device that allows multiple allocations serves two claims',
    slices: [slice('n1', [dev('multi', {}, { allowMultiple: true })])],
    before: [claim('first', [req('r', 'any')])],
    claims: [claim('c', [req('r', 'any')])],
    want: { allocated: true, devices: ['r=n1/multi'] },
  },
  { name: 'a claim may not hold more than 32 devices', slices: [slice('n1', gpus(40))], claims: [claim('c', [req('r', 'any', { count: 33 })])], want: { allocated: false } },
];

function resultsOf(o: AllocatedOutcome): string[] {
  return o.claims.flatMap((c) => (c.preexisting ? [] : (c.allocation.devices?.results ?? []).map((r) => `${r.request}=${r.pool}/${r.device}`))).sort();
}

function nodeOf(o: AllocatedOutcome, claimIdx = 0): string | null {
  const sel = o.claims[claimIdx]?.allocation.nodeSelector;
  return sel?.nodeSelectorTerms[0]?.matchFields?.find((f) => f.key === 'metadata.name')?.values?.[0] ?? (sel === undefined ? null : (o.node ?? null));
}

describe.each<PolicyName>(['cascade', 'first-fit'])('conformance under the %s policy', (policy) => {
  it('has at least 60 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const allocator = new Allocator(
      {
        slices: c.slices,
        classes: c.classes ?? [ANY],
        ...(c.nodes !== undefined ? { nodes: c.nodes } : {}),
        allocated: c.allocated ?? [],
        namespaceLabels: c.namespaceLabels ?? {},
      },
      { policy },
    );
    for (const b of c.before ?? []) {
      const o = allocator.allocate({ claims: [b] });
      if (o.kind !== 'allocated') throw new Error(`setup claim ${b.metadata.name ?? ''} failed: ${o.explanation.full}`);
      allocator.commit(o);
    }
    const outcome = allocator.allocate({ claims: c.claims, ...(c.pod !== undefined ? { pod: c.pod } : {}) });
    if (!c.want.allocated) {
      expect(outcome.kind).toBe('unallocated');
      if (outcome.kind === 'unallocated') {
        for (const m of c.want.mentions ?? []) expect(outcome.explanation.full).toContain(m);
        expect(Buffer.byteLength(outcome.explanation.short)).toBeLessThanOrEqual(1024);
      }
      return;
    }
    if (outcome.kind !== 'allocated') throw new Error(`expected an allocation: ${outcome.explanation.full}`);
    if (c.want.node !== undefined)
      expect(
        nodeOf(
          outcome,
          outcome.claims.findIndex((x) => !x.preexisting),
        ),
      ).toBe(c.want.node);
    if (c.want.devices !== undefined) expect(resultsOf(outcome)).toEqual([...c.want.devices].sort());
    if (c.want.count !== undefined) expect(resultsOf(outcome)).toHaveLength(c.want.count);
    c.want.check?.(outcome);
  });
});
