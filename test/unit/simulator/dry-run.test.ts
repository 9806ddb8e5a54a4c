// `node dist/cmd/node-plugin/main.js --dry-run` against the simulator: the
// slices it prints, and a clear failure when nvidia-smi cannot be run.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ResourceSlice } from '../../../pkg/api/resource.js';
import { limitViolations } from '../../../pkg/inventory/slices.js';
import { FLEETS, type FakeNvidiaSmi, createFakeNvidiaSmi } from '../../../hack/fake-nvidia-smi/testing.js';

const MAIN = path.resolve(process.cwd(), 'dist/cmd/node-plugin/main.js');

function runPlugin(args: readonly string[], env: Readonly<Record<string, string>>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first`);
});

describe('node plugin --dry-run', () => {
  let fake: FakeNvidiaSmi;
  afterEach(() => fake.cleanup());

  it('publishes an H100 NVL with MIG off at the sizes its captures show, and says the values are catalog knowledge', async () => {
    fake = createFakeNvidiaSmi({ gpus: [{ model: 'H100-NVL' }] });
    const r = await runPlugin(['--dry-run', '--nvidia-smi', fake.path, '--node-name', 'nvl'], fake.env);
    expect(r.code).toBe(0);
    const devices = (JSON.parse(r.stdout) as { items: ResourceSlice[] }).items.flatMap((s) => s.spec.devices ?? []);
    const memory = (name: string): unknown => devices.find((d) => d.name === name)?.capacity?.['gpu.cascade.dev/memory']?.value;
    expect([memory('gpu-0-mig-1g-12gb-0'), memory('gpu-0-mig-3g-47gb-4'), memory('gpu-0-mig-7g-94gb-0')]).toEqual(['11008Mi', '47488Mi', '95360Mi']);
    expect(r.stderr).toContain("MIG is off on NVIDIA H100 NVL, so its partitions are published from Cascade's catalog (captures of H100 NVL boards");
  });

  it('publishes an A30 with MIG on in its own geometry: four memory slices and four compute slices', async () => {
    fake = createFakeNvidiaSmi({ gpus: [{ model: 'A30', migMode: 'Enabled' }] });
    const r = await runPlugin(['--dry-run', '--nvidia-smi', fake.path, '--node-name', 'a30'], fake.env);
    expect(r.code).toBe(0);
    const slices = (JSON.parse(r.stdout) as { items: ResourceSlice[] }).items;
    const counters = slices.flatMap((s) => s.spec.sharedCounters ?? [])[0]?.counters ?? {};
    expect(
      Object.keys(counters)
        .filter((k) => k.startsWith('memory-slice-'))
        .sort(),
    ).toEqual(['memory-slice-0', 'memory-slice-1', 'memory-slice-2', 'memory-slice-3']);
    expect(counters['compute-slices']).toEqual({ value: '4' });
    const names = slices.flatMap((s) => s.spec.devices ?? []).map((d) => d.name);
    expect(names).toEqual(expect.arrayContaining(['gpu-0-mig-1g-6gb-3', 'gpu-0-mig-2g-12gb-2', 'gpu-0-mig-4g-24gb-0']));
    expect(r.stderr).not.toContain('catalog');
  });

  it('prints the slices of an 8x H100 MIG node as a JSON List within every limit', async () => {
    fake = createFakeNvidiaSmi(FLEETS.h100x8('Enabled'));
    const r = await runPlugin(['--dry-run', '--nvidia-smi', fake.path, '--node-name', 'gpu-node-1'], fake.env);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { kind: string; items: ResourceSlice[] };
    expect(list.kind).toBe('List');
    expect(list.items.map((s) => s.metadata.name)).toEqual([0, 1, 2, 3, 4].map((i) => `gpu-node-1-gpu-cascade-dev-${i}`));
    expect(list.items.flatMap((s) => s.spec.devices ?? [])).toHaveLength(8 * 27);
    expect(list.items.every((s) => s.spec.pool.generation === 1 && s.spec.pool.resourceSliceCount === 5 && s.spec.driver === 'gpu.cascade.dev')).toBe(true);
    const desired = list.items.map((s) => ({ name: s.metadata.name!, spec: { ...s.spec, pool: { name: s.spec.pool.name, resourceSliceCount: s.spec.pool.resourceSliceCount } } }));
    expect(limitViolations(desired)).toEqual([]);
  });

  it('takes the node name from NODE_NAME and the driver name from --driver-name', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100());
    const r = await runPlugin(['--dry-run', '--nvidia-smi', fake.path, '--driver-name', 'gpu.example.com'], { ...fake.env, NODE_NAME: 'n7' });
    const list = JSON.parse(r.stdout) as { items: ResourceSlice[] };
    // The counter set that keeps the whole and the shared GPU apart, then the two devices.
    expect(list.items.map((s) => s.metadata.name)).toEqual(['n7-gpu-example-com-0', 'n7-gpu-example-com-1']);
    expect(Object.keys(list.items[1]!.spec.devices![0]!.attributes!)).toContain('gpu.example.com/productName');
  });

  it('exits non-zero with a message naming the command when nvidia-smi fails', async () => {
    fake = createFakeNvidiaSmi(FLEETS.a100());
    fake.setFaults({ driverNotLoaded: true });
    const r = await runPlugin(['--dry-run', '--nvidia-smi', fake.path, '--node-name', 'n1'], fake.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^cascade node plugin: dry run failed: nvidia-smi --query-gpu=.*couldn't communicate with the NVIDIA driver.*\(exit code 9, driver-not-loaded\)/);
  });
});
