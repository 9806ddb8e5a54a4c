// A list+watch cache for one resource type that keeps itself running: it
// relists after 410 Gone, re-watches after the server closes a stream, and
// restarts with backoff after any error (client-node's informers stop instead).
import type { Logger } from 'winston';
import { KubeClient, isGone, isNotFound, type Query, type WatchEvent } from './client.js';
import { resourcePath, type KubeObject, type ListOf, type ResourceType } from './resources.js';
import { errorMessage, logger as makeLogger } from '../log/logger.js';

export type InformerHandler<T> = {
  add?: (obj: T) => void;
  update?: (oldObj: T, newObj: T) => void;
  delete?: (obj: T) => void;
  /** Called after every (re)list, with the full set of keys known. */
  resync?: () => void;
};

export interface InformerOptions<T extends KubeObject = KubeObject> {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly logger?: Logger;
  /** Longest pause between restarts after errors. */
  readonly maxBackoffMs?: number;
  /** Server-side timeout of each watch request. */
  readonly watchTimeoutSeconds?: number;
  /**
   * The resource may not be served (a CustomResourceDefinition not installed
   * yet): a 404 counts as an empty, synced cache, and the list is retried
   * until the resource appears.
   */
  readonly optional?: boolean;
  /** Applied to every object before it is cached and handed to the handlers (to shrink it, say); may change it in place. */
  readonly transform?: (obj: T) => T;
}

/** Cache key: "namespace/name" or "name" for cluster-scoped objects. */
export function objectKey(obj: KubeObject): string {
  const { namespace, name } = obj.metadata;
  return namespace ? `${namespace}/${name ?? ''}` : (name ?? '');
}

