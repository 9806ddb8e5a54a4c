// NodePrepareResources / NodeUnprepareResources for DRA v1 and v1beta1: turns
// the kubelet's requests into ClaimPreparer calls (one at a time per node) and
// the preparer's per-claim results into the response maps, so that no failure
// ever fails the whole RPC.
import * as grpc from '@grpc/grpc-js';
import type { DRAPluginHandlers as V1Handlers } from '../generated/k8s/io/kubelet/pkg/apis/dra/v1/DRAPlugin.js';
import type { NodePrepareResourceResponse as V1PrepareResponse } from '../generated/k8s/io/kubelet/pkg/apis/dra/v1/NodePrepareResourceResponse.js';
import type { DRAPluginHandlers as V1beta1Handlers } from '../generated/k8s/io/kubelet/pkg/apis/dra/v1beta1/DRAPlugin.js';
import { errorMessage, type Logger } from '../log/logger.js';
import { type ClaimPreparer, type ClaimRef, type PrepareResult, type UnprepareResult, claimLabel, failureMessage, isPrepareFailure } from './preparer.js';
import { SerialQueue } from './serialize.js';

interface WireClaim {
  readonly namespace: string;
  readonly uid: string;
  readonly name: string;
}

/** Claims of a request, duplicates (same UID) dropped: the response map has one entry per UID anyway. */
function claimRefs(claims: readonly WireClaim[]): ClaimRef[] {
  const seen = new Set<string>();
  const out: ClaimRef[] = [];
  for (const c of claims) {
    if (seen.has(c.uid)) continue;
    seen.add(c.uid);
    out.push({ namespace: c.namespace, uid: c.uid, name: c.name });
  }
  return out;
}

/** A claim the preparer must not see: the kubelet always sends UIDs, so this is a protocol error. */
function invalidClaim(claim: ClaimRef): string | undefined {
  if (claim.uid === '') return `claim ${claim.namespace}/${claim.name} has no UID`;
  return undefined;
}

export interface DraServiceOptions {
  readonly preparer: ClaimPreparer;
  readonly log: Logger;
  /** Shared with anything else that changes the node's GPUs (start-up recovery). */
  readonly queue?: SerialQueue;
  /**
   * How long one call may take before its claims are answered "still running"
   * (the work goes on, and the kubelet's retry gets its result). Below the
   * kubelet's own 45 s timeout, so the kubelet sees a reason instead of
   * DEADLINE_EXCEEDED. Default 40 s.
   */
  readonly deadlineMs?: number;
  /** What usually makes a call slow, for that answer (default: "the device setup is slow"). */
  readonly slowReason?: string;
}

/** The kubelet gives a call 45 s; answering before that lets it show our reason. */
export const DEFAULT_CALL_DEADLINE_MS = 40_000;

/**
 * The core both API versions share. Returns one result per claim UID of the
 * request, whatever the preparer does.
 */
export class DraService {
  readonly queue: SerialQueue;
  private readonly preparer: ClaimPreparer;
  private readonly log: Logger;
  private readonly deadlineMs: number;
  private readonly slowReason: string;

  constructor(options: DraServiceOptions) {
    this.preparer = options.preparer;
    this.log = options.log;
    this.queue = options.queue ?? new SerialQueue();
    this.deadlineMs = options.deadlineMs ?? DEFAULT_CALL_DEADLINE_MS;
    this.slowReason = options.slowReason ?? 'the device setup is slow';
  }

  async prepare(wire: readonly WireClaim[]): Promise<Map<string, PrepareResult>> {
    return await this.perClaim(
      'prepare',
      wire,
      (valid) => this.preparer.prepare(valid),
      (c, r) => {
        if (isPrepareFailure(r)) this.log.warn('claim not prepared', { claim: claimLabel(c), ...(r.reason ? { reason: r.reason } : {}), error: r.error });
        else this.log.info('claim prepared', { claim: claimLabel(c), devices: r.devices.map((d) => d.deviceName) });
      },
    );
  }

  async unprepare(wire: readonly WireClaim[]): Promise<Map<string, UnprepareResult>> {
    return await this.perClaim(
      'unprepare',
      wire,
      (valid) => this.preparer.unprepare(valid),
      (c, r) => {
        if (r.error) this.log.warn('claim not unprepared', { claim: claimLabel(c), error: r.error });
        else this.log.info('claim unprepared', { claim: claimLabel(c) });
      },
    );
  }

