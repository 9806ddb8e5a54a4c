// The controller's ledger: devices stay held while our allocation is being
// written, come free when the claim goes or we release it, and a pod's cpu
// leaves its node's figures exactly once.
import type { ResourceClaim, ResourceSlice } from '../../../pkg/api/resource.js';
import { Ledger, type FleetView } from '../../../pkg/controller/ledger.js';
import type { Node, Pod } from '../../../pkg/k8s/types.js';
import { deviceClasses, wholeGpuSlice } from '../../support/fleet.js';

const DRIVER = 'gpu.cascade.dev';
const GPU_CLASS = `gpu.${DRIVER}`;

function node(name: string, cpu: string): Node {
  return { metadata: { name, labels: { 'kubernetes.io/hostname': name } }, spec: {}, status: { allocatable: { cpu, memory: '64Gi', pods: '110' } } };
}

function claim(name: string, uid: string, devices: string[] = []): ResourceClaim {
  return {
    metadata: { name, namespace: 'ns', uid },
    spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: GPU_CLASS } }] } },
    ...(devices.length ? { status: { allocation: { devices: { results: devices.map((d) => ({ request: 'gpu', driver: DRIVER, pool: 'n1', device: d })) } } } } : {}),
  };
}

function pod(name: string, uid: string, cpu: string, nodeName?: string): Pod {
  return { metadata: { name, namespace: 'ns', uid }, spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'c', image: 'x', resources: { requests: { cpu } } }] } };
}

let fleetSlice: ResourceSlice;
beforeAll(async () => {
  fleetSlice = await wholeGpuSlice(DRIVER, 'n1', 'H100-80GB', 2);
});

function world(): { fleet: FleetView; claims: ResourceClaim[]; pods: Pod[] } {
  const w = { claims: [] as ResourceClaim[], pods: [] as Pod[], fleet: undefined as unknown as FleetView };
  w.fleet = {
    slices: () => [fleetSlice],
    classes: () => deviceClasses(DRIVER),
    nodes: () => [node('n1', '8')],
    namespaces: () => [],
    pods: () => w.pods,
    claims: () => w.claims,
    pod: (key) => w.pods.find((p) => `${p.metadata.namespace ?? ''}/${p.metadata.name ?? ''}` === key),
  };
  return w;
}

const one = (name: string, uid: string): { claims: ResourceClaim[] } => ({ claims: [claim(name, uid)] });

describe('the controller ledger', () => {
  it('holds the devices of an allocation being written, even while the claim shows none', () => {
    const w = world();
    const ledger = new Ledger(w.fleet, [DRIVER], 'first-fit');
    ledger.reset();
    const a = ledger.allocator();
    const first = a.allocate(one('a', 'uid-a'));
    if (first.kind !== 'allocated') throw new Error('first claim did not fit');
    ledger.commit(a, first, undefined, [['uid-a', first.devices.map((d) => ({ ...d }))]]);
    // The finalizer patch lands first: the claim arrives without an allocation.
    ledger.observeClaim('ns/a', claim('a', 'uid-a'));
    expect(ledger.isInFlight('uid-a')).toBe(true);
    // A rebuild counts the held device too.
    ledger.fleetChanged();
    const second = ledger.allocator().allocate(one('b', 'uid-b'));
    expect(second.kind === 'allocated' ? second.devices.map((d) => d.device) : []).toEqual(['gpu-1']);
  });

  it("frees a deleted claim's devices by its key, and a released one at once", () => {
    const w = world();
    w.claims = [claim('a', 'uid-a', ['gpu-0']), claim('b', 'uid-b', ['gpu-1'])];
    const ledger = new Ledger(w.fleet, [DRIVER], 'first-fit');
    ledger.reset();
    expect(ledger.allocator().allocate(one('c', 'uid-c')).kind).toBe('unallocated');
    ledger.observeClaim('ns/a', undefined);
    const c = ledger.allocator().allocate(one('c', 'uid-c'));
    expect(c.kind === 'allocated' ? c.devices.map((d) => d.device) : []).toEqual(['gpu-0']);
    ledger.released('uid-b');
    expect(ledger.allocator().allocate({ claims: [claim('d', 'uid-d'), claim('e', 'uid-e')] }).kind).toBe('allocated');
  });

  it("takes a bound pod's cpu off its node once, and gives it back when the pod goes", () => {
    const w = world();
    const ledger = new Ledger(w.fleet, [DRIVER], 'first-fit');
    ledger.reset();
    const a = ledger.allocator();
    const fits = (): string => a.allocate({ ...one('x', 'uid-x'), pod: { cpu: '6' } }).kind;
    expect(fits()).toBe('allocated');
    const bound = pod('p', 'uid-p', '6', 'n1');
    w.pods = [bound];
    ledger.observePod('ns/p', bound);
    ledger.observePod('ns/p', bound);
    expect(fits()).toBe('unallocated');
    ledger.observePod('ns/p', undefined);
    expect(fits()).toBe('allocated');
  });

  it('keeps devices held for a preemptor after their claim lets go, also across a rebuild, until the hold is released', () => {
    const w = world();
    w.claims = [claim('victim', 'uid-v', ['gpu-0']), claim('other', 'uid-o', ['gpu-1'])];
    const ledger = new Ledger(w.fleet, [DRIVER], 'first-fit');
    ledger.reset();
    ledger.allocator();
    ledger.holdDevices('preemption-hold/uid-p', [{ driver: DRIVER, pool: 'n1', device: 'gpu-0' }]);
    // The victim's claim is gone: its GPU is still not free for anyone else.
    ledger.observeClaim('ns/victim', undefined);
    expect(ledger.allocator().allocate(one('c', 'uid-c')).kind).toBe('unallocated');
    ledger.fleetChanged();
    expect(ledger.allocator().allocate(one('c', 'uid-c')).kind).toBe('unallocated');
    // The preemptor's turn: released, and the GPU is there to take.
    ledger.releaseHold('preemption-hold/uid-p');
    const got = ledger.allocator().allocate(one('p', 'uid-p'));
    expect(got.kind === 'allocated' ? got.devices.map((d) => d.device) : []).toEqual(['gpu-0']);
  });
});
