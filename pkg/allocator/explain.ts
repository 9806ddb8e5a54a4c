// Explanations: why a placement was chosen, and why nothing fits, as numbers per
// request and alternative plus a short (Event-sized) and a full (log) text.
import { demandFor } from './capacity.js';
import { UNREACHABLE, attributeKeyText, type Inventory } from './inventory.js';
import { deviceTaintBlocks } from './nodes.js';
import { claimLabel, constraintApplies, type AltPlan, type ClaimPlan, type RequestPlan } from './plan.js';
import { fmt, needsRebind, type Pick, type Score, type SearchPlan } from './policy.js';
import type { FailureNotes } from './search.js';
import type { State } from './state.js';
import type { AlternativeDiagnosis, Diagnosis, Explanation, RequestDiagnosis, UnallocatedOutcome } from './types.js';

/** Kubernetes caps Event messages at 1 KiB. */
export const SHORT_LIMIT = 1024;

/** Search failure notes per combination of alternatives tried. */
export type AttemptNotes = Map<string, { readonly alts: readonly AltPlan[]; readonly notes: FailureNotes }>;

/** Cuts text to a byte limit on a character boundary, marking the cut. */
export function truncateBytes(text: string, limit = SHORT_LIMIT): string {
  if (Buffer.byteLength(text, 'utf8') <= limit) return text;
  const marker = ' …';
  let out = text.slice(0, limit);
  while (Buffer.byteLength(out + marker, 'utf8') > limit) out = out.slice(0, -1);
  return out + marker;
}

function describeAlt(alt: AltPlan): string {
  const what = alt.all ? 'all' : String(alt.count);
  const name = alt.subrequest !== undefined ? `#${alt.index} ${alt.subrequest}: ` : '';
  return `${name}${what} of ${alt.className}${alt.adminAccess ? ' (admin access)' : ''}`;
}

function diagnoseAlt(inv: Inventory, state: State, alt: AltPlan, eligible: ReadonlySet<number>, attempts: AttemptNotes, matchAttributes: readonly string[]): AlternativeDiagnosis {
  const set = alt.set;
  let onIneligibleNodes = 0;
  let inUnusablePools = 0;
  const unusableWhy = new Map<string, number>();
  let inUse = 0;
  let countersExhausted = 0;
  let capacityShort = 0;
  let tainted = 0;
  const capacityWhy = new Map<string, number>();
  let available = 0;
  const perNode = new Map<number, number>();
  // Free devices per (attribute, node, value), to say how far a matchAttribute constraint is from fitting.
  const groups = matchAttributes.map(() => new Map<string, number>());
  for (const d of set.matched) {
    const dev = inv.devices[d];
    if (dev === undefined) continue;
    if (dev.unusable !== undefined) {
      // Its pool is incomplete or invalid, or the device itself is malformed: say which.
      inUnusablePools++;
      unusableWhy.set(dev.unusable, (unusableWhy.get(dev.unusable) ?? 0) + 1);
      continue;
    }
    if (dev.node === UNREACHABLE || (dev.node >= 0 && !eligible.has(dev.node))) {
      onIneligibleNodes++;
      continue;
    }
    if (!alt.adminAccess && state.busy(d)) {
      inUse++;
      continue;
    }
    if (!alt.adminAccess && !state.free(d)) {
      countersExhausted++;
      continue;
    }
    if (alt.capacity !== undefined || dev.allowMultiple) {
      const r = demandFor(dev.capacity, alt.capacity, alt.capacityKey);
      const why = !r.ok ? r.why : dev.allowMultiple && !alt.adminAccess && !state.capacityFits(d, r.demand.amounts) ? 'other shares leave too little capacity on the shared device' : undefined;
      if (why !== undefined) {
        capacityShort++;
        capacityWhy.set(why, (capacityWhy.get(why) ?? 0) + 1);
        continue;
      }
    }
    if (deviceTaintBlocks(dev.blockingTaints, alt.tolerations) !== undefined) {
      tainted++;
      continue;
    }
    available++;
    if (dev.node >= 0) perNode.set(dev.node, (perNode.get(dev.node) ?? 0) + 1);
    matchAttributes.forEach((attr, i) => {
      const v = dev.attributes.get(attr);
      if (v !== undefined) groups[i]?.set(`${dev.node}\u0000${v}`, (groups[i]?.get(`${dev.node}\u0000${v}`) ?? 0) + 1);
    });
  }
  let most: AlternativeDiagnosis['mostOnOneNode'];
  for (const [n, c] of perNode) if (most === undefined || c > most.available) most = { node: inv.nodes[n]?.name ?? String(n), available: c };
  const problems = new Map<string, number>();
  matchAttributes.forEach((attr, i) => {
    let best = 0;
    let where = '';
    for (const [k, c] of groups[i] ?? []) if (c > best) [best, where] = [c, k];
    const [node, value] = where.split('\u0000');
    const nodeName = inv.nodes[Number(node)]?.name ?? '';
    if (alt.all || best < alt.count) {
      problems.set(best === 0 ? `no free device has ${attr}` : `at most ${best} free devices share one ${attr} (${attributeKeyText(value ?? '')} on ${nodeName})`, 1);
    }
  });
  for (const [why, n] of capacityWhy) problems.set(`capacity: ${why}`, n);
  for (const [why, n] of unusableWhy) problems.set(why, n);
  for (const a of attempts.values()) {
    if (!a.alts.includes(alt)) continue;
    for (const [why, count] of a.notes) problems.set(why, (problems.get(why) ?? 0) + count);
  }
  return {
    index: alt.index,
    ...(alt.subrequest !== undefined ? { subrequest: alt.subrequest } : {}),
    deviceClassName: alt.className,
    needed: alt.all ? 'All' : alt.count,
    devices: inv.devices.length,
    excludedByClass: inv.devices.length - set.classMatched,
    excludedBySelectors: set.classMatched - set.matched.length,
    onIneligibleNodes,
    inUnusablePools,
    inUse,
    countersExhausted,
    capacityShort,
    tainted,
    available,
    mostOnOneNode: most,
    problems: [...problems.entries()].sort((a, b) => b[1] - a[1]).map(([why, n]) => (n > 1 ? `${why} (${n}x)` : why)),
  };
}

