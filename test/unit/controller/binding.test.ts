// Reading binding conditions (KEP-5007) off a claim: which devices failed, what
// the pod waits for, and the per-claim memory of devices to avoid.
import { BindingFailures, bindingWait, describeFailure, failedBindings } from '../../../pkg/controller/binding.js';
import type { ResourceClaim } from '../../../pkg/api/resource.js';

const result = (device: string, extra: Record<string, unknown> = {}) => ({
  request: 'gpu',
  driver: 'fabric.example.com',
  pool: 'fabric',
  device,
  bindingConditions: ['attached'],
  bindingFailureConditions: ['attach-failed'],
  ...extra,
});

const claimWith = (results: ReturnType<typeof result>[], devices: NonNullable<ResourceClaim['status']>['devices']): ResourceClaim => ({
  metadata: { name: 'c', namespace: 'ns', uid: 'u1' },
  spec: {},
  status: { allocation: { devices: { results } }, devices },
});

const cond = (type: string, status: 'True' | 'False', reason = 'R', message = 'm') => ({ type, status, reason, message, lastTransitionTime: '2026-12-03T10:00:00Z' });

describe('binding conditions on a claim', () => {
  it('finds the device whose failure condition is True, and only that one', () => {
    const claim = claimWith(
      [result('a'), result('b'), result('c')],
      [
        { driver: 'fabric.example.com', pool: 'fabric', device: 'a', conditions: [cond('attach-failed', 'True', 'AttachFailed', 'port down')] },
        { driver: 'fabric.example.com', pool: 'fabric', device: 'b', conditions: [cond('attach-failed', 'False'), cond('attached', 'True')] },
        // A condition the device does not list as a failure does not count.
        { driver: 'fabric.example.com', pool: 'fabric', device: 'c', conditions: [cond('other', 'True')] },
      ],
    );
    expect(failedBindings(claim)).toEqual([{ ref: { driver: 'fabric.example.com', pool: 'fabric', device: 'a' }, condition: 'attach-failed', reason: 'AttachFailed', message: 'port down' }]);
  });

  it('matches a share of a device by its share ID', () => {
    const claim = claimWith([result('a', { shareID: 's1' })], [{ driver: 'fabric.example.com', pool: 'fabric', device: 'a', shareID: 's2', conditions: [cond('attach-failed', 'True')] }]);
    expect(failedBindings(claim)).toEqual([]);
  });

  it('says what the pod waits for, and nothing for devices without conditions', () => {
    expect(bindingWait({ devices: { results: [result('a')] } })).toBe("The kube-scheduler binds the pod only once these conditions are True in the claim's status: a (fabric.example.com: attached).");
    expect(bindingWait({ devices: { results: [{ request: 'r', driver: 'd', pool: 'p', device: 'x' }] } })).toBeUndefined();
  });

  it('describes a failure in plain words first', () => {
    const [f] = failedBindings(claimWith([result('a')], [{ driver: 'fabric.example.com', pool: 'fabric', device: 'a', conditions: [cond('attach-failed', 'True', 'AttachFailed', 'port down')] }]));
    if (f === undefined) throw new Error('no failure');
    expect(describeFailure(f, 'n1')).toBe(
      'Device fabric/a of fabric.example.com could not be made ready for node n1 (attach-failed, AttachFailed: port down). The kube-scheduler releases the allocation; Cascade allocates the claim again without that device.',
    );
  });

  it('remembers failed devices per claim, reports each once, and forgets a claim of the same name with a new UID', () => {
    const m = new BindingFailures(2);
    const f = (device: string) => ({ ref: { driver: 'd', pool: 'p', device }, condition: 'x', reason: '', message: '' });
    expect(m.add('ns/c', 'u1', [f('a')])).toHaveLength(1);
    expect(m.add('ns/c', 'u1', [f('a'), f('b')]).map((x) => x.ref.device)).toEqual(['b']);
    expect(m.avoid('ns/c', 'u1').map((r) => r.device)).toEqual(['a', 'b']);
    expect(m.avoid('ns/c', 'u2')).toEqual([]);
    m.add('ns/c', 'u2', [f('c')]);
    expect(m.avoid('ns/c', 'u2').map((r) => r.device)).toEqual(['c']);
    // Bounded: the oldest claim goes first.
    m.add('ns/d', 'u3', [f('a')]);
    m.add('ns/e', 'u4', [f('a')]);
    expect(m.size).toBe(2);
    expect(m.avoid('ns/c', 'u2')).toEqual([]);
    m.forget('ns/e');
    expect(m.avoid('ns/e', 'u4')).toEqual([]);
  });
});
