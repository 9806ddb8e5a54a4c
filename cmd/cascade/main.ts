#!/usr/bin/env node
// The `cascade` command: parses flags and hands over to pkg (allocate: offline
// "would this fit, and where?" over YAML files).
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { DEFAULT_DRIVER_NAME } from '../../pkg/api/resource.js';
import { runAllocate } from '../../pkg/allocator/cli.js';
import { clusterDocuments } from '../../pkg/allocator/cluster.js';
import { parseDocumentsParallel } from '../../pkg/allocator/yaml-parallel.js';
import { KubeClient } from '../../pkg/k8s/client.js';
import { Kube } from '../../pkg/k8s/resources.js';
import type { PolicyName } from '../../pkg/allocator/types.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const program = new Command().name('cascade').description('Cascade, a DRA driver for NVIDIA GPUs: offline tools');

program
  .command('allocate')
  .description(
    "Allocate ResourceClaims against ResourceSlices, DeviceClasses and Nodes read from YAML or JSON; a Pod's claims are allocated together with its cpu/memory, node selector, affinity and tolerations. Prints one JSON line per claim, then totals. Exit 0: all allocated, 1: some not, 2: bad input.",
  )
  .requiredOption('-f, --filename <file>', 'YAML (multi-document) or JSON file, e.g. kubectl get ... -o json ("-" for stdin); repeatable', collect, [])
  .addOption(new Option('--policy <policy>', 'placement policy').choices(['cascade', 'first-fit']).default('cascade'))
  .option('--driver <name>', 'driver name (domain of Cascade attributes)', DEFAULT_DRIVER_NAME)
  .option('--explain', 'also explain successful placements', false)
  .option('--stats', 'print load time, peak memory and decisions per second to stderr', false)
  .option(
    '--kubeconfig <path>',
    "what-if against a live cluster: read its slices, classes, nodes, allocated claims and bound pods (lists only, nothing is written); the files' claims and pods are decided",
  )
  .action(async (opts: { filename: string[]; policy: PolicyName; driver: string; explain: boolean; stats: boolean; kubeconfig?: string }) => {
    let live: unknown[] | undefined;
    if (opts.kubeconfig !== undefined) {
      try {
        live = await clusterDocuments(new Kube(KubeClient.fromDefault(opts.kubeconfig)), opts.driver);
      } catch (err: unknown) {
        process.stderr.write(`cascade allocate: reading the cluster from ${opts.kubeconfig}: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 2;
        return;
      }
    }
    // Files are read here, large YAML on several threads; runAllocate takes the documents.
    const documents = new Map<string, unknown[]>();
    const read0 = performance.now();
    for (const file of opts.filename) {
      try {
        documents.set(file, await parseDocumentsParallel(readFileSync(file === '-' ? 0 : file, 'utf8'), file));
      } catch (err: unknown) {
        process.stderr.write(`cascade allocate: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 2;
        return;
      }
    }
    const readMs = performance.now() - read0;
    process.exitCode = runAllocate(
      { files: opts.filename, policy: opts.policy, driver: opts.driver, explain: opts.explain, stats: opts.stats, documents, readMs },
      {
        readFile: (path) => readFileSync(path === '-' ? 0 : path, 'utf8'),
        out: (line) => void process.stdout.write(line + '\n'),
        err: (line) => void process.stderr.write(line + '\n'),
        rss: () => Math.max(process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024),
      },
      live,
    );
  });

await program.parseAsync(process.argv);
