// The controller's pure parts: which claims are ours, what a pod asks for,
// what each node has free, and the work queue's retry behaviour.
import { claimOwnership, classIsOurs } from '../../../pkg/controller/ownership.js';
import { nodeFacts, podFacts, podRequest } from '../../../pkg/controller/podfacts.js';
import { podClaimNames } from '../../../pkg/controller/controller.js';
import { WorkQueue } from '../../../pkg/controller/queue.js';
import type { DeviceClass, ResourceClaimSpec } from '../../../pkg/api/resource.js';
import type { Node, Pod } from '../../../pkg/k8s/types.js';

const D = 'gpu.cascade.dev';
const cls = (name: string, expr: string): DeviceClass => ({ metadata: { name }, spec: { selectors: [{ cel: { expression: expr } }] } });
const classes = new Map<string, DeviceClass>([
  ['gpu', cls('gpu', `device.driver == "${D}" && device.attributes["${D}"].type == "gpu"`)],
  ['mig', cls('mig', `device.driver=='${D}'`)],
  ['nic', cls('nic', 'device.driver == "nic.example.com"')],
  ['lookalike', cls('lookalike', `device.driver == "${D}.evil"`)],
  ['negated', cls('negated', `!(device.driver == "${D}")`)],
  ['either', cls('either', `device.driver == "${D}" || device.driver == "nic.example.com"`)],
  ['reversed', cls('reversed', `"${D}" == device.driver && device.attributes["${D}"].type == "mig"`)],
  ['broken', cls('broken', `device.driver == "${D}" &&`)],
]);
const exactly = (c: string): ResourceClaimSpec => ({ devices: { requests: [{ name: 'r', exactly: { deviceClassName: c } }] } });

describe('claim ownership', () => {
  it.each([
    ['a class comparing device.driver with our name is ours', 'gpu', true],
    ['single quotes and no spaces still count', 'mig', true],
    ["another driver's class is not ours", 'nic', false],
    ['a driver name that merely starts with ours is not ours', 'lookalike', false],
    ['a class that excludes our driver is not ours', 'negated', false],
    ['a class that also selects another driver is not ours', 'either', false],
    ['the literal on the left and more terms after && still count', 'reversed', true],
    ['a selector that does not parse is not ours', 'broken', false],
  ])('%s', (_n, name, want) => {
    expect(classIsOurs(classes.get(name)!, D)).toBe(want);
  });

  it('takes a claim whose every request and alternative uses our classes', () => {
    const spec: ResourceClaimSpec = {
      devices: {
        requests: [
          {
            name: 'a',
            firstAvailable: [
              { name: 'x', deviceClassName: 'gpu' },
              { name: 'y', deviceClassName: 'mig' },
            ],
          },
        ],
      },
    };
    expect(claimOwnership(spec, classes, D)).toEqual({ ours: true });
  });

  const gpuAndNic: ResourceClaimSpec = {
    devices: {
      requests: [
        { name: 'a', exactly: { deviceClassName: 'gpu' } },
        { name: 'b', exactly: { deviceClassName: 'nic' } },
      ],
    },
  };

  it('refuses a claim that mixes our classes with a driver the scheduler allocates, and says why', () => {
    const own = claimOwnership(gpuAndNic, classes, D);
    expect(own.ours).toBe(false);
    if (own.ours) return;
    expect(own.mixed).toEqual({ ours: ['gpu'], others: ['nic'] });
    expect(own.why).toBe('it mixes device classes Cascade allocates (gpu) with classes of drivers the kube-scheduler allocates (nic), and two allocators over one claim would race for its devices');
  });

  it("takes the same claim when the NIC driver is co-allocated, and another driver's claim of its own too", () => {
    const drivers = [D, 'nic.example.com'];
    expect(claimOwnership(gpuAndNic, classes, drivers)).toEqual({ ours: true });
    expect(claimOwnership(exactly('nic'), classes, drivers)).toEqual({ ours: true });
    // Without co-allocation a NIC-only claim is simply not ours (no refusal: nothing of ours in it).
    expect(claimOwnership(exactly('nic'), classes, D)).toEqual({ ours: false, why: `device class nic does not select driver ${D}` });
    // Only a top-level == term counts: a class that selects one driver or the other by || is not recognised.
    expect(classIsOurs(classes.get('either')!, drivers)).toBe(false);
    expect(claimOwnership(exactly('lookalike'), classes, drivers)).toEqual({ ours: false, why: `device class lookalike does not select any driver Cascade allocates (${D}, nic.example.com)` });
  });

  it('leaves a claim naming a class that does not exist', () => {
    expect(claimOwnership(exactly('nope'), classes, D)).toEqual({ ours: false, why: 'device class nope does not exist' });
  });
});