function altLine(a: AlternativeDiagnosis, alt: AltPlan, withProblems: number): string {
  const parts: string[] = [];
  const matching = a.devices - a.excludedByClass - a.excludedBySelectors;
  parts.push(`${a.devices} devices, ${a.excludedByClass} excluded by class, ${a.excludedBySelectors} by selectors, ${matching} match`);
  const tail: string[] = [];
  if (a.inUnusablePools > 0) tail.push(`${a.inUnusablePools} unusable (incomplete or invalid pool)`);
  if (a.onIneligibleNodes > 0) tail.push(`${a.onIneligibleNodes} on nodes not usable`);
  if (a.inUse > 0) tail.push(`${a.inUse} in use`);
  if (a.countersExhausted > 0) tail.push(`${a.countersExhausted} blocked by shared counters`);
  if (a.capacityShort > 0) tail.push(`${a.capacityShort} without the capacity asked for`);
  if (a.tainted > 0) tail.push(`${a.tainted} tainted`);
  tail.push(`${a.available} free`);
  parts.push(tail.join(', '));
  if (a.needed !== 'All' && matching > 0) {
    parts.push(a.mostOnOneNode === undefined ? `need ${a.needed} on one node` : `at most ${a.mostOnOneNode.available} free on one node (${a.mostOnOneNode.node}), need ${a.needed}`);
  }
  const problems = withProblems > 0 ? a.problems.slice(0, withProblems) : a.problems;
  if (problems.length > 0) parts.push(problems.join('; '));
  return `${describeAlt(alt)}: ${parts.join('; ')}`;
}

export interface DiagnoseArgs {
  readonly inv: Inventory;
  readonly state: State;
  readonly claims: readonly ClaimPlan[];
  readonly requests: readonly RequestPlan[];
  readonly errors: readonly string[];
  readonly nodes: { readonly eligible: readonly number[]; readonly rejected: ReadonlyMap<string, number> };
  readonly attempts: AttemptNotes;
  readonly budgetHit: boolean;
  readonly poolProblems: readonly string[];
}