export class Informer<T extends KubeObject> {
  private readonly store = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly log: Logger;
  private abort: AbortController | undefined;
  private running = false;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private lastResourceVersion = '';
  /** Counts for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, errors: 0, gone: 0 };

  constructor(
    private readonly client: KubeClient,
    readonly type: ResourceType,
    private readonly opts: InformerOptions<T> = {},
  ) {
    this.log = opts.logger ?? makeLogger('informer', { resource: type.plural });
  }

  on(handler: InformerHandler<T>): this {
    this.handlers.push(handler);
    return this;
  }

  /** Starts the list/watch loop in the background. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    void this.loop(this.abort.signal);
  }

  stop(): void {
    this.running = false;
    this.abort?.abort();
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has filled the cache. */
  async waitForSync(timeoutMs = 60_000): Promise<void> {
    if (this.synced) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`informer for ${this.type.plural} did not sync within ${timeoutMs} ms`)), timeoutMs);
      this.syncWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  private readonly indexers = new Map<string, { keysOf: (obj: T) => readonly string[]; index: Map<string, Set<string>> }>();

  /**
   * Adds an index over the cache (like client-go's Indexers): `keysOf` gives
   * the index keys of an object, byIndex() the objects under one key. Kept up
   * to date by the cache itself, before any handler runs.
   */
  addIndex(name: string, keysOf: (obj: T) => readonly string[]): this {
    const index = new Map<string, Set<string>>();
    this.indexers.set(name, { keysOf, index });
    for (const [key, obj] of this.store) this.indexAdd(index, keysOf(obj), key);
    return this;
  }

  /** The cached objects an index files under `indexKey`. */
  byIndex(name: string, indexKey: string): T[] {
    const keys = this.indexers.get(name)?.index.get(indexKey);
    if (!keys) return [];
    const out: T[] = [];
    for (const k of keys) {
      const obj = this.store.get(k);
      if (obj) out.push(obj);
    }
    return out;
  }

  private indexAdd(index: Map<string, Set<string>>, indexKeys: readonly string[], key: string): void {
    for (const ik of indexKeys) {
      let set = index.get(ik);
      if (!set) index.set(ik, (set = new Set()));
      set.add(key);
    }
  }

  private put(key: string, obj: T): void {
    const old = this.store.get(key);
    this.store.set(key, obj);
    for (const { keysOf, index } of this.indexers.values()) {
      if (old) this.indexRemove(index, keysOf(old), key);
      this.indexAdd(index, keysOf(obj), key);
    }
  }

  private remove(key: string): void {
    const old = this.store.get(key);
    this.store.delete(key);
    if (!old) return;
    for (const { keysOf, index } of this.indexers.values()) this.indexRemove(index, keysOf(old), key);
  }

  private indexRemove(index: Map<string, Set<string>>, indexKeys: readonly string[], key: string): void {
    for (const ik of indexKeys) {
      const set = index.get(ik);
      set?.delete(key);
      if (set && set.size === 0) index.delete(ik);
    }
  }

  list(): T[] {
    return [...this.store.values()];
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  private query(): Query {
    return { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector };
  }

  private emit(fn: (h: InformerHandler<T>) => void): void {
    for (const h of this.handlers) {
      try {
        fn(h);
      } catch (err) {
        this.log.error('informer handler threw', { error: errorMessage(err) });
      }
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const path = resourcePath(this.type, this.opts.namespace);
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.client.request<ListOf<T>>('GET', path, { query: { ...this.query(), limit: 500, continue: cont }, signal });
      const transform = this.opts.transform;
      for (const item of page.items ?? []) fresh.set(objectKey(item), transform ? transform(item) : item);
      rv = page.metadata.resourceVersion ?? rv;
      cont = page.metadata.continue || undefined;
    } while (cont);
    this.stats.lists++;
    // Reconcile the cache with the fresh list, emitting what changed while we were not watching.
    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.remove(key);
        this.emit((h) => h.delete?.(old));
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      this.put(key, obj);
      if (!old) this.emit((h) => h.add?.(obj));
      else if (old.metadata.uid !== obj.metadata.uid) {
        // Deleted and recreated under the same name while we were not watching.
        this.emit((h) => h.delete?.(old));
        this.emit((h) => h.add?.(obj));
      } else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit((h) => h.update?.(old, obj));
    }
    this.lastResourceVersion = rv;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    this.emit((h) => h.resync?.());
  }

  private apply(ev: WatchEvent<T>): void {
    const obj = ev.type === 'ADDED' || ev.type === 'MODIFIED' ? (this.opts.transform?.(ev.object) ?? ev.object) : ev.object;
    if (obj.metadata?.resourceVersion) this.lastResourceVersion = obj.metadata.resourceVersion;
    if (ev.type === 'BOOKMARK') return;
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (ev.type === 'DELETED') {
      this.remove(key);
      this.emit((h) => h.delete?.(old ?? obj));
      return;
    }
    this.put(key, obj);
    if (old) this.emit((h) => h.update?.(old, obj));
    else this.emit((h) => h.add?.(obj));
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const maxBackoff = this.opts.maxBackoffMs ?? 10_000;
    let backoff = 200;
    let needList = true;
    while (this.running && !signal.aborted) {
      try {
        if (needList) {
          await this.relist(signal);
          needList = false;
        }
        this.stats.watches++;
        await this.client.watch<T>(
          resourcePath(this.type, this.opts.namespace),
          {
            ...this.query(),
            resourceVersion: this.lastResourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: this.opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300),
          },
          (ev) => {
            backoff = 200;
            this.apply(ev);
          },
          signal,
        );
        // The server closed the stream (timeout): watch again from where we were.
      } catch (err) {
        if (signal.aborted) return;
        if (isGone(err)) {
          this.stats.gone++;
          this.log.info('watch expired (410 Gone); relisting', { resourceVersion: this.lastResourceVersion });
          needList = true;
          continue;
        }
        if (this.opts.optional === true && isNotFound(err)) {
          if (!this.synced) {
            this.log.info('resource not served (is its CustomResourceDefinition installed?); treated as empty and retried', { retryInMs: maxBackoff });
            this.synced = true;
            for (const w of this.syncWaiters.splice(0)) w();
          }
          needList = true;
          await sleep(Math.min(maxBackoff, 2_000), signal);
          continue;
        }
        this.stats.errors++;
        this.log.warn('list/watch failed; retrying', { error: errorMessage(err), retryInMs: backoff });
        // After an outage the resourceVersion may be compacted away; relisting is always safe.
        needList = true;
        await sleep(backoff, signal);
        backoff = Math.min(maxBackoff, backoff * 2);
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
