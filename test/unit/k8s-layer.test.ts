// Pure parts of the Kubernetes layer: REST paths, kubeconfigs, event notes, certificates.
import * as x509 from '../../pkg/certs/x509.js';
import { KubeConfig } from '@kubernetes/client-node';
import { resourcePath, RESOURCES, jsonPointerEscape } from '../../pkg/k8s/resources.js';
import { truncateNote, MAX_NOTE_BYTES } from '../../pkg/k8s/events.js';
import { kubeconfigYaml } from '../../pkg/cluster/controlplane.js';
import { createCA, issueCertificate, loadCA, daysUntilExpiry } from '../../pkg/certs/certs.js';
import { isTransient, retryOnConflict } from '../../pkg/k8s/retry.js';
import { KubeApiError } from '../../pkg/k8s/client.js';

describe('resourcePath', () => {
  it.each([
    ['a cluster-scoped collection', resourcePath(RESOURCES.resourceSlices), '/apis/resource.k8s.io/v1/resourceslices'],
    ['a namespaced object', resourcePath(RESOURCES.resourceClaims, 'ml', 'train-gpu'), '/apis/resource.k8s.io/v1/namespaces/ml/resourceclaims/train-gpu'],
    ['a status subresource', resourcePath(RESOURCES.resourceClaims, 'ml', 'c', 'status'), '/apis/resource.k8s.io/v1/namespaces/ml/resourceclaims/c/status'],
    ['a core object', resourcePath(RESOURCES.pods, 'default', 'p'), '/api/v1/namespaces/default/pods/p'],
    ['a namespace ignored for cluster-scoped types', resourcePath(RESOURCES.nodes, 'x', 'n1'), '/api/v1/nodes/n1'],
  ])('builds %s', (_n, got, want) => {
    expect(got).toBe(want);
  });

  it('escapes JSON pointer keys', () => {
    expect(jsonPointerEscape('gpu.cascade.dev/allocation')).toBe('gpu.cascade.dev~1allocation');
    expect(jsonPointerEscape('a~b')).toBe('a~0b');
  });
});

describe('truncateNote', () => {
  it('keeps short notes', () => {
    expect(truncateNote('allocated gpu-0 on node-a')).toBe('allocated gpu-0 on node-a');
  });
  it('cuts long notes to the 1 KiB API limit and marks the cut', () => {
    const long = 'é'.repeat(2000);
    const cut = truncateNote(long);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(MAX_NOTE_BYTES);
    expect(cut.endsWith('…')).toBe(true);
  });
});

describe('certificates', () => {
  it('issues a server certificate for 127.0.0.1 that chains to its CA', async () => {
    const ca = await createCA('test-ca');
    const leaf = await issueCertificate(ca, { commonName: 'apiserver', usage: 'server', ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
    const cert = new x509.X509Certificate(leaf.certPem);
    expect(cert.issuer).toBe('CN=test-ca');
    expect(await cert.verify({ publicKey: ca.cert.publicKey })).toBe(true);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    expect(san?.names.items.map((n) => n.value)).toEqual(['localhost', '127.0.0.1']);
    expect(leaf.keyPem).toContain('BEGIN PRIVATE KEY');
  });

  it('puts organizations in the subject, where Kubernetes reads groups', async () => {
    const ca = await createCA('test-ca');
    const c = await issueCertificate(ca, { commonName: 'admin', organizations: ['system:masters'], usage: 'client' });
    expect(new x509.X509Certificate(c.certPem).subject).toBe('CN=admin, O=system:masters');
  });

  it('reloads a CA from PEM and keeps issuing verifiable certificates', async () => {
    const ca = await createCA('reload-ca');
    const again = await loadCA(ca.certPem, ca.keyPem);
    const leaf = await issueCertificate(again, { commonName: 'webhook', usage: 'server', dnsNames: ['svc.ns.svc'] });
    expect(await new x509.X509Certificate(leaf.certPem).verify({ publicKey: ca.cert.publicKey })).toBe(true);
    expect(daysUntilExpiry(leaf.certPem, new Date())).toBeGreaterThan(360);
  });
});

describe('kubeconfigYaml', () => {
  it('renders a kubeconfig that client-node loads with the server, CA and token', () => {
    const text = kubeconfigYaml('https://127.0.0.1:6443', '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n', 'sa', { token: 'abc' });
    const kc = new KubeConfig();
    kc.loadFromString(text);
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(kc.getCurrentUser()?.token).toBe('abc');
    expect(Buffer.from(kc.getCurrentCluster()?.caData ?? '', 'base64').toString()).toContain('BEGIN CERTIFICATE');
  });
});

describe('retries', () => {
  it('re-runs a step that hit 409 Conflict until it succeeds', async () => {
    let calls = 0;
    const result = await retryOnConflict(
      async () => {
        calls++;
        if (calls < 3) throw new KubeApiError(409, 'Conflict', 'the object has been modified', 'PATCH', '/x');
        return 'ok';
      },
      { initialDelayMs: 1 },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('does not retry a 422 Invalid', async () => {
    let calls = 0;
    await expect(
      retryOnConflict(async () => {
        calls++;
        throw new KubeApiError(422, 'Invalid', 'bad', 'POST', '/x');
      }),
    ).rejects.toThrow('bad');
    expect(calls).toBe(1);
  });

  it.each([
    [new KubeApiError(503, 'ServiceUnavailable', '', 'GET', '/'), true],
    [new KubeApiError(429, 'TooManyRequests', '', 'GET', '/'), true],
    [new KubeApiError(404, 'NotFound', '', 'GET', '/'), false],
    [Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), true],
  ])('classifies %p as transient=%p', (err, want) => {
    expect(isTransient(err)).toBe(want);
  });
});