/** The failure outcome; its texts and numbers are computed on first read. */
export function diagnose(args: DiagnoseArgs): UnallocatedOutcome {
  let diagnosis: Diagnosis | undefined;
  let explanation: Explanation | undefined;
  const build = (): Diagnosis => {
    const eligible = new Set(args.nodes.eligible);
    const requests: RequestDiagnosis[] = args.requests.map((r) => {
      const claim = args.claims[r.claim];
      return {
        claim: claim === undefined ? '' : claimLabel(claim.claim),
        request: r.name,
        alternatives: r.alternatives.map((a) => {
          const attrs = (claim?.constraints ?? []).filter((c) => c.kind === 'match' && constraintApplies(c, r.name, a.subrequest)).map((c) => c.attribute);
          return diagnoseAlt(args.inv, args.state, a, eligible, args.attempts, attrs);
        }),
      };
    });
    return {
      errors: args.errors,
      requests,
      nodes: { candidates: args.nodes.eligible.length, rejected: Object.fromEntries(args.nodes.rejected) },
    };
  };
  const text = (d: Diagnosis, full: boolean): string => {
    const lines: string[] = [];
    for (const e of d.errors) lines.push(e);
    if (d.errors.length === 0) {
      d.requests.forEach((r, i) => {
        const plan = args.requests[i];
        if (plan === undefined) return;
        const alts = r.alternatives.map((a, j) => {
          const alt = plan.alternatives[j];
          return alt === undefined ? '' : altLine(a, alt, full ? 0 : 1);
        });
        lines.push(`claim ${r.claim} request ${r.request}: ${alts.join(' | ')}`);
      });
      const rejected = Object.entries(d.nodes.rejected).map(([why, n]) => `${n} ${why}`);
      lines.push(`nodes: ${d.nodes.candidates} usable${rejected.length > 0 ? `; rejected: ${rejected.join(', ')}` : ''}`);
      if (args.budgetHit) lines.push('the search budget ran out before every node was tried');
    }
    if (full) for (const p of args.poolProblems) lines.push(p);
    return lines.join('\n');
  };
  return {
    kind: 'unallocated',
    get diagnosis(): Diagnosis {
      diagnosis ??= build();
      return diagnosis;
    },
    get explanation(): Explanation {
      if (explanation === undefined) {
        const d = this.diagnosis;
        explanation = { short: truncateBytes(`cannot allocate: ${text(d, false).split('\n').join('. ')}`), full: `cannot allocate:\n${text(d, true)}` };
      }
      return explanation;
    },
  };
}

export interface SuccessArgs {
  readonly inv: Inventory;
  readonly claims: readonly ClaimPlan[];
  readonly plans: readonly SearchPlan[];
  readonly picks: readonly Pick[];
  readonly node: number;
  readonly score: Score;
  readonly compared: number;
  readonly runnerUp: { readonly node: number; readonly total: number } | undefined;
  readonly policy: string;
  /** What the placement kept for others, in one plain sentence (see protectedSentence). */
  readonly protects?: string;
}

/** What the decision saw before its own picks: was each pick's GPU, and its node, already in use? */
export interface PriorUse {
  readonly gpuInUse: readonly boolean[];
  readonly nodeInUse: boolean;
}

/**
 * The first sentence of an Allocated event: what the placement kept for the
 * work this cluster runs ("... so whole GPUs stay free for the 1-GPU and
 * 8-GPU jobs this cluster runs"), or undefined when there is nothing to say.
 */
export function protectedSentence(inv: Inventory, picks: readonly Pick[], node: number, prior: PriorUse, wholeCounts: readonly number[], policy: string): string | undefined {
  const passthrough = passthroughSentence(inv, picks, node);
  if (passthrough !== undefined) return passthrough;
  if (policy !== 'cascade' || picks.length === 0) return undefined;
  const jobs =
    wholeCounts.length === 0
      ? 'whole-GPU jobs'
      : `${wholeCounts
          .slice(0, 3)
          .map((k) => `${k}-GPU`)
          .join(' and ')} jobs this cluster runs`;
  const nodeName = inv.nodes[node]?.name ?? '?';
  const first = picks[0];
  const dev = first === undefined ? undefined : inv.devices[first.device];
  if (dev === undefined) return undefined;
  const gpu = dev.name.replace(/-(shared|mig-.*)$/, '');
  if (dev.allowMultiple) {
    return prior.gpuInUse[0] === true
      ? `Shared ${gpu} on node ${nodeName}, which other shares already use, so whole GPUs stay free for the ${jobs}.`
      : `No GPU in use had room for this share, so it starts sharing ${gpu} on node ${nodeName}.`;
  }
  if (dev.consumes.length > 0 && dev.name.includes('-mig-') && prior.gpuInUse[0] === true) {
    return `Placed the partition on ${gpu} of node ${nodeName}, which is already split, so whole GPUs stay free for the ${jobs}.`;
  }
  if (prior.nodeInUse) return `Took ${picks.length === 1 ? gpu : `${picks.length} GPUs`} on node ${nodeName}, which is already in use, so free nodes stay whole for the ${jobs}.`;
  return undefined;
}

