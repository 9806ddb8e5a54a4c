// The mutating admission webhook: adds the scheduling gate `<driver>/allocation`
// to pods whose claims or claim templates use Cascade's device classes, so the
// kube-scheduler waits until the controller has allocated them. The controller
// provisions the webhook's serving certificate itself (a CA and a leaf kept in a
// Secret) and publishes the CA in the MutatingWebhookConfiguration's caBundle.
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'winston';
import type { DeviceClass, ResourceClaimSpec } from '../api/resource.js';
import { createCA, daysUntilExpiry, issueCertificate, loadCA } from '../certs/certs.js';
import { isAlreadyExists, isNotFound } from '../k8s/client.js';
import type { Kube, ResourceType } from '../k8s/resources.js';
import type { Pod, Secret } from '../k8s/types.js';
import { errorMessage, logger as makeLogger } from '../log/logger.js';
import { claimOwnership } from './ownership.js';

export const MUTATING_WEBHOOK_CONFIGURATIONS: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  kind: 'MutatingWebhookConfiguration',
  plural: 'mutatingwebhookconfigurations',
  namespaced: false,
};

export interface WebhookCertOptions {
  readonly namespace: string;
  readonly secretName: string;
  /** The Service in front of the webhook: the cert covers <svc>.<ns>.svc and friends. */
  readonly serviceName: string;
  readonly extraDnsNames?: readonly string[];
  readonly extraIpAddresses?: readonly string[];
  /** MutatingWebhookConfiguration whose webhooks get our CA as caBundle. */
  readonly webhookConfigName?: string;
  readonly logger?: Logger;
}

export interface ServingCert {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

/**
 * Returns the webhook's serving certificate, creating (or renewing, 30 days
 * before expiry) it in the Secret. Replicas racing to create it converge on
 * whichever Secret the API server accepted first.
 */
export async function ensureServingCert(kube: Kube, opts: WebhookCertOptions): Promise<ServingCert> {
  const log = opts.logger ?? makeLogger('webhook');
  const dnsNames = [
    opts.serviceName,
    `${opts.serviceName}.${opts.namespace}`,
    `${opts.serviceName}.${opts.namespace}.svc`,
    `${opts.serviceName}.${opts.namespace}.svc.cluster.local`,
    ...(opts.extraDnsNames ?? []),
  ];
  for (let attempt = 0; attempt < 5; attempt++) {
    let secret: Secret | undefined;
    try {
      secret = await kube.secrets.get(opts.secretName, opts.namespace);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const current = secret
      ? { caPem: unb64(secret.data?.['ca.crt']), certPem: unb64(secret.data?.['tls.crt']), keyPem: unb64(secret.data?.['tls.key']), caKeyPem: unb64(secret.data?.['ca.key']) }
      : undefined;
    const covers = current?.certPem ? (secret?.metadata.annotations?.['cascade.dev/sans'] ?? '') === [...dnsNames, ...(opts.extraIpAddresses ?? [])].join(',') : false;
    if (current?.certPem && current.keyPem && covers && daysUntilExpiry(current.certPem, new Date()) > 30) {
      await publishCaBundle(kube, opts.webhookConfigName, current.caPem, log);
      return current;
    }
    const ca =
      current?.caPem && current.caKeyPem && daysUntilExpiry(current.caPem, new Date()) > 60
        ? await loadCA(current.caPem, current.caKeyPem)
        : await createCA(`cascade-webhook-ca@${Math.floor(Date.now() / 1000)}`);
    const leaf = await issueCertificate(ca, { commonName: `${opts.serviceName}.${opts.namespace}.svc`, usage: 'server', dnsNames, ipAddresses: opts.extraIpAddresses ?? [] });
    const body: Secret = {
      metadata: {
        name: opts.secretName,
        namespace: opts.namespace,
        annotations: { 'cascade.dev/sans': [...dnsNames, ...(opts.extraIpAddresses ?? [])].join(',') },
        ...(secret ? { resourceVersion: secret.metadata.resourceVersion } : {}),
      },
      type: 'kubernetes.io/tls',
      data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem), 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem) },
    };
    try {
      if (secret) await kube.secrets.replace(body);
      else await kube.secrets.create(body);
    } catch (err) {
      // Another replica wrote first: use theirs.
      if (isAlreadyExists(err) || (err as { code?: number }).code === 409) continue;
      throw err;
    }
    log.info('issued webhook serving certificate', { secret: `${opts.namespace}/${opts.secretName}`, dnsNames });
    await publishCaBundle(kube, opts.webhookConfigName, ca.certPem, log);
    return { caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem };
  }
  throw new Error(`could not settle the webhook certificate in Secret ${opts.namespace}/${opts.secretName} after 5 attempts`);
}

interface WebhookConfig {
  metadata: { name?: string; resourceVersion?: string };
  webhooks?: { name: string; clientConfig: { caBundle?: string } }[];
}

