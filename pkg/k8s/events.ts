// Records events.k8s.io/v1 Events on objects, so `kubectl describe` shows them.
// Repeats of the same reason and note on the same object within a short window
// become a series (count) instead of new objects.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'winston';
import type { Kube, KubeObject } from './resources.js';
import type { EventV1, ObjectReference } from './types.js';
import { errorMessage, logger as makeLogger } from '../log/logger.js';

/** Event notes are limited to 1 KiB by the API. */
export const MAX_NOTE_BYTES = 1024;

export function truncateNote(note: string, maxBytes = MAX_NOTE_BYTES): string {
  if (Buffer.byteLength(note) <= maxBytes) return note;
  let s = note;
  while (Buffer.byteLength(s + '…') > maxBytes) s = s.slice(0, Math.floor(s.length * 0.95));
  return s + '…';
}

export function referenceTo(obj: KubeObject, apiVersion?: string, kind?: string): ObjectReference {
  return {
    apiVersion: apiVersion ?? obj.apiVersion,
    kind: kind ?? obj.kind,
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    uid: obj.metadata.uid,
    resourceVersion: obj.metadata.resourceVersion,
  };
}

export interface EventInput {
  readonly regarding: ObjectReference;
  readonly related?: ObjectReference;
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly action: string;
  readonly note: string;
}

interface SeriesEntry {
  name: string;
  namespace: string;
  count: number;
  at: number;
}

/**
 * Events are written a few at a time, so that thousands of them (one per claim
 * that does not fit, when a big batch arrives) never take the connections the
 * allocations themselves need; past the backlog limit they are dropped and
 * counted in the log rather than queued without bound.
 */
const MAX_IN_FLIGHT = 8;
const MAX_BACKLOG = 2_000;

export class EventRecorder {
  private readonly log: Logger;
  private readonly recent = new Map<string, SeriesEntry>();
  private readonly backlog: (() => Promise<void>)[] = [];
  private inFlight = 0;
  private dropped = 0;

  constructor(
    private readonly kube: Kube,
    readonly controller: string,
    readonly instance: string,
    logger?: Logger,
    private readonly seriesWindowMs = 10 * 60_000,
  ) {
    this.log = logger ?? makeLogger('events');
  }

  /** Writes the event; failures are logged, never thrown (events are best effort). */
  record(ev: EventInput): Promise<void> {
    if (this.backlog.length >= MAX_BACKLOG) {
      if (this.dropped++ % 500 === 0) this.log.warn('too many events waiting to be written; dropping some', { dropped: this.dropped, backlog: this.backlog.length });
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.backlog.push(() => this.write(ev).finally(resolve));
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT) {
      const job = this.backlog.shift();
      if (!job) return;
      this.inFlight++;
      void job().finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async write(ev: EventInput): Promise<void> {
    const namespace = ev.regarding.namespace ?? 'default';
    const note = truncateNote(ev.note);
    const key = `${namespace}/${ev.regarding.uid ?? ev.regarding.name ?? ''}/${ev.type}/${ev.reason}/${note}`;
    const now = Date.now();
    const micro = new Date(now).toISOString().replace('Z', '000Z');
    const prior = this.recent.get(key);
    try {
      if (prior && now - prior.at < this.seriesWindowMs) {
        prior.count++;
        prior.at = now;
        await this.kube.events.mergePatch(prior.name, { series: { count: prior.count, lastObservedTime: micro } }, prior.namespace);
        return;
      }
      const name = `${ev.regarding.name ?? 'object'}.${randomBytes(8).toString('hex')}`;
      const body: EventV1 = {
        metadata: { name, namespace },
        eventTime: micro,
        reportingController: this.controller,
        reportingInstance: this.instance,
        action: ev.action,
        reason: ev.reason,
        regarding: ev.regarding,
        ...(ev.related ? { related: ev.related } : {}),
        note,
        type: ev.type,
      };
      await this.kube.events.create(body);
      this.recent.set(key, { name, namespace, count: 1, at: now });
      if (this.recent.size > 5_000) this.prune(now);
    } catch (err) {
      this.log.warn('could not record event', { reason: ev.reason, object: `${namespace}/${ev.regarding.name ?? ''}`, error: errorMessage(err) });
    }
  }

  private prune(now: number): void {
    for (const [k, v] of this.recent) if (now - v.at >= this.seriesWindowMs) this.recent.delete(k);
  }
}
