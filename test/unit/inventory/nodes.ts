// Discovery results for inventory tests, built from the board catalog the way
// the nvidia-smi backend reports them (profiles only for MIG-enabled GPUs).
import type { Discovery } from '../../../pkg/nvidia/backend.js';
import { catalogProfiles, findModel } from '../../../pkg/nvidia/catalog.js';
import type { ComputeInstance, GpuInfo, GpuInstance, MigMode } from '../../../pkg/nvidia/types.js';

export interface GpuSpec {
  readonly model: string;
  readonly mig?: MigMode;
  readonly peers?: readonly number[];
  readonly numa?: number;
}

export function gpu(index: number, spec: GpuSpec): GpuInfo {
  const model = findModel(spec.model);
  const mig = spec.mig ?? 'Disabled';
  return {
    index,
    minor: index,
    uuid: `GPU-${String(index).padStart(8, '0')}-0000-0000-0000-000000000000`,
    productName: model?.productName ?? spec.model,
    brand: 'NVIDIA',
    architecture: model?.architecture ?? 'Volta',
    computeCapability: model?.computeCapability ?? '7.0',
    driverVersion: '580.105.08',
    cudaVersion: '13.0',
    pciBusId: `0000:${(0x18 + index * 0x11).toString(16).padStart(2, '0')}:00.0`,
    pcieRoot: `pci0000:${index < 4 ? '00' : '80'}`,
    pcieSwitch: undefined,
    memoryMiB: model?.memoryMiB ?? 16160,
    migMode: { current: mig, pending: mig },
    numaNode: spec.numa,
    nvlinkPeers: spec.peers ?? [],
    migDevices: [],
    uncorrectableEccErrors: 0,
  };
}

export function discovery(gpus: readonly GpuInfo[], extra: Partial<Discovery> = {}): Discovery {
  return {
    driverVersion: '580.105.08',
    cudaVersion: '13.0',
    gpus,
    migProfiles: gpus.flatMap((g) => {
      const model = findModel(g.productName);
      return g.migMode.current === 'Enabled' && model ? catalogProfiles(model, g.index) : [];
    }),
    gpuInstances: [],
    computeInstances: [],
    lost: [],
    ...extra,
  };
}

/** Eight NVSwitch-connected H100s, NUMA 0 and 1. */
export function h100x8(mig: MigMode): Discovery {
  const all = [0, 1, 2, 3, 4, 5, 6, 7];
  return discovery(all.map((i) => gpu(i, { model: 'H100-80GB', mig, peers: all.filter((p) => p !== i), numa: i < 4 ? 0 : 1 })));
}

/** A MIG instance as -lgi/-lci/-L would report it. */
export function instance(g: GpuInfo, profileId: number, profile: string, gi: number, start: number, size: number, uuid?: string): { gi: GpuInstance; ci: ComputeInstance; gpu: GpuInfo } {
  return {
    gi: { gpuIndex: g.index, profile, profileId, instanceId: gi, placement: { start, size } },
    ci: { gpuIndex: g.index, gpuInstanceId: gi, profile, profileId: 2, instanceId: 0, placement: { start: 0, size: 3 } },
    gpu: {
      ...g,
      migDevices: [...g.migDevices, { index: g.migDevices.length, gpuInstanceId: gi, computeInstanceId: 0, uuid, profile, multiprocessors: undefined, engines: undefined, memoryMiB: undefined }],
    },
  };
}
