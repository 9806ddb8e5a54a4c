// Parser for `nvidia-smi -q -x`: the few fields discovery needs, read by name
// with the aliases that DTD versions (v10..v13) have used for them.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { NvidiaSmiParseError } from './errors.js';
import { normalizePciBusId, present, splitLines } from './parse-common.js';
import type { EngineCounts, MigDeviceInfo, MigMode, MigModeState } from './types.js';

const COMMAND = 'nvidia-smi -q -x';

/** One `<gpu>` block. */
export interface XmlGpu {
  readonly pciBusId: string;
  readonly productName: string;
  readonly brand: string | undefined;
  readonly architecture: string | undefined;
  readonly uuid: string;
  readonly minor: number;
  readonly migMode: MigModeState;
  readonly migDevices: readonly MigDeviceInfo[];
  readonly memoryMiB: number;
  readonly uncorrectableEccErrors: number | undefined;
  /** "None" when healthy; anything else asks for a reset or reboot. */
  readonly recoveryAction: string | undefined;
}

export interface XmlLog {
  readonly driverVersion: string;
  readonly cudaVersion: string | undefined;
  readonly attachedGpus: number;
  readonly gpus: readonly XmlGpu[];
}

type XmlNode = { readonly [key: string]: XmlValue };
type XmlValue = string | XmlNode | readonly XmlValue[];

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Keep every value a string: "01" bus numbers and "12.8" versions must not become numbers.
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: false,
  isArray: (name) => name === 'gpu' || name === 'mig_device',
});

function isNode(v: XmlValue | undefined): v is XmlNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first child with one of the given names (DTD versions renamed some). */
function child(node: XmlNode | undefined, ...names: string[]): XmlValue | undefined {
  if (!node) return undefined;
  for (const n of names) {
    if (n in node) return node[n];
  }
  return undefined;
}

function text(node: XmlNode | undefined, ...names: string[]): string | undefined {
  const v = child(node, ...names);
  if (typeof v === 'string') return present(v);
  return undefined;
}

function sub(node: XmlNode | undefined, ...names: string[]): XmlNode | undefined {
  const v = child(node, ...names);
  return isNode(v) ? v : undefined;
}

/** Finds the source line of a GPU block so errors can point at it. */
function lineOf(lines: readonly string[], needle: string): [number, string] {
  const i = lines.findIndex((l) => l.includes(needle));
  return i < 0 ? [0, ''] : [i + 1, lines[i] ?? ''];
}

function int(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,9})(?:\s*MiB)?$/.exec(value);
  return m?.[1] ? Number(m[1]) : undefined;
}

function migMode(value: string | undefined): MigMode | undefined {
  if (value === undefined) return 'N/A';
  return value === 'Enabled' || value === 'Disabled' ? value : undefined;
}

/**
 * Volatile uncorrectable ECC errors. R470-era DTDs report `double_bit` totals;
 * newer ones split DRAM and SRAM (parity/SEC-DED) counts.
 */
function uncorrectableEcc(gpu: XmlNode): number | undefined {
  const volatile = sub(sub(gpu, 'ecc_errors'), 'volatile');
  if (!volatile) return undefined;
  let total: number | undefined;
  for (const name of ['dram_uncorrectable', 'sram_uncorrectable', 'sram_uncorrectable_parity', 'sram_uncorrectable_secded']) {
    const n = int(text(volatile, name));
    if (n !== undefined) total = (total ?? 0) + n;
  }
  if (total === undefined) {
    total = int(text(sub(volatile, 'double_bit'), 'total'));
  }
  return total;
}

function engines(shared: XmlNode | undefined): EngineCounts | undefined {
  if (!shared) return undefined;
  const ce = int(text(shared, 'copy_engine_count'));
  const dec = int(text(shared, 'decoder_count'));
  const enc = int(text(shared, 'encoder_count'));
  const jpg = int(text(shared, 'jpg_count', 'jpeg_count'));
  const ofa = int(text(shared, 'ofa_count'));
  if (ce === undefined || dec === undefined || enc === undefined || jpg === undefined || ofa === undefined) return undefined;
  return { copyEngines: ce, decoders: dec, encoders: enc, jpegEngines: jpg, ofaEngines: ofa };
}

