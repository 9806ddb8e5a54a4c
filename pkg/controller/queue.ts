// A keyed work queue: handlers only enqueue keys; each key is processed by one
// worker at a time, deduplicated while waiting, and retried with per-key
// exponential backoff when its sync fails.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'winston';
import { isConflict } from '../k8s/client.js';
import { errorMessage, logger as makeLogger } from '../log/logger.js';

export type SyncResult = void | { requeueAfterMs: number };

export interface QueueOptions {
  readonly workers?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly logger?: Logger;
}

export class WorkQueue {
  private readonly pending = new Set<string>();
  private readonly order: string[] = [];
  private readonly active = new Set<string>();
  /** Keys re-added while being processed: run again afterwards. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly log: Logger;
  private running = false;
  private wake: (() => void) | undefined;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly sync: (key: string) => Promise<SyncResult>,
    private readonly opts: QueueOptions = {},
  ) {
    this.log = opts.logger ?? makeLogger('queue');
  }

  /** Adds a key now (a no-op if it is already waiting). */
  add(key: string): void {
    const t = this.timers.get(key);
    if (t) {
      clearTimeout(t);
      this.timers.delete(key);
    }
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.pending.has(key)) return;
    this.pending.add(key);
    this.order.push(key);
    this.wake?.();
  }

  /** Adds a key after a delay (the earliest of several requests wins). */
  addAfter(key: string, delayMs: number): void {
    if (this.pending.has(key) || this.timers.has(key)) return;
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    t.unref();
    this.timers.set(key, t);
  }

  /** Forgets a key's failure count (after it succeeded, or was deleted). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  get length(): number {
    return this.pending.size;
  }

  /** Number of keys waiting, running or waiting to retry. */
  get backlog(): number {
    return this.pending.size + this.active.size + this.timers.size;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const n = this.opts.workers ?? 4;
    this.workers = Array.from({ length: n }, () => this.work());
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.wake?.();
    await Promise.all(this.workers);
  }

  /** Resolves when nothing is waiting or running (timers for retries may still be set). */
  async idle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size + this.active.size > 0) {
      if (Date.now() > deadline) throw new Error('work queue did not drain in time');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private next(): string | undefined {
    while (this.order.length) {
      const k = this.order.shift();
      if (k !== undefined && this.pending.has(k)) {
        this.pending.delete(k);
        return k;
      }
    }
    return undefined;
  }

  private async work(): Promise<void> {
    while (this.running) {
      const key = this.next();
      if (key === undefined) {
        await new Promise<void>((resolve) => {
          const prev = this.wake;
          this.wake = () => {
            this.wake = undefined;
            prev?.();
            resolve();
          };
        });
        continue;
      }
      this.active.add(key);
      try {
        // A sync that does no I/O (a claim that does not fit, a pod that is not
        // ours) resolves through microtasks only; without a turn of the event
        // loop between keys, a backlog of thousands would starve timers, the
        // webhook, /metrics and the Lease renewal until the leader lost its lease.
        await yieldToEventLoop();
        const res = await this.sync(key);
        this.failures.delete(key);
        if (res && res.requeueAfterMs >= 0) this.addAfter(key, res.requeueAfterMs);
      } catch (err) {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delay = Math.min(this.opts.maxDelayMs ?? 30_000, (this.opts.baseDelayMs ?? 100) * 2 ** (n - 1));
        // A conflict only means we read an older version: retry quietly.
        if (isConflict(err)) this.log.debug('conflict; will re-read and retry', { key, attempt: n, retryInMs: delay });
        else this.log.warn('sync failed; will retry', { key, attempt: n, retryInMs: delay, error: errorMessage(err) });
        this.addAfter(key, delay);
      } finally {
        this.active.delete(key);
        if (this.dirty.delete(key)) this.add(key);
      }
    }
  }
}
