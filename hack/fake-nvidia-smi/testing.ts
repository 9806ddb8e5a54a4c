// Test and demo helper: writes a simulator config for a fleet into a temp
// directory and returns the executable, the environment to run it with, and
// handles to inject faults or read its state.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeConfig, FakeGpuConfig, Faults } from './config.js';
import { resolveConfig } from './config.js';
import { type FakeState, STATE_FILE, loadState, saveState, withLock } from './state.js';

export type { FakeConfig, FakeGpuConfig, Faults } from './config.js';

export interface FakeNvidiaSmi {
  /** The executable to pass as --nvidia-smi. */
  readonly path: string;
  /** FAKE_NVIDIA_SMI_CONFIG, FAKE_NVIDIA_SMI_STATE and NVIDIA_MIG_MINORS; merge into the child's environment. */
  readonly env: Readonly<Record<string, string>>;
  readonly dir: string;
  readonly configPath: string;
  readonly stateDir: string;
  /** The driver's MIG capability table (/proc/driver/nvidia-caps/mig-minors) for this fleet. */
  readonly migMinorsPath: string;
  /** Replaces the injected faults (pass {} to clear them). */
  setFaults(faults: Faults): void;
  /** Merges into the injected faults. */
  addFaults(faults: Faults): void;
  readState(): FakeState;
  /** Runs the simulator once (through the executable, as the plugin would). */
  run(args: readonly string[]): Promise<{ stdout: string; stderr: string; exitCode: number }>;
  /** Removes the temp directory. */
  cleanup(): void;
}

/** Walks up from this file to the directory holding package.json (works from src and dist). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'hack', 'fake-nvidia-smi'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root above hack/fake-nvidia-smi');
    dir = up;
  }
}

/** The launcher script; it needs `npm run build` to have produced dist/hack/fake-nvidia-smi/main.js. */
export function fakeNvidiaSmiPath(): string {
  return path.join(repoRoot(), 'hack', 'fake-nvidia-smi', 'nvidia-smi');
}

/** True when the compiled simulator exists (tests skip the process-level cases otherwise). */
export function fakeNvidiaSmiBuilt(): boolean {
  return existsSync(path.join(repoRoot(), 'dist', 'hack', 'fake-nvidia-smi', 'main.js'));
}

/** Writes a config for `fleet` into a fresh temp directory. */
export function createFakeNvidiaSmi(fleet: FakeConfig, options: { dir?: string } = {}): FakeNvidiaSmi {
  const config = resolveConfig(fleet); // fail here, in the test, on a bad fleet
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'fake-nvidia-smi-'));
  mkdirSync(dir, { recursive: true });
  const configPath = path.join(dir, 'config.json');
  const stateDir = path.join(dir, 'state');
  writeFileSync(configPath, JSON.stringify(fleet, null, 2));
  const migMinorsPath = path.join(dir, 'mig-minors');
  writeFileSync(migMinorsPath, migMinorsTable(Math.max(...config.gpus.map((g) => g.minor + 1), 1)));
  // The node plugin reads NVIDIA_MIG_MINORS as the default of --mig-minors.
  const env = { FAKE_NVIDIA_SMI_CONFIG: configPath, FAKE_NVIDIA_SMI_STATE: stateDir, NVIDIA_MIG_MINORS: migMinorsPath };
  const exe = fakeNvidiaSmiPath();
  const update = (fn: (f: Faults) => Faults): void =>
    withLock(stateDir, () => {
      const state = loadState(stateDir, config);
      state.faults = fn(state.faults);
      saveState(stateDir, state);
    });
  return {
    path: exe,
    env,
    dir,
    configPath,
    stateDir,
    migMinorsPath,
    setFaults: (faults) => update(() => faults),
    addFaults: (faults) => update((f) => ({ ...f, ...faults })),
    readState: () => withLock(stateDir, () => loadState(stateDir, config)),
    run: (args) =>
      new Promise((resolve) => {
        execFile(exe, [...args], { env: { ...process.env, ...env, LC_ALL: 'C' }, encoding: 'utf8' }, (error, stdout, stderr) => {
          const code = error && typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : error ? 255 : 0;
          resolve({ stdout, stderr, exitCode: code });
        });
      }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * The table the NVIDIA driver exposes as /proc/driver/nvidia-caps/mig-minors:
 * fixed for a loaded driver, 15 GPU instances of 8 compute instances per GPU
 * (by minor number), numbered in order after "config" and "monitor".
 */
export function migMinorsTable(gpuCount: number): string {
  const lines = ['config 1', 'monitor 2'];
  let minor = 3;
  for (let g = 0; g < gpuCount; g++) {
    for (let gi = 0; gi < 15; gi++) {
      lines.push(`gpu${g}/gi${gi}/access ${minor++}`);
      for (let ci = 0; ci < 8; ci++) lines.push(`gpu${g}/gi${gi}/ci${ci}/access ${minor++}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Ready-made fleets for tests and the demo. */
export const FLEETS = {
  /** 8x H100 80GB on NVSwitch, NUMA 0 for GPUs 0-3 and 1 for 4-7. */
  h100x8: (migMode: 'Enabled' | 'Disabled' = 'Disabled'): FakeConfig => ({
    driverVersion: '580.105.08',
    cudaVersion: '13.0',
    gpus: Array.from({ length: 8 }, (_v, i): FakeGpuConfig => ({ model: 'H100-80GB', migMode, numaNode: i < 4 ? 0 : 1 })),
    nvlinkGroups: [[0, 1, 2, 3, 4, 5, 6, 7]],
  }),
  /** One A100 40GB, no NVLink. */
  a100: (migMode: 'Enabled' | 'Disabled' = 'Disabled'): FakeConfig => ({
    driverVersion: '570.148.08',
    cudaVersion: '12.8',
    gpus: [{ model: 'A100-SXM4-40GB', migMode, numaNode: 0 }],
  }),
} as const;

/** Reads a state file directly (for debugging a test's temp directory). */
export function readStateFile(stateDir: string): FakeState {
  return JSON.parse(readFileSync(path.join(stateDir, STATE_FILE), 'utf8')) as FakeState;
}
