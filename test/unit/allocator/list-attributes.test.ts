// List-type attributes (KEP-5491, alpha in Kubernetes 1.36 behind the
// DRAListTypeAttributes gate): every list-type case of the upstream allocator's
// shared test table (k8s.io/dynamic-resource-allocation v0.36.2,
// structured/internal/allocatortesting), named after it (the "constaint"
// spelling is upstream's), with the gate on. A scalar is the set of itself:
// matchAttribute needs an element all devices share, distinctAttribute no
// element two devices share. Under first-fit the devices are upstream's; under
// Cascade's policy, where another choice may be as right, the answer is checked
// for validity instead.
import { Allocator, type PolicyName } from '../../../pkg/allocator/index.js';
import type { DeviceAttribute, ResourceSlice } from '../../../pkg/api/resource.js';
import { elementsOf, intersection } from '../../../pkg/allocator/attrsets.js';
import { attributeKey } from '../../../pkg/allocator/inventory.js';
import { DRIVER, claim, cls, req } from './helpers.js';

const ATTR = `${DRIVER}/attribute-0`;
const CLASS = cls('class', `device.driver == "${DRIVER}"`);

interface Case {
  readonly name: string;
  readonly kind: 'match' | 'distinct';
  readonly values: readonly DeviceAttribute[];
  readonly count: number;
  /** Upstream's devices; null: no allocation. */
  readonly want: readonly string[] | null;
}

// prettier-ignore
const CASES: readonly Case[] = [
  { name: 'list-attributes-match-constaint-scalar-string-values', kind: 'match', values: [{ string: "value1" }, { string: "value1" }], count: 2, want: ["device-1", "device-2"] },
  { name: 'list-attributes-match-constaint-list-of-string-values-with-common-elements', kind: 'match', values: [{ strings: ["value1", "value2", "value3"] }, { strings: ["value2", "value3", "value4"] }], count: 2, want: ["device-1", "device-2"] },
  { name: 'list-attributes-match-constaint-list-of-string-values-with-partially-common-elements', kind: 'match', values: [{ strings: ["value1", "value2"] }, { strings: ["value2", "value3"] }, { strings: ["value3", "value1"] }], count: 3, want: null },
  { name: 'list-attributes-match-constaint-list-of-string-values-without-common-elements', kind: 'match', values: [{ strings: ["value1", "value2"] }, { strings: ["value3", "value4"] }], count: 2, want: null },
  { name: 'list-attributes-match-constaint-mixed-scalar-and-list-of-string-values-with-common-elements', kind: 'match', values: [{ string: "value1" }, { strings: ["value1", "value2"] }], count: 2, want: ["device-1", "device-2"] },
  { name: 'list-attributes-match-constaint-mixed-scalar-and-list-of-string-values-with-partially-common-elements', kind: 'match', values: [{ string: "value1" }, { strings: ["value1", "value2"] }, { strings: ["value2", "value3"] }], count: 3, want: null },
  { name: 'list-attributes-match-constaint-mixed-scalar-and-list-of-string-values-without-common-elements', kind: 'match', values: [{ string: "value1" }, { strings: ["value2", "value3"] }], count: 2, want: null },
  { name: 'list-attributes-match-constaint-list-of-int-values-with-common-elements', kind: 'match', values: [{ ints: [1, 2, 3] }, { ints: [2, 3, 4] }], count: 2, want: ["device-1", "device-2"] },
  { name: 'list-attributes-match-constaint-list-of-bool-values-with-common-elements', kind: 'match', values: [{ bools: [true, false] }, { bools: [true] }], count: 2, want: ["device-1", "device-2"] },
  { name: 'list-attributes-match-constaint-list-of-version-values-with-common-elements', kind: 'match', values: [{ versions: ["1.0.0", "1.1.0"] }, { versions: ["1.1.0", "2.0.0"] }], count: 2, want: ["device-1", "device-2"] },
  { name: 'list-attributes-distinct-constraint-scalar-string-values-all-distinct', kind: 'distinct', values: [{ string: "value1" }, { string: "value2" }], count: 2, want: ["device-1", "device-2"] },
  { name: 'list-attributes-distinct-constraint-scalar-string-values-not-distinct', kind: 'distinct', values: [{ string: "value1" }, { string: "value1" }], count: 2, want: null },
  { name: 'list-attributes-distinct-constraint-list-of-string-values-all-distinct', kind: 'distinct', values: [{ strings: ["value1", "value2"] }, { strings: ["value2", "value3"] }, { strings: ["value3", "value4"] }], count: 2, want: ["device-1", "device-3"] },
  { name: 'list-attributes-distinct-constraint-list-of-string-values-with-common-elements', kind: 'distinct', values: [{ strings: ["value1", "value2"] }, { strings: ["value2", "value3"] }], count: 2, want: null },
  { name: 'list-attributes-distinct-constraint-mixed-scalar-and-list-all-distinct', kind: 'distinct', values: [{ string: "value1" }, { strings: ["value1", "value2"] }, { strings: ["value2", "value3"] }], count: 2, want: ["device-1", "device-3"] },
  { name: 'list-attributes-distinct-constraint-mixed-scalar-and-list-with-common-elements', kind: 'distinct', values: [{ string: "value1" }, { strings: ["value1", "value2"] }], count: 2, want: null },
  { name: 'list-attributes-distinct-constraint-list-of-int-values-all-distinct', kind: 'distinct', values: [{ ints: [1, 2] }, { ints: [2, 3] }, { ints: [3, 4] }], count: 2, want: ["device-1", "device-3"] },
  { name: 'list-attributes-distinct-constraint-list-of-bool-values-all-distinct', kind: 'distinct', values: [{ bools: [true] }, { bools: [true, false] }, { bools: [false] }], count: 2, want: ["device-1", "device-3"] },
  { name: 'list-attributes-distinct-constraint-list-of-version-values-all-distinct', kind: 'distinct', values: [{ versions: ["1.0.0", "1.1.0"] }, { versions: ["1.1.0", "2.0.0"] }, { versions: ["2.0.0", "3.0.0"] }], count: 2, want: ["device-1", "device-3"] },
];

