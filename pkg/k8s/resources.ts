// Typed access to the API resources Cascade uses, as plain JSON objects:
// get/list/create/patch/apply/delete with paths built from one descriptor.
import { CONTENT_TYPE, KubeClient, type Query } from './client.js';
import type { DeviceClass, ObjectMeta, ResourceClaim, ResourceClaimTemplate, ResourceSlice } from '../api/resource.js';
import type { CoreEvent, EventV1, Lease, Namespace, Node, Pod, Secret, ServiceAccount } from './types.js';

export interface ResourceType {
  readonly group: string; // '' for the core group
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface ListOf<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

function rt(group: string, version: string, kind: string, plural: string, namespaced: boolean): ResourceType {
  return { group, version, kind, plural, namespaced };
}

export const RESOURCES = {
  resourceSlices: rt('resource.k8s.io', 'v1', 'ResourceSlice', 'resourceslices', false),
  resourceClaims: rt('resource.k8s.io', 'v1', 'ResourceClaim', 'resourceclaims', true),
  resourceClaimTemplates: rt('resource.k8s.io', 'v1', 'ResourceClaimTemplate', 'resourceclaimtemplates', true),
  deviceClasses: rt('resource.k8s.io', 'v1', 'DeviceClass', 'deviceclasses', false),
  pods: rt('', 'v1', 'Pod', 'pods', true),
  nodes: rt('', 'v1', 'Node', 'nodes', false),
  namespaces: rt('', 'v1', 'Namespace', 'namespaces', false),
  serviceAccounts: rt('', 'v1', 'ServiceAccount', 'serviceaccounts', true),
  secrets: rt('', 'v1', 'Secret', 'secrets', true),
  coreEvents: rt('', 'v1', 'Event', 'events', true),
  events: rt('events.k8s.io', 'v1', 'Event', 'events', true),
  leases: rt('coordination.k8s.io', 'v1', 'Lease', 'leases', true),
  podDisruptionBudgets: rt('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets', true),
} as const;

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/** The REST path of a collection or an object (and optional subresource). */
export function resourcePath(t: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let p = t.group ? `/apis/${t.group}/${t.version}` : `/api/${t.version}`;
  if (t.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${t.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

export interface ListOptions {
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly limit?: number;
}

export interface DeleteOptions {
  readonly gracePeriodSeconds?: number;
  readonly propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  readonly preconditions?: { uid?: string; resourceVersion?: string };
}

/** CRUD for one resource type; namespace is ignored for cluster-scoped types. */
export class ResourceApi<T extends KubeObject> {
  constructor(
    readonly client: KubeClient,
    readonly type: ResourceType,
  ) {}

  path(namespace?: string, name?: string, subresource?: string): string {
    return resourcePath(this.type, namespace, name, subresource);
  }

  async get(name: string, namespace?: string): Promise<T> {
    return await this.client.request<T>('GET', this.path(namespace, name));
  }

  /** Lists every object, following `continue` pages; returns the items and the list's resourceVersion. */
  async listAll(namespace?: string, opts: ListOptions = {}): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const q: Query = { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector, limit: opts.limit ?? 500, continue: cont };
      const page = await this.client.request<ListOf<T>>('GET', this.path(namespace), { query: q });
      for (const item of page.items ?? []) items.push(item);
      resourceVersion = page.metadata.resourceVersion ?? resourceVersion;
      cont = page.metadata.continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  async list(namespace?: string, opts: ListOptions = {}): Promise<T[]> {
    return (await this.listAll(namespace, opts)).items;
  }

  async create(obj: T, opts: { dryRun?: boolean; fieldManager?: string } = {}): Promise<T> {
    const body = { apiVersion: apiVersionOf(this.type), kind: this.type.kind, ...obj };
    return await this.client.request<T>('POST', this.path(obj.metadata.namespace), {
      body,
      query: { dryRun: opts.dryRun ? 'All' : undefined, fieldManager: opts.fieldManager },
    });
  }

  async replace(obj: T, subresource?: string): Promise<T> {
    const name = obj.metadata.name;
    if (!name) throw new Error(`replace ${this.type.kind}: object has no name`);
    const body = { apiVersion: apiVersionOf(this.type), kind: this.type.kind, ...obj };
    return await this.client.request<T>('PUT', this.path(obj.metadata.namespace, name, subresource), { body });
  }

  /** RFC 7386 merge patch. Include metadata.resourceVersion in the patch to make it conditional. */
  async mergePatch(name: string, patch: unknown, namespace?: string, subresource?: string, fieldManager?: string): Promise<T> {
    return await this.client.request<T>('PATCH', this.path(namespace, name, subresource), {
      body: patch,
      contentType: CONTENT_TYPE.mergePatch,
      query: { fieldManager },
    });
  }

  /** RFC 6902 JSON patch (supports "test" operations for preconditions). */
  async jsonPatch(name: string, ops: readonly JsonPatchOp[], namespace?: string, subresource?: string): Promise<T> {
    return await this.client.request<T>('PATCH', this.path(namespace, name, subresource), { body: ops, contentType: CONTENT_TYPE.jsonPatch });
  }

  /** Server-side apply. */
  async apply(obj: T, fieldManager: string, opts: { force?: boolean; subresource?: string } = {}): Promise<T> {
    const name = obj.metadata.name;
    if (!name) throw new Error(`apply ${this.type.kind}: object has no name`);
    const body = { apiVersion: apiVersionOf(this.type), kind: this.type.kind, ...obj };
    return await this.client.request<T>('PATCH', this.path(obj.metadata.namespace, name, opts.subresource), {
      body,
      contentType: CONTENT_TYPE.applyPatch,
      query: { fieldManager, force: opts.force ? true : undefined },
    });
  }

  async delete(name: string, namespace?: string, opts: DeleteOptions = {}): Promise<void> {
    await this.client.request<unknown>('DELETE', this.path(namespace, name), {
      body: { apiVersion: 'v1', kind: 'DeleteOptions', ...opts },
    });
  }
}

export interface JsonPatchOp {
  readonly op: 'add' | 'remove' | 'replace' | 'test' | 'move' | 'copy';
  readonly path: string;
  readonly value?: unknown;
  readonly from?: string;
}

/** Escapes a key for use inside a JSON pointer (RFC 6901). */
export function jsonPointerEscape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** All typed resource APIs over one client. */
export class Kube {
  readonly resourceSlices: ResourceApi<ResourceSlice>;
  readonly resourceClaims: ResourceApi<ResourceClaim>;
  readonly resourceClaimTemplates: ResourceApi<ResourceClaimTemplate>;
  readonly deviceClasses: ResourceApi<DeviceClass>;
  readonly pods: ResourceApi<Pod>;
  readonly nodes: ResourceApi<Node>;
  readonly namespaces: ResourceApi<Namespace>;
  readonly serviceAccounts: ResourceApi<ServiceAccount>;
  readonly secrets: ResourceApi<Secret>;
  readonly events: ResourceApi<EventV1>;
  readonly coreEvents: ResourceApi<CoreEvent>;
  readonly leases: ResourceApi<Lease>;

  constructor(readonly client: KubeClient) {
    this.resourceSlices = new ResourceApi(client, RESOURCES.resourceSlices);
    this.resourceClaims = new ResourceApi(client, RESOURCES.resourceClaims);
    this.resourceClaimTemplates = new ResourceApi(client, RESOURCES.resourceClaimTemplates);
    this.deviceClasses = new ResourceApi(client, RESOURCES.deviceClasses);
    this.pods = new ResourceApi(client, RESOURCES.pods);
    this.nodes = new ResourceApi(client, RESOURCES.nodes);
    this.namespaces = new ResourceApi(client, RESOURCES.namespaces);
    this.serviceAccounts = new ResourceApi(client, RESOURCES.serviceAccounts);
    this.secrets = new ResourceApi(client, RESOURCES.secrets);
    this.events = new ResourceApi(client, RESOURCES.events);
    this.coreEvents = new ResourceApi(client, RESOURCES.coreEvents);
    this.leases = new ResourceApi(client, RESOURCES.leases);
  }

  /**
   * Evicts a pod through the Eviction API (policy/v1), which honours its
   * PodDisruptionBudgets: a budget that forbids it answers 429.
   */
  async evictPod(name: string, namespace: string, deleteOptions?: { gracePeriodSeconds?: number; preconditions?: { uid?: string } }): Promise<void> {
    await this.client.request('POST', resourcePath(RESOURCES.pods, namespace, name, 'eviction'), {
      body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace }, ...(deleteOptions ? { deleteOptions } : {}) },
    });
  }

  static fromFile(kubeconfigPath: string): Kube {
    return new Kube(KubeClient.fromFile(kubeconfigPath));
  }

  /** Generic access for other types (RBAC, webhooks...). */
  api<T extends KubeObject>(type: ResourceType): ResourceApi<T> {
    return new ResourceApi<T>(this.client, type);
  }

  /** The server's version, e.g. "v1.36.3". */
  async serverVersion(): Promise<string> {
    const v = await this.client.request<{ gitVersion: string }>('GET', '/version');
    return v.gitVersion;
  }

  close(): void {
    this.client.close();
  }
}
