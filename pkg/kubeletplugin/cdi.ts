// Pure CDI (Container Device Interface) spec assembly for prepared claims: one
// spec per claim, one CDI device per allocated device, each with the container
// edits the driver gives it. Nothing here knows what the devices are; the GPU
// driver's edits live in pkg/nodeplugin/gpu-cdi.ts, and cdi-writer.ts puts the
// result on disk.
//
// Conventions (CDI spec and the DRA drivers that use it):
// - kind "k8s.<driver>/gpu"; device names "<claimUID>-<device>"; qualified IDs
//   "k8s.<driver>/gpu=<claimUID>-<device>".
// - spec file "k8s.<driver>-gpu_<claimUID>.json": the CDI library's name for a
//   transient spec of vendor "k8s.<driver>", class "gpu", transient ID = claim UID.
// - cdiVersion is the lowest version that has every field the spec uses (the
//   CDI producer library does the same), so runtimes with an older CDI library
//   still load it; our specs need 0.5.0 (deviceNodes.hostPath, and device names
//   starting with a digit, which claim UIDs often do).

export const CDI_CLASS = 'gpu';
export const CDI_MIN_VERSION = '0.5.0';

export interface CdiDeviceNode {
  readonly path: string;
  readonly hostPath?: string;
  readonly type?: string;
  readonly major?: number;
  readonly minor?: number;
  readonly fileMode?: number;
  readonly permissions?: string;
  readonly uid?: number;
  readonly gid?: number;
}

export interface CdiMount {
  readonly hostPath: string;
  readonly containerPath: string;
  readonly type?: string;
  readonly options?: readonly string[];
}

export interface CdiHook {
  readonly hookName: string;
  readonly path: string;
  readonly args?: readonly string[];
  readonly env?: readonly string[];
  readonly timeout?: number;
}

export interface CdiContainerEdits {
  readonly env?: readonly string[];
  readonly deviceNodes?: readonly CdiDeviceNode[];
  readonly mounts?: readonly CdiMount[];
  readonly hooks?: readonly CdiHook[];
  readonly additionalGids?: readonly number[];
}

export interface CdiDevice {
  readonly name: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly containerEdits: CdiContainerEdits;
}

export interface CdiSpec {
  readonly cdiVersion: string;
  readonly kind: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly devices: readonly CdiDevice[];
  readonly containerEdits?: CdiContainerEdits;
}

/** CDI vendor of a driver: "k8s.<driver>". */
export function cdiVendor(driver: string): string {
  return `k8s.${driver}`;
}

/** CDI kind of a driver: "k8s.<driver>/gpu". */
export function cdiKind(driver: string): string {
  return `${cdiVendor(driver)}/${CDI_CLASS}`;
}

/** CDI device name of one device of a claim: "<claimUID>-<device>". */
export function cdiDeviceName(claimUid: string, deviceName: string): string {
  return `${claimUid}-${deviceName}`;
}

/** Fully qualified CDI device ID, as returned to the kubelet. */
export function cdiDeviceId(driver: string, claimUid: string, deviceName: string): string {
  return `${cdiKind(driver)}=${cdiDeviceName(claimUid, deviceName)}`;
}

/** File name of a claim's spec (the CDI library's transient spec name). */
/** Kubernetes UIDs are UUIDs; anything else from the kubelet never becomes a file name. */
const CLAIM_UID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function cdiSpecFileName(driver: string, claimUid: string): string {
  if (!CLAIM_UID.test(claimUid)) throw new Error(`claim UID ${JSON.stringify(claimUid.slice(0, 80))} is not a UUID`);
  return `${cdiVendor(driver)}-${CDI_CLASS}_${claimUid}.json`;
}

const DEVICE_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9_.:-]*[a-zA-Z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Throws unless the driver name makes a valid CDI vendor (a DNS subdomain). */
export function checkCdiVendor(driver: string): void {
  const vendor = cdiVendor(driver);
  if (vendor.length > 253 || !vendor.split('.').every((l) => DNS_LABEL.test(l))) {
    throw new Error(`driver name ${JSON.stringify(driver)} does not make a valid CDI vendor ${JSON.stringify(vendor)}`);
  }
}

export function mergeEdits(a: CdiContainerEdits, b: CdiContainerEdits | undefined): CdiContainerEdits {
  if (!b) return a;
  const out: { -readonly [K in keyof CdiContainerEdits]: CdiContainerEdits[K] } = { ...a };
  if (b.env) out.env = [...(a.env ?? []), ...b.env];
  if (b.deviceNodes) out.deviceNodes = [...(a.deviceNodes ?? []), ...b.deviceNodes];
  if (b.mounts) out.mounts = [...(a.mounts ?? []), ...b.mounts];
  if (b.hooks) out.hooks = [...(a.hooks ?? []), ...b.hooks];
  if (b.additionalGids) out.additionalGids = [...(a.additionalGids ?? []), ...b.additionalGids];
  return out;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function editsNeed(edits: CdiContainerEdits | undefined): string {
  if (!edits) return '0.3.0';
  let v = '0.3.0';
  const raise = (to: string): void => {
    if (compareVersions(to, v) > 0) v = to;
  };
  if (edits.mounts?.some((m) => m.type !== undefined)) raise('0.4.0');
  if (edits.deviceNodes?.some((d) => d.hostPath !== undefined)) raise('0.5.0');
  if (edits.additionalGids && edits.additionalGids.length > 0) raise('0.7.0');
  return v;
}

/** The lowest CDI version that has every field this spec uses. */
export function minimumCdiVersion(spec: Omit<CdiSpec, 'cdiVersion'>): string {
  let v = CDI_MIN_VERSION;
  const candidates = [editsNeed(spec.containerEdits), ...spec.devices.map((d) => editsNeed(d.containerEdits))];
  if (spec.annotations || spec.devices.some((d) => d.annotations)) candidates.push('0.6.0');
  for (const c of candidates) if (compareVersions(c, v) > 0) v = c;
  return v;
}

/** One device of a claim's spec: its DRA name and the edits that give a container the device. */
export interface ClaimCdiDevice {
  readonly deviceName: string;
  readonly edits: CdiContainerEdits;
}

/**
 * The CDI spec of one claim. Deterministic: the same input always gives the
 * same spec (devices in input order), so a repeated prepare rewrites nothing.
 */
export function buildCdiSpec(driver: string, claimUid: string, devices: readonly ClaimCdiDevice[], common: CdiContainerEdits): CdiSpec {
  checkCdiVendor(driver);
  if (devices.length === 0) throw new Error(`claim ${claimUid}: a CDI spec needs at least one device`);
  const seen = new Set<string>();
  const out: CdiDevice[] = devices.map((device) => {
    const name = cdiDeviceName(claimUid, device.deviceName);
    if (!DEVICE_NAME.test(name)) throw new Error(`CDI device name ${JSON.stringify(name)} is not valid`);
    if (seen.has(name)) throw new Error(`claim ${claimUid}: device ${device.deviceName} appears twice`);
    seen.add(name);
    return { name, containerEdits: device.edits };
  });
  const body = { kind: cdiKind(driver), devices: out, containerEdits: common };
  return { cdiVersion: minimumCdiVersion(body), ...body };
}

/** Stable JSON for a spec file: two-space indent and a final newline. */
export function renderCdiSpec(spec: CdiSpec): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
}