function migDevices(gpu: XmlNode, lines: readonly string[], busId: string): MigDeviceInfo[] {
  const block = child(gpu, 'mig_devices');
  // "None" (or an empty element) when MIG is off or no instance exists.
  if (block === undefined || typeof block === 'string') return [];
  const list = isNode(block) ? child(block, 'mig_device') : undefined;
  if (!Array.isArray(list)) return [];
  return list.map((d: XmlValue, i: number): MigDeviceInfo => {
    const node = isNode(d) ? d : undefined;
    const index = int(text(node, 'index'));
    const gi = int(text(node, 'gpu_instance_id'));
    const ci = int(text(node, 'compute_instance_id'));
    if (index === undefined || gi === undefined || ci === undefined) {
      const [n, line] = lineOf(lines, busId);
      throw new NvidiaSmiParseError(COMMAND, n, line, `mig_device #${i} of GPU ${busId} lacks index, gpu_instance_id or compute_instance_id`);
    }
    const shared = sub(sub(node, 'device_attributes'), 'shared');
    return {
      index,
      gpuInstanceId: gi,
      computeInstanceId: ci,
      uuid: undefined,
      profile: undefined,
      multiprocessors: int(text(shared, 'multiprocessor_count')),
      engines: engines(shared),
      memoryMiB: int(text(sub(node, 'fb_memory_usage', 'fb_memory'), 'total')),
    };
  });
}

function gpuFromXml(node: XmlNode, lines: readonly string[]): XmlGpu {
  const rawId = typeof node['@_id'] === 'string' ? node['@_id'] : undefined;
  const pciNode = sub(node, 'pci');
  const rawBus = text(pciNode, 'pci_bus_id') ?? rawId ?? '';
  const [n, line] = lineOf(lines, rawId ?? rawBus);
  const fail = (reason: string): never => {
    throw new NvidiaSmiParseError(COMMAND, n, line, reason);
  };
  const pciBusId = normalizePciBusId(rawBus) ?? fail(`GPU has no readable PCI bus ID (${JSON.stringify(rawBus)})`);
  const productName = text(node, 'product_name') ?? fail(`GPU ${pciBusId} has no product_name`);
  const uuid = text(node, 'uuid') ?? fail(`GPU ${pciBusId} has no uuid`);
  const minorText = text(node, 'minor_number');
  const minor = int(minorText) ?? fail(`GPU ${pciBusId} minor_number ${JSON.stringify(minorText ?? 'N/A')} is not an integer`);
  const memText = text(sub(node, 'fb_memory_usage', 'fb_memory'), 'total');
  const memoryMiB = int(memText) ?? fail(`GPU ${pciBusId} fb_memory_usage/total ${JSON.stringify(memText ?? 'N/A')} is not a size in MiB`);
  const mig = sub(node, 'mig_mode');
  const currentText = text(mig, 'current_mig');
  const pendingText = text(mig, 'pending_mig');
  const current = migMode(currentText) ?? fail(`GPU ${pciBusId} current_mig ${JSON.stringify(currentText)} is not Enabled/Disabled/N/A`);
  const pending = migMode(pendingText) ?? fail(`GPU ${pciBusId} pending_mig ${JSON.stringify(pendingText)} is not Enabled/Disabled/N/A`);
  return {
    pciBusId,
    productName,
    brand: text(node, 'product_brand'),
    architecture: text(node, 'product_architecture'),
    uuid,
    minor,
    migMode: { current, pending },
    migDevices: migDevices(node, lines, rawId ?? rawBus),
    memoryMiB,
    uncorrectableEccErrors: uncorrectableEcc(node),
    recoveryAction: text(node, 'gpu_recovery_action'),
  };
}

/** Parses `nvidia-smi -q -x` output. */
export function parseQueryXml(xml: string): XmlLog {
  const lines = splitLines(xml);
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    const n = valid.err.line;
    throw new NvidiaSmiParseError(COMMAND, n, lines[n - 1] ?? '', `not well-formed XML: ${valid.err.msg}`);
  }
  const doc = parser.parse(xml) as XmlNode;
  const root = sub(doc, 'nvidia_smi_log');
  if (!root) {
    throw new NvidiaSmiParseError(COMMAND, 0, '', 'no <nvidia_smi_log> root element');
  }
  const driverVersion = text(root, 'driver_version');
  if (driverVersion === undefined) {
    const [n, line] = lineOf(lines, '<driver_version');
    throw new NvidiaSmiParseError(COMMAND, n, line, 'driver_version is missing');
  }
  const gpusValue = child(root, 'gpu');
  const gpuNodes = Array.isArray(gpusValue) ? gpusValue.filter(isNode) : [];
  const attachedText = text(root, 'attached_gpus');
  const attachedGpus = int(attachedText) ?? gpuNodes.length;
  return {
    driverVersion,
    cudaVersion: text(root, 'cuda_version'),
    attachedGpus,
    gpus: gpuNodes.map((g) => gpuFromXml(g, lines)),
  };
}
