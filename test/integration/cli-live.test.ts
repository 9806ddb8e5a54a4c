// `cascade allocate --kubeconfig`: a what-if against the live control plane. The
// fleet (slices, classes, nodes), the claims already allocated and the pods bound
// to nodes come from the API server; the file's claims are decided against that,
// and nothing is written to the cluster.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeCluster, useNamespace, adminKubeconfig } from '../support/cluster.js';
import { deviceClasses, wholeGpuSlice } from '../support/fleet.js';
import { createFakeNode } from '../../pkg/cluster/controlplane.js';
import { allocatedClaim } from './node-plugin-support.js';
import type { ResourceClaim } from '../../pkg/api/resource.js';

interface Result {
  readonly code: number | null;
  readonly lines: Record<string, unknown>[];
  readonly stderr: string;
}

async function cascadeAllocate(args: readonly string[]): Promise<Result> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cmd/cascade/main.ts', 'allocate', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const lines = out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, lines, stderr: err };
}

describeCluster('cascade allocate against the live cluster', () => {
  const tag = randomBytes(3).toString('hex');
  const driver = `cli-${tag}.cascade.dev`;
  const ns = useNamespace('cli');
  const node = `cli-${tag}`;
  let sliceName = '';

  beforeAll(async () => {
    await createFakeNode(ns.kube, node, { cpu: '16', memory: '64Gi' });
    for (const dc of deviceClasses(driver)) await ns.kube.deviceClasses.create(dc);
    const slice = await ns.kube.resourceSlices.create(await wholeGpuSlice(driver, node, 'H100-80GB', 2));
    sliceName = slice.metadata.name ?? '';
    // gpu-0 is taken: a claim allocated to it, as the controller would have written it.
    await allocatedClaim(ns.kube, ns.name, 'running', driver, node, ['gpu-0']);
  }, 60_000);

  afterAll(async () => {
    for (const dc of deviceClasses(driver)) await ns.kube.deviceClasses.delete(dc.metadata.name!).catch(() => undefined);
    await ns.kube.resourceSlices.delete(sliceName).catch(() => undefined);
    await ns.kube.nodes.delete(node).catch(() => undefined);
  });

  it('decides the file’s claims against what the cluster has free now, and writes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cascade-cli-'));
    const file = join(dir, 'claims.json');
    const claim = (name: string): ResourceClaim => ({
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceClaim',
      metadata: { name, namespace: ns.name },
      spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: `gpu.${driver}` } }] } },
    });
    await writeFile(file, JSON.stringify({ kind: 'List', items: [claim('what-if-1'), claim('what-if-2')] }));
    const before = await ns.kube.resourceClaims.listAll(ns.name);

    const r = await cascadeAllocate(['--kubeconfig', adminKubeconfig(), '--driver', driver, '-f', file]);

    expect(r.stderr).toBe('');
    const [first, second, totals] = r.lines;
    // Only gpu-1 is free: the running claim holds gpu-0.
    expect(first).toMatchObject({ name: 'what-if-1', allocated: true, allocation: { devices: { results: [{ pool: node, device: 'gpu-1' }] } } });
    expect(second).toMatchObject({ name: 'what-if-2', allocated: false });
    expect(String(second?.explanation)).toMatch(/in use|free/);
    expect(totals).toMatchObject({ totals: true, claims: 2, allocated: 1, unallocated: 1 });
    expect(r.code).toBe(1);

    const after = await ns.kube.resourceClaims.listAll(ns.name);
    expect(after.items.map((c) => c.metadata.name)).toEqual(['running']);
    expect(after.items[0]?.metadata.resourceVersion).toBe(before.items[0]?.metadata.resourceVersion);
  }, 60_000);

  it('says which cluster it could not read and exits 2 when the API server is not there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cascade-cli-'));
    const kc = join(dir, 'dead.kubeconfig');
    await writeFile(
      kc,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: dead, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
        'users: [{name: u, user: {token: x}}]',
        'contexts: [{name: c, context: {cluster: dead, user: u}}]',
        'current-context: c',
        '',
      ].join('\n'),
    );
    const file = join(dir, 'empty.json');
    await writeFile(file, '[]');
    const r = await cascadeAllocate(['--kubeconfig', kc, '-f', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`reading the cluster from ${kc}`);
    expect(r.lines).toEqual([]);
  }, 60_000);
});
