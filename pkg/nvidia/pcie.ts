// Where a PCI function sits in the PCIe tree, read from its sysfs path.
//
// /sys/bus/pci/devices/<bdf> links to /sys/devices/pci<domain>:<bus>/<bridge>/.../<bdf>:
// the first component names the root complex (host bridge), and every BDF
// between it and the function is a bridge on the way down. A function behind a
// PCIe switch has at least three: the root port, the switch's upstream port and
// the switch's downstream port. The switch nearest the function is named by its
// upstream port, so that the GPUs and NICs below one switch (`PIX` to each other
// in `nvidia-smi topo -m`) share the name.
import path from 'node:path';

const ROOT = /^pci[0-9a-f]{4}:[0-9a-f]{2}$/;
const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

export interface PciePlacement {
  /** "pci0000:15". */
  readonly root: string | undefined;
  /** Upstream port of the nearest PCIe switch, "0000:16:00.0"; undefined when the function hangs off a root port. */
  readonly pcieSwitch: string | undefined;
}

export function pciePlacementOf(realPath: string): PciePlacement {
  const parts = realPath.split(path.sep);
  const at = parts.findIndex((p) => ROOT.test(p));
  if (at < 0) return { root: undefined, pcieSwitch: undefined };
  const chain = parts.slice(at + 1).filter((p) => BDF.test(p));
  // chain: bridges from the root port down, then the function itself.
  const bridges = chain.slice(0, -1);
  return { root: parts[at], pcieSwitch: bridges.length >= 3 ? bridges[bridges.length - 2] : undefined };
}
