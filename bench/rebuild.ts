// Index rebuild benchmark: what the controller pays when a node's slices change
// (a plugin restarts, a GPU's health or MIG layout changes) or when only node
// objects change. Side by side, on the same fleet: the index built from scratch
// (the baseline, what every rebuild cost before PoolCache), and rebuilt with the
// pools of the build before (one pool changed; nothing changed).
// Usage: npm run bench:rebuild -- [--nodes 100,300,1000] [--rounds 3]
import { Allocator, PoolCache } from '../pkg/allocator/index.js';
import { cascadeDeviceClasses } from '../pkg/api/deviceclasses.js';
import type { ResourceSlice } from '../pkg/api/resource.js';
import { fleetNodeFacts, simulatedFleetSlices } from '../hack/fake-nvidia-smi/fleet.js';
import { fleet } from './fleet.js';

function flag(argv: readonly string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 ? (argv[i + 1] ?? fallback) : fallback;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function timed(f: () => void): number {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const sizes = flag(argv, '--nodes', '100,300,1000').split(',').map(Number);
  const rounds = Number(flag(argv, '--rounds', '3'));
  process.stdout.write(`index rebuild, ${rounds} rounds each (median); node ${process.version}\n`);
  const cols = ['nodes', 'devices', 'from scratch (ms)', 'one pool changed (ms)', 'nothing changed (ms)', 'speedup', 'pools parsed'];
  process.stdout.write(cols.map((c) => c.padStart(22)).join('') + '\n');
  for (const n of sizes) {
    const nodes = fleet(n);
    const facts = nodes.map((x) => fleetNodeFacts(x));
    // As the controller's informer hands them out: every slice with a uid and a resourceVersion.
    let slices: ResourceSlice[] = (await simulatedFleetSlices(nodes)).map((s) => ({ ...s, metadata: { ...s.metadata, uid: `uid-${s.metadata.name ?? ''}`, resourceVersion: '1' } }));
    const devices = slices.reduce((sum, s) => sum + (s.spec.devices?.length ?? 0), 0);
    const classes = cascadeDeviceClasses();
    const build = (cache?: PoolCache): Allocator => new Allocator({ slices, classes, nodes: facts }, { policy: 'cascade', ...(cache ? { poolCache: cache } : {}) });
    const scratch: number[] = [];
    const changed: number[] = [];
    const same: number[] = [];
    const cache = new PoolCache();
    build(cache);
    let parsed = 0;
    for (let r = 0; r < rounds; r++) {
      scratch.push(timed(() => build()));
      // One node's plugin republishes: a new object at a new resourceVersion.
      const at = (r * 7919) % slices.length;
      slices = slices.map((s, i) => (i === at ? { ...s, metadata: { ...s.metadata, resourceVersion: String(r + 2) } } : s));
      changed.push(timed(() => build(cache)));
      parsed = cache.last.parsed;
      same.push(timed(() => build(cache)));
    }
    const row = [
      String(n),
      String(devices),
      median(scratch).toFixed(0),
      median(changed).toFixed(0),
      median(same).toFixed(0),
      `${(median(scratch) / Math.max(1, median(changed))).toFixed(1)}x`,
      String(parsed),
    ];
    process.stdout.write(row.map((c) => c.padStart(22)).join('') + '\n');
  }
}

await main();