function fleet(values: readonly DeviceAttribute[]): ResourceSlice[] {
  return [
    {
      metadata: { name: 'slice-1' },
      spec: {
        driver: DRIVER,
        nodeName: 'node-1',
        pool: { name: 'pool-1', generation: 1, resourceSliceCount: 1 },
        devices: values.map((v, i) => ({ name: `device-${i + 1}`, attributes: { [ATTR]: v } })),
      },
    },
  ];
}

function run(c: Case, policy: PolicyName): string[] | null {
  const a = new Allocator({ slices: fleet(c.values), classes: [CLASS] }, { policy });
  const constraint = c.kind === 'match' ? { matchAttribute: ATTR } : { distinctAttribute: ATTR };
  const o = a.allocate({ claims: [claim('claim-0', [req('req-0', 'class', { count: c.count })], { constraints: [constraint] })] });
  return o.kind === 'allocated' ? o.devices.map((d) => d.device).sort() : null;
}

/** Whether a set of devices meets the constraint, by the rule itself. */
function valid(c: Case, devices: readonly string[]): boolean {
  const keys = devices.map((d) => attributeKey(c.values[Number(d.slice('device-'.length)) - 1] ?? {}) ?? '');
  if (c.kind === 'match') {
    let common: string | undefined = keys[0];
    for (const k of keys.slice(1)) common = common === undefined ? undefined : intersection(common, k);
    return common !== undefined;
  }
  const seen = new Set<string>();
  for (const k of keys)
    for (const e of elementsOf(k)) {
      if (seen.has(e)) return false;
      seen.add(e);
    }
  return true;
}

describe('list-type attributes, as the upstream allocator tests them', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(run(c, 'first-fit')).toEqual(c.want);
    const mine = run(c, 'cascade');
    if (c.want === null) expect(mine).toBeNull();
    else {
      expect(mine).toHaveLength(c.count);
      expect(valid(c, mine ?? [])).toBe(true);
    }
  });

  it.each([
    ['list-attributes-match-constaint-with-empty-or-unknown-type', { matchAttribute: ATTR }],
    ['list-attributes-distinct-constaint-with-empty-or-unknown-type', { distinctAttribute: ATTR }],
  ] as const)('%s: no allocation, and the reason names the attribute', (_name, constraint) => {
    // An empty list and a value of a type this API does not know.
    const a = new Allocator({ slices: fleet([{ strings: [] }, { maps: {} } as DeviceAttribute]), classes: [CLASS] });
    const o = a.allocate({ claims: [claim('claim-0', [req('req-0', 'class', { count: 2 })], { constraints: [constraint] })] });
    expect(o.kind).toBe('unallocated');
    if (o.kind === 'unallocated') expect(o.explanation.full).toContain(`unsupported attribute value for ${ATTR}`);
  });

  it.skip.each([['list-attributes-disabled-match-constraint-with-lists'], ['list-attributes-disabled-distinct-constraint-with-lists']])(
    '%s (skipped: runs with the DRAListTypeAttributes gate off, where the API server drops list values before any allocator sees them)',
    () => undefined,
  );

  it('lets selectors read a list: includes() and in', () => {
    const a = new Allocator({ slices: fleet([{ strings: ['pci0000:00', 'pci0000:10'] }, { strings: ['pci0000:40'] }]), classes: [CLASS] });
    const pick = (expression: string): string[] | string => {
      const o = a.allocate({ claims: [claim('c', [req('r', 'class', { selectors: [expression] })])] });
      return o.kind === 'allocated' ? o.devices.map((d) => d.device) : o.explanation.short;
    };
    expect(pick(`device.attributes["${DRIVER}"]["attribute-0"].includes("pci0000:40")`)).toEqual(['device-2']);
    expect(pick(`"pci0000:10" in device.attributes["${DRIVER}"]["attribute-0"]`)).toEqual(['device-1']);
    expect(pick(`device.attributes["${DRIVER}"]["attribute-0"].size() == 2`)).toEqual(['device-1']);
  });
});
