// Turns a placement into status.allocation as resource.k8s.io/v1 wants it:
// results in allocation order, class and claim config with their source, node selector.
import type { AllocationResult, DeviceAllocationConfiguration, DeviceRequestAllocationResult, NodeSelector, NodeSelectorRequirement } from '../api/resource.js';
import { randomUUID } from 'node:crypto';
import type { Inventory } from './inventory.js';
import type { Matcher } from './match.js';
import type { ClaimPlan } from './plan.js';
import type { Pick, SearchPlan } from './policy.js';

function sameRequirement(a: NodeSelectorRequirement, b: NodeSelectorRequirement): boolean {
  return a.key === b.key && a.operator === b.operator && JSON.stringify(a.values ?? []) === JSON.stringify(b.values ?? []);
}

/**
 * A node-local device pins the claim to its node (matchFields on metadata.name);
 * otherwise the single-term selectors of the devices' slices are merged; devices
 * available on all nodes need no selector at all.
 */
export function nodeSelectorFor(inv: Inventory, devices: readonly number[]): NodeSelector | undefined {
  const fields: NodeSelectorRequirement[] = [];
  const exprs: NodeSelectorRequirement[] = [];
  for (const d of devices) {
    const dev = inv.devices[d];
    if (dev === undefined) continue;
    if (dev.nodeName !== undefined) {
      return { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [dev.nodeName] }] }] };
    }
    const term = dev.nodeSelector?.nodeSelectorTerms[0];
    if (term === undefined) continue;
    for (const r of term.matchFields ?? []) if (!fields.some((x) => sameRequirement(x, r))) fields.push(r);
    for (const r of term.matchExpressions ?? []) if (!exprs.some((x) => sameRequirement(x, r))) exprs.push(r);
  }
  if (fields.length === 0 && exprs.length === 0) return undefined;
  const term: { matchFields?: NodeSelectorRequirement[]; matchExpressions?: NodeSelectorRequirement[] } = {};
  if (exprs.length > 0) term.matchExpressions = exprs;
  if (fields.length > 0) term.matchFields = fields;
  return { nodeSelectorTerms: [term] };
}

export function buildAllocation(inv: Inventory, matcher: Matcher, claim: ClaimPlan, plans: readonly SearchPlan[], picks: readonly Pick[], node?: string): AllocationResult {
  const results: DeviceRequestAllocationResult[] = [];
  const devices: number[] = [];
  for (const p of picks) {
    const plan = plans[p.plan];
    const dev = inv.devices[p.device];
    if (plan === undefined || dev === undefined || plan.claim !== claim.idx) continue;
    const r: DeviceRequestAllocationResult = { request: plan.alt.resultName, driver: dev.driver, pool: dev.pool, device: dev.name };
    if (plan.alt.adminAccess) r.adminAccess = true;
    if (plan.alt.tolerations.length > 0) r.tolerations = plan.alt.tolerations.map((t) => ({ ...t }));
    if (dev.allowMultiple) {
      // Every allocation of a shareable device is told apart by its own share ID.
      r.shareID = randomUUID();
      // Every capacity of the device, zeros included; none at all for a device without capacities.
      if (p.demand !== undefined && Object.keys(p.demand.quantities).length > 0) r.consumedCapacity = { ...p.demand.quantities };
    }
    // Binding conditions travel with the result, as the device had them when it was allocated.
    if ((dev.api.bindingConditions?.length ?? 0) > 0) r.bindingConditions = [...(dev.api.bindingConditions ?? [])];
    if ((dev.api.bindingFailureConditions?.length ?? 0) > 0) r.bindingFailureConditions = [...(dev.api.bindingFailureConditions ?? [])];
    results.push(r);
    devices.push(p.device);
  }

  const config: DeviceAllocationConfiguration[] = [];
  // Class config once per class, naming every request that used the class.
  const classEntries = new Map<string, DeviceAllocationConfiguration[]>();
  const mine = plans.filter((p) => p.claim === claim.idx);
  for (const plan of mine) {
    const existing = classEntries.get(plan.alt.className);
    if (existing !== undefined) {
      for (const c of existing) c.requests?.push(plan.alt.resultName);
      continue;
    }
    const added: DeviceAllocationConfiguration[] = [];
    for (const c of matcher.deviceClass(plan.alt.className)?.spec.config ?? []) {
      const entry: DeviceAllocationConfiguration = { source: 'FromClass', requests: [plan.alt.resultName] };
      if (c.opaque !== undefined) entry.opaque = c.opaque;
      config.push(entry);
      added.push(entry);
    }
    classEntries.set(plan.alt.className, added);
  }
  // Claim config that applies to a request, or to the subrequest that was chosen.
  for (const c of claim.claim.spec.devices?.config ?? []) {
    const listed = c.requests ?? [];
    const applies = listed.length === 0 || mine.some((p) => listed.includes(p.request) || (p.alt.subrequest !== undefined && listed.includes(p.alt.resultName)));
    if (!applies) continue;
    const entry: DeviceAllocationConfiguration = { source: 'FromClaim' };
    if (listed.length > 0) entry.requests = [...listed];
    if (c.opaque !== undefined) entry.opaque = c.opaque;
    config.push(entry);
  }

  const allocation: AllocationResult = { devices: { results } };
  if (config.length > 0 && allocation.devices !== undefined) allocation.devices.config = config;
  // A device that binds to its node pins the claim to the node it was allocated for,
  // even where the device itself is reachable from several nodes.
  const binds = node !== undefined && devices.some((d) => inv.devices[d]?.api.bindsToNode === true);
  const ns = binds ? { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In' as const, values: [node] }] }] } : nodeSelectorFor(inv, devices);
  if (ns !== undefined) allocation.nodeSelector = ns;
  return allocation;
}