/**
 * For passthrough devices: whether a GPU changes driver ("rebinding gpu-5 to
 * vfio-pci: no GPU is bound for passthrough on a node that fits"), or the VM
 * gets one already bound.
 */
function passthroughSentence(inv: Inventory, picks: readonly Pick[], node: number): string | undefined {
  const nodeName = inv.nodes[node]?.name ?? '?';
  const vfio = picks.map((p) => inv.devices[p.device]).filter((d): d is NonNullable<typeof d> => d !== undefined && d.api.attributes?.[`${d.driver}/type`]?.string === 'vfio');
  if (vfio.length === 0) return undefined;
  const label = (d: (typeof vfio)[number]): string => {
    const set = d.consumes[0] === undefined ? undefined : inv.counterSets[d.consumes[0].set]?.name;
    const gpu = set?.replace(/-counters$/, '');
    const address = d.api.attributes?.['resource.kubernetes.io/pciBusID']?.string ?? d.name;
    return gpu !== undefined ? `${gpu} (${address})` : address;
  };
  const rebinding = vfio.filter((d) => needsRebind(inv, d.idx));
  if (rebinding.length === 0) return `Passed through ${vfio.map(label).join(', ')} on node ${nodeName}, already bound to vfio-pci, so no GPU changes driver.`;
  return `Rebinding ${rebinding.map(label).join(', ')} on node ${nodeName} to vfio-pci: no GPU bound for passthrough was free on a node that fits.`;
}

/** Why this node, why these devices. */
export function explainSuccess(a: SuccessArgs): Explanation {
  const nodeName = a.inv.nodes[a.node]?.name ?? '(none)';
  const head =
    `node ${nodeName} (policy ${a.policy}, score ${fmt(a.score.total)}` +
    (a.compared > 1 ? `, best of ${a.compared} feasible nodes` : '') +
    (a.runnerUp !== undefined ? `; next ${a.inv.nodes[a.runnerUp.node]?.name ?? '?'} at ${fmt(a.runnerUp.total)}` : '') +
    ')';
  const why = a.score.terms.filter((t) => t.value !== 0 || t.name !== 'topology').map((t) => `${t.name} ${fmt(t.value)}: ${t.reason}`);
  const perRequest: string[] = [];
  const detail: string[] = [];
  a.plans.forEach((plan, i) => {
    const picks = a.picks.filter((p) => p.plan === i);
    const claim = a.claims[plan.claim];
    const label = claim === undefined ? '' : claimLabel(claim.claim);
    const alt = plan.alt.subrequest !== undefined ? ` (alternative #${plan.alt.index} ${plan.alt.subrequest})` : '';
    const names = picks.map((p) => a.inv.devices[p.device]?.name ?? '?');
    perRequest.push(`${label} ${plan.request}${alt}: ${names.join(', ')}`);
    for (const p of picks) {
      const dev = a.inv.devices[p.device];
      detail.push(`  ${label} ${plan.alt.resultName} -> ${dev?.id ?? '?'}: fragmentation cost ${fmt(p.damage)}${p.damage === 0 ? ' (no other placement lost)' : ''}`);
    }
  });
  const lead = a.protects !== undefined ? `${a.protects} ` : '';
  const short = truncateBytes(`${lead}${head}: ${why.join('; ')}. Devices: ${perRequest.join('; ')}`);
  const full = [...(a.protects !== undefined ? [a.protects] : []), head, ...a.score.terms.map((t) => `  ${t.name} ${fmt(t.value)}: ${t.reason}`), 'devices:', ...detail].join('\n');
  return { short, full };
}
