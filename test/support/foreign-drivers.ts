// ResourceSlices of two other DRA drivers, shaped as those drivers publish
// them, for the tests in which Cascade allocates their devices together with GPUs.
//
// dra.cpu (kubernetes-sigs/dra-driver-cpu, default --cpu-device-mode=grouped,
// --group-by=numanode): one device per NUMA node, named cpudevnuma<NNN>,
// allowMultipleAllocations with one consumable capacity `dra.cpu/cpu` (the
// node's allocatable CPUs of that NUMA node, no requestPolicy), and the
// attributes resource.kubernetes.io/numaNode (the driver's main branch from
// August 2026), dra.cpu/socketID, dra.cpu/numCPUs, dra.cpu/smtEnabled and
// the deprecated copies dra.cpu/numaNodeID and dra.net/numaNode that its
// v0.2.0 release carries alone. The pcieRoot list it can add
// (--expose-pcie-roots) is a list-type attribute and left out.
//
// dra.net (kubernetes-sigs/dranet): one device per PCI NIC, named
// pci-<BDF with ':' and '.' as '-'>, with dra.net/ attributes (ifName,
// pciAddress, mac, pciVendor, pciDevice, numaNode, rdma, sriov, virtual,
// mtu, state, type, encapsulation) and the standard
// resource.kubernetes.io/pcieRoot and resource.kubernetes.io/numaNode.
// dranet ships no DeviceClass; its tests define `dra.net`, selecting the driver.
import type { Device, DeviceClass, ResourceSlice } from '../../pkg/api/resource.js';

export const CPU_DRIVER = 'dra.cpu';
export const NIC_DRIVER = 'dra.net';

export interface CpuNuma {
  readonly numaNode: number;
  readonly socket: number;
  /** Allocatable CPUs of the NUMA node (reserved ones already taken out). */
  readonly cpus: number;
}

export function cpuSlice(nodeName: string, numas: readonly CpuNuma[], generation = 1): ResourceSlice {
  const devices: Device[] = numas.map((n) => ({
    name: `cpudevnuma${String(n.numaNode).padStart(3, '0')}`,
    allowMultipleAllocations: true,
    attributes: {
      'dra.cpu/smtEnabled': { bool: true },
      'dra.cpu/numCPUs': { int: n.cpus },
      'resource.kubernetes.io/numaNode': { int: n.numaNode },
      'dra.cpu/socketID': { int: n.socket },
      'dra.net/numaNode': { int: n.numaNode },
      'dra.cpu/numaNodeID': { int: n.numaNode },
    },
    capacity: { 'dra.cpu/cpu': { value: String(n.cpus) } },
  }));
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceSlice',
    metadata: { name: `${nodeName}-dra.cpu` },
    spec: { driver: CPU_DRIVER, nodeName, pool: { name: nodeName, generation, resourceSliceCount: 1 }, devices },
  };
}

export interface Nic {
  /** PCI address, "0000:8a:00.0". */
  readonly address: string;
  readonly ifName: string;
  readonly pcieRoot: string;
  readonly numaNode: number;
}

export function nicDeviceName(address: string): string {
  return `pci-${address.replace(/[:.]/g, '-')}`;
}

export function nicSlice(nodeName: string, nics: readonly Nic[], generation = 1): ResourceSlice {
  const devices: Device[] = nics.map((n, i) => ({
    name: nicDeviceName(n.address),
    attributes: {
      'dra.net/ifName': { string: n.ifName },
      'dra.net/pciAddress': { string: n.address },
      'dra.net/mac': { string: `b8:3f:d2:00:00:${String(i).padStart(2, '0')}` },
      'dra.net/pciVendor': { string: 'Mellanox Technologies' },
      'dra.net/pciDevice': { string: 'MT2910 Family [ConnectX-7]' },
      'dra.net/numaNode': { int: n.numaNode },
      'dra.net/rdma': { bool: true },
      'dra.net/sriov': { bool: false },
      'dra.net/virtual': { bool: false },
      'dra.net/mtu': { int: 9000 },
      'dra.net/state': { string: 'up' },
      'dra.net/type': { string: 'device' },
      'dra.net/encapsulation': { string: 'ether' },
      'resource.kubernetes.io/pcieRoot': { string: n.pcieRoot },
      'resource.kubernetes.io/numaNode': { int: n.numaNode },
    },
  }));
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceSlice',
    metadata: { name: `${nodeName}-dra.net` },
    spec: { driver: NIC_DRIVER, nodeName, pool: { name: nodeName, generation, resourceSliceCount: 1 }, devices },
  };
}

/** The DeviceClasses of the two drivers: each selects its driver. */
export function foreignDeviceClasses(): DeviceClass[] {
  return [CPU_DRIVER, NIC_DRIVER].map((driver) => ({
    apiVersion: 'resource.k8s.io/v1',
    kind: 'DeviceClass',
    metadata: { name: driver },
    spec: { selectors: [{ cel: { expression: `device.driver == "${driver}"` } }] },
  }));
}
