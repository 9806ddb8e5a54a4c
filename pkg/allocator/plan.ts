// Claims turned into plans: each request with its firstAvailable alternatives
// resolved to match sets, and each constraint with the requests it covers.
import type { AllocationResult, DeviceRequest, DeviceToleration, ResourceClaim } from '../api/resource.js';
import { LIMITS } from '../api/resource.js';
import { Quantity } from '../cel/quantity.js';
import type { Matcher, MatchSet } from './match.js';

/** The namespace label that permits adminAccess requests. */
export const ADMIN_ACCESS_LABEL = 'resource.kubernetes.io/admin-access';

export interface AltPlan {
  readonly index: number;
  /** Subrequest name; undefined for an `exactly` request. */
  readonly subrequest: string | undefined;
  /** "req" or "req/sub": the name allocation results carry. */
  readonly resultName: string;
  readonly className: string;
  readonly set: MatchSet;
  readonly all: boolean;
  readonly count: number;
  readonly adminAccess: boolean;
  readonly tolerations: readonly DeviceToleration[];
  /** capacity.requests of the request (consumable capacity), and a key for caching demands. */
  readonly capacity: Readonly<Record<string, string>> | undefined;
  readonly capacityKey: string;
  /**
   * A selector error of this firstAvailable entry. Entries are tried in order,
   * so it fails the claim only when no earlier entry can be allocated.
   */
  readonly error?: string;
}

export interface RequestPlan {
  readonly claim: number;
  readonly name: string;
  readonly alternatives: readonly AltPlan[];
}

export interface ConstraintPlan {
  readonly kind: 'match' | 'distinct';
  readonly attribute: string;
  /** Named requests ("req" covers its subrequests, "req/sub" names one); undefined means all. */
  readonly requests: ReadonlySet<string> | undefined;
}

export interface ClaimPlan {
  readonly idx: number;
  readonly claim: ResourceClaim;
  readonly namespace: string;
  readonly name: string;
  readonly requests: readonly RequestPlan[];
  readonly constraints: readonly ConstraintPlan[];
  /** The allocation the claim already has; such a claim is kept, not redone. */
  readonly fixed: AllocationResult | undefined;
  readonly errors: readonly string[];
}

export function claimLabel(claim: ResourceClaim): string {
  return `${claim.metadata.namespace ?? 'default'}/${claim.metadata.name ?? claim.metadata.generateName ?? '(unnamed)'}`;
}

export function constraintApplies(c: ConstraintPlan, request: string, subrequest: string | undefined): boolean {
  if (c.requests === undefined) return true;
  if (c.requests.has(request)) return true;
  return subrequest !== undefined && c.requests.has(`${request}/${subrequest}`);
}

function planRequest(claimIdx: number, req: DeviceRequest, matcher: Matcher, adminAllowed: boolean, errors: string[]): RequestPlan {
  const alternatives: AltPlan[] = [];
  const where = `request ${req.name}`;
  if (req.exactly !== undefined && req.firstAvailable !== undefined) {
    errors.push(`${where}: sets both exactly and firstAvailable`);
  } else if (req.exactly !== undefined) {
    const e = req.exactly;
    const admin = e.adminAccess === true;
    if (admin && !adminAllowed) errors.push(`${where}: adminAccess needs the namespace label ${ADMIN_ACCESS_LABEL}: "true"`);
    const set = matcher.matchSet(e.deviceClassName, e.selectors);
    if (set.error !== undefined) errors.push(`${where}: ${set.error}`);
    const bad = countProblem(where, e.allocationMode, e.count) ?? capacityProblem(where, e.capacity?.requests);
    if (bad) errors.push(bad);
    alternatives.push({
      index: 0,
      subrequest: undefined,
      resultName: req.name,
      className: e.deviceClassName,
      set,
      all: e.allocationMode === 'All',
      count: e.allocationMode === 'All' ? 0 : (e.count ?? 1),
      adminAccess: admin,
      tolerations: e.tolerations ?? [],
      ...capacityOf(e.capacity?.requests),
    });
  } else if (req.firstAvailable !== undefined && req.firstAvailable.length > 0) {
    if (req.firstAvailable.length > LIMITS.subrequestsPerRequest) errors.push(`${where}: more than ${LIMITS.subrequestsPerRequest} firstAvailable entries`);
    for (const [i, sub] of req.firstAvailable.entries()) {
      const set = matcher.matchSet(sub.deviceClassName, sub.selectors);
      const bad = countProblem(`${where}/${sub.name}`, sub.allocationMode, sub.count) ?? capacityProblem(`${where}/${sub.name}`, sub.capacity?.requests);
      // An alternative that asks for more than one claim may hold is passed over, as upstream does; other mistakes fail the claim.
      const over = bad !== undefined && overLimit(sub.allocationMode, sub.count);
      if (bad && !over) errors.push(bad);
      const altError = over ? bad : set.error !== undefined ? `${where}/${sub.name}: ${set.error}` : undefined;
      alternatives.push({
        ...(altError !== undefined ? { error: altError } : {}),
        index: i,
        subrequest: sub.name,
        resultName: `${req.name}/${sub.name}`,
        className: sub.deviceClassName,
        set,
        all: sub.allocationMode === 'All',
        count: sub.allocationMode === 'All' ? 0 : (sub.count ?? 1),
        adminAccess: false,
        tolerations: sub.tolerations ?? [],
        ...capacityOf(sub.capacity?.requests),
      });
    }
  } else {
    errors.push(`${where}: needs exactly or firstAvailable`);
  }
  return { claim: claimIdx, name: req.name, alternatives };
}

