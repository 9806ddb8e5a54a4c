// Per-test-file access to the shared control plane: an admin client, a fresh
// namespace, kubectl, and polling helpers.
import { randomBytes } from 'node:crypto';
import { Kube } from '../../pkg/k8s/resources.js';
import { isNotFound } from '../../pkg/k8s/client.js';
import { adminKubeconfig } from './tools.js';

export { adminKubeconfig, clusterDir, binPath, kubectl, eventually, type CommandResult } from './tools.js';

export const skipReason = process.env.CASCADE_SKIP_CLUSTER;

/** `describe` that skips (loudly, once per file) when no control plane could be started. */
export const describeCluster: jest.Describe = skipReason
  ? (((name: string, fn: () => void) => {
      describe.skip(`${name} [SKIPPED: ${skipReason}]`, fn);
    }) as jest.Describe)
  : describe;

export interface TestNamespace {
  /** Admin client. */
  readonly kube: Kube;
  readonly name: string;
}

/** Creates a namespace for this file in beforeAll and deletes it in afterAll. */
export function useNamespace(prefix: string, labels: Record<string, string> = {}): TestNamespace {
  const ns = { kube: undefined as unknown as Kube, name: `${prefix}-${randomBytes(3).toString('hex')}` };
  beforeAll(async () => {
    if (skipReason) return;
    ns.kube = Kube.fromFile(adminKubeconfig());
    await ns.kube.namespaces.create({ metadata: { name: ns.name, labels } });
  });
  afterAll(async () => {
    if (skipReason || !ns.kube) return;
    try {
      await ns.kube.namespaces.delete(ns.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    ns.kube.close();
  });
  return ns;
}
