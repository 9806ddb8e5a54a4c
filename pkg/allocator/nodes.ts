// Node-side rules: core/v1 node selectors, taint/toleration matching for nodes and
// devices, and the node facts the allocator keeps (free cpu/memory as numbers).
import type { DeviceTaint, DeviceToleration, NodeSelector, NodeSelectorRequirement } from '../api/resource.js';
import { Quantity } from '../cel/quantity.js';
import type { NodeFacts, NodeTaint, PodToleration } from './types.js';

/** Node facts prepared for the hot path. */
export interface NodeRec {
  readonly idx: number;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly taints: readonly NodeTaint[];
  readonly unschedulable: boolean;
  /** Free cpu in millicores and memory in bytes; Infinity when unknown. */
  freeMilliCpu: number;
  freeMemory: number;
}

export function quantityToNumber(text: string | undefined, scale: 'milli' | 'unit'): number {
  if (text === undefined) return Infinity;
  const q = Quantity.parse(text);
  const nanos = q.nanos;
  // cpu is compared in millicores, memory in bytes; both fit a double comfortably.
  return scale === 'milli' ? Number(nanos / 1_000_000n) : Number(nanos / 1_000_000_000n);
}

export function makeNodeRec(idx: number, facts: NodeFacts): NodeRec {
  return {
    idx,
    name: facts.name,
    labels: facts.labels ?? {},
    taints: facts.taints ?? [],
    unschedulable: facts.unschedulable ?? false,
    freeMilliCpu: quantityToNumber(facts.free?.cpu, 'milli'),
    freeMemory: quantityToNumber(facts.free?.memory, 'unit'),
  };
}

function requirementMatches(req: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      if (value === undefined || values.length !== 1) return false;
      const have = Number.parseInt(value, 10);
      const want = Number.parseInt(values[0] ?? '', 10);
      if (Number.isNaN(have) || Number.isNaN(want)) return false;
      return req.operator === 'Gt' ? have > want : have < want;
    }
  }
}

/** core/v1 semantics: terms are ORed, requirements in a term ANDed, an empty term matches nothing. */
export function nodeSelectorMatches(selector: NodeSelector, node: { readonly name: string; readonly labels: Readonly<Record<string, string>> }): boolean {
  for (const term of selector.nodeSelectorTerms) {
    const exprs = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) continue;
    const ok = exprs.every((r) => requirementMatches(r, node.labels[r.key])) && fields.every((r) => requirementMatches(r, r.key === 'metadata.name' ? node.name : undefined));
    if (ok) return true;
  }
  return false;
}

interface TolerationLike {
  readonly key?: string;
  readonly operator?: 'Exists' | 'Equal';
  readonly value?: string;
  readonly effect?: string;
}

interface TaintLike {
  readonly key: string;
  readonly value?: string;
  readonly effect: string;
}

/** One toleration against one taint: the same rule for pods/nodes and requests/devices. */
export function tolerates(t: TolerationLike, taint: TaintLike): boolean {
  if (t.effect !== undefined && t.effect !== '' && t.effect !== taint.effect) return false;
  const key = t.key ?? '';
  if ((t.operator ?? 'Equal') === 'Exists') return key === '' || key === taint.key;
  return key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

/** Device taints with NoSchedule/NoExecute block allocation unless tolerated; None never does. */
export function deviceTaintBlocks(taints: readonly DeviceTaint[], tolerations: readonly DeviceToleration[]): DeviceTaint | undefined {
  for (const taint of taints) {
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue;
    if (!tolerations.some((t) => tolerates(t, taint))) return taint;
  }
  return undefined;
}

/** A node taint the pod does not tolerate (PreferNoSchedule only prefers, so it never blocks). */
export function nodeTaintBlocks(taints: readonly NodeTaint[], tolerations: readonly PodToleration[]): NodeTaint | undefined {
  for (const taint of taints) {
    if (taint.effect === 'PreferNoSchedule') continue;
    if (!tolerations.some((t) => tolerates(t, taint))) return taint;
  }
  return undefined;
}
