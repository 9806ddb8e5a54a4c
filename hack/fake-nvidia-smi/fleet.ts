// Fleets of simulated GPU nodes turned into ResourceSlices by the real code
// path: the simulator answers nvidia-smi in process, NvidiaSmiBackend parses it
// as it parses a real node, and pkg/inventory builds the slices the node plugin
// would publish. For benchmarks and tests that need thousands of nodes without
// thousands of processes. Nodes with the same configuration are discovered once.
import type { NodeFacts } from '../../pkg/allocator/index.js';
import type { ResourceSlice } from '../../pkg/api/resource.js';
import { DEFAULT_DRIVER_NAME } from '../../pkg/api/resource.js';
import { buildDesiredSlices, toResourceSlices, type InventoryOptions } from '../../pkg/inventory/index.js';
import type { Discovery } from '../../pkg/nvidia/backend.js';
import { findModel } from '../../pkg/nvidia/catalog.js';
import { NvidiaSmiBackend } from '../../pkg/nvidia/smi-backend.js';
import { simulate } from './cli.js';
import { type FakeConfig, resolveConfig } from './config.js';
import { initialState } from './state.js';

export interface SimulatedNode {
  readonly name: string;
  readonly config: FakeConfig;
  /** The node plugin's options on this node (default: the fleet's). */
  readonly inventory?: InventoryOptions;
}

/**
 * How a node's GPUs are set up:
 * - `dynamic`: MIG off, partitions published where the board switches without a
 *   reset (the node plugin's default);
 * - `mig`: MIG on, no instances yet;
 * - `whole`: MIG off and left off (`--dynamic-mig=false`), whole GPUs only.
 */
export type MigSetup = 'dynamic' | 'mig' | 'whole';

export interface FleetNodeOptions {
  readonly mig?: MigSetup;
  /** GPUs per NVLink domain; default all of the node's GPUs in one. */
  readonly gpusPerNvlinkDomain?: number;
  /** Publish shared GPUs (default true, as the node plugin does). */
  readonly sharing?: boolean;
}

/** A node of `gpus` GPUs of one catalog model, the first half on NUMA node 0. */
export function fleetNode(name: string, model: string, gpus: number, options: FleetNodeOptions = {}): SimulatedNode {
  const board = findModel(model);
  if (board === undefined) throw new Error(`fleetNode ${name}: ${model} is not a catalog model`);
  const mig = board.migProfiles.length > 0 ? (options.mig ?? 'dynamic') : 'whole';
  const perDomain = Math.max(1, options.gpusPerNvlinkDomain ?? gpus);
  const groups: number[][] = [];
  for (let start = 0; start < gpus; start += perDomain) groups.push(Array.from({ length: Math.min(perDomain, gpus - start) }, (_v, i) => start + i));
  const config: FakeConfig = {
    gpus: Array.from({ length: gpus }, (_v, i) => ({ model: board.key, numaNode: i < gpus / 2 ? 0 : 1, ...(mig === 'mig' ? { migMode: 'Enabled' as const } : {}) })),
    ...(gpus > 1 ? { nvlinkGroups: groups.filter((g) => g.length > 1) } : {}),
  };
  const inventory: InventoryOptions = { ...(mig === 'whole' ? { dynamicMig: false } : {}), ...(options.sharing === false ? { sharing: false } : {}) };
  return { name, config, ...(Object.keys(inventory).length > 0 ? { inventory } : {}) };
}

/** What the allocator knows of a simulated node: its labels and free CPU and memory. */
export function fleetNodeFacts(node: SimulatedNode, extra: { readonly cpu?: string; readonly memory?: string; readonly labels?: Readonly<Record<string, string>> } = {}): NodeFacts {
  const product = findModel(node.config.gpus[0]?.model ?? '')?.productName;
  return {
    name: node.name,
    labels: { 'kubernetes.io/hostname': node.name, ...(product ? { 'nvidia.com/gpu.product': product.replace(/ /g, '-') } : {}), ...(extra.labels ?? {}) },
    free: { cpu: extra.cpu ?? '96', memory: extra.memory ?? '1Ti' },
  };
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
    const inventory = { ...(options.inventory ?? {}), ...(n.inventory ?? {}) };
    out.push(...toResourceSlices(buildDesiredSlices({ nodeName: n.name, driverName: driver, discovery: d, options: inventory }), 1));
  }
  return out;
}
