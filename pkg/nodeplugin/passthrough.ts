// Which GPUs of this node may be passed through to VMs, and what sysfs says
// of each now: the inventory publishes them from this, prepare and start-up
// recovery move them between drivers through it (docs/devices.md "Passthrough").
import type { PassthroughGpu } from '../inventory/types.js';
import type { Discovery } from '../nvidia/backend.js';
import { GPU_MODELS } from '../nvidia/catalog.js';
import { type PciFunction, type PciSysfs, checkIommuGroup, isNvidiaGpu, isPciAddress } from './vfio.js';

/** "all", or a list of PCI addresses. */
export type GpuSelection = 'all' | readonly string[];

export interface PassthroughConfig {
  /** GPUs bound to vfio-pci from start-up and never used by containers. */
  readonly pool: GpuSelection;
  /** GPUs bound to vfio-pci only for a VM claim, and returned to nvidia after. */
  readonly switchable: GpuSelection;
}

export const PASSTHROUGH_OFF: PassthroughConfig = { pool: [], switchable: [] };

/** Parses "all", "none" or "0000:1b:00.0,1c:00.0" (the domain defaults to 0000). */
export function parseGpuSelection(value: string): GpuSelection {
  const v = value.trim().toLowerCase();
  if (v === 'all') return 'all';
  if (v === '' || v === 'none') return [];
  return v.split(',').map((part) => {
    const a = part.trim();
    const full = /^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(a) ? `0000:${a}` : a;
    if (!isPciAddress(full)) throw new Error(`${JSON.stringify(part)} is not a PCI address such as 0000:1b:00.0`);
    return full;
  });
}

function selects(selection: GpuSelection, address: string): boolean {
  return selection === 'all' || selection.includes(address);
}

export function passthroughEnabled(config: PassthroughConfig): boolean {
  return config.pool === 'all' || config.switchable === 'all' || config.pool.length > 0 || config.switchable.length > 0;
}

/** Checks that no GPU is both in the pool and switchable. */
export function checkPassthroughConfig(config: PassthroughConfig): void {
  if (config.pool === 'all' && config.switchable === 'all') throw new Error('--passthrough-pool and --passthrough-switchable cannot both be "all"');
  if (config.pool !== 'all' && config.switchable !== 'all') {
    const both = config.pool.filter((a) => config.switchable.includes(a));
    if (both.length > 0) throw new Error(`GPUs ${both.join(', ')} are in both --passthrough-pool and --passthrough-switchable`);
  }
}

/** The mode a GPU is configured for; a listed address wins over "all" on the other side. */
export function modeOf(config: PassthroughConfig, address: string): 'pool' | 'switchable' | undefined {
  const inPool = selects(config.pool, address);
  const inSwitch = selects(config.switchable, address);
  if (inPool && inSwitch) return config.pool === 'all' ? 'switchable' : 'pool';
  return inPool ? 'pool' : inSwitch ? 'switchable' : undefined;
}

/** Product name and memory of a GPU nvidia-smi does not see, from its PCI device ID (catalog knowledge). */
export function catalogIdentity(f: PciFunction): { productName: string; memoryMiB: number | undefined } {
  const id = `${f.device.replace(/^0x/, '')}${f.vendor.replace(/^0x/, '')}`.toUpperCase();
  const model = GPU_MODELS.find((m) => m.pciDeviceId.toUpperCase() === id);
  return model ? { productName: model.productName, memoryMiB: model.memoryMiB } : { productName: `NVIDIA GPU ${f.device}`, memoryMiB: undefined };
}

export class Passthrough {
  constructor(
    readonly sysfs: PciSysfs,
    readonly config: PassthroughConfig,
  ) {}

  /** The NVIDIA GPU functions of this node that the configuration names, with their mode. */
  async gpus(): Promise<{ fn: PciFunction; mode: 'pool' | 'switchable' }[]> {
    const out: { fn: PciFunction; mode: 'pool' | 'switchable' }[] = [];
    for (const address of await this.sysfs.addresses()) {
      const mode = modeOf(this.config, address);
      if (mode === undefined) continue;
      const fn = await this.sysfs.fn(address);
      if (fn && isNvidiaGpu(fn)) out.push({ fn, mode });
    }
    return out;
  }

  /** What the inventory publishes: every configured GPU as sysfs shows it, with why it cannot be passed through. */
  async scan(discovery: Discovery, stranded: Readonly<Record<string, string>>): Promise<PassthroughGpu[]> {
    const loaded = await this.sysfs.vfioLoaded();
    const out: PassthroughGpu[] = [];
    for (const { fn, mode } of await this.gpus()) {
      const seen = discovery.gpus.find((g) => g.pciBusId === fn.address);
      const identity = seen ? { productName: seen.productName, memoryMiB: seen.memoryMiB } : catalogIdentity(fn);
      let unavailable: PassthroughGpu['unavailable'];
      if (!loaded) unavailable = { short: 'vfio-pci-not-loaded', reason: 'the vfio-pci module is not loaded on this node (modprobe vfio-pci, and load it at boot)' };
      else {
        const group = await checkIommuGroup(this.sysfs, fn);
        if (!group.ok) unavailable = { short: group.short, reason: group.reason };
      }
      const reason = stranded[fn.address];
      out.push({
        address: fn.address,
        mode,
        driver: fn.driver,
        iommuGroup: fn.iommuGroup,
        numaNode: fn.numaNode,
        pcieRoot: fn.pcieRoot,
        pcieSwitch: fn.pcieSwitch,
        ...identity,
        ...(unavailable ? { unavailable } : {}),
        ...(reason !== undefined ? { stranded: reason } : {}),
      });
    }
    return out;
  }
}
