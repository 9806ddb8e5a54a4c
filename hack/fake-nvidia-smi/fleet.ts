// Fleets of simulated GPU nodes turned into ResourceSlices by the real code
// path: the simulator answers nvidia-smi in process, NvidiaSmiBackend parses it
// as it parses a real node, and pkg/inventory builds the slices the node plugin
// would publish. For benchmarks and tests that need thousands of nodes without
// thousands of processes. Nodes with the same configuration are discovered once.
import type { ResourceSlice } from '../../pkg/api/resource.js';
import { DEFAULT_DRIVER_NAME } from '../../pkg/api/resource.js';
import { buildDesiredSlices, toResourceSlices, type InventoryOptions } from '../../pkg/inventory/index.js';
import type { Discovery } from '../../pkg/nvidia/backend.js';
import { NvidiaSmiBackend } from '../../pkg/nvidia/smi-backend.js';
import { simulate } from './cli.js';
import { type FakeConfig, resolveConfig } from './config.js';
import { initialState } from './state.js';

export interface SimulatedNode {
  readonly name: string;
  readonly config: FakeConfig;
}

/** What the real node plugin would discover on a node with this configuration. */
export async function discoverInProcess(config: FakeConfig): Promise<Discovery> {
  const resolved = resolveConfig(config);
  const state = initialState(resolved);
  // No sysfs here: PCIe roots come from the topology the simulator prints.
  const backend = new NvidiaSmiBackend({ invoke: (args) => simulate(args, resolved, state), sysfsRoot: '/nonexistent-sysfs' });
  return await backend.discover();
}

/** The slices each node would publish (generation 1), in node order. */
export async function simulatedFleetSlices(nodes: readonly SimulatedNode[], options: { driver?: string; inventory?: InventoryOptions } = {}): Promise<ResourceSlice[]> {
  const driver = options.driver ?? DEFAULT_DRIVER_NAME;
  const discoveries = new Map<string, Discovery>();
  const out: ResourceSlice[] = [];
  for (const n of nodes) {
    const key = JSON.stringify(n.config);
    let d = discoveries.get(key);
    if (d === undefined) discoveries.set(key, (d = await discoverInProcess(n.config)));
    out.push(...toResourceSlices(buildDesiredSlices({ nodeName: n.name, driverName: driver, discovery: d, ...(options.inventory ? { options: options.inventory } : {}) }), 1));
  }
  return out;
}
