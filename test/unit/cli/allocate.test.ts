// `cascade allocate` on the repo's examples and on bad input.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { EXIT_BAD_INPUT, EXIT_OK, EXIT_UNALLOCATED, runAllocate, type AllocateCommand } from '../../../pkg/allocator/cli.js';

const FLEET = 'examples/allocate/fleet.yaml';
const CLAIMS = 'examples/allocate/claims.yaml';

interface Line {
  namespace: string;
  name: string;
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

describe('cascade allocate', () => {
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
