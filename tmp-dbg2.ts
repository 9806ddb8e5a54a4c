import { fleet, claimStream } from './tmp-benchlib.js';
import { Allocator } from './pkg/allocator/index.js';
import { cascadeClasses, nodeFacts, nodeSlices } from './pkg/allocator/fleet.js';
const nodes = fleet(100); const claims = claimStream(2000, 1);
for (const policy of ['cascade', 'first-fit'] as const) {
  const a = new Allocator({ slices: nodes.flatMap((n) => nodeSlices(n)), classes: cascadeClasses(), nodes: nodes.map(nodeFacts) }, { policy });
  let eight = 0;
  for (const [i, c] of claims.entries()) {
    const o = a.allocate({ claims: [c] });
    if (o.kind === 'allocated') { a.commit(o); if (c.spec.devices?.requests?.[0]?.exactly?.count === 8) eight++; }
    else {
      const st = a.state; const inv = a.inventory;
      const rows: string[] = [];
      inv.nodes.forEach((n, ni) => { const k = nodes[ni]!.kind; if (k === 'h100' || k === 'h100-mig') rows.push(`${k}:${(st.nodeUsed[ni]!).toFixed(1)}`); });
      console.log(policy, 'fail at', i, '8-gpu ok', eight, rows.join(' '));
      break;
    }
  }
}
