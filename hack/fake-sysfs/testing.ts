// Test and demo helper: a simulated GPU host, the nvidia-smi simulator and the
// sysfs stand-in over one fleet, so that a GPU bound to vfio-pci in the tree
// disappears from nvidia-smi and comes back when it is returned.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { resolveConfig, sysfsAddress } from '../fake-nvidia-smi/config.js';
import { type FakeConfig, type FakeNvidiaSmi, createFakeNvidiaSmi } from '../fake-nvidia-smi/testing.js';
import { type FakePciFunction, type FakeSysfs, startFakeSysfs } from './sysfs.js';

export type { FakePciFunction, FakeSysfs } from './sysfs.js';

export interface FakeHostOptions {
  /** GPU indexes with an HDMI audio function (.1) in their IOMMU group. */
  readonly audio?: readonly number[];
  /** GPU indexes whose IOMMU group also holds an unrelated NIC. */
  readonly sharedGroup?: readonly number[];
  /** GPU indexes whose IOMMU group also holds their PCIe switch's bridge (allowed). */
  readonly bridge?: readonly number[];
  /** Whether the vfio-pci module is loaded (default true). */
  readonly vfioPci?: boolean;
  /** GPU indexes bound to vfio-pci from boot (vfio-pci.ids on the kernel command line). */
  readonly boundToVfio?: readonly number[];
  /**
   * GPU indexes that sit under one PCIe switch together (and so share its root
   * complex). GPUs in no group get a switch of their own, as on an HGX/DGX
   * board where each GPU shares its switch with a NIC only.
   */
  readonly switches?: readonly (readonly number[])[];
}

export interface FakeHost {
  readonly smi: FakeNvidiaSmi;
  readonly sysfs: FakeSysfs;
  /** PCI address of each GPU by config index, as sysfs names it. */
  readonly addresses: readonly string[];
  cleanup(): void;
}

/**
 * The PCI functions of a fleet: each GPU in its own IOMMU group, behind a PCIe
 * switch (its own unless `switches` groups it with others). The bridges'
 * addresses are made up (device numbers 01-03 on the bus of the switch's first
 * GPU); only their places in the tree matter.
 */
export function pciFunctionsFor(fleet: FakeConfig, o: FakeHostOptions = {}): FakePciFunction[] {
  const config = resolveConfig(fleet);
  const out: FakePciFunction[] = [];
  const firstOfSwitch = (index: number): number => o.switches?.find((g) => g.includes(index))?.[0] ?? index;
  for (const gpu of config.gpus) {
    const address = sysfsAddress(gpu.pciBusId);
    const group = 20 + gpu.index;
    const head = config.gpus.find((g) => g.index === firstOfSwitch(gpu.index)) ?? gpu;
    const headBus = sysfsAddress(head.pciBusId).slice(5, 7);
    const root = `pci0000:${headBus}`;
    const bridges = [`0000:${headBus}:01.0`, `0000:${headBus}:02.0`, `0000:${headBus}:03.${gpu.index % 8}`];
    const id = gpu.model.pciDeviceId.toLowerCase();
    out.push({
      address,
      vendor: `0x${id.slice(4, 8)}`,
      device: `0x${id.slice(0, 4)}`,
      class: '0x030200',
      nativeDriver: 'nvidia',
      ...(o.boundToVfio?.includes(gpu.index) ? { boundAtStart: 'vfio-pci' } : {}),
      iommuGroup: group,
      numaNode: gpu.numaNode ?? 0,
      pcieRoot: root,
      bridges,
    });
    const sibling = (fn: number): string => `${address.slice(0, -1)}${fn}`;
    const bus = address.slice(5, 7);
    if (o.audio?.includes(gpu.index)) {
      out.push({ address: sibling(1), vendor: '0x10de', device: '0x22ba', class: '0x040300', nativeDriver: 'snd_hda_intel', iommuGroup: group, numaNode: gpu.numaNode ?? 0, pcieRoot: root, bridges });
    }
    if (o.bridge?.includes(gpu.index)) {
      out.push({ address: `0000:${bus}:1f.0`, vendor: '0x1000', device: '0xc030', class: '0x060400', nativeDriver: 'pcieport', iommuGroup: group, numaNode: gpu.numaNode ?? 0, pcieRoot: root });
    }
    if (o.sharedGroup?.includes(gpu.index)) {
      out.push({ address: `0000:${bus}:1e.0`, vendor: '0x15b3', device: '0x1021', class: '0x020000', nativeDriver: 'mlx5_core', iommuGroup: group, numaNode: gpu.numaNode ?? 0, pcieRoot: root });
    }
  }
  return out;
}

/** A host with `fleet`'s GPUs in a simulated sysfs under a fresh temp directory. */
export function createFakeHost(fleet: FakeConfig, o: FakeHostOptions = {}): FakeHost {
  const probe = createFakeNvidiaSmi(fleet);
  const sysRoot = path.join(probe.dir, 'sys');
  const devRoot = path.join(probe.dir, 'dev');
  mkdirSync(sysRoot, { recursive: true });
  const sysfs = startFakeSysfs(sysRoot, devRoot, { functions: pciFunctionsFor(fleet, o), vfioPci: o.vfioPci ?? true });
  // The same directory, now with nvidia-smi looking at the tree.
  const smi = createFakeNvidiaSmi({ ...fleet, sysfsRoot: sysRoot }, { dir: probe.dir });
  const addresses = resolveConfig(fleet).gpus.map((g) => sysfsAddress(g.pciBusId));
  return {
    smi,
    sysfs,
    addresses,
    cleanup: () => {
      sysfs.stop();
      smi.cleanup();
    },
  };
}
