// What the files porting the upstream allocator's test table share: upstream's
// two nodes, its "allocate on this node" as a pinned pod, and comparing results
// with patterns where several devices are equally right.
import type { AllocatedOutcome, AllocationOutcome, NodeFacts, PodFacts } from '../../../pkg/allocator/index.js';
import type { NodeSelector } from '../../../pkg/api/resource.js';

/** Upstream's fleet: two nodes in two regions of one planet. */
export const UPSTREAM_NODES: readonly NodeFacts[] = [
  { name: 'node-1', labels: { region: 'region-1', planet: 'earth' } },
  { name: 'node-2', labels: { region: 'region-2', planet: 'earth' } },
];

/** The node selector of a claim whose devices are local to `node`. */
export const pinnedTo = (node: string): NodeSelector => ({ nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] });

/** A pod that must run on `node`: upstream allocates for one given node. */
export const podOn = (node: string): PodFacts => ({ requiredNodeAffinity: pinnedTo(node) });

/**
 * Whether the result lines match the wanted ones, each used once: "*" matches
 * any run of characters and "[..]" one of a class. Exact lines are matched
 * first, so that a pattern does not take a result an exact line needs.
 */
export function matchLines(got: readonly string[], want: readonly string[]): boolean {
  if (got.length !== want.length) return false;
  const isPattern = (w: string): boolean => w.includes('*') || w.includes('[');
  const lines = [...want].sort((a, b) => Number(isPattern(a)) - Number(isPattern(b)));
  const taken = new Set<number>();
  return lines.every((w) => {
    const p = new RegExp(`^${w.replace(/[.+?^${}()|\\/]/g, '\\$&').replace(/\*/g, '.*')}$`);
    const g = got.findIndex((x, j) => !taken.has(j) && p.test(x));
    if (g < 0) return false;
    taken.add(g);
    return true;
  });
}

/**
 * The half every ported case shares. A case that wants nothing (`want: null`) must
 * fail, and its explanation must name what `mentions` lists and none of `notMentions`;
 * undefined then. A case that wants an allocation must get one, returned for the
 * file's own checks.
 */
export function expectOutcome(
  outcome: AllocationOutcome,
  c: { readonly want: unknown; readonly mentions?: readonly string[]; readonly notMentions?: readonly string[] },
): AllocatedOutcome | undefined {
  if (c.want === null) {
    expect(outcome.kind).toBe('unallocated');
    if (outcome.kind === 'unallocated') {
      for (const m of c.mentions ?? []) expect(outcome.explanation.full).toContain(m);
      for (const m of c.notMentions ?? []) expect(outcome.explanation.full).not.toContain(m);
    }
    return undefined;
  }
  if (outcome.kind !== 'allocated') throw new Error(`expected an allocation: ${outcome.explanation.full}`);
  return outcome;
}
