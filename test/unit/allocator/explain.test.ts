// Failure explanations: the numbers per request and alternative, and the size limit.
import { Allocator } from '../../../pkg/allocator/index.js';
import { ANY, DRIVER, claim, cls, dev, firstAvailable, req, slice, sub } from './helpers.js';

describe('explanations when nothing fits', () => {
  const slices = [
    slice('n1', [], { count: 2, counters: [{ name: 's', counters: { x: '2' } }] }),
    slice(
      'n1',
      [
        dev('a0', { model: 'a' }),
        dev('a1', { model: 'a' }, { taints: [{ key: 'bad', effect: 'NoSchedule' }] }),
        dev('a2', { model: 'a' }, { consumes: [{ set: 's', counters: { x: '2' } }] }),
        dev('a3', { model: 'a' }, { consumes: [{ set: 's', counters: { x: '1' } }] }),
        dev('b0', { model: 'b' }),
        dev('c0', { kind: 'other' }),
      ],
      { count: 2 },
    ),
  ];
  const classes = [ANY, cls('models', `has(device.attributes["${DRIVER}"].model)`)];

  it('counts devices, class and selector exclusions, in-use, counter and taint blocks', () => {
    const a = new Allocator({
      slices,
      classes,
      allocated: [
        { driver: DRIVER, pool: 'n1', device: 'a0' },
        { driver: DRIVER, pool: 'n1', device: 'a3' },
      ],
    });
    const o = a.allocate({ claims: [claim('c', [req('r', 'models', { count: 2, selectors: [`device.attributes["${DRIVER}"].model == "a"`] })])] });
    expect(o.kind).toBe('unallocated');
    if (o.kind !== 'unallocated') return;
    const alt = o.diagnosis.requests[0]?.alternatives[0];
    expect(alt).toMatchObject({ devices: 6, excludedByClass: 1, excludedBySelectors: 1, inUse: 2, countersExhausted: 1, tainted: 1, available: 0, needed: 2 });
    expect(o.explanation.short).toContain('6 devices, 1 excluded by class, 1 by selectors, 4 match');
    expect(o.explanation.short).toContain('2 in use, 1 blocked by shared counters, 1 tainted, 0 free');
  });

  it('says a device is unusable because its pool is incomplete or inconsistent, not that its node is', () => {
    // Pool n2 says 2 slices but only one arrived; pool n3 has 2 slices that say 1.
    const pools = [slice('n2', [dev('x0')], { count: 2 }), slice('n3', [dev('y0')], { count: 1 }), slice('n3', [dev('y1')], { count: 1 })];
    const a = new Allocator({ slices: pools, classes: [ANY] });
    const o = a.allocate({ claims: [claim('c', [req('r', 'any')])] });
    expect(o.kind).toBe('unallocated');
    if (o.kind !== 'unallocated') return;
    expect(o.diagnosis.requests[0]?.alternatives[0]).toMatchObject({ inUnusablePools: 3, onIneligibleNodes: 0 });
    expect(o.explanation.full).toContain('3 unusable (incomplete or invalid pool)');
    expect(o.explanation.full).not.toContain('on nodes not usable');
    expect(o.explanation.full).toContain(`pool ${DRIVER}/n2 is incomplete`);
    expect(a.inventory.poolProblems).toContain(`pool ${DRIVER}/n3 is inconsistent: 2 slices of generation 1, where their resourceSliceCount says 1`);
  });

  it('explains every firstAvailable alternative', () => {
    const a = new Allocator({ slices, classes });
    const o = a.allocate({
      claims: [claim('c', [firstAvailable('r', sub('three-b', 'models', { count: 3, selectors: [`device.attributes["${DRIVER}"].model == "b"`] }), sub('nothing', 'any', { selectors: ['false'] }))])],
    });
    expect(o.kind).toBe('unallocated');
    if (o.kind !== 'unallocated') return;
    expect(o.diagnosis.requests[0]?.alternatives.map((x) => [x.subrequest, x.available])).toEqual([
      ['three-b', 1],
      ['nothing', 0],
    ]);
    expect(o.explanation.short).toMatch(/#0 three-b: 3 of models: .*need 3 \| #1 nothing: 1 of any/);
  });

  it('names the nodes rejected for cpu and memory', () => {
    const a = new Allocator({
      slices: [slice('n1', [dev('a')]), slice('n2', [dev('a')])],
      classes: [ANY],
      nodes: [
        { name: 'n1', free: { cpu: '1' } },
        { name: 'n2', free: { memory: '1Gi' } },
      ],
    });
    const o = a.allocate({ claims: [claim('c', [req('r', 'any')])], pod: { cpu: '2', memory: '2Gi' } });
    expect(o.kind).toBe('unallocated');
    if (o.kind !== 'unallocated') return;
    expect(o.diagnosis.nodes).toEqual({ candidates: 0, rejected: { 'not enough cpu for the pod (needs 2)': 1, 'not enough memory for the pod (needs 2Gi)': 1 } });
    expect(o.explanation.short).toContain('1 not enough cpu');
  });

  it('stays within 1 KiB for a big claim while the full text keeps every request', () => {
    const requests = Array.from({ length: 32 }, (_, i) => firstAvailable(`request-${i}`, ...Array.from({ length: 8 }, (_, j) => sub(`alternative-${j}`, 'any', { count: 30 }))));
    const a = new Allocator({ slices, classes });
    const o = a.allocate({ claims: [claim('huge', requests)] });
    expect(o.kind).toBe('unallocated');
    if (o.kind !== 'unallocated') return;
    expect(Buffer.byteLength(o.explanation.short)).toBeLessThanOrEqual(1024);
    expect(o.explanation.short.endsWith('…')).toBe(true);
    for (let i = 0; i < 32; i++) expect(o.explanation.full).toContain(`request request-${i}:`);
  });

  it('says which constraint failed on nodes that had enough devices', () => {
    const a = new Allocator({ slices: [slice('n1', [dev('a', { d: 'x' }), dev('b', { d: 'y' }), dev('c', { d: 'z' })])], classes: [ANY] });
    const o = a.allocate({ claims: [claim('c', [req('r', 'any', { count: 2 })], { constraints: [{ matchAttribute: `${DRIVER}/d` }] })] });
    expect(o.kind).toBe('unallocated');
    if (o.kind === 'unallocated') {
      expect(o.explanation.full).toContain(`matchAttribute ${DRIVER}/d cannot be satisfied`);
      expect(o.explanation.full).toContain(`at most 1 free devices share one ${DRIVER}/d`);
    }
  });

  it('reports CEL runtime errors with the expression and the device', () => {
    const a = new Allocator({ slices: [slice('n1', [dev('a')])], classes: [ANY] });
    const o = a.allocate({ claims: [claim('c', [req('r', 'any', { selectors: [`device.attributes["${DRIVER}"].model == "a"`] })])] });
    expect(o.kind).toBe('unallocated');
    if (o.kind === 'unallocated') {
      expect(o.diagnosis.errors[0]).toBe(
        `claim default/c: request r: selector #0 ${JSON.stringify(`device.attributes["${DRIVER}"].model == "a"`)} failed on device ${DRIVER}/n1/a: No such key: model`,
      );
    }
  });
});
