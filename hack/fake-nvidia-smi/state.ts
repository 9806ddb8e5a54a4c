// The simulator's state between calls (MIG mode, instances, faults), kept as
// JSON in a directory; every call holds a lock file and writes by rename.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Faults, ResolvedConfig } from './config.js';
import { type FakeGpuInstance, computeProfileId, findProfile, gpuInstanceId, placementRefusal } from './mig.js';
import { createHash } from 'node:crypto';

export interface FakeGpuState {
  migCurrent: 'Enabled' | 'Disabled';
  migPending: 'Enabled' | 'Disabled';
  gpuInstances: FakeGpuInstance[];
  /** compute-policy time slice, 0 (default) to 3 (long); absent means 0. */
  timeslice?: number;
}

export interface FakeState {
  version: 1;
  gpus: FakeGpuState[];
  faults: Faults;
  /** Bumped for every created compute instance, so MIG UUIDs are never reused. */
  serial: number;
}

export const STATE_FILE = 'state.json';

/** Where the state lives: FAKE_NVIDIA_SMI_STATE, or a folder next to the config. */
export function stateDirFor(configPath: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.FAKE_NVIDIA_SMI_STATE ?? path.join(path.dirname(configPath), 'fake-nvidia-smi-state');
}
const LOCK_FILE = 'state.lock';

/** A MIG UUID in the R470+ form, unique per creation. */
export function migUuid(gpuUuid: string, gi: number, ci: number, serial: number): string {
  const h = createHash('sha256').update(`${gpuUuid}/${gi}/${ci}/${serial}`).digest('hex');
  return `MIG-${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The state of a freshly booted node: MIG modes and pre-existing instances from the config. */
export function initialState(config: ResolvedConfig): FakeState {
  const state: FakeState = { version: 1, gpus: [], faults: config.faults, serial: 0 };
  for (const gpu of config.gpus) {
    const instances: FakeGpuInstance[] = [];
    for (const [i, wanted] of gpu.migInstances.entries()) {
      const where = `config.gpus[${gpu.index}].migInstances[${i}]`;
      if (gpu.migMode !== 'Enabled') throw new Error(`${where}: MIG instances need migMode "Enabled"`);
      const profile = findProfile(gpu.model, wanted.profile);
      if (!profile) throw new Error(`${where}: ${JSON.stringify(wanted.profile)} is not a MIG profile of ${gpu.model.key}`);
      const refusal = placementRefusal(gpu.model, instances, profile, wanted.start);
      if (refusal) throw new Error(`${where}: ${profile.name} at ${wanted.start}: ${refusal}`);
      const id = gpuInstanceId(gpu.model, profile.memorySlices, wanted.start);
      const cis = wanted.computeInstance === false ? [] : [{ id: 0, profileId: computeProfileId(profile.computeSlices), size: profile.computeSlices, uuid: migUuid(gpu.uuid, id, 0, ++state.serial) }];
      instances.push({ id, profileId: profile.id, start: wanted.start, computeInstances: cis });
    }
    state.gpus.push({ migCurrent: gpu.migMode, migPending: gpu.migMode, gpuInstances: instances });
  }
  return state;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs `fn` holding the state directory's lock file. A lock older than 30 s is
 * taken to be left by a killed process and broken.
 */
export function withLock<T>(stateDir: string, fn: () => T): T {
  mkdirSync(stateDir, { recursive: true });
  const lock = path.join(stateDir, LOCK_FILE);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 30_000) unlinkSync(lock);
      } catch {
        // The holder released it between our two calls.
      }
      if (Date.now() > deadline) throw new Error(`simulator state ${stateDir} stayed locked for 60 s`);
      sleepSync(5 + Math.floor(Math.random() * 10));
    }
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // Already gone: nothing to release.
    }
  }
}

/** Reads the state, creating it from the config on the first call. Call under the lock. */
export function loadState(stateDir: string, config: ResolvedConfig): FakeState {
  const file = path.join(stateDir, STATE_FILE);
  if (!existsSync(file)) {
    const state = initialState(config);
    saveState(stateDir, state);
    return state;
  }
  return JSON.parse(readFileSync(file, 'utf8')) as FakeState;
}

/** Writes the state atomically (temp file, rename). Call under the lock. */
export function saveState(stateDir: string, state: FakeState): void {
  const file = path.join(stateDir, STATE_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2));
  renameSync(tmp, file);
}
