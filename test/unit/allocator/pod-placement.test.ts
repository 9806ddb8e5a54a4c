// A pod's own node constraints bind its claims: devices are only taken on
// nodes where the scheduler will accept the pod.
import { Allocator } from '../../../pkg/allocator/allocator.js';
import type { Snapshot } from '../../../pkg/allocator/types.js';
import { ANY, claim, dev, req, slice } from './helpers.js';

const snapshot: Snapshot = {
  slices: [slice('node-a', [dev('gpu-0')]), slice('node-b', [dev('gpu-0')])],
  classes: [ANY],
  nodes: [
    { name: 'node-a', labels: { zone: 'a' } },
    { name: 'node-b', labels: { zone: 'b', 'gpu-tier': 'premium' } },
  ],
};

const nodeOf = (pod: Parameters<Allocator['allocate']>[0]['pod']): string | undefined => {
  const out = new Allocator(snapshot).allocate({ claims: [claim('c', [req('gpu', 'any')])], pod });
  return out.kind === 'allocated' ? out.node : undefined;
};

describe("the pod's node constraints", () => {
  it("puts the claim only on a node matching the pod's nodeSelector", () => {
    expect(nodeOf({ nodeSelector: { zone: 'b' } })).toBe('node-b');
    expect(nodeOf({ nodeSelector: { zone: 'a' } })).toBe('node-a');
  });

  it("honours the pod's required node affinity", () => {
    expect(nodeOf({ requiredNodeAffinity: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'gpu-tier', operator: 'Exists' }] }] } })).toBe('node-b');
  });

  it('explains that no node matches the pod when none does', () => {
    const out = new Allocator(snapshot).allocate({ claims: [claim('c', [req('gpu', 'any')])], pod: { nodeSelector: { zone: 'c' } } });
    expect(out.kind).toBe('unallocated');
    if (out.kind === 'unallocated') expect(out.explanation.full).toMatch(/nodeSelector/);
  });
});
