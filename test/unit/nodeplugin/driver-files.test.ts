// CUDA containers get the driver's libraries and nvidia-smi: found under the
// driver root as the plugin sees it, mounted from the host's path of that root.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { driverFileEdits, CONTAINER_LIBRARY_DIR } from '../../../pkg/nodeplugin/driver-files.js';
import { buildClaimCdiSpec } from '../../../pkg/nodeplugin/gpu-cdi.js';

function fakeRoot(files: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'driver-root-'));
  for (const f of files) {
    mkdirSync(join(root, f, '..'), { recursive: true });
    writeFileSync(join(root, f), '');
  }
  return root;
}

describe('driver files for containers', () => {
  it('mounts the newest versioned libcuda and NVML under their sonames, and nvidia-smi, from the host root', () => {
    const root = fakeRoot([
      'usr/lib/x86_64-linux-gnu/libcuda.so.570.148.08',
      'usr/lib/x86_64-linux-gnu/libcuda.so.580.105.08',
      'usr/lib/x86_64-linux-gnu/libcuda.so.1',
      'usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.105.08',
      'usr/bin/nvidia-smi',
    ]);
    try {
      const edits = driverFileEdits(root, '/run/nvidia/driver');
      expect(edits.mounts).toEqual([
        { hostPath: '/run/nvidia/driver/usr/lib/x86_64-linux-gnu/libcuda.so.580.105.08', containerPath: `${CONTAINER_LIBRARY_DIR}/libcuda.so.1`, options: ['ro', 'nosuid', 'nodev', 'bind'] },
        { hostPath: '/run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.105.08', containerPath: `${CONTAINER_LIBRARY_DIR}/libnvidia-ml.so.1`, options: ['ro', 'nosuid', 'nodev', 'bind'] },
        { hostPath: '/run/nvidia/driver/usr/bin/nvidia-smi', containerPath: '/usr/bin/nvidia-smi', options: ['ro', 'nosuid', 'nodev', 'bind'] },
      ]);
      // And the spec that carries them is still valid CDI.
      const spec = buildClaimCdiSpec({
        driver: 'gpu.cascade.dev',
        claimUid: '0a0a0a0a-0000-4000-8000-00000000000a',
        devices: [{ type: 'gpu', deviceName: 'gpu-0', uuid: 'GPU-0', minor: 0 }],
        commonEdits: edits,
      });
      const schema = JSON.parse(readFileSync(new URL('../../fixtures/cdi-schema.json', import.meta.url), 'utf8')) as object;
      const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
      expect(validate(spec)).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('adds nothing where no driver is installed', () => {
    const root = fakeRoot([]);
    try {
      expect(driverFileEdits(root, '/')).toEqual({});
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
