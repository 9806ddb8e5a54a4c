// Test doubles for the node plugin's preparer: an in-memory GPU backend with
// scripted failures, an in-memory claim source, and allocated claims.
import type { ResourceClaim } from '../../../pkg/api/resource.js';
import { buildDesiredSlices } from '../../../pkg/inventory/index.js';
import { KubeApiError } from '../../../pkg/k8s/client.js';
import type { ClaimSource } from '../../../pkg/nodeplugin/claims.js';
import { type InventorySnapshot, inventorySnapshot } from '../../../pkg/nodeplugin/plan.js';
import type { ComputeProcess, CreateMigRequest, DestroyMigRequest, Discovery, GpuBackend } from '../../../pkg/nvidia/backend.js';
import { NvidiaSmiError } from '../../../pkg/nvidia/errors.js';
import type { ComputeInstance, CreatedMigDevice, GpuHealth, GpuInstance, MigModeState, MigProfile } from '../../../pkg/nvidia/types.js';
import { PublishedInventory } from '../../../pkg/nodeplugin/published-inventory.js';

export const DRIVER = 'gpu.cascade.dev';
export const NODE = 'node-a';

/** An in-memory GPU backend over a fixed discovery: MIG instances come and go, failures are scripted. */
export class FakeBackend implements GpuBackend {
  gpuInstances: GpuInstance[] = [];
  computeInstances: ComputeInstance[] = [];
  /** Errors thrown by the next createMigDevice calls, in order (undefined: succeed). */
  createFailures: (Error | undefined)[] = [];
  /** "gpu:gi" instances whose destruction is refused (in use). */
  busy = new Set<string>();
  readonly calls: string[] = [];
  private nextId = 1;
  private serial = 0;

  /** What computeProcesses reports. */
  processes: ComputeProcess[] = [];

  constructor(private readonly base: Discovery) {}

  async computeProcesses(): Promise<ComputeProcess[]> {
    return [...this.processes];
  }

  async discover(): Promise<Discovery> {
    this.calls.push('discover');
    return { ...this.base, gpuInstances: [...this.gpuInstances], computeInstances: [...this.computeInstances] };
  }

  async listMigProfiles(): Promise<MigProfile[]> {
    return [...this.base.migProfiles];
  }

  async listGpuInstances(): Promise<GpuInstance[]> {
    return [...this.gpuInstances];
  }

  async listComputeInstances(): Promise<ComputeInstance[]> {
    return [...this.computeInstances];
  }

  /** Creates an instance as if someone else had (not recorded by the plugin). */
  addForeign(gpuIndex: number, profileId: number, start: number, size: number): number {
    const id = this.nextId++;
    this.gpuInstances.push({ gpuIndex, profile: `p${profileId}`, profileId, instanceId: id, placement: { start, size } });
    this.computeInstances.push({ gpuIndex, gpuInstanceId: id, profile: `p${profileId}`, profileId: 0, instanceId: 0, placement: { start: 0, size: 1 } });
    return id;
  }

  /** placementSize of each createMigDevice request, in order. */
  readonly requestedSizes: (number | undefined)[] = [];

  async createMigDevice(request: CreateMigRequest): Promise<CreatedMigDevice> {
    this.calls.push(`create ${request.gpuIndex} ${request.profileId}:${request.placementStart}`);
    this.requestedSizes.push(request.placementSize);
    const failure = this.createFailures.shift();
    if (failure) throw failure;
    const profile = this.base.migProfiles.find((p) => p.gpuIndex === request.gpuIndex && p.id === request.profileId);
    if (!profile) throw new NvidiaSmiError('nvidia-smi mig -cgi', 'not-found', 6, `no profile ${request.profileId}`);
    const placement = { start: request.placementStart, size: profile.memorySlices };
    const clash = this.gpuInstances.some((g) => g.gpuIndex === request.gpuIndex && g.placement.start < placement.start + placement.size && placement.start < g.placement.start + g.placement.size);
    if (clash) throw new NvidiaSmiError('nvidia-smi mig -cgi', 'insufficient-resources', 255, 'Insufficient Resources');
    const id = this.nextId++;
    this.gpuInstances.push({ gpuIndex: request.gpuIndex, profile: profile.name, profileId: profile.id, instanceId: id, placement });
    this.computeInstances.push({ gpuIndex: request.gpuIndex, gpuInstanceId: id, profile: profile.name, profileId: 0, instanceId: 0, placement: { start: 0, size: profile.computeSlices } });
    return { gpuIndex: request.gpuIndex, gpuInstanceId: id, computeInstanceId: 0, profile: profile.name, profileId: profile.id, placement, uuid: `MIG-fake-${++this.serial}` };
  }

