import { fleet, claimStream } from './tmp-benchlib.js';
import { Allocator } from './pkg/allocator/index.js';
import { cascadeClasses, nodeFacts, nodeSlices } from './pkg/allocator/fleet.js';
const nodes = fleet(100); const claims = claimStream(2000, 1);
for (const policy of ['cascade', 'first-fit'] as const) {
  const a = new Allocator({ slices: nodes.flatMap((n) => nodeSlices(n)), classes: cascadeClasses(), nodes: nodes.map(nodeFacts) }, { policy });
  let fails = 0;
  const kinds = new Map<string, number>();
  claims.forEach((c, i) => {
    const o = a.allocate({ claims: [c] });
    if (o.kind === 'allocated') { a.commit(o); const node = o.node ?? ''; const k = nodes.find(n => n.name === node)?.kind ?? '?'; const key = (c.spec.devices?.requests?.[0]?.name ?? '') + ':' + o.claims[0]?.alternatives[0]?.index + '->' + k; if (i < 589) kinds.set(key, (kinds.get(key) ?? 0) + 1); }
    else if (fails++ < 2) { const u = a.usage(); console.log(policy, i, (u.used/u.units).toFixed(3), JSON.stringify(c.spec.devices?.requests).slice(0, 200)); console.log('   ', o.explanation.short.slice(0, 600)); }
  });
  console.log([...kinds.entries()].sort());
}