  /**
   * The per-claim contract of both calls: invalid claims and claims the driver
   * left out or failed on get their own error, a thrown exception fails every
   * claim of the request but never the RPC, and every claim gets an answer.
   */
  private async perClaim<R>(
    verb: 'prepare' | 'unprepare',
    wire: readonly WireClaim[],
    run: (valid: ClaimRef[]) => Promise<ReadonlyMap<string, R>>,
    report: (c: ClaimRef, r: R) => void,
  ): Promise<Map<string, R>> {
    // Both result types carry a failure as { error }.
    const fail = (error: string): R => ({ error }) as R;
    const out = new Map<string, R>();
    const valid: ClaimRef[] = [];
    for (const c of claimRefs(wire)) {
      const problem = invalidClaim(c);
      if (problem) out.set(c.uid, fail(problem));
      else valid.push(c);
    }
    if (valid.length === 0) return out;
    let results: ReadonlyMap<string, R> | undefined;
    let thrown: unknown;
    const work = this.queue.run(() => run(valid));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.deadlineMs);
      timer.unref();
    });
    try {
      const first = await Promise.race([work, late]);
      if (first === 'late') {
        // The work goes on in the queue; prepare and unprepare are idempotent, so the retry gets its result.
        work.catch((err: unknown) => this.log.error(`${verb} failed after the kubelet was answered`, { error: errorMessage(err), claims: valid.map(claimLabel) }));
        thrown = new Error(
          `still running after ${Math.round(this.deadlineMs / 1000)} s (${this.slowReason}, or another claim is being set up on this node); it goes on, and the kubelet's next try gets the result`,
        );
        this.log.warn(`${verb} is taking longer than the kubelet waits; answering with a retryable error`, { claims: valid.map(claimLabel), deadlineMs: this.deadlineMs });
      } else {
        results = first;
      }
    } catch (err) {
      thrown = err;
      this.log.error(`${verb} failed for the whole request`, { error: errorMessage(err), claims: valid.map(claimLabel) });
    } finally {
      clearTimeout(timer);
    }
    for (const c of valid) {
      const r = results?.get(c.uid);
      const final: R = thrown !== undefined ? fail(`${verb} claim ${claimLabel(c)}: ${errorMessage(thrown)}`) : (r ?? fail(`${verb} claim ${claimLabel(c)}: the driver returned no result`));
      out.set(c.uid, final);
      report(c, final);
    }
    return out;
  }

  /** gRPC handlers of k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin. */
  v1Handlers(): V1Handlers {
    return {
      NodePrepareResources: (call, callback) => {
        this.prepare(call.request.claims).then((results) => callback(null, { claims: prepareMap(results, true) }), internalError(callback));
      },
      NodeUnprepareResources: (call, callback) => {
        this.unprepare(call.request.claims).then((results) => callback(null, { claims: unprepareMap(results) }), internalError(callback));
      },
    };
  }

  /** gRPC handlers of k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin: the same, without share_id. */
  v1beta1Handlers(): V1beta1Handlers {
    return {
      NodePrepareResources: (call, callback) => {
        this.prepare(call.request.claims).then((results) => callback(null, { claims: prepareMap(results, false) }), internalError(callback));
      },
      NodeUnprepareResources: (call, callback) => {
        this.unprepare(call.request.claims).then((results) => callback(null, { claims: unprepareMap(results) }), internalError(callback));
      },
    };
  }
}

/** prepare()/unprepare() catch the preparer's errors; reaching this is a bug in this file. */
function internalError(callback: (err: grpc.ServiceError | Partial<grpc.StatusObject>) => void): (err: unknown) => void {
  return (err) => callback({ code: grpc.status.INTERNAL, details: errorMessage(err) });
}

/** The wire response of both API versions; v1beta1 has no share_id. */
function prepareMap(results: ReadonlyMap<string, PrepareResult>, withShareId: boolean): Record<string, V1PrepareResponse> {
  const claims: Record<string, V1PrepareResponse> = {};
  for (const [uid, r] of results) {
    claims[uid] = isPrepareFailure(r)
      ? { devices: [], error: failureMessage(r) }
      : {
          devices: r.devices.map((d) => ({
            request_names: [...d.requestNames],
            pool_name: d.poolName,
            device_name: d.deviceName,
            cdi_device_ids: [...d.cdiDeviceIds],
            ...(withShareId && d.shareId !== undefined ? { share_id: d.shareId } : {}),
          })),
          error: '',
        };
  }
  return claims;
}

function unprepareMap(results: ReadonlyMap<string, UnprepareResult>): Record<string, { error: string }> {
  const claims: Record<string, { error: string }> = {};
  for (const [uid, r] of results) claims[uid] = { error: r.error ?? '' };
  return claims;
}