  async destroyMigDevice(request: DestroyMigRequest): Promise<void> {
    this.calls.push(`destroy ${request.gpuIndex} ${request.gpuInstanceId}`);
    if (this.busy.has(`${request.gpuIndex}:${request.gpuInstanceId}`)) {
      throw new NvidiaSmiError('nvidia-smi mig -dgi', 'in-use', 255, 'In use by another client');
    }
    this.gpuInstances = this.gpuInstances.filter((g) => !(g.gpuIndex === request.gpuIndex && g.instanceId === request.gpuInstanceId));
    this.computeInstances = this.computeInstances.filter((c) => !(c.gpuIndex === request.gpuIndex && c.gpuInstanceId === request.gpuInstanceId));
  }

  async setMigMode(gpuIndex: number, enabled: boolean): Promise<MigModeState> {
    this.calls.push(`mig-mode ${gpuIndex} ${enabled ? 1 : 0}`);
    const mode = enabled ? 'Enabled' : 'Disabled';
    return { current: mode, pending: mode };
  }

  async setTimeSlice(gpuIndex: number, slice: 0 | 1 | 2 | 3): Promise<void> {
    this.calls.push(`timeslice ${gpuIndex} ${slice}`);
  }

  async health(): Promise<GpuHealth[]> {
    return this.base.gpus.map((g) => ({ uuid: g.uuid, pciBusId: g.pciBusId, healthy: true, reason: undefined }));
  }
}

export function snapshotOf(d: Discovery): InventorySnapshot {
  return inventorySnapshot(d, buildDesiredSlices({ nodeName: NODE, driverName: DRIVER, discovery: d }));
}

export function uid(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
}

/** An allocated claim; `config` goes to status.allocation.devices.config. */
export function claim(n: number, devices: readonly string[], over: { config?: unknown[]; pool?: string } = {}): ResourceClaim {
  return {
    metadata: { name: `c${n}`, namespace: 'ns', uid: uid(n) },
    spec: { devices: { requests: devices.map((_d, i) => ({ name: `r${i}`, exactly: { deviceClassName: 'gpu' } })) } },
    status: {
      allocation: {
        devices: {
          results: devices.map((device, i) => ({ request: `r${i}`, driver: DRIVER, pool: over.pool ?? NODE, device })),
          ...(over.config ? { config: over.config as never } : {}),
        },
      },
    },
  };
}

export function refOf(c: ResourceClaim): { namespace: string; name: string; uid: string } {
  return { namespace: c.metadata.namespace ?? '', name: c.metadata.name ?? '', uid: c.metadata.uid ?? '' };
}

export class MemoryClaims implements ClaimSource {
  readonly claims = new Map<string, ResourceClaim>();

  put(c: ResourceClaim): ResourceClaim {
    this.claims.set(`${c.metadata.namespace ?? ''}/${c.metadata.name ?? ''}`, c);
    return c;
  }

  async get(namespace: string, name: string): Promise<ResourceClaim> {
    const c = this.claims.get(`${namespace}/${name}`);
    if (!c) throw new KubeApiError(404, 'NotFound', `resourceclaims "${name}" not found`, 'GET', name);
    return c;
  }
}

/** A published inventory that already holds `snapshot`. */
export function published(snapshot: InventorySnapshot): PublishedInventory {
  const p = new PublishedInventory();
  p.set(snapshot);
  return p;
}
