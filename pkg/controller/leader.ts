// Leader election on a coordination.k8s.io/v1 Lease (client-node has none):
// acquire when free or expired, renew periodically, step down when renewals
// fail for longer than the lease, and release on shutdown so a peer takes over fast.
import type { Logger } from 'winston';
import { isConflict, isNotFound } from '../k8s/client.js';
import type { Kube } from '../k8s/resources.js';
import type { Lease } from '../k8s/types.js';
import { errorMessage, logger as makeLogger } from '../log/logger.js';

export interface LeaderElectionOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationSeconds?: number;
  readonly renewIntervalMs?: number;
  readonly retryIntervalMs?: number;
  readonly logger?: Logger;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
}

function microNow(): string {
  return new Date().toISOString().replace('Z', '000Z');
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private guard: NodeJS.Timeout | undefined;
  /** When this replica saw the lease's current version first: expiry by our own clock, not the holder's. */
  private observed: { rv: string; at: number } | undefined;
  private readonly log: Logger;

  constructor(
    private readonly kube: Kube,
    private readonly opts: LeaderElectionOptions,
  ) {
    this.log = opts.logger ?? makeLogger('leader-election', { lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private get duration(): number {
    return this.opts.leaseDurationSeconds ?? 15;
  }

  start(): void {
    this.stopped = false;
    // Step down on time even while a renew request hangs.
    this.guard = setInterval(() => {
      if (this.leading && Date.now() - this.lastRenew > this.duration * 1000 * 0.8) {
        this.log.warn('lease not renewed in time; stepping down');
        this.setLeading(false);
      }
    }, 1_000);
    this.guard.unref();
    void this.tick();
  }

  /**
   * Stops campaigning; a leader releases the lease so another replica can take
   * it at once. onStoppedLeading is not called: this is a shutdown, not a loss.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.guard) clearInterval(this.guard);
    if (this.leading) {
      this.leading = false;
      try {
        const lease = await this.kube.leases.get(this.opts.name, this.opts.namespace);
        if (lease.spec.holderIdentity === this.opts.identity) {
          await this.kube.leases.mergePatch(
            this.opts.name,
            { metadata: { resourceVersion: lease.metadata.resourceVersion }, spec: { holderIdentity: null, leaseDurationSeconds: 1 } },
            this.opts.namespace,
          );
        }
      } catch (err) {
        this.log.warn('could not release lease', { error: errorMessage(err) });
      }
    }
  }

  private setLeading(v: boolean): void {
    if (v === this.leading) return;
    this.leading = v;
    if (v) {
      this.log.info('became leader');
      this.opts.onStartedLeading();
    } else {
      this.log.info('stopped leading');
      this.opts.onStoppedLeading();
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    const ms = this.leading ? (this.opts.renewIntervalMs ?? Math.floor((this.duration * 1000) / 3)) : (this.opts.retryIntervalMs ?? 2_000);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const attempt = Date.now();
    try {
      const ok = await this.tryAcquireOrRenew();
      if (this.stopped) return;
      if (ok) {
        // The lease is good from when we asked, not from when the answer came.
        this.lastRenew = attempt;
        this.setLeading(true);
      } else {
        this.setLeading(false);
      }
    } catch (err) {
      this.log.warn('lease update failed', { error: errorMessage(err) });
      // Keep leading only while the lease we hold cannot have expired.
      if (this.leading && Date.now() - this.lastRenew > this.duration * 1000 * 0.8) this.setLeading(false);
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    let lease: Lease;
    try {
      lease = await this.kube.leases.get(name, namespace);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.kube.leases.create({
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: this.duration, acquireTime: microNow(), renewTime: microNow(), leaseTransitions: 0 },
        });
        return true;
      } catch (e) {
        if (isConflict(e)) return false;
        throw e;
      }
    }
    const holder = lease.spec.holderIdentity;
    const rv = lease.metadata.resourceVersion ?? '';
    if (this.observed?.rv !== rv) this.observed = { rv, at: Date.now() };
    const expired = !holder || Date.now() > this.observed.at + (lease.spec.leaseDurationSeconds ?? this.duration) * 1000;
    if (holder !== identity && !expired) return false;
    const spec: Lease['spec'] =
      holder === identity
        ? { renewTime: microNow(), leaseDurationSeconds: this.duration }
        : { holderIdentity: identity, acquireTime: microNow(), renewTime: microNow(), leaseDurationSeconds: this.duration, leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 };
    try {
      // Conditional on the resourceVersion we read: two candidates cannot both win.
      await this.kube.leases.mergePatch(name, { metadata: { resourceVersion: lease.metadata.resourceVersion }, spec }, namespace);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }
}
