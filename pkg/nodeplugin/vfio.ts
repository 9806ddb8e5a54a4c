// The kernel side of passthrough: reading PCI functions, IOMMU groups and
// driver links from sysfs, and moving a function between drivers through
// driver_override, unbind, drivers_probe and bind, as the kernel documents it
// (Documentation/driver-api/vfio.rst). Every address is checked before it
// becomes part of a path, and every write is followed by a wait for the driver
// link it should produce, so a bind that did not happen is an error here, not
// a VM that fails to start later.
import { constants } from 'node:fs';
import { access, open, readFile, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../log/logger.js';
import { pciePlacementOf, type PciePlacement } from '../nvidia/pcie.js';

export const VFIO_DRIVER = 'vfio-pci';
export const NVIDIA_DRIVER = 'nvidia';

/** "0000:1b:00.0": domain, bus, device, function, lower case. */
export const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;

/** A PCI function as sysfs shows it. */
export interface PciFunction {
  readonly address: string;
  /** "0x10de". */
  readonly vendor: string;
  /** "0x2330". */
  readonly device: string;
  /** The 24-bit class code, e.g. 0x030200. */
  readonly classCode: number;
  /** The bound driver's name; undefined when none is. */
  readonly driver: string | undefined;
  readonly iommuGroup: number | undefined;
  readonly numaNode: number | undefined;
  /** "pci0000:15". */
  readonly pcieRoot: string | undefined;
  /** Upstream port of the PCIe switch above the function, when there is one. */
  readonly pcieSwitch: string | undefined;
}

export function isPciAddress(value: string): boolean {
  return PCI_ADDRESS.test(value);
}

/** A PCI-to-PCI bridge (class 0x0604): it may share a GPU's IOMMU group without going along. */
export function isBridge(f: PciFunction): boolean {
  return f.classCode >> 8 === 0x0604;
}

/** A display controller of NVIDIA's (class 0x03, vendor 0x10de). */
export function isNvidiaGpu(f: PciFunction): boolean {
  return f.vendor === '0x10de' && f.classCode >> 16 === 0x03;
}

/** Another function of the same PCI device (the GPU's audio function, 0000:1b:00.1). */
export function sameDevice(a: string, b: string): boolean {
  return a.slice(0, -2) === b.slice(0, -2);
}

export interface SysfsOptions {
  /** Root of sysfs; default /sys. */
  readonly root?: string;
  /** Root of the device nodes; default /dev. */
  readonly devRoot?: string;
  /** How long a bind or unbind may take to show in the driver link; default 15 s. */
  readonly settleTimeoutMs?: number;
}

export class PciSysfs {
  readonly root: string;
  readonly devRoot: string;
  private readonly settleTimeoutMs: number;

  constructor(o: SysfsOptions = {}) {
    this.root = o.root ?? '/sys';
    this.devRoot = o.devRoot ?? '/dev';
    this.settleTimeoutMs = o.settleTimeoutMs ?? 15_000;
  }

  private devicePath(address: string, ...rest: string[]): string {
    if (!isPciAddress(address)) throw new Error(`${JSON.stringify(address.slice(0, 40))} is not a PCI address`);
    return path.join(this.root, 'bus', 'pci', 'devices', address, ...rest);
  }

  private driverPath(driver: string, ...rest: string[]): string {
    if (!/^[a-z0-9_-]{1,64}$/i.test(driver)) throw new Error(`${JSON.stringify(driver.slice(0, 40))} is not a driver name`);
    return path.join(this.root, 'bus', 'pci', 'drivers', driver, ...rest);
  }

  /** Every PCI function sysfs lists. */
  async addresses(): Promise<string[]> {
    try {
      return (await readdir(path.join(this.root, 'bus', 'pci', 'devices'))).filter(isPciAddress).sort();
    } catch {
      return [];
    }
  }

  /** The function at an address; undefined when there is none. */
  async fn(address: string): Promise<PciFunction | undefined> {
    const read = async (name: string): Promise<string | undefined> => {
      try {
        return (await readFile(this.devicePath(address, name), 'utf8')).trim();
      } catch {
        return undefined;
      }
    };
    const vendor = await read('vendor');
    if (vendor === undefined) return undefined;
    const device = (await read('device')) ?? '';
    const classCode = Number.parseInt((await read('class')) ?? '0', 16);
    const numa = Number((await read('numa_node')) ?? 'NaN');
    let group: number | undefined;
    try {
      group = Number(path.basename(await readlink(this.devicePath(address, 'iommu_group'))));
    } catch {
      group = undefined;
    }
    let at: PciePlacement = { root: undefined, pcieSwitch: undefined };
    try {
      at = pciePlacementOf(await realpath(this.devicePath(address)));
    } catch {
      // Not in the tree: no placement to report.
    }
    return {
      address,
      vendor: vendor.toLowerCase(),
      device: device.toLowerCase(),
      classCode: Number.isFinite(classCode) ? classCode : 0,
      driver: await this.driverOf(address),
      iommuGroup: group !== undefined && Number.isSafeInteger(group) ? group : undefined,
      numaNode: Number.isSafeInteger(numa) && numa >= 0 ? numa : undefined,
      pcieRoot: at.root,
      pcieSwitch: at.pcieSwitch,
    };
  }

  async driverOf(address: string): Promise<string | undefined> {
    try {
      return path.basename(await readlink(this.devicePath(address, 'driver')));
    } catch {
      return undefined;
    }
  }

  /** The addresses in an IOMMU group. */
  async groupMembers(group: number): Promise<string[]> {
    if (!Number.isSafeInteger(group) || group < 0) throw new Error(`${group} is not an IOMMU group`);
    return (await readdir(path.join(this.root, 'kernel', 'iommu_groups', String(group), 'devices'))).filter(isPciAddress).sort();
  }

  /** Whether the vfio-pci driver is registered (the module is loaded). */
  async vfioLoaded(): Promise<boolean> {
    return exists(this.driverPath(VFIO_DRIVER));
  }

  async driverLoaded(driver: string): Promise<boolean> {
    return exists(this.driverPath(driver));
  }

  /** /dev/vfio/<group>, which appears once a function of the group is bound to vfio-pci. */
  async groupNodeExists(group: number): Promise<boolean> {
    return exists(path.join(this.devRoot, 'vfio', String(group)));
  }

  /**
   * Moves a function to `target` (a driver name), or to no driver (null):
   * driver_override set for vfio-pci and cleared otherwise, the current driver
   * unbound, then drivers_probe (vfio-pci) or the target's bind file. A
   * function already there is left alone (only its override is corrected).
   */
  async moveTo(address: string, target: string | null): Promise<void> {
    const current = await this.driverOf(address);
    await this.write(this.devicePath(address, 'driver_override'), target === VFIO_DRIVER ? VFIO_DRIVER : '');
    if (current === (target ?? undefined)) return;
    if (target !== null && !(await this.driverLoaded(target))) {
      throw new Error(`driver ${target} is not loaded on this node, so ${address} cannot be bound to it${target === VFIO_DRIVER ? ' (modprobe vfio-pci)' : ''}`);
    }
    if (current !== undefined) {
      await this.write(this.driverPath(current, 'unbind'), address);
      await this.waitFor(address, undefined, `unbinding ${address} from ${current}`);
    }
    if (target === null) return;
    if (target === VFIO_DRIVER) await this.write(path.join(this.root, 'bus', 'pci', 'drivers_probe'), address);
    else await this.write(this.driverPath(target, 'bind'), address);
    await this.waitFor(address, target, `binding ${address} to ${target}`);
  }

  /** Writes one value to a sysfs attribute, as `echo value > file` does. */
  private async write(file: string, value: string): Promise<void> {
    let handle;
    try {
      // O_NONBLOCK: never hang on a control file nobody serves.
      handle = await open(file, constants.O_WRONLY | constants.O_TRUNC | constants.O_NONBLOCK);
      await handle.write(`${value}\n`);
    } catch (err) {
      throw new Error(`writing ${JSON.stringify(value)} to ${file}: ${errorMessage(err)}`);
    } finally {
      await handle?.close();
    }
  }

  private async waitFor(address: string, driver: string | undefined, what: string): Promise<void> {
    const deadline = Date.now() + this.settleTimeoutMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const now = await this.driverOf(address);
      if (now === driver) return;
      if (Date.now() > deadline) {
        throw new Error(`${what} did not take effect within ${Math.round(this.settleTimeoutMs / 1000)} s (its driver is ${now ?? 'none'}); see the kernel log (dmesg)`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** Why a GPU's IOMMU group cannot be passed through, or which functions go along with it. */
export type GroupCheck = { readonly ok: true; readonly group: number; readonly functions: readonly PciFunction[] } | { readonly ok: false; readonly reason: string; readonly short: string };

/**
 * Every function in the GPU's IOMMU group must go to the VM with it (its own
 * other functions, such as HDMI audio) or be a bridge; anything else would be
 * handed to the VM too, so the GPU cannot be passed through.
 */
export async function checkIommuGroup(sysfs: PciSysfs, gpu: PciFunction): Promise<GroupCheck> {
  if (gpu.iommuGroup === undefined) {
    return {
      ok: false,
      short: 'iommu-off',
      reason: `${gpu.address} has no IOMMU group: the IOMMU is off on this node (boot with intel_iommu=on or amd_iommu=on, and enable VT-d/AMD-Vi in the firmware)`,
    };
  }
  const functions: PciFunction[] = [gpu];
  for (const address of await sysfs.groupMembers(gpu.iommuGroup)) {
    if (address === gpu.address) continue;
    const f = await sysfs.fn(address);
    if (!f || isBridge(f)) continue;
    if (sameDevice(address, gpu.address)) {
      functions.push(f);
      continue;
    }
    return {
      ok: false,
      short: 'iommu-group-shared',
      reason: `IOMMU group ${gpu.iommuGroup} of ${gpu.address} also holds ${address} (class 0x${f.classCode.toString(16).padStart(6, '0')}, driver ${f.driver ?? 'none'}), which is not part of this GPU; passing the GPU through would hand that device to the VM too`,
    };
  }
  return { ok: true, group: gpu.iommuGroup, functions };
}
