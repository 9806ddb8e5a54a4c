// Where prepare reads ResourceClaims and writes what each device became:
// the API server in production, memory in the prepare benchmark.
import type { AllocatedDeviceStatus, ResourceClaim } from '../api/resource.js';
import { isNotFound } from '../k8s/client.js';
import type { Kube } from '../k8s/resources.js';
import { retryOnConflict } from '../k8s/retry.js';
import { errorMessage, type Logger } from '../log/logger.js';
import type { ClaimRef } from '../kubeletplugin/preparer.js';

export interface ClaimSource {
  /** The claim as the API server has it now; rejects with a KubeApiError (404...) as the client does. */
  get(namespace: string, name: string): Promise<ResourceClaim>;
}

export class KubeClaimSource implements ClaimSource {
  constructor(private readonly kube: Kube) {}

  async get(namespace: string, name: string): Promise<ResourceClaim> {
    return await this.kube.resourceClaims.get(name, namespace);
  }
}

/** What one prepared device became, for the claim's status.devices[].data. */
export interface DeviceStatusData {
  readonly device: string;
  /** A shared GPU's share: status.devices entries are keyed by device and share ID. */
  readonly shareID?: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** Records prepared devices in the claim; best effort, never fails a prepare. */
export interface ClaimStatusSink {
  prepared(ref: ClaimRef, devices: readonly DeviceStatusData[]): void;
  /** Prepare failed: each of the claim's devices on this node gets Ready=False with the reason. */
  failed(ref: ClaimRef, devices: readonly string[], reason: string, message: string): void;
  unprepared(ref: ClaimRef): void;
  /** Resolves once every queued write has finished (for shutdown and tests). */
  idle(): Promise<void>;
}

/** RFC 3339 without fractions, as metav1.Time serialises. */
function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The claim's status.devices with our entries for `nodeName` replaced by
 * `ours` (pure). Entries of other drivers and pools stay as they are.
 */
export function mergeDeviceStatuses(existing: readonly AllocatedDeviceStatus[] | undefined, driver: string, pool: string, ours: readonly AllocatedDeviceStatus[]): AllocatedDeviceStatus[] {
  const others = (existing ?? []).filter((d) => !(d.driver === driver && d.pool === pool));
  return [...others, ...ours];
}

export function readyStatus(driver: string, pool: string, d: DeviceStatusData, at = now()): AllocatedDeviceStatus {
  return {
    driver,
    pool,
    device: d.device,
    ...(d.shareID !== undefined ? { shareID: d.shareID } : {}),
    conditions: [{ type: 'Ready', status: 'True', reason: 'Prepared', message: 'the device is set up and its CDI spec written', lastTransitionTime: at }],
    data: d.data,
  };
}

/** The entry of a device whose prepare failed: Ready=False, the reason, the sentence (at most 32 KiB, the API's limit). */
export function failedStatus(driver: string, pool: string, device: string, reason: string, message: string, at = now()): AllocatedDeviceStatus {
  return {
    driver,
    pool,
    device,
    conditions: [{ type: 'Ready', status: 'False', reason, message: message.slice(0, 32 * 1024), lastTransitionTime: at }],
  };
}

/** Entries compared without their transition times: a retry with the same outcome writes nothing. */
function sameEntries(a: readonly AllocatedDeviceStatus[], b: readonly AllocatedDeviceStatus[]): boolean {
  const strip = (list: readonly AllocatedDeviceStatus[]): string => JSON.stringify(list.map((d) => ({ ...d, conditions: (d.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: undefined })) })));
  return strip(a) === strip(b);
}

/**
 * Writes status.devices with a merge patch conditioned on resourceVersion,
 * re-reading on conflict. Writes for one claim run in order, so an unprepare
 * never overtakes the prepare before it.
 */
export class KubeClaimStatus implements ClaimStatusSink {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly kube: Kube,
    private readonly driver: string,
    private readonly nodeName: string,
    private readonly log: Logger,
  ) {}

  prepared(ref: ClaimRef, devices: readonly DeviceStatusData[]): void {
    const at = now();
    this.enqueue(ref, 'record prepared devices in the claim status', () => devices.map((d) => readyStatus(this.driver, this.nodeName, d, at)));
  }

  failed(ref: ClaimRef, devices: readonly string[], reason: string, message: string): void {
    if (devices.length === 0) return;
    const at = now();
    this.enqueue(ref, 'record the failed prepare in the claim status', () => devices.map((d) => failedStatus(this.driver, this.nodeName, d, reason, message, at)));
  }

  unprepared(ref: ClaimRef): void {
    this.enqueue(ref, 'remove prepared devices from the claim status', () => []);
  }

  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  private enqueue(ref: ClaimRef, what: string, ours: () => AllocatedDeviceStatus[]): void {
    const previous = this.chains.get(ref.uid) ?? Promise.resolve();
    const next = previous
      .then(() => this.write(ref, ours()))
      .catch((err: unknown) => {
        this.log.warn(`could not ${what}`, { claim: `${ref.namespace}/${ref.name}`, uid: ref.uid, error: errorMessage(err) });
      })
      .finally(() => {
        if (this.chains.get(ref.uid) === next) this.chains.delete(ref.uid);
      });
    this.chains.set(ref.uid, next);
  }

  private async write(ref: ClaimRef, ours: AllocatedDeviceStatus[]): Promise<void> {
    await retryOnConflict(async () => {
      let claim: ResourceClaim;
      try {
        claim = await this.kube.resourceClaims.get(ref.name, ref.namespace);
      } catch (err) {
        if (isNotFound(err)) return;
        throw err;
      }
      if (claim.metadata.uid !== ref.uid) return;
      const existing = claim.status?.devices;
      const hadOurs = (existing ?? []).some((d) => d.driver === this.driver && d.pool === this.nodeName);
      if (ours.length === 0 && !hadOurs) return;
      const current = (existing ?? []).filter((d) => d.driver === this.driver && d.pool === this.nodeName);
      if (hadOurs && sameEntries(current, ours)) return;
      // Entries may only name allocated devices: a deallocated claim has nothing to keep.
      if (ours.length > 0 && !claim.status?.allocation) return;
      const devices = mergeDeviceStatuses(existing, this.driver, this.nodeName, ours);
      await this.kube.resourceClaims.mergePatch(
        ref.name,
        { metadata: { resourceVersion: claim.metadata.resourceVersion }, status: { devices: devices.length > 0 ? devices : null } },
        ref.namespace,
        'status',
      );
    });
  }
}
