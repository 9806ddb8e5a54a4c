#!/usr/bin/env node
// The `cascade` command: parses flags and hands over to pkg (allocate: offline
// "would this fit, and where?" over YAML files).
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { DEFAULT_DRIVER_NAME } from '../../pkg/api/resource.js';
import { runAllocate } from '../../pkg/allocator/cli.js';
import type { PolicyName } from '../../pkg/allocator/types.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const program = new Command().name('cascade').description('Cascade, a DRA driver for NVIDIA GPUs: offline tools');

program
  .command('allocate')
  .description('Allocate ResourceClaims against ResourceSlices, DeviceClasses and Nodes read from YAML; prints one JSON line per claim, then totals. Exit 0: all allocated, 1: some not, 2: bad input.')
  .requiredOption('-f, --filename <file>', 'multi-document YAML file ("-" for stdin); repeatable', collect, [])
  .addOption(new Option('--policy <policy>', 'placement policy').choices(['cascade', 'first-fit']).default('cascade'))
  .option('--driver <name>', 'driver name (domain of Cascade attributes)', DEFAULT_DRIVER_NAME)
  .option('--explain', 'also explain successful placements', false)
  .action((opts: { filename: string[]; policy: PolicyName; driver: string; explain: boolean }) => {
    process.exitCode = runAllocate(
      { files: opts.filename, policy: opts.policy, driver: opts.driver, explain: opts.explain },
      {
        readFile: (path) => readFileSync(path === '-' ? 0 : path, 'utf8'),
        out: (line) => void process.stdout.write(line + '\n'),
        err: (line) => void process.stderr.write(line + '\n'),
      },
    );
  });

program.parse(process.argv);
