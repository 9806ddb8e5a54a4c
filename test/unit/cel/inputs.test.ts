// Which device fields a selector reads: with a fixed set, devices that agree on
// them share one evaluation; anything else must evaluate every device.
import { compileSelector, makeCelDevice } from '../../../pkg/cel/environment.js';
import { inputKey, selectorInputs } from '../../../pkg/cel/inputs.js';

const inputsOf = (expression: string): unknown => {
  const c = compileSelector(expression);
  if (!c.ok) throw new Error(c.error);
  return c.selector.inputs;
};

describe('selector inputs', () => {
  it('names the attributes, capacities and fields a selector reads by literal name', () => {
    expect(inputsOf('device.attributes["gpu.cascade.dev"].profile == "1g.10gb"')).toEqual([{ kind: 'attribute', domain: 'gpu.cascade.dev', name: 'profile' }]);
    expect(inputsOf('device.driver == "d" && device.attributes["x"]["productName"].contains("H200")')).toEqual([{ kind: 'driver' }, { kind: 'attribute', domain: 'x', name: 'productName' }]);
    expect(inputsOf('has(device.attributes["x"].y) || device.allowMultipleAllocations')).toEqual([{ kind: 'attribute', domain: 'x', name: 'y' }, { kind: 'allowMultipleAllocations' }]);
    expect(inputsOf('device.capacity["x"].memory.compareTo(quantity("10Gi")) >= 0')).toEqual([{ kind: 'capacity', domain: 'x', name: 'memory' }]);
    expect(inputsOf('["a", "b"].exists(v, device.attributes["x"].m == v)')).toEqual([{ kind: 'attribute', domain: 'x', name: 'm' }]);
  });

  it('gives up where a selector may read more of the device', () => {
    expect(inputsOf('device.attributes["x"].exists(k, k == "m")')).toBeUndefined();
    expect(inputsOf('device.attributes["x"].size() > 2')).toBeUndefined();
    expect(inputsOf('["m"].exists(n, device.attributes["x"][n] == "1")')).toBeUndefined();
    expect(inputsOf('[1].exists(device, device == 1)')).toBeUndefined();
    expect(selectorInputs({ op: 'id', args: 'device' } as never)).toBeUndefined();
  });

  it('tells devices apart by exactly those values, absence included', () => {
    const inputs = [{ kind: 'attribute', domain: 'x', name: 'm' }] as const;
    const dev = (attrs: Record<string, { string?: string; int?: number }>) => makeCelDevice('x', attrs, undefined, false);
    expect(inputKey(inputs, dev({ m: { string: 'a' }, other: { string: '1' } }))).toBe(inputKey(inputs, dev({ m: { string: 'a' }, other: { string: '2' } })));
    expect(inputKey(inputs, dev({ m: { string: 'a' } }))).not.toBe(inputKey(inputs, dev({ m: { string: 'b' } })));
    expect(inputKey(inputs, dev({ m: { string: '1' } }))).not.toBe(inputKey(inputs, dev({ m: { int: 1 } })));
    expect(inputKey(inputs, dev({}))).not.toBe(inputKey(inputs, dev({ m: { string: '' } })));
  });
});
