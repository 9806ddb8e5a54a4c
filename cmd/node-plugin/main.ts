// Entry point of the Cascade node plugin: parses the configuration, then
// either prints the ResourceSlices it would publish (--dry-run) or runs.
import { discoverDesiredSlices } from '../../pkg/inventory/discover.js';
import { toResourceSlices } from '../../pkg/inventory/slices.js';
import { errorMessage } from '../../pkg/log/logger.js';
import { HelpShown, type NodePluginConfig, parseNodePluginConfig } from '../../pkg/nodeplugin/config.js';
import { runNodePlugin } from '../../pkg/nodeplugin/run.js';
import { NvidiaSmiBackend } from '../../pkg/nvidia/smi-backend.js';

/** Discovers through the configured nvidia-smi and prints the slices as a JSON List on stdout. */
export async function runDryRun(config: NodePluginConfig): Promise<void> {
  const backend = new NvidiaSmiBackend({ path: config.nvidiaSmiPath, timeoutMs: config.nvidiaSmiTimeoutMs });
  const { slices, notes } = await discoverDesiredSlices(backend, {
    nodeName: config.nodeName,
    driverName: config.driverName,
    options: { dynamicMig: config.dynamicMig, sharing: config.sharing },
  });
  for (const note of notes) process.stderr.write(`cascade node plugin: ${note}\n`);
  // Generation 1 is what a first publication would carry.
  const list = { apiVersion: 'v1', kind: 'List', items: toResourceSlices(slices, 1) };
  process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
}

async function main(): Promise<number> {
  let config: NodePluginConfig;
  try {
    config = parseNodePluginConfig(process.argv.slice(2));
  } catch (err: unknown) {
    if (err instanceof HelpShown) return 0;
    process.stderr.write(`cascade node plugin: ${errorMessage(err)}\n`);
    return 2;
  }
  try {
    if (config.dryRun) await runDryRun(config);
    else await runNodePlugin(config);
    return 0;
  } catch (err: unknown) {
    process.stderr.write(`cascade node plugin: ${config.dryRun ? 'dry run failed: ' : ''}${errorMessage(err)}\n`);
    return 1;
  }
}

process.exitCode = await main();
