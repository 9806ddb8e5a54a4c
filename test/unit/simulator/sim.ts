// In-process driver of the simulator for fast table-driven tests: a config,
// its fresh state, and a `call` that runs one invocation against them.
import { type CallResult, simulate } from '../../../hack/fake-nvidia-smi/cli.js';
import { type FakeConfig, resolveConfig } from '../../../hack/fake-nvidia-smi/config.js';
import { type FakeState, initialState } from '../../../hack/fake-nvidia-smi/state.js';

export interface Sim {
  readonly state: FakeState;
  call(...args: string[]): CallResult;
}

export function sim(config: FakeConfig): Sim {
  const resolved = resolveConfig(config);
  const state = initialState(resolved);
  return { state, call: (...args) => simulate(args, resolved, state) };
}

export function oneGpu(model: string, migMode: 'Enabled' | 'Disabled' = 'Enabled'): FakeConfig {
  return { gpus: [{ model, migMode, numaNode: 0 }] };
}
