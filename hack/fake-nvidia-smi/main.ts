// Entry point of the nvidia-smi simulator (started by ./nvidia-smi): loads the
// config named by FAKE_NVIDIA_SMI_CONFIG, runs one call under the state lock.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { simulate } from './cli.js';
import { loadConfig } from './config.js';
import { STATE_FILE, type FakeState, loadState, saveState, stateDirFor, withLock } from './state.js';

function slowMs(stateDir: string): number {
  // Read without the lock: the file is replaced by rename, so it is always whole.
  const file = path.join(stateDir, STATE_FILE);
  if (!existsSync(file)) return 0;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as FakeState).faults.slowMs ?? 0;
  } catch {
    return 0;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const configPath = process.env.FAKE_NVIDIA_SMI_CONFIG;
  if (!configPath) {
    process.stderr.write('fake nvidia-smi: set FAKE_NVIDIA_SMI_CONFIG to the path of a simulator config (see hack/fake-nvidia-smi/config.ts)\n');
    return 255;
  }
  const config = loadConfig(configPath);
  const stateDir = stateDirFor(configPath);
  const delay = slowMs(stateDir);
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  const outcome = withLock(stateDir, () => {
    const state = loadState(stateDir, config);
    const r = simulate(argv, config, state);
    if (r.changed) saveState(stateDir, state);
    return r;
  });
  process.stdout.write(outcome.stdout);
  process.stderr.write(outcome.stderr);
  return outcome.exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`fake nvidia-smi: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 255;
  },
);
