// The seam between the gRPC layer and the code that really prepares devices:
// the DRA service calls a ClaimPreparer and turns its per-claim results into
// the kubelet's response maps.

/** A claim as the kubelet names it in NodePrepareResources. */
export interface ClaimRef {
  readonly namespace: string;
  readonly uid: string;
  readonly name: string;
}

/** One device handed to the container runtime for a claim. */
export interface PreparedDevice {
  /** Base request names (see baseRequestName); empty means every request. */
  readonly requestNames: readonly string[];
  readonly poolName: string;
  readonly deviceName: string;
  /** Fully qualified CDI IDs, e.g. "k8s.gpu.cascade.dev/gpu=<claimUID>-gpu-0". */
  readonly cdiDeviceIds: readonly string[];
  /** Only for devices allocated with consumable capacity; dropped on v1beta1. */
  readonly shareId?: string;
}

export interface PrepareSuccess {
  readonly devices: readonly PreparedDevice[];
}

export interface PrepareFailure {
  /** A sentence for `kubectl describe pod`: what was wanted, what went wrong. */
  readonly error: string;
  /** The driver's short reason (a CamelCase constant), put before the sentence in the kubelet's error. */
  readonly reason?: string;
}

export type PrepareResult = PrepareSuccess | PrepareFailure;

export interface UnprepareResult {
  readonly error?: string;
}

/**
 * Implemented by the node plugin's driver (the lead's code). Both calls get
 * every claim of one kubelet request and return one entry per claim UID; a
 * missing entry and a thrown exception become per-claim errors, never a failed
 * RPC. The DRA service serializes calls, so an implementation never sees two
 * at once.
 */
export interface ClaimPreparer {
  prepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, PrepareResult>>;
  unprepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, UnprepareResult>>;
}

export function isPrepareFailure(result: PrepareResult): result is PrepareFailure {
  return 'error' in result;
}

/** The error the kubelet shows: "<Reason>: <sentence>", or the sentence alone. */
export function failureMessage(f: PrepareFailure): string {
  return f.reason ? `${f.reason}: ${f.error}` : f.error;
}

/**
 * The request name the kubelet expects in Device.request_names: allocation
 * results name a firstAvailable alternative "req/sub", containers reference "req".
 */
export function baseRequestName(request: string): string {
  const slash = request.indexOf('/');
  return slash < 0 ? request : request.slice(0, slash);
}

/** "namespace/name (uid)", for log fields and error messages. */
export function claimLabel(claim: ClaimRef): string {
  return `${claim.namespace}/${claim.name} (${claim.uid})`;
}