async function publishCaBundle(kube: Kube, name: string | undefined, caPem: string, log: Logger): Promise<void> {
  if (!name) return;
  const api = kube.api<WebhookConfig & { metadata: { name?: string } }>(MUTATING_WEBHOOK_CONFIGURATIONS);
  let cfg: WebhookConfig;
  try {
    cfg = await api.get(name);
  } catch (err) {
    if (isNotFound(err)) {
      log.warn('MutatingWebhookConfiguration not found; pods will not be gated until it exists', { name });
      return;
    }
    throw err;
  }
  const bundle = b64(caPem);
  const ops = (cfg.webhooks ?? []).flatMap((w, i) => (w.clientConfig.caBundle === bundle ? [] : [{ op: 'add' as const, path: `/webhooks/${i}/clientConfig/caBundle`, value: bundle }]));
  if (ops.length === 0) return;
  await api.jsonPatch(name, [{ op: 'test', path: '/metadata/resourceVersion', value: cfg.metadata.resourceVersion }, ...ops]);
  log.info('published webhook CA bundle', { webhookConfiguration: name });
}

export interface GateDeciderDeps {
  /** The drivers Cascade allocates: its own first, then the co-allocated ones. */
  readonly drivers: readonly string[];
  readonly classes: () => ReadonlyMap<string, DeviceClass>;
  /** Spec of a claim template or claim, from a cache or the API; undefined when it does not exist. */
  readonly templateSpec: (namespace: string, name: string) => Promise<ResourceClaimSpec | undefined>;
  readonly claimSpec: (namespace: string, name: string) => Promise<ResourceClaimSpec | undefined>;
}

/**
 * Why a pod needs our gate, or undefined when it does not. In doubt (a claim
 * or template that does not exist yet, or cannot be read) the pod is gated:
 * the controller removes the gate once it sees none of the claims are ours,
 * while an ungated GPU pod would let the kube-scheduler's allocator race ours.
 */
export async function gateReason(pod: Pod, namespace: string, deps: GateDeciderDeps): Promise<string | undefined> {
  const classes = deps.classes();
  for (const rc of pod.spec.resourceClaims ?? []) {
    const what = rc.resourceClaimTemplateName ? `template ${rc.resourceClaimTemplateName}` : `claim ${rc.resourceClaimName ?? ''}`;
    let spec: ResourceClaimSpec | undefined;
    try {
      spec = rc.resourceClaimTemplateName ? await deps.templateSpec(namespace, rc.resourceClaimTemplateName) : rc.resourceClaimName ? await deps.claimSpec(namespace, rc.resourceClaimName) : undefined;
    } catch (err) {
      return `${what} could not be read (${errorMessage(err)}); gated until the controller has decided`;
    }
    if (!spec) return `${what} does not exist yet; gated until the controller has decided`;
    const own = claimOwnership(spec, classes, deps.drivers);
    if (own.ours) return `claim ${rc.name} uses ${what}`;
    // Half ours: gated, so that neither allocator races the other; the controller says why.
    if (own.mixed) return `claim ${rc.name} (${what}) mixes device classes Cascade allocates with others; refused until split`;
  }
  return undefined;
}

/** What the webhook needs of an AdmissionReview, checked at the boundary. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly operation: string;
  readonly namespace: string;
  /** The pod's resource claim entries and scheduling gates; undefined when the object is no pod we can read. */
  readonly pod: Pod | undefined;
}

export type ParsedReview = { readonly ok: true; readonly request: AdmissionRequest } | { readonly ok: false; readonly error: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Parses an AdmissionReview body into the little the webhook reads. Anything
 * that is not an admission.k8s.io/v1 review with a request uid is an error;
 * a request whose object is not a well-formed pod is answered "allowed" without
 * a patch (the API server validates pods itself, and a malformed one is refused there).
 */
export function parseAdmissionReview(body: string): ParsedReview {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { ok: false, error: 'the body is not JSON' };
  }
  if (!isObject(doc) || !isObject(doc.request)) return { ok: false, error: 'the body is not an AdmissionReview with a request' };
  const req = doc.request;
  const uid = str(req.uid);
  if (!uid) return { ok: false, error: 'the AdmissionReview request has no uid' };
  const operation = str(req.operation) ?? '';
  const obj = req.object;
  const meta = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  const namespace = str(req.namespace) ?? str(meta.namespace) ?? 'default';
  return { ok: true, request: { uid, operation, namespace, pod: podOf(obj, meta) } };
}