const pod = (containers: Record<string, string>[], init: Record<string, string>[] = [], nodeName?: string, phase?: string): Pod => ({
  metadata: { name: 'p', namespace: 'ns' },
  spec: {
    nodeName,
    containers: containers.map((r, i) => ({ name: `c${i}`, image: 'x', resources: { requests: r } })),
    initContainers: init.map((r, i) => ({ name: `i${i}`, image: 'x', resources: { requests: r } })),
  },
  status: { phase },
});

describe('pod and node facts', () => {
  it('adds up container requests and takes the larger of that and the biggest init container', () => {
    const p = pod(
      [
        { cpu: '500m', memory: '1Gi' },
        { cpu: '1', memory: '512Mi' },
      ],
      [{ cpu: '2', memory: '100Mi' }],
    );
    expect(podRequest(p, 'cpu')).toBe(2000);
    expect(podRequest(p, 'memory')).toBe(1536 * 1024 * 1024);
    expect(podFacts(p)).toMatchObject({ cpu: '2000m', memory: String(1536 * 1024 * 1024) });
  });

  it('subtracts what running pods on a node request, and ignores finished pods', () => {
    const node: Node = { metadata: { name: 'n1', labels: { zone: 'a' } }, status: { allocatable: { cpu: '8', memory: '16Gi', pods: '110' } } };
    const facts = nodeFacts([node], [pod([{ cpu: '3', memory: '4Gi' }], [], 'n1'), pod([{ cpu: '4' }], [], 'n1', 'Succeeded'), pod([{ cpu: '1' }], [], 'other')]);
    expect(facts).toEqual([{ name: 'n1', labels: { zone: 'a' }, taints: [], unschedulable: false, free: { cpu: '5000m', memory: String(12 * 1024 ** 3) } }]);
  });

  it('finds generated claim names in the pod status and waits while one is unknown', () => {
    const p: Pod = {
      metadata: { name: 'p' },
      spec: {
        containers: [],
        resourceClaims: [
          { name: 'a', resourceClaimName: 'team-claim' },
          { name: 'b', resourceClaimTemplateName: 't' },
        ],
      },
      status: { resourceClaimStatuses: [] },
    };
    expect(podClaimNames(p)).toEqual(['team-claim', undefined]);
    p.status = { resourceClaimStatuses: [{ name: 'b', resourceClaimName: 'p-b-xyz' }] };
    expect(podClaimNames(p)).toEqual(['team-claim', 'p-b-xyz']);
  });
});

describe('WorkQueue', () => {
  it('lets timers and I/O run between keys whose syncs never wait for I/O, so a backlog cannot starve the Lease renewal', async () => {
    let processed = 0;
    let processedWhenTimerFired = -1;
    const q = new WorkQueue(
      async () => {
        processed++;
      },
      { workers: 4 },
    );
    for (let i = 0; i < 5000; i++) q.add(`claim-${i}`);
    // A timer set before the queue starts must fire long before 5,000 keys are done.
    setTimeout(() => (processedWhenTimerFired = processed), 0);
    q.start();
    await q.idle();
    await q.stop();
    expect(processed).toBe(5000);
    expect(processedWhenTimerFired).toBeGreaterThanOrEqual(0);
    expect(processedWhenTimerFired).toBeLessThan(5000);
  });

  it('runs a key once even when added many times while waiting, and again if added while running', async () => {
    const runs: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue(
      async (k) => {
        runs.push(k);
        if (runs.length === 1) await gate;
      },
      { workers: 2 },
    );
    q.start();
    q.add('a');
    await new Promise((r) => setTimeout(r, 5));
    q.add('a'); // while running: once more afterwards
    q.add('a');
    release();
    await q.idle();
    await q.stop();
    expect(runs).toEqual(['a', 'a']);
  });

  it('retries a failing key until it succeeds', async () => {
    let calls = 0;
    const times: number[] = [];
    const q = new WorkQueue(
      async () => {
        times.push(Date.now());
        if (++calls < 3) throw new Error('transient');
      },
      { workers: 1, baseDelayMs: 20 },
    );
    q.start();
    q.add('k');
    const deadline = Date.now() + 5_000;
    while (calls < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await q.stop();
    expect(calls).toBe(3);
    expect(times).toHaveLength(3);
  });
});
