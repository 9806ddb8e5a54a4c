// Flags and environment of the node plugin, parsed into its typed config.
import { parseNodePluginConfig } from '../../../pkg/nodeplugin/config.js';

describe('parseNodePluginConfig', () => {
  it('fills the documented defaults', () => {
    expect(parseNodePluginConfig(['--node-name', 'n1'], {})).toEqual({
      nvidiaSmiPath: 'nvidia-smi',
      nvidiaSmiTimeoutMs: 30_000,
      nodeName: 'n1',
      driverName: 'gpu.cascade.dev',
      dryRun: false,
      kubeconfig: undefined,
      pluginsDir: '/var/lib/kubelet/plugins',
      registryDir: '/var/lib/kubelet/plugins_registry',
      cdiRoot: '/var/run/cdi',
      stateDir: '/var/lib/kubelet/plugins/gpu.cascade.dev',
      dynamicMig: true,
      healthPort: undefined,
      healthHost: '0.0.0.0',
      pollIntervalMs: 60_000,
      healthIntervalMs: 10_000,
      migMinorsPath: '/proc/driver/nvidia-caps/mig-minors',
      driverRoot: '/',
      hostDriverRoot: '/',
      onCorruptCheckpoint: 'fail',
      sharing: { memoryStep: '1Gi', computeStep: 1, computeDefault: 10 },
      mpsControlPath: 'nvidia-cuda-mps-control',
      mpsRoot: '/var/lib/kubelet/plugins/gpu.cascade.dev/mps',
      sysfsRoot: '/sys',
      devRoot: '/dev',
      passthrough: { pool: [], switchable: [] },
    });
  });

  it('reads every flag', () => {
    const c = parseNodePluginConfig(
      [
        '--nvidia-smi=/opt/bin/nvidia-smi',
        '--nvidia-smi-timeout',
        '5000',
        '--node-name',
        'n2',
        '--driver-name',
        'gpu.example.com',
        '--dry-run',
        '--kubeconfig',
        '/k',
        '--plugins-dir',
        '/p',
        '--registry-dir',
        '/r',
        '--cdi-root',
        '/c',
        '--state-dir',
        '/s',
        '--no-dynamic-mig',
        '--health-port=8081',
        '--health-host=127.0.0.1',
        '--poll-interval=2m',
        '--health-interval=500ms',
        '--mig-minors=/m',
        '--driver-root=/driver-root',
        '--host-driver-root=/run/nvidia/driver',
        '--on-corrupt-checkpoint=start-empty',
        '--shared-memory-step=2Gi',
        '--shared-compute-step=5',
        '--shared-compute-default=20',
        '--mps-control=/opt/bin/nvidia-cuda-mps-control',
        '--mps-root=/run/mps',
        '--sysfs-root=/host/sys',
        '--dev-root=/host/dev',
        '--passthrough-pool=1b:00.0,0000:2c:00.0',
        '--passthrough-switchable=all',
      ],
      {},
    );
    expect(c).toEqual({
      nvidiaSmiPath: '/opt/bin/nvidia-smi',
      nvidiaSmiTimeoutMs: 5000,
      nodeName: 'n2',
      driverName: 'gpu.example.com',
      dryRun: true,
      kubeconfig: '/k',
      pluginsDir: '/p',
      registryDir: '/r',
      cdiRoot: '/c',
      stateDir: '/s',
      dynamicMig: false,
      healthPort: 8081,
      healthHost: '127.0.0.1',
      pollIntervalMs: 120_000,
      healthIntervalMs: 500,
      migMinorsPath: '/m',
      driverRoot: '/driver-root',
      hostDriverRoot: '/run/nvidia/driver',
      onCorruptCheckpoint: 'start-empty',
      sharing: { memoryStep: '2Gi', computeStep: 5, computeDefault: 20 },
      mpsControlPath: '/opt/bin/nvidia-cuda-mps-control',
      mpsRoot: '/run/mps',
      sysfsRoot: '/host/sys',
      devRoot: '/host/dev',
      passthrough: { pool: ['0000:1b:00.0', '0000:2c:00.0'], switchable: 'all' },
    });
  });

  it('refuses a passthrough GPU that is not a PCI address, and one listed both as pool and switchable', () => {
    expect(() => parseNodePluginConfig(['--node-name=n', '--passthrough-pool=gpu-0'], {})).toThrow('passthrough: "gpu-0" is not a PCI address such as 0000:1b:00.0');
    expect(() => parseNodePluginConfig(['--node-name=n', '--passthrough-pool=1b:00.0', '--passthrough-switchable=0000:1b:00.0'], {})).toThrow(
      'passthrough: GPUs 0000:1b:00.0 are in both --passthrough-pool and --passthrough-switchable',
    );
  });

  it('turns shared GPUs off with --no-shared-gpus and refuses sharing settings the API would refuse', () => {
    expect(parseNodePluginConfig(['--node-name=n', '--no-shared-gpus'], {}).sharing).toBe(false);
    expect(() => parseNodePluginConfig(['--node-name=n', '--shared-compute-step=7'], {})).toThrow('must be a whole percent that divides 100');
    expect(() => parseNodePluginConfig(['--node-name=n', '--shared-memory-step=1.5Gi'], {})).toThrow('must be a whole number of bytes, Ki, Mi or Gi');
    expect(() => parseNodePluginConfig(['--node-name=n', '--shared-compute-default=3', '--shared-compute-step=5'], {})).toThrow('must be a multiple of the step 5');
  });

  it('refuses an unknown --on-corrupt-checkpoint action, naming the choices', () => {
    expect(() => parseNodePluginConfig(['--node-name=n', '--on-corrupt-checkpoint=ignore'], {})).toThrow(/--on-corrupt-checkpoint.*fail, start-empty/);
  });

  it('takes NODE_NAME, NVIDIA_SMI and KUBECONFIG from the environment', () => {
    expect(parseNodePluginConfig([], { NODE_NAME: 'n3', NVIDIA_SMI: '/x/nvidia-smi', KUBECONFIG: '/kc' })).toMatchObject({ nodeName: 'n3', nvidiaSmiPath: '/x/nvidia-smi', kubeconfig: '/kc' });
  });

  it.each([
    ['no node name at all', [], {}, /node name is unknown: pass --node-name or set NODE_NAME/],
    ['a node name that is not a DNS subdomain', ['--node-name', 'Node_1'], {}, /--node-name must be a DNS subdomain/],
    ['a NODE_NAME that is not a DNS subdomain', [], { NODE_NAME: 'UPPER' }, /NODE_NAME must be a DNS subdomain/],
    ['a zero timeout', ['--node-name', 'n', '--nvidia-smi-timeout', '0'], {}, /expected a positive integer/],
    ['a poll interval without a number', ['--node-name', 'n', '--poll-interval', 'soon'], {}, /expected a duration such as 30s/],
    ['a health port out of range', ['--node-name', 'n', '--health-port', '70000'], {}, /expected a port number/],
    ['an unknown flag', ['--node-name', 'n', '--frobnicate'], {}, /unknown option '--frobnicate'/],
  ])('refuses %s with a message a person can act on', (_name, argv, env, message) => {
    expect(() => parseNodePluginConfig(argv, env)).toThrow(message);
  });
});