function podOf(obj: unknown, meta: Record<string, unknown>): Pod | undefined {
  if (!isObject(obj) || !isObject(obj.spec)) return undefined;
  const spec = obj.spec;
  const claims = spec.resourceClaims ?? [];
  const gates = spec.schedulingGates ?? [];
  if (!Array.isArray(claims) || !Array.isArray(gates)) return undefined;
  const resourceClaims: NonNullable<Pod['spec']['resourceClaims']> = [];
  for (const c of claims) {
    if (!isObject(c) || !str(c.name)) return undefined;
    const claimName = str(c.resourceClaimName);
    const templateName = str(c.resourceClaimTemplateName);
    resourceClaims.push({ name: str(c.name) ?? '', ...(claimName ? { resourceClaimName: claimName } : {}), ...(templateName ? { resourceClaimTemplateName: templateName } : {}) });
  }
  const schedulingGates = gates.filter(isObject).map((g) => ({ name: str(g.name) ?? '' }));
  const name = str(meta.name);
  const generateName = str(meta.generateName);
  return { metadata: { ...(name ? { name } : {}), ...(generateName ? { generateName } : {}) }, spec: { containers: [], resourceClaims, schedulingGates } };
}

/** The AdmissionReview response for one request: the gate patch, if the pod needs it. */
export async function admit(request: AdmissionRequest, gate: string, deps: GateDeciderDeps, log: Logger): Promise<Record<string, unknown>> {
  const response: Record<string, unknown> = { uid: request.uid, allowed: true };
  const pod = request.pod;
  if (!pod || request.operation === 'UPDATE') return response;
  const ns = request.namespace;
  const podName = `${ns}/${pod.metadata.name ?? pod.metadata.generateName ?? ''}`;
  try {
    const why = await gateReason(pod, ns, deps);
    const gates = pod.spec.schedulingGates ?? [];
    if (why && !gates.some((g) => g.name === gate)) {
      const patch = gates.length === 0 ? [{ op: 'add', path: '/spec/schedulingGates', value: [{ name: gate }] }] : [{ op: 'add', path: '/spec/schedulingGates/-', value: { name: gate } }];
      response.patchType = 'JSONPatch';
      response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
      log.info('gating pod until its claims are allocated', { pod: podName, why });
    }
  } catch (err) {
    // gateReason decides "gate" in doubt itself; this is a bug guard that must not block admission.
    log.error('gate decision failed; admitting the pod ungated', { pod: podName, error: errorMessage(err) });
  }
  return response;
}

export interface WebhookServerOptions extends GateDeciderDeps {
  readonly cert: ServingCert;
  readonly port: number;
  readonly host?: string;
  /**
   * PEM CA bundle that signs the API server's client certificate for webhooks
   * (the AdmissionConfiguration's kubeConfigFile). When set, callers without a
   * certificate from it are refused during the TLS handshake.
   */
  readonly clientCaPem?: string;
  readonly logger?: Logger;
}

/** An AdmissionReview for a pod is far smaller; anything larger is refused unread. */
export const MAX_REVIEW_BYTES = 3 * 1024 * 1024;

/** Serves POST /mutate-pods over HTTPS; returns the server (listening). */
export async function startWebhookServer(opts: WebhookServerOptions): Promise<https.Server & { port: number }> {
  const log = opts.logger ?? makeLogger('webhook');
  const gate = `${opts.drivers[0] ?? ''}/allocation`;
  const tls: https.ServerOptions = {
    cert: opts.cert.certPem,
    key: opts.cert.keyPem,
    minVersion: 'TLSv1.2',
    ...(opts.clientCaPem ? { ca: opts.clientCaPem, requestCert: true, rejectUnauthorized: true } : {}),
  };
  const server = https.createServer(tls, (req, res) => {
    const reply = (code: number, body: string, type = 'text/plain'): void => {
      if (!res.headersSent) res.writeHead(code, { 'Content-Type': type }).end(body);
    };
    if (req.method !== 'POST' || !req.url?.startsWith('/mutate-pods')) {
      reply(req.url === '/healthz' ? 200 : 404, req.url === '/healthz' ? 'ok' : 'not found');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('error', () => req.destroy());
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REVIEW_BYTES) {
        reply(413, 'request too large');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_REVIEW_BYTES) return;
      const parsed = parseAdmissionReview(Buffer.concat(chunks).toString('utf8'));
      if (!parsed.ok) {
        reply(400, `invalid AdmissionReview: ${parsed.error}`);
        return;
      }
      admit(parsed.request, gate, opts, log)
        .then((response) => reply(200, JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }), 'application/json'))
        .catch((err: unknown) => {
          log.error('admission review failed', { uid: parsed.request.uid, error: errorMessage(err) });
          reply(500, 'internal error');
        });
    });
  });
  // The API server keeps idle webhook connections for 90 s (Go's IdleConnTimeout). Node closes
  // them after 5 s by default, and a request the API server writes onto a socket we are just
  // closing fails with "broken pipe": the pod is refused. So the client always closes first.
  server.keepAliveTimeout = 100_000;
  server.headersTimeout = 110_000;
  // A client that drops the connection or fails the handshake is its problem, not ours.
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('tlsClientError', (err) => log.debug('webhook TLS handshake refused', { error: errorMessage(err) }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info('webhook serving', { port, clientAuthentication: opts.clientCaPem ? 'required' : 'off' });
  return Object.assign(server, { port });
}
