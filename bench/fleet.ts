// The allocator benchmarks' fleet (bench/allocator.ts, bench/rebuild.ts): four node kinds in turn.
import { fleetNode, type MigSetup, type SimulatedNode } from '../hack/fake-nvidia-smi/fleet.js';

// Node kinds in turn. Slices come from the real path (simulator, parser,
// pkg/inventory), shared GPUs included as the node plugin publishes them.
export const KINDS: readonly { label: string; model: string; mig: MigSetup; perDomain: number }[] = [
  { label: 'H100 whole', model: 'H100-80GB', mig: 'whole', perDomain: 8 },
  { label: 'A100 MIG on', model: 'A100-SXM4-80GB', mig: 'mig', perDomain: 4 },
  { label: 'H100 dynamic MIG', model: 'H100-80GB', mig: 'dynamic', perDomain: 8 },
  { label: 'H200 whole', model: 'H200-141GB', mig: 'whole', perDomain: 4 },
];

export function fleet(n: number): SimulatedNode[] {
  return Array.from({ length: n }, (_, i) => {
    const k = KINDS[i % KINDS.length] ?? KINDS[0]!;
    return fleetNode(`node-${String(i).padStart(4, '0')}`, k.model, 8, { mig: k.mig, gpusPerNvlinkDomain: k.perDomain });
  });
}
