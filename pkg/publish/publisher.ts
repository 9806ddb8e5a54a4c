// Reconciles one node's ResourceSlices for our driver against the API server:
// creates, updates and deletes so the server holds exactly the desired slices,
// under a new pool generation whenever anything changed.
import { createHash } from 'node:crypto';
import type { Logger } from 'winston';
import type { ResourceSlice, ResourceSliceSpec } from '../api/resource.js';
import { isConflict, isNotFound } from '../k8s/client.js';
import type { Kube } from '../k8s/resources.js';
import { retryWhen, isTransient } from '../k8s/retry.js';
import { errorMessage, logger as makeLogger } from '../log/logger.js';

export interface PublisherOptions {
  readonly driver: string;
  readonly nodeName: string;
  readonly logger?: Logger;
}

export interface PublishResult {
  readonly changed: boolean;
  readonly generation: number;
  readonly created: number;
  readonly updated: number;
  readonly deleted: number;
}

/** Desired slice: name and spec; pool.generation and resourceSliceCount are set here. */
export interface DesiredSlice {
  readonly name: string;
  readonly spec: Omit<ResourceSliceSpec, 'pool'> & { pool?: Partial<ResourceSliceSpec['pool']> };
}

function specHashAnnotation(driver: string): string {
  return `${driver}/spec-hash`;
}

/** Hash of what we publish, independent of generation and of the server's quantity canonicalization. */
export function specHash(spec: DesiredSlice['spec']): string {
  const { pool, ...rest } = spec;
  const canonical = JSON.stringify({ poolName: pool?.name, ...rest }, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
  return createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}

export class SlicePublisher {
  private readonly log: Logger;
  private nodeUid: string | undefined;

  constructor(
    private readonly kube: Kube,
    private readonly opts: PublisherOptions,
  ) {
    this.log = opts.logger ?? makeLogger('publisher', { node: opts.nodeName, driver: opts.driver });
  }

  /** Our driver's slices for this node, as the server has them. */
  async current(): Promise<ResourceSlice[]> {
    return await this.kube.resourceSlices.list(undefined, { fieldSelector: `spec.nodeName=${this.opts.nodeName},spec.driver=${this.opts.driver}` });
  }

  private async ownerUid(): Promise<string> {
    this.nodeUid ??= (await this.kube.nodes.get(this.opts.nodeName)).metadata.uid;
    if (!this.nodeUid) throw new Error(`node ${this.opts.nodeName} has no uid`);
    return this.nodeUid;
  }

  /** Makes the server's slices equal to `desired`, retrying conflicts and transient errors. */
  async publish(desired: readonly DesiredSlice[]): Promise<PublishResult> {
    return await retryWhen(() => this.publishOnce(desired), isTransient, { attempts: 6, initialDelayMs: 100 });
  }

  private async publishOnce(desired: readonly DesiredSlice[]): Promise<PublishResult> {
    const actual = await this.current();
    const byName = new Map(actual.map((s) => [s.metadata.name ?? '', s]));
    const hashes = desired.map((d) => specHash(d.spec));
    const ann = specHashAnnotation(this.opts.driver);
    const maxGen = Math.max(0, ...actual.map((s) => s.spec.pool.generation));
    const generationsAgree = actual.every((s) => s.spec.pool.generation === maxGen);
    const unchanged =
      actual.length === desired.length &&
      generationsAgree &&
      desired.every((d, i) => {
        const a = byName.get(d.name);
        return a !== undefined && a.metadata.annotations?.[ann] === hashes[i] && a.spec.pool.resourceSliceCount === desired.length;
      });
    if (unchanged) return { changed: false, generation: maxGen, created: 0, updated: 0, deleted: 0 };

    const generation = maxGen + 1;
    const uid = await this.ownerUid();
    let created = 0;
    let updated = 0;
    let deleted = 0;
    for (const [i, d] of desired.entries()) {
      const body: ResourceSlice = {
        metadata: {
          name: d.name,
          annotations: { [ann]: hashes[i] ?? '' },
          labels: { [`${this.opts.driver}/node`]: this.opts.nodeName },
          ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.opts.nodeName, uid, controller: true }],
        },
        spec: {
          ...d.spec,
          driver: this.opts.driver,
          nodeName: this.opts.nodeName,
          pool: { name: d.spec.pool?.name ?? this.opts.nodeName, generation, resourceSliceCount: desired.length },
        },
      };
      const existing = byName.get(d.name);
      if (existing) {
        await this.kube.resourceSlices.replace({ ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } });
        updated++;
      } else {
        // AlreadyExists is a 409, so a concurrent create makes publish() re-read and retry.
        await this.kube.resourceSlices.create(body);
        created++;
      }
    }
    const wanted = new Set(desired.map((d) => d.name));
    for (const s of actual) {
      const name = s.metadata.name ?? '';
      if (wanted.has(name)) continue;
      try {
        await this.kube.resourceSlices.delete(name, undefined, { preconditions: { uid: s.metadata.uid } });
        deleted++;
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
    }
    this.log.info('published ResourceSlices', { generation, slices: desired.length, created, updated, deleted });
    return { changed: true, generation, created, updated, deleted };
  }

  /** Deletes every slice of ours for this node (plugin uninstall / node drain). */
  async unpublish(): Promise<number> {
    let n = 0;
    for (const s of await this.current()) {
      try {
        await this.kube.resourceSlices.delete(s.metadata.name ?? '');
        n++;
      } catch (err) {
        if (!isNotFound(err)) this.log.warn('could not delete ResourceSlice', { slice: s.metadata.name, error: errorMessage(err) });
      }
    }
    return n;
  }
}
