// Strict validation of the opaque device configuration our driver accepts in
// DeviceClass and ResourceClaim `config[].opaque.parameters`, and resolution of
// which configuration applies to each allocated device.
//
// Format (apiVersion gpu.cascade.dev/v1alpha1, kind GpuConfig):
//
//   apiVersion: gpu.cascade.dev/v1alpha1     required
//   kind: GpuConfig                          required
//   sharing:                                 optional; default: Exclusive for a whole
//                                            GPU or MIG device, MPS for a shared GPU
//     strategy: Exclusive | TimeSlicing | MPS   required inside sharing
//     timeSlicing:                           only with strategy TimeSlicing
//       interval: Default | Short | Medium | Long   optional; default Default
//
// Exclusive: no sharing settings applied (the claim's containers get the device
// as it is). TimeSlicing: the GPU's time slice is set with `nvidia-smi
// compute-policy`; processes take turns and nothing limits their memory. MPS:
// the node plugin runs an MPS control daemon for the GPU and each claim's
// containers get the memory limit and compute share the allocation consumed
// (docs/devices.md "Shared GPUs"). A MIG device takes Exclusive or MPS (one
// daemon for the instance, shared by the claim's containers; a time slice is set
// per GPU, not per instance); a shared GPU takes MPS or TimeSlicing.
// Anything else (an unknown field, a wrong kind or apiVersion, a value out of
// its set, a wrong JSON type) is an error naming the field, which fails only
// the claim that carries it.
import type { DeviceAllocationConfiguration, DeviceRequestAllocationResult } from '../api/resource.js';

export const CONFIG_GROUP = 'gpu.cascade.dev';
export const CONFIG_API_VERSION = `${CONFIG_GROUP}/v1alpha1`;
export const GPU_CONFIG_KIND = 'GpuConfig';

export const SHARING_STRATEGIES = ['Exclusive', 'TimeSlicing', 'MPS'] as const;
export type SharingStrategy = (typeof SHARING_STRATEGIES)[number];

export const TIME_SLICE_INTERVALS = ['Default', 'Short', 'Medium', 'Long'] as const;
export type TimeSliceInterval = (typeof TIME_SLICE_INTERVALS)[number];

export type GpuSharing = { readonly strategy: 'Exclusive' } | { readonly strategy: 'MPS' } | { readonly strategy: 'TimeSlicing'; readonly timeSlicing: { readonly interval: TimeSliceInterval } };

/** A validated configuration; `sharing` undefined means the device type's default. */
export interface GpuConfig {
  readonly sharing?: GpuSharing;
}

export const DEFAULT_GPU_CONFIG: GpuConfig = {};

/** The sharing a device gets: the config's, else MPS for a shared GPU and Exclusive for the rest. */
export function sharingFor(config: GpuConfig, deviceType: 'gpu' | 'mig' | 'shared'): GpuSharing {
  return config.sharing ?? (deviceType === 'shared' ? { strategy: 'MPS' } : { strategy: 'Exclusive' });
}

export type ConfigResult = { readonly ok: true; readonly config: GpuConfig } | { readonly ok: false; readonly error: string };

class FieldError extends Error {}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${value}`;
  return typeof value;
}

function objectAt(value: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(value)) throw new FieldError(`${path}: must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      const where = path === '' ? key : `${path}.${key}`;
      throw new FieldError(`${where}: unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
  return value;
}

function oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new FieldError(`${path}: must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

function parseSharing(value: unknown): GpuSharing {
  const sharing = objectAt(value, 'sharing', ['strategy', 'timeSlicing']);
  if (!('strategy' in sharing)) throw new FieldError('sharing.strategy: required');
  const strategy = oneOf(sharing.strategy, 'sharing.strategy', SHARING_STRATEGIES);
  if (strategy === 'Exclusive' || strategy === 'MPS') {
    if ('timeSlicing' in sharing) throw new FieldError('sharing.timeSlicing: only allowed with strategy "TimeSlicing"');
    return { strategy };
  }
  let interval: TimeSliceInterval = 'Default';
  if ('timeSlicing' in sharing) {
    const ts = objectAt(sharing.timeSlicing, 'sharing.timeSlicing', ['interval']);
    if ('interval' in ts) interval = oneOf(ts.interval, 'sharing.timeSlicing.interval', TIME_SLICE_INTERVALS);
  }
  return { strategy, timeSlicing: { interval } };
}

/** Validates one opaque `parameters` value of our driver. */
export function parseGpuConfig(parameters: unknown): ConfigResult {
  try {
    if (!isPlainObject(parameters)) throw new FieldError(`parameters: must be an object, got ${describe(parameters)}`);
    const obj = objectAt(parameters, '', ['apiVersion', 'kind', 'sharing']);
    if (!('apiVersion' in obj)) throw new FieldError(`apiVersion: required ("${CONFIG_API_VERSION}")`);
    if (obj.apiVersion !== CONFIG_API_VERSION) {
      throw new FieldError(`apiVersion: must be "${CONFIG_API_VERSION}", got ${describe(obj.apiVersion)}`);
    }
    if (!('kind' in obj)) throw new FieldError(`kind: required ("${GPU_CONFIG_KIND}")`);
    if (obj.kind !== GPU_CONFIG_KIND) throw new FieldError(`kind: must be "${GPU_CONFIG_KIND}", got ${describe(obj.kind)}`);
    return { ok: true, config: 'sharing' in obj ? { sharing: parseSharing(obj.sharing) } : {} };
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, error: err.message };
    throw err;
  }
}

