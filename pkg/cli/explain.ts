// `kubectl cascade explain <claim>`: what was decided for a claim, and for a
// firstAvailable list, what each alternative would get on the fleet as it is
// now (the allocator re-run offline, with this claim's own devices counted free).
import type { DeviceClass, ResourceClaim, ResourceSlice } from '../api/resource.js';
import { Allocator } from '../allocator/allocator.js';
import { refOfResult } from '../allocator/snapshot.js';
import type { AllocatedDeviceRef, NodeFacts } from '../allocator/types.js';
import type { EventV1 } from '../k8s/types.js';

export interface ExplainInput {
  readonly claim: ResourceClaim;
  readonly claims: readonly ResourceClaim[];
  readonly slices: readonly ResourceSlice[];
  readonly classes: readonly DeviceClass[];
  readonly nodes: readonly NodeFacts[];
  readonly events: readonly EventV1[];
  readonly driver: string;
}

function otherAllocations(input: ExplainInput): AllocatedDeviceRef[] {
  const refs: AllocatedDeviceRef[] = [];
  for (const c of input.claims) {
    if (c.metadata.uid === input.claim.metadata.uid) continue;
    for (const r of c.status?.allocation?.devices?.results ?? []) refs.push(refOfResult(r));
  }
  return refs;
}

/** One line per alternative: would it fit now, where, or why not. */
export function alternativesNow(input: ExplainInput): string[] {
  const lines: string[] = [];
  const base = { slices: input.slices, classes: input.classes, nodes: input.nodes, allocated: otherAllocations(input) };
  for (const req of input.claim.spec.devices?.requests ?? []) {
    const alts = req.firstAvailable ?? [];
    if (alts.length === 0) continue;
    alts.forEach((alt, i) => {
      const only: ResourceClaim = {
        metadata: { ...input.claim.metadata, name: input.claim.metadata.name },
        spec: {
          devices: {
            ...input.claim.spec.devices,
            requests: (input.claim.spec.devices?.requests ?? []).map((r) => (r.name === req.name ? { name: r.name, firstAvailable: [alt] } : r)),
          },
        },
      };
      const out = new Allocator(base, { driver: input.driver }).allocate({ claims: [only], observeDemand: false });
      if (out.kind === 'allocated') {
        const devs = out.claims[0]?.allocation.devices?.results?.filter((r) => r.request.startsWith(`${req.name}/`)).map((r) => r.device) ?? [];
        lines.push(`  ${i + 1}. ${req.name}/${alt.name}: would fit now on ${out.node ?? '?'} (${devs.join(', ')})`);
      } else {
        lines.push(`  ${i + 1}. ${req.name}/${alt.name}: would not fit now: ${out.explanation.short.replace(/^cannot allocate:\s*/, '')}`);
      }
    });
  }
  return lines;
}

export function renderExplain(input: ExplainInput): string {
  const c = input.claim;
  const out: string[] = [`Claim ${c.metadata.namespace ?? ''}/${c.metadata.name ?? ''} (uid ${c.metadata.uid ?? ''})`];
  const alloc = c.status?.allocation;
  if (alloc) {
    const node = alloc.nodeSelector?.nodeSelectorTerms?.[0]?.matchFields?.find((f) => f.key === 'metadata.name')?.values?.[0];
    out.push(`Allocated on node ${node ?? '(any)'}:`);
    for (const r of alloc.devices?.results ?? []) out.push(`  ${r.request} -> ${r.pool}/${r.device}${r.adminAccess ? ' (admin access)' : ''}`);
    for (const req of c.spec.devices?.requests ?? []) {
      const won = (alloc.devices?.results ?? []).find((r) => r.request.startsWith(`${req.name}/`));
      if (!won || !req.firstAvailable) continue;
      const sub = won.request.split('/')[1];
      const idx = req.firstAvailable.findIndex((a) => a.name === sub);
      out.push(
        `Request ${req.name}: alternative ${idx + 1} of ${req.firstAvailable.length} (${sub ?? '?'}) won${
          idx > 0
            ? `; ${req.firstAvailable
                .slice(0, idx)
                .map((a) => a.name)
                .join(', ')} did not fit when it was allocated`
            : ' (first choice)'
        }.`,
      );
    }
  } else {
    out.push('Not allocated.');
  }
  const reserved = c.status?.reservedFor ?? [];
  if (reserved.length) out.push(`Reserved for: ${reserved.map((r) => `${r.resource}/${r.name}`).join(', ')}`);
  const alts = alternativesNow(input);
  if (alts.length) out.push('On the fleet as it is now:', ...alts);
  const evs = [...input.events].sort((a, b) => (a.eventTime ?? '').localeCompare(b.eventTime ?? ''));
  if (evs.length) {
    out.push('Decisions (Events):');
    for (const e of evs) out.push(`  ${e.eventTime?.slice(0, 19) ?? ''} ${e.type} ${e.reason}: ${e.note ?? ''}`);
  }
  return out.join('\n');
}