/** capacity.requests values must be non-negative quantities. */
function capacityProblem(where: string, requests: Readonly<Record<string, string>> | undefined): string | undefined {
  for (const [name, text] of Object.entries(requests ?? {})) {
    const q = Quantity.tryParse(text);
    if (q === undefined) return `${where}: capacity request ${name}: ${JSON.stringify(text)} is not a quantity`;
    if (q.sign() < 0) return `${where}: capacity request ${name} must not be negative`;
  }
  return undefined;
}

function capacityOf(requests: Readonly<Record<string, string>> | undefined): { capacity: Readonly<Record<string, string>> | undefined; capacityKey: string } {
  if (requests === undefined || Object.keys(requests).length === 0) return { capacity: undefined, capacityKey: '' };
  const keys = Object.keys(requests).sort();
  return { capacity: requests, capacityKey: JSON.stringify(keys.map((k) => [k, requests[k]])) };
}

/** A well-formed ExactCount request for more devices than one claim may be allocated. */
function overLimit(mode: string | undefined, count: number | undefined): boolean {
  return (mode === undefined || mode === 'ExactCount') && Number.isInteger(count ?? 1) && (count ?? 1) > LIMITS.allocationResults;
}

/** The API's rules for one request's allocationMode and count, as errors a person can act on. */
function countProblem(where: string, mode: string | undefined, count: number | undefined): string | undefined {
  if (mode !== undefined && mode !== 'ExactCount' && mode !== 'All') return `${where}: allocationMode ${JSON.stringify(mode)} is not ExactCount or All`;
  if (mode === 'All') return count !== undefined ? `${where}: count must not be set with allocationMode All` : undefined;
  const n = count ?? 1;
  if (!Number.isInteger(n) || n < 1) return `${where}: count must be a positive integer, got ${String(count)}`;
  if (n > LIMITS.allocationResults) return `${where}: count ${n} is more than the ${LIMITS.allocationResults} devices one claim can be allocated (the API's limit); split it across claims`;
  return undefined;
}

/**
 * What makes a claim's spec impossible to allocate whatever the fleet holds
 * (counts, modes, empty constraints, the API's limits). Such a claim is
 * invalid, not waiting for devices: the controller says so once and does not retry.
 */
export function specProblems(spec: ResourceClaim['spec']): string[] {
  const out: string[] = [];
  const requests = spec.devices?.requests ?? [];
  if (requests.length > LIMITS.requestsPerClaim) out.push(`more than ${LIMITS.requestsPerClaim} requests`);
  for (const r of requests) {
    const where = `request ${r.name}`;
    if (r.exactly !== undefined && r.firstAvailable !== undefined) out.push(`${where}: sets both exactly and firstAvailable`);
    if (r.exactly === undefined && (r.firstAvailable ?? []).length === 0) out.push(`${where}: needs exactly or firstAvailable`);
    if (r.exactly) {
      const bad = countProblem(where, r.exactly.allocationMode, r.exactly.count) ?? capacityProblem(where, r.exactly.capacity?.requests);
      if (bad) out.push(bad);
    }
    if ((r.firstAvailable ?? []).length > LIMITS.subrequestsPerRequest) out.push(`${where}: more than ${LIMITS.subrequestsPerRequest} firstAvailable entries`);
    const subs = r.firstAvailable ?? [];
    for (const sub of subs) {
      const bad = countProblem(`${where}/${sub.name}`, sub.allocationMode, sub.count) ?? capacityProblem(`${where}/${sub.name}`, sub.capacity?.requests);
      // Over the limit is fatal only when every alternative is (the others may still be chosen).
      if (bad && !(overLimit(sub.allocationMode, sub.count) && !subs.every((x) => overLimit(x.allocationMode, x.count)))) out.push(bad);
    }
  }
  for (const c of spec.devices?.constraints ?? []) {
    if (c.matchAttribute === undefined && c.distinctAttribute === undefined) out.push('a constraint sets neither matchAttribute nor distinctAttribute');
  }
  return out;
}

export function planClaims(claims: readonly ResourceClaim[], matcher: Matcher, namespaceLabels: Readonly<Record<string, Readonly<Record<string, string>>>> | undefined): ClaimPlan[] {
  return claims.map((claim, idx) => {
    const errors: string[] = [];
    const namespace = claim.metadata.namespace ?? 'default';
    const fixed = claim.status?.allocation;
    const adminAllowed = namespaceLabels?.[namespace]?.[ADMIN_ACCESS_LABEL] === 'true';
    const spec = claim.spec.devices ?? {};
    const requests = fixed === undefined ? (spec.requests ?? []).map((r) => planRequest(idx, r, matcher, adminAllowed, errors)) : [];
    if ((spec.requests ?? []).length > LIMITS.requestsPerClaim) errors.push(`more than ${LIMITS.requestsPerClaim} requests`);
    const names = new Set((spec.requests ?? []).map((r) => r.name));
    const constraints: ConstraintPlan[] = [];
    for (const c of spec.constraints ?? []) {
      const listed = c.requests ?? [];
      for (const r of listed) if (!names.has(r.split('/')[0] ?? r)) errors.push(`constraint names unknown request ${r}`);
      const requestSet = listed.length > 0 ? new Set(listed) : undefined;
      if (c.matchAttribute === undefined && c.distinctAttribute === undefined) errors.push('a constraint sets neither matchAttribute nor distinctAttribute');
      if (c.matchAttribute !== undefined) constraints.push({ kind: 'match', attribute: c.matchAttribute, requests: requestSet });
      if (c.distinctAttribute !== undefined) constraints.push({ kind: 'distinct', attribute: c.distinctAttribute, requests: requestSet });
    }
    return { idx, claim, namespace, name: claim.metadata.name ?? '', requests, constraints, fixed, errors };
  });
}