/** Whether a config entry's `requests` list covers an allocation result's request ("req" or "req/sub"). */
export function configAppliesTo(configRequests: readonly string[] | undefined, resultRequest: string): boolean {
  if (!configRequests || configRequests.length === 0) return true;
  const base = resultRequest.split('/')[0];
  return configRequests.some((r) => r === resultRequest || r === base);
}

/**
 * The configuration for one allocated device: every config entry of our driver
 * that applies to its request is validated (a bad one fails the claim even if a
 * later entry would override it), then entries are applied in order, class
 * configs before claim configs, so the last applicable one wins.
 */
export function resolveDeviceConfig(driver: string, configs: readonly DeviceAllocationConfiguration[] | undefined, result: Pick<DeviceRequestAllocationResult, 'request'>): ConfigResult {
  const ordered = [...(configs ?? []).filter((c) => c.source === 'FromClass'), ...(configs ?? []).filter((c) => c.source !== 'FromClass')];
  let chosen: GpuConfig = DEFAULT_GPU_CONFIG;
  for (const entry of ordered) {
    if (!entry.opaque || entry.opaque.driver !== driver) continue;
    if (!configAppliesTo(entry.requests, result.request)) continue;
    const parsed = parseGpuConfig(entry.opaque.parameters);
    if (!parsed.ok) {
      const from = entry.source === 'FromClass' ? 'device class' : 'claim';
      const scope = entry.requests && entry.requests.length > 0 ? ` for requests [${entry.requests.join(', ')}]` : '';
      return { ok: false, error: `invalid ${CONFIG_API_VERSION} ${GPU_CONFIG_KIND} in the ${from} config${scope}: ${parsed.error}` };
    }
    chosen = parsed.config;
  }
  return { ok: true, config: chosen };
}

/** Which strategies each device type takes; a config asking for another fails the claim. */
export function checkConfigForDevice(config: GpuConfig, deviceType: 'gpu' | 'mig' | 'shared', deviceName: string): string | undefined {
  const strategy = sharingFor(config, deviceType).strategy;
  if (deviceType === 'mig' && strategy === 'TimeSlicing') {
    return `sharing.strategy: "TimeSlicing" is not supported on MIG device ${deviceName}: nvidia-smi sets a time slice for a whole GPU, not for one MIG instance; use "MPS" to share the partition among the claim's containers, or "Exclusive"`;
  }
  if (deviceType === 'shared' && strategy === 'Exclusive') {
    return `sharing.strategy: "Exclusive" contradicts shared GPU ${deviceName}, which other claims use too; use "MPS" (the default) or "TimeSlicing"`;
  }
  return undefined;
}

/**
 * What is wrong with the opaque configs of our driver that a claim carries
 * (claim configs, then those of the classes it names), or undefined. The
 * controller asks this before allocating, so a claim the node plugin would
 * refuse never holds a device while its pod retries forever.
 */
export function claimConfigProblem(
  driver: string,
  claimConfigs: readonly { readonly requests?: readonly string[]; readonly opaque?: { readonly driver: string; readonly parameters: unknown } }[] | undefined,
  classConfigs: ReadonlyMap<string, readonly { readonly opaque?: { readonly driver: string; readonly parameters: unknown } }[]>,
): string | undefined {
  const check = (where: string, opaque: { readonly driver: string; readonly parameters: unknown } | undefined): string | undefined => {
    if (!opaque || opaque.driver !== driver) return undefined;
    const parsed = parseGpuConfig(opaque.parameters);
    if (!parsed.ok) return `invalid ${CONFIG_API_VERSION} ${GPU_CONFIG_KIND} in ${where}: ${parsed.error}`;
    return undefined;
  };
  for (const [i, c] of (claimConfigs ?? []).entries()) {
    const scope = c.requests && c.requests.length > 0 ? ` (requests ${c.requests.join(', ')})` : '';
    const problem = check(`the claim's config[${i}]${scope}`, c.opaque);
    if (problem) return problem;
  }
  for (const [name, configs] of classConfigs) {
    for (const [i, c] of configs.entries()) {
      const problem = check(`device class ${name} config[${i}]`, c.opaque);
      if (problem) return problem;
    }
  }
  return undefined;
}
