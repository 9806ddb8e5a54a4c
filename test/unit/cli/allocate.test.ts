// `cascade allocate` on the repo's examples and on bad input.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadAll } from 'js-yaml';
import { EXIT_BAD_INPUT, EXIT_OK, EXIT_UNALLOCATED, runAllocate, type AllocateCommand } from '../../../pkg/allocator/cli.js';

const FLEET = 'examples/allocate/fleet.yaml';
const CLAIMS = 'examples/allocate/claims.yaml';

interface Line {
  namespace: string;
  name: string;
  pod?: string;
  allocated: boolean;
  allocation: { devices?: { results?: { request: string; pool: string; device: string }[] }; nodeSelector?: unknown } | null;
  explanation: string | null;
}

function run(files: Record<string, string>, args: Partial<AllocateCommand> = {}): { code: number; lines: Line[]; totals: Record<string, unknown>; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = runAllocate(
    { files: Object.keys(files), policy: 'cascade', driver: 'gpu.cascade.dev', explain: false, ...args },
    {
      readFile: (p) => {
        const text = files[p];
        if (text === undefined) throw new Error(`ENOENT: ${p}`);
        return text;
      },
      out: (l) => out.push(l),
      err: (l) => err.push(l),
    },
  );
  const parsed = out.map((l) => JSON.parse(l) as Record<string, unknown>);
  const totals = parsed.pop() ?? {};
  return { code, lines: parsed as unknown as Line[], totals, err };
}

const examples = (): Record<string, string> => ({ [FLEET]: readFileSync(FLEET, 'utf8'), [CLAIMS]: readFileSync(CLAIMS, 'utf8') });

function devices(l: Line | undefined): string[] {
  return (l?.allocation?.devices?.results ?? []).map((r) => `${r.request}=${r.pool}/${r.device}`);
}

const claim = (name: string, selector?: string): Record<string, unknown> => ({
  apiVersion: 'resource.k8s.io/v1',
  kind: 'ResourceClaim',
  metadata: { name, namespace: 'default' },
  spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: 'gpu.gpu.cascade.dev', ...(selector ? { selectors: [{ cel: { expression: selector } }] } : {}) } }] } },
});
const pod = (name: string, cpu: string, claims: Record<string, string>[], nodeName?: string): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'main', image: 'x', resources: { requests: { cpu } } }], resourceClaims: claims },
});
const A100 = 'device.attributes["gpu.cascade.dev"].productName.contains("A100")';
const nodeOf = (l: Line | undefined): unknown =>
  (l?.allocation?.nodeSelector as { nodeSelectorTerms?: { matchFields?: { values?: string[] }[] }[] } | undefined)?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values?.[0];

