// The pod-watching half of the kubelet stand-in: for one fake node it watches
// pods bound there, calls NodePrepareResources over the plugin's real socket
// once a pod's claims are allocated and reserved for it, and
// NodeUnprepareResources when the pod goes away, as the kubelet would.
import { Informer } from '../../pkg/k8s/informer.js';
import { RESOURCES, type Kube } from '../../pkg/k8s/resources.js';
import type { Pod } from '../../pkg/k8s/types.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';
import { errorMessage } from '../../pkg/log/logger.js';
import { KubeletStandin, type StandinClaim, type StandinPrepareResult } from './kubelet-standin.js';

export interface PreparedPod {
  readonly pod: string;
  readonly claims: ReadonlyMap<string, StandinPrepareResult>;
  /** When NodePrepareResources answered (ms since the epoch). */
  readonly at: number;
}

export class FakeKubelet {
  private readonly pods: Informer<Pod>;
  private standin: KubeletStandin | undefined;
  /** pod key -> claims we prepared for it. */
  readonly prepared = new Map<string, StandinClaim[]>();
  readonly results = new Map<string, PreparedPod>();
  readonly errors: string[] = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly kube: Kube,
    readonly nodeName: string,
    private readonly registryDir: string,
    private readonly driver: string,
  ) {
    this.pods = new Informer<Pod>(kube.client, RESOURCES.pods, { fieldSelector: `spec.nodeName=${nodeName}` });
    const enqueue = (p: Pod, gone: boolean): void => {
      this.chain = this.chain.then(() => this.handle(p, gone)).catch((err: unknown) => void this.errors.push(errorMessage(err)));
    };
    this.pods.on({ add: (p) => enqueue(p, false), update: (_o, p) => enqueue(p, !!p.metadata.deletionTimestamp), delete: (p) => enqueue(p, true) });
  }

  /** Registers with the plugin (GetInfo + NotifyRegistrationStatus) and starts watching pods. */
  async start(): Promise<void> {
    this.standin = await KubeletStandin.discover({ registryDir: this.registryDir, driverName: this.driver, timeoutMs: 30_000 });
    this.pods.start();
    await this.pods.waitForSync();
  }

  stop(): void {
    this.pods.stop();
    this.standin?.close();
  }

  /**
   * After the plugin was replaced: registers with the new one, as the kubelet
   * does when a new registration socket appears.
   */
  async reregister(): Promise<void> {
    this.standin?.close();
    this.standin = undefined;
    this.standin = await KubeletStandin.discover({ registryDir: this.registryDir, driverName: this.driver, timeoutMs: 30_000 });
  }

  /** Calls NodePrepareResources again for a pod already prepared, as the kubelet does after it restarts. */
  async prepareAgain(namespace: string, pod: string): Promise<Map<string, StandinPrepareResult>> {
    const claims = this.prepared.get(`${namespace}/${pod}`);
    if (!claims || !this.standin) throw new Error(`${namespace}/${pod} was not prepared here`);
    return await this.standin.prepare(claims);
  }

  /** Waits until all queued pod events are handled. */
  async settle(): Promise<void> {
    await this.chain;
  }

  private async claimsFor(p: Pod): Promise<ResourceClaim[] | undefined> {
    const ns = p.metadata.namespace ?? '';
    const out: ResourceClaim[] = [];
    for (const rc of p.spec.resourceClaims ?? []) {
      const name = rc.resourceClaimName ?? p.status?.resourceClaimStatuses?.find((s) => s.name === rc.name)?.resourceClaimName;
      if (!name) return undefined;
      const claim = await this.kube.resourceClaims.get(name, ns);
      // The kubelet only prepares claims that are allocated and reserved for this pod.
      if (!claim.status?.allocation || !claim.status.reservedFor?.some((r) => r.uid === p.metadata.uid)) return undefined;
      out.push(claim);
    }
    return out;
  }

  private async handle(p: Pod, gone: boolean): Promise<void> {
    const key = `${p.metadata.namespace ?? ''}/${p.metadata.name ?? ''}`;
    const standin = this.standin;
    if (!standin) return;
    if (gone) {
      const claims = this.prepared.get(key);
      if (claims) {
        const res = await standin.unprepare(claims);
        for (const [uid, r] of res) if (r.error) this.errors.push(`unprepare ${uid}: ${r.error}`);
        this.prepared.delete(key);
      }
      // Its containers are stopped: like the kubelet, finish a graceful deletion (an eviction, say).
      if (p.metadata.deletionTimestamp) await this.kube.pods.delete(p.metadata.name ?? '', p.metadata.namespace ?? '', { gracePeriodSeconds: 0 }).catch(() => undefined);
      return;
    }
    if (this.prepared.has(key) || !p.spec.resourceClaims?.length) return;
    const claims = await this.claimsFor(p);
    if (!claims) {
      // Not reserved yet: the scheduler's PreBind update will bring the pod back here.
      setTimeout(() => {
        const fresh = this.pods.get(key);
        if (fresh) this.chain = this.chain.then(() => this.handle(fresh, false)).catch((err: unknown) => void this.errors.push(errorMessage(err)));
      }, 200).unref();
      return;
    }
    // Like the kubelet, never set up a pod that is already going away (a late event for it).
    const deleting = (): boolean => {
      const now = this.pods.get(key);
      return !now || now.metadata.uid !== p.metadata.uid || !!now.metadata.deletionTimestamp;
    };
    if (deleting()) return;
    const refs = claims.map((c) => ({ namespace: c.metadata.namespace ?? '', uid: c.metadata.uid ?? '', name: c.metadata.name ?? '' }));
    const res = await standin.prepare(refs);
    this.prepared.set(key, refs);
    this.results.set(key, { pod: key, claims: res, at: Date.now() });
    // A pod deleted while its claims were being prepared loses them; that is no plugin error.
    if (deleting()) return;
    for (const [uid, r] of res) if (r.error) this.errors.push(`prepare ${uid}: ${r.error}`);
  }
}
