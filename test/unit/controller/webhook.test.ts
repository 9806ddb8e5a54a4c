// The scheduling-gate webhook survives any body thrown at it, and with a client
// CA it serves only callers that present a certificate from it (the API server).
import { request } from 'node:https';
import { createCA, issueCertificate } from '../../../pkg/certs/certs.js';
import { parseAdmissionReview, startWebhookServer, MAX_REVIEW_BYTES } from '../../../pkg/controller/webhook.js';
import type { DeviceClass, ResourceClaimSpec } from '../../../pkg/api/resource.js';
import { logger } from '../../../pkg/log/logger.js';

const DRIVER = 'gpu.cascade.dev';
const gpuClass: DeviceClass = { metadata: { name: 'gpu.cascade.dev' }, spec: { selectors: [{ cel: { expression: `device.driver == "${DRIVER}"` } }] } };
const gpuSpec: ResourceClaimSpec = { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: 'gpu.cascade.dev' } }] } };

interface Reply {
  status: number;
  body: string;
}

function post(port: number, body: string | Buffer, ca: string, client?: { certPem: string; keyPem: string }, path = '/mutate-pods'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: false,
        ca,
        servername: 'localhost',
        ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const review = (request: unknown): string => JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
const podReview = (uid: string, claims: unknown): string =>
  review({ uid, operation: 'CREATE', namespace: 'ns', object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c' }], resourceClaims: claims } } });

describe('the gate webhook under hostile input', () => {
  let ca: Awaited<ReturnType<typeof createCA>>;
  let server: Awaited<ReturnType<typeof startWebhookServer>>;
  let apiserver: { certPem: string; keyPem: string };
  let stranger: { certPem: string; keyPem: string };

  beforeAll(async () => {
    ca = await createCA('test-ca');
    const serving = await issueCertificate(ca, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    apiserver = await issueCertificate(ca, { commonName: 'kube-apiserver-webhook-client', usage: 'client' });
    const otherCa = await createCA('other-ca');
    stranger = await issueCertificate(otherCa, { commonName: 'intruder', usage: 'client' });
    server = await startWebhookServer({
      cert: { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem },
      port: 0,
      host: '127.0.0.1',
      clientCaPem: ca.certPem,
      drivers: [DRIVER],
      logger: logger('webhook-test'),
      classes: () => new Map([['gpu.cascade.dev', gpuClass]]),
      templateSpec: async (_ns, name) => (name === 'gpu-template' ? gpuSpec : undefined),
      claimSpec: async () => undefined,
    });
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('refuses a caller without a client certificate, or with one from another CA, during the handshake', async () => {
    await expect(post(server.port, podReview('u1', []), ca.certPem)).rejects.toThrow();
    await expect(post(server.port, podReview('u1', []), ca.certPem, stranger)).rejects.toThrow();
  });

  it('gates a pod whose claim template uses a Cascade class', async () => {
    const r = await post(server.port, podReview('u2', [{ name: 'gpu', resourceClaimTemplateName: 'gpu-template' }]), ca.certPem, apiserver);
    expect(r.status).toBe(200);
    const resp = JSON.parse(r.body) as { response: { uid: string; allowed: boolean; patch?: string } };
    expect(resp.response.uid).toBe('u2');
    expect(JSON.parse(Buffer.from(resp.response.patch ?? '', 'base64').toString())).toEqual([{ op: 'add', path: '/spec/schedulingGates', value: [{ name: `${DRIVER}/allocation` }] }]);
  });

  const hostile: [string, string | Buffer][] = [
    ['null', 'null'],
    ['a number', '42'],
    ['an array', '[]'],
    ['not JSON', '{"request":'],
    ['binary garbage', Buffer.from([0, 255, 1, 254, 2, 253])],
    ['an empty body', ''],
    ['a request without uid', review({ object: { spec: {} } })],
    ['a request whose uid is a number', review({ uid: 7, object: {} })],
    ['the crashing body from the probe', '{"request":{"uid":"b","object":{"spec":{}}}}'],
    ['a pod without metadata whose claim entry has no names', review({ uid: 'c', object: { spec: { resourceClaims: [{}] } } })],
    ['resourceClaims as a string', review({ uid: 'd', object: { metadata: {}, spec: { resourceClaims: 'x' } } })],
    ['resourceClaims with null entries', review({ uid: 'e', object: { metadata: {}, spec: { resourceClaims: [null, 3] } } })],
    ['schedulingGates as an object', review({ uid: 'f', object: { metadata: {}, spec: { schedulingGates: { a: 1 } } } })],
    ['metadata as a string', review({ uid: 'g', namespace: 5, object: { metadata: 'x', spec: { resourceClaims: [{ name: 'a', resourceClaimName: 9 }] } } })],
    ['a __proto__ key', '{"request":{"uid":"h","__proto__":{"object":1},"object":{"__proto__":{"spec":1}}}}'],
    ['a deeply nested object', '{"request":{"uid":"i","object":' + '{"a":'.repeat(5000) + '1' + '}'.repeat(5000) + '}}'],
  ];

  it.each(hostile)('answers %s without stopping and keeps serving', async (_name, body) => {
    const r = await post(server.port, body, ca.certPem, apiserver);
    expect([200, 400]).toContain(r.status);
    if (r.status === 200) {
      const resp = JSON.parse(r.body) as { response: { allowed: boolean; patch?: string } };
      expect(resp.response.allowed).toBe(true);
    }
    const ok = await post(server.port, podReview('after', []), ca.certPem, apiserver);
    expect(ok.status).toBe(200);
  });

  it('keeps an idle connection open longer than the API server does (90 s), so the API server is the side that closes it', () => {
    // Otherwise a review the API server writes onto a socket we are closing fails ("broken pipe") and the pod is refused.
    expect(server.keepAliveTimeout).toBeGreaterThan(90_000);
    expect(server.headersTimeout).toBeGreaterThan(server.keepAliveTimeout);
  });

  it('refuses a body larger than the limit with 413 and keeps serving', async () => {
    const r = await post(server.port, Buffer.alloc(MAX_REVIEW_BYTES + 10, 0x20), ca.certPem, apiserver).catch((e: Error) => ({ status: -1, body: e.message }));
    // The server answers 413 and drops the connection; either is a refusal.
    expect([413, -1]).toContain(r.status);
    expect((await post(server.port, podReview('after-big', []), ca.certPem, apiserver)).status).toBe(200);
  });

  it('survives 300 random mutations of a valid review', async () => {
    const base = podReview('fuzz', [{ name: 'gpu', resourceClaimTemplateName: 'gpu-template' }]);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = '{}[]":,0n1tfu\\ ';
    for (let i = 0; i < 300; i++) {
      const chars = base.split('');
      for (let k = 0; k < 1 + rand(6); k++) chars[rand(chars.length)] = alphabet[rand(alphabet.length)] ?? ' ';
      const r = await post(server.port, chars.join(''), ca.certPem, apiserver);
      expect([200, 400]).toContain(r.status);
    }
    expect((await post(server.port, podReview('after-fuzz', []), ca.certPem, apiserver)).status).toBe(200);
  });
});

describe('parseAdmissionReview', () => {
  it('reads only strings where the API has strings', () => {
    const r = parseAdmissionReview(review({ uid: 'u', operation: 'CREATE', namespace: 'n', object: { metadata: { name: 'p' }, spec: { resourceClaims: [{ name: 'a', resourceClaimName: 'c' }] } } }));
    expect(r).toEqual({
      ok: true,
      request: {
        uid: 'u',
        operation: 'CREATE',
        namespace: 'n',
        pod: { metadata: { name: 'p' }, spec: { containers: [], resourceClaims: [{ name: 'a', resourceClaimName: 'c' }], schedulingGates: [] } },
      },
    });
  });
  it('says what is wrong with a body that is no review', () => {
    expect(parseAdmissionReview('null')).toEqual({ ok: false, error: 'the body is not an AdmissionReview with a request' });
  });
});
