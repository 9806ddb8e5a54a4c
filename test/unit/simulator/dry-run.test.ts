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