describe('cascade allocate', () => {
  it('reads a kubectl get -o json List as it reads the YAML documents', () => {
    const items = [...loadAll(readFileSync(FLEET, 'utf8')), ...loadAll(readFileSync(CLAIMS, 'utf8'))].filter((d) => d !== null && d !== undefined);
    const json = run({ 'all.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2) });
    const yaml = run(examples());
    expect(json.err).toEqual(yaml.err);
    expect(json.lines).toEqual(yaml.lines);
    expect(json.totals).toEqual(yaml.totals);
  });

  it("allocates a pod's claims together, on one node its cpu fits", () => {
    // The pod's second claim needs an A100; its cpu fits only on gpu-node-3, because
    // a bound pod takes 60 of gpu-node-2's 64 cores.
    const docs = [
      claim('any-gpu'),
      claim('an-a100', A100),
      pod('busy', '60', [], 'gpu-node-2'),
      // A pod without claims needs no devices: it is not a decision.
      pod('web', '1', []),
      pod('trainer', '8', [
        { name: 'first', resourceClaimName: 'any-gpu' },
        { name: 'second', resourceClaimName: 'an-a100' },
      ]),
    ];
    const r = run({ [FLEET]: readFileSync(FLEET, 'utf8'), 'pods.json': JSON.stringify(docs) });
    expect(r.err).toEqual([]);
    expect(r.lines.map((l) => [l.name, l.pod, l.allocated])).toEqual([
      ['any-gpu', 'default/trainer', true],
      ['an-a100', 'default/trainer', true],
    ]);
    expect(r.lines.map(nodeOf)).toEqual(['gpu-node-3', 'gpu-node-3']);
    expect(r.totals).toMatchObject({ claims: 2, pods: 1, allocated: 2, unallocated: 0 });
  });

  it("says so when a pod's cpu fits on no node with the devices", () => {
    const r = run({ [FLEET]: readFileSync(FLEET, 'utf8'), 'pods.json': JSON.stringify([claim('an-a100', A100), pod('greedy', '100', [{ name: 'gpu', resourceClaimName: 'an-a100' }])]) });
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatchObject({ name: 'an-a100', pod: 'default/greedy', allocated: false });
    expect(r.lines[0]?.explanation).toMatch(/cpu/);
    expect(r.code).toBe(EXIT_UNALLOCATED);
  });

  it('makes the claims of a pod from its ResourceClaimTemplates, named as the claim controller would', () => {
    const template = { apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaimTemplate', metadata: { name: 'one-a100', namespace: 'default' }, spec: { spec: claim('x', A100).spec } };
    const r = run({ [FLEET]: readFileSync(FLEET, 'utf8'), 'pods.json': JSON.stringify([template, pod('infer', '1', [{ name: 'gpu', resourceClaimTemplateName: 'one-a100' }])]) });
    expect(r.lines.map((l) => [l.name, l.pod, l.allocated])).toEqual([['infer-gpu', 'default/infer', true]]);
    expect(String(nodeOf(r.lines[0]))).toMatch(/^gpu-node-[23]$/);
  });

  it('names a claim a pod refers to that is not in the input', () => {
    const r = run({ [FLEET]: readFileSync(FLEET, 'utf8'), 'pods.json': JSON.stringify([pod('lost', '1', [{ name: 'gpu', resourceClaimName: 'nowhere' }])]) });
    expect(r.code).toBe(EXIT_BAD_INPUT);
    expect(r.err.join('\n')).toMatch(/pod default\/lost: claim nowhere is not in the input/);
  });

  it('rejects JSON it cannot parse, naming the file', () => {
    const r = run({ 'broken.json': '{"kind": "List", "items": [' });
    expect(r.code).toBe(EXIT_BAD_INPUT);
    expect(r.err.join('\n')).toMatch(/broken\.json: invalid JSON/);
  });

  it('prints one line per claim in document order and a totals line', () => {
    const r = run(examples());
    expect(r.lines.map((l) => l.name)).toEqual(['two-h100', 'full-gpu', 'mig-slice', 'fallback', 'four-gpus-nvlink', 'impossible']);
    expect(r.totals).toMatchObject({ totals: true, policy: 'cascade', claims: 6, allocated: 5, unallocated: 1 });
    expect(r.code).toBe(EXIT_UNALLOCATED);
    for (const l of r.lines) expect(Object.keys(l).sort()).toEqual(['allocated', 'allocation', 'explanation', 'name', 'namespace']);
  });

  it('answers where each example claim fits', () => {
    const { lines } = run(examples());
    const byName = new Map(lines.map((l) => [l.name, l]));
    expect(devices(byName.get('two-h100'))).toEqual(['gpus=gpu-node-1/gpu-0', 'gpus=gpu-node-1/gpu-1']);
    expect(byName.get('two-h100')?.allocation?.nodeSelector).toEqual({ nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['gpu-node-1'] }] }] });
    expect(devices(byName.get('mig-slice'))).toEqual([expect.stringMatching(/^mig=gpu-node-3\/gpu-\d-mig-1g-10gb-\d$/)]);
    // No H100 is left, so the list falls back to two A100s on one NVLink domain.
    expect(devices(byName.get('fallback'))).toEqual([expect.stringMatching(/^accel\/a100-pair=gpu-node-2\//), expect.stringMatching(/^accel\/a100-pair=gpu-node-2\//)]);
    const four = devices(byName.get('four-gpus-nvlink'));
    expect(four).toHaveLength(4);
    const minors = four.map((d) => Number(/gpu-(\d)$/.exec(d)?.[1]));
    expect(new Set(minors.map((m) => Math.floor(m / 4))).size).toBe(1);
    for (const l of lines.filter((x) => x.allocated)) expect(l.explanation).toBeNull();
  });

  it('explains the claim that does not fit in terms a person can act on', () => {
    const impossible = run(examples()).lines.find((l) => l.name === 'impossible');
    expect(impossible).toMatchObject({ allocated: false, allocation: null });
    expect(impossible?.explanation).toContain('need 8');
    expect(impossible?.explanation).toContain('gpu.cascade.dev/nvlinkDomain');
    expect(Buffer.byteLength(impossible?.explanation ?? '')).toBeLessThanOrEqual(1024);
  });

  it('runs the first-fit baseline on request', () => {
    const r = run(examples(), { policy: 'first-fit' });
    expect(r.totals).toMatchObject({ policy: 'first-fit', allocated: 5 });
    // First-fit takes the first 1g placement in inventory order.
    expect(devices(r.lines.find((l) => l.name === 'mig-slice'))).toEqual(['mig=gpu-node-3/gpu-0-mig-1g-10gb-0']);
  });

  it('explains successful placements with --explain', () => {
    const r = run(examples(), { explain: true });
    expect(r.lines[0]?.explanation).toMatch(/^node gpu-node-1 \(policy cascade/);
  });

  it('keeps claims that are already allocated and counts their devices as in use', () => {
    const fleet = readFileSync(FLEET, 'utf8');
    const claims = `
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: held, namespace: team}
spec: {devices: {requests: [{name: g, exactly: {deviceClassName: gpu.gpu.cascade.dev}}]}}
status:
  allocation:
    devices:
      results: [{request: g, driver: gpu.cascade.dev, pool: gpu-node-1, device: gpu-0}, {request: g, driver: gpu.cascade.dev, pool: gpu-node-1, device: gpu-1}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: wants-h100, namespace: team}
spec:
  devices:
    requests:
      - name: g
        exactly:
          deviceClassName: gpu.gpu.cascade.dev
          selectors: [{cel: {expression: 'device.attributes["gpu.cascade.dev"].productName.contains("H100") && !device.attributes["gpu.cascade.dev"].migCapable'}}]
`;
    const r = run({ 'fleet.yaml': fleet, 'claims.yaml': claims });
    expect(r.lines[0]).toMatchObject({ name: 'held', allocated: true });
    expect(r.lines[1]).toMatchObject({ name: 'wants-h100', allocated: false });
    expect(r.lines[1]?.explanation).toContain('2 in use');
  });

  it('exits 0 when every claim fits', () => {
    const claims = readFileSync(CLAIMS, 'utf8')
      .split('\n---\n')
      .filter((d) => !d.includes('name: impossible'))
      .join('\n---\n');
    expect(run({ [FLEET]: readFileSync(FLEET, 'utf8'), 'c.yaml': claims }).code).toBe(EXIT_OK);
  });

  it('rejects YAML it cannot parse, naming the file', () => {
    const r = run({ 'bad.yaml': 'kind: [unclosed' });
    expect(r.code).toBe(EXIT_BAD_INPUT);
    expect(r.err.join('\n')).toContain('bad.yaml');
  });

  it('rejects objects without a name', () => {
    const r = run({ 'x.yaml': 'apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {}\nspec: {}\n' });
    expect(r.code).toBe(EXIT_BAD_INPUT);
    expect(r.err.join('\n')).toContain('ResourceClaim without metadata.name');
  });

  it('reports a missing file', () => {
    const code = runAllocate(
      { files: ['nope.yaml'], policy: 'cascade', driver: 'gpu.cascade.dev', explain: false },
      {
        readFile: () => {
          throw new Error('ENOENT: nope.yaml');
        },
        out: () => undefined,
        err: () => undefined,
      },
    );
    expect(code).toBe(EXIT_BAD_INPUT);
  });

  it('is wired into the cascade command', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'cmd/cascade/main.ts', 'allocate', '-f', FLEET, '-f', CLAIMS, '--policy', 'first-fit'], { encoding: 'utf8' });
    expect(r.status).toBe(EXIT_UNALLOCATED);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(7);
    expect(JSON.parse(lines[6] ?? '{}')).toMatchObject({ totals: true, policy: 'first-fit' });
  });
});
