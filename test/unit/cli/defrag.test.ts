// kubectl cascade defrag: the moves that make room for what waits, and only
// moves that land somewhere; nothing else is touched.
import { planDefrag, renderDefrag, type DefragInput } from '../../../pkg/cli/defrag.js';
import type { ResourceClaim } from '../../../pkg/api/resource.js';
import { podFacts } from '../../../pkg/controller/podfacts.js';
import type { Pod } from '../../../pkg/k8s/types.js';
import { deviceClasses, wholeGpuSlice } from '../../support/fleet.js';

const D = 'gpu.cascade.dev';

function claim(name: string, count: number, pool?: string, devices: string[] = [], reservedBy?: string): ResourceClaim {
  return {
    metadata: { name, namespace: 'ml', uid: `uid-${name}` },
    spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${D}`, count } }], constraints: [{ matchAttribute: `${D}/nvlinkDomain` }] } },
    ...(pool
      ? {
          status: {
            allocation: { devices: { results: devices.map((device) => ({ request: 'gpu', driver: D, pool, device })) } },
            ...(reservedBy ? { reservedFor: [{ resource: 'pods', name: reservedBy, uid: `uid-${reservedBy}` }] } : {}),
          },
        }
      : {}),
  };
}

function pod(name: string, claimName: string, node?: string, movable = false): Pod {
  return {
    metadata: { name, namespace: 'ml', uid: `uid-${name}`, ...(movable ? { annotations: { [`${D}/movable`]: 'true' } } : {}) },
    spec: { ...(node ? { nodeName: node } : {}), resourceClaims: [{ name: 'gpu', resourceClaimName: claimName }], containers: [{ name: 'c', image: 'x' }] },
  };
}

async function input(movable: boolean): Promise<DefragInput> {
  const slices = [await wholeGpuSlice(D, 'a', 'H100-80GB', 2), await wholeGpuSlice(D, 'b', 'H100-80GB', 2)];
  const claims = [claim('m1', 1, 'a', ['gpu-0'], 'mover'), claim('x', 1, 'b', ['gpu-0'], 'stays'), claim('pair', 2)];
  const pods = [pod('mover', 'm1', 'a', movable), pod('stays', 'x', 'b'), pod('trainer', 'pair')];
  return { slices, classes: deviceClasses(D), nodes: [{ name: 'a' }, { name: 'b' }], claims, pods, driver: D, podFacts, ours: () => true };
}

describe('kubectl cascade defrag', () => {
  it('moves the one movable pod so that the waiting 2-GPU job gets a whole node', async () => {
    const plan = planDefrag(await input(true));
    expect(plan.steps).toEqual([
      {
        serves: 'pod ml/trainer',
        pod: 'ml/trainer',
        node: 'a',
        devices: [expect.objectContaining({ pool: 'a', device: 'gpu-0' }), expect.objectContaining({ pool: 'a', device: 'gpu-1' })],
        moves: [{ pod: 'ml/mover', from: 'a', fromDevices: ['gpu-0'], to: 'b', toDevices: ['gpu-1'] }],
      },
    ]);
    expect(plan.unserved).toEqual([]);
    expect(plan.before).toEqual({ freeGpus: 2, freeNodes: 0, freeDomains: 0 });
    expect(plan.after).toEqual({ freeGpus: 0, freeNodes: 0, freeDomains: 0 });
    expect(renderDefrag(plan)).toMatch(/^1 move\(s\) make room for 1 waiting claim\(s\)\. Whole free GPUs 2 -> 0 after they are placed/);
    expect(renderDefrag(plan)).toContain('   move pod ml/mover: a [gpu-0] -> b [gpu-1]');
  });

  it('moves nobody who did not opt in, and says why the job stays waiting', async () => {
    const plan = planDefrag(await input(false));
    expect(plan.steps).toEqual([]);
    expect(plan.unserved).toEqual([{ claim: 'pod ml/trainer', why: 'no movable pod holds devices (annotate pods that may move)' }]);
    expect(renderDefrag(plan)).toContain('- pod ml/trainer: not served, no movable pod holds devices');
  });
});
