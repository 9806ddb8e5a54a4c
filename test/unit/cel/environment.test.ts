// Kubernetes' CEL environment for device selectors.
import { CEL_COST_LIMIT, compileSelector, makeCelDevice } from '../../../pkg/cel/index.js';

const D = 'gpu.cascade.dev';
const device = makeCelDevice(
  D,
  {
    type: { string: 'gpu' },
    index: { int: 3 },
    migCapable: { bool: true },
    driverVersion: { version: '580.105.8' },
    'resource.kubernetes.io/numaNode': { int: 1 },
  },
  { memory: { value: '80Gi' }, multiprocessors: { value: '132' } },
  false,
);

function run(expression: string): { ok: true; matches: boolean } | { ok: false; error: string } {
  const c = compileSelector(expression);
  if (!c.ok) return { ok: false, error: `compile: ${c.error}` };
  return c.selector.evaluate(device);
}

describe('device selector CEL environment', () => {
  it.each([
    [`device.driver == "${D}"`, true],
    [`device.attributes["${D}"].type == "gpu"`, true],
    [`device.attributes["${D}"].index == 3`, true],
    [`device.attributes["${D}"].index > 3`, false],
    [`device.attributes["${D}"].migCapable`, true],
    ['device.attributes["resource.kubernetes.io"].numaNode == 1', true],
    ['device.allowMultipleAllocations', false],
    [`device.capacity["${D}"].memory.compareTo(quantity("40Gi")) > 0`, true],
    [`device.capacity["${D}"].memory.isGreaterThan(quantity("80Gi"))`, false],
    [`device.capacity["${D}"].memory.isLessThan(quantity("81Gi"))`, true],
    [`device.capacity["${D}"].memory == quantity("81920Mi")`, true],
    [`device.capacity["${D}"].memory.asApproximateFloat() > 8.5e10`, true],
    [`device.capacity["${D}"].multiprocessors.asInteger() == 132`, true],
    [`device.capacity["${D}"].multiprocessors.isInteger()`, true],
    [`device.capacity["${D}"].memory.add(quantity("16Gi")) == quantity("96Gi")`, true],
    [`device.capacity["${D}"].multiprocessors.sub(32) == quantity("100")`, true],
    [`device.attributes["${D}"].driverVersion.isGreaterThan(semver("580.95.0"))`, true],
    [`device.attributes["${D}"].driverVersion.compareTo(semver("580.105.8")) == 0`, true],
    [`device.attributes["${D}"].driverVersion.major() == 580 && device.attributes["${D}"].driverVersion.minor() == 105 && device.attributes["${D}"].driverVersion.patch() == 8`, true],
    [`device.attributes["${D}"].driverVersion.isLessThan(semver("v581", true))`, true],
    ['isSemver("1.2.3") && !isSemver("1.2") && isSemver("1.2", true)', true],
    ['isQuantity("1Gi") && !isQuantity("1GB")', true],
    ['device.attributes["unknown.example.com"].size() == 0', true],
    ['device.capacity["unknown.example.com"].size() == 0', true],
    [`"type" in device.attributes["${D}"]`, true],
    [`has(device.attributes["${D}"].type)`, true],
    [`has(device.attributes["${D}"].nothing)`, false],
    [`device.attributes["${D}"].exists(k, k == "index")`, true],
  ])('%s evaluates to %s', (expression, want) => {
    expect(run(expression)).toEqual({ ok: true, matches: want });
  });

  it('reports a missing attribute as a runtime error', () => {
    const r = run(`device.attributes["${D}"].productName == "x"`);
    expect(r).toEqual({ ok: false, error: expect.stringContaining('No such key: productName') });
  });

  it('reports a bad quantity literal as a runtime error', () => {
    expect(run(`device.capacity["${D}"].memory == quantity("lots")`)).toEqual({ ok: false, error: expect.stringContaining('quantities must match') });
  });

  it('rejects unknown fields of device at compile time', () => {
    const c = compileSelector('device.vendor == "nvidia"');
    expect(c.ok).toBe(false);
  });

  it('rejects expressions that are not bool', () => {
    const c = compileSelector('device.driver');
    expect(c).toEqual({ ok: false, expression: 'device.driver', error: expect.stringContaining('bool') });
  });

  it('rejects syntax errors', () => {
    expect(compileSelector('device.driver ==').ok).toBe(false);
  });

  it('rejects expressions over 10 KiB', () => {
    const c = compileSelector(`device.driver == "${'a'.repeat(10 * 1024)}"`);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.error).toContain('limit is 10240');
  });

  it('rejects expressions whose worst-case cost exceeds the limit', () => {
    const list = `[${Array.from({ length: 120 }, (_, i) => i).join(',')}]`;
    const c = compileSelector(`${list}.all(a, ${list}.all(b, ${list}.all(c, a + b + c >= 0)))`);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.error).toContain(`limit of ${CEL_COST_LIMIT}`);
  });

  it('accepts nested comprehensions that stay under the cost limit', () => {
    const c = compileSelector(`device.attributes["${D}"].all(k, device.attributes["${D}"].exists(j, j == k))`);
    expect(c.ok).toBe(true);
    if (c.ok) expect(c.selector.evaluate(device)).toEqual({ ok: true, matches: true });
  });

  it('returns the cached compilation for the same expression', () => {
    const a = compileSelector('device.driver == "x"');
    const b = compileSelector('device.driver == "x"');
    expect(a).toBe(b);
  });

  it('treats unparseable version attributes as strings', () => {
    const d = makeCelDevice(D, { fw: { version: 'not-semver' } }, undefined, false);
    const c = compileSelector(`device.attributes["${D}"].fw == "not-semver"`);
    expect(c.ok && c.selector.evaluate(d)).toEqual({ ok: true, matches: true });
  });
});
