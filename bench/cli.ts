// The offline CLI on a real-sized fleet (npm run bench:cli, which builds dist/
// first): `cascade allocate` reading a dump of 1,213 nodes with the openb trace's
// GPU counts (8, 4, 2 or 1 per node), every GPU an H100 with dynamic MIG, so each
// node publishes its whole GPUs, every MIG placement and its shared GPUs, as the
// node plugin does (slices built by the real inventory code from simulated
// nvidia-smi). The dump holds the DeviceClasses, the Nodes and a mix of claims
// and pods, written three ways: multi-document YAML, a `kubectl get -o yaml`
// List and a `kubectl get -o json` List. Each is run through the installed
// command in a child process with --stats (large YAML is read on every core the
// machine has). Baseline: the YAML reader the CLI used before (the `yaml`
// package's parseAllDocuments), timed on a prefix of the same YAML and projected
// to the whole file.
//
//   npm run build && npx tsx bench/cli.ts [--nodes N] [--claims N] [--keep DIR]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { dump } from 'js-yaml';
import { parseAllDocuments } from 'yaml';
import { cascadeDeviceClasses } from '../pkg/api/deviceclasses.js';
import { fleetNode, simulatedFleetSlices, type SimulatedNode } from '../hack/fake-nvidia-smi/fleet.js';
import { seededRandom } from '../hack/seeded-random.js';

const D = 'gpu.cascade.dev';
/** The openb trace's GPU nodes by GPU count: [GPUs, nodes] (bench/sharing.ts has the source). */
const SHAPES: readonly (readonly [number, number])[] = [
  [8, 617],
  [4, 54],
  [2, 518],
  [1, 24],
];

function flag(argv: readonly string[], name: string, dflt: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
}

function fleet(limit: number): SimulatedNode[] {
  const nodes: SimulatedNode[] = [];
  for (const [gpus, count] of SHAPES) {
    for (let i = 0; i < count && nodes.length < limit; i++) nodes.push(fleetNode(`node-${String(nodes.length).padStart(4, '0')}`, 'H100-80GB', gpus, { mig: 'dynamic' }));
  }
  return nodes;
}

/** Claims and pods: whole GPUs, MIG profiles, shares and NVLink pairs, a third of them in pods with cpu. */
function workload(count: number): unknown[] {
  const rand = seededRandom(7);
  const out: unknown[] = [];
  const req = (k: number): unknown => {
    if (k < 0.35) return { name: 'gpu', exactly: { deviceClassName: `gpu.${D}` } };
    if (k < 0.6) return { name: 'mig', exactly: { deviceClassName: `mig.${D}`, selectors: [{ cel: { expression: `device.attributes["${D}"].profile == "${k < 0.5 ? '1g.10gb' : '3g.40gb'}"` } }] } };
    if (k < 0.85) return { name: 'share', exactly: { deviceClassName: `shared.${D}`, capacity: { requests: { [`${D}/memory`]: '10Gi', [`${D}/compute`]: '25' } } } };
    return { name: 'pair', exactly: { deviceClassName: `gpu.${D}`, count: 2 } };
  };
  for (let i = 0; i < count; i++) {
    const name = `claim-${i}`;
    out.push({ apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaim', metadata: { name, namespace: 'bench' }, spec: { devices: { requests: [req(rand())] } } });
    if (i % 3 === 0) {
      out.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `pod-${i}`, namespace: 'bench' },
        spec: { containers: [{ name: 'main', image: 'x', resources: { requests: { cpu: '4', memory: '16Gi' } } }], resourceClaims: [{ name: 'gpu', resourceClaimName: name }] },
      });
    }
  }
  return out;
}

interface Run {
  readonly wallS: number;
  readonly stats: string;
  readonly code: number | null;
}

function runCli(file: string): Run {
  // The command as installed (package.json "bin"), built by npm run build.
  const main = fileURLToPath(new URL('../dist/cmd/cascade/main.js', import.meta.url));
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [main, 'allocate', '-f', file, '--stats'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const wallS = (performance.now() - t0) / 1000;
  const stats = (r.stderr ?? '').split('\n').find((l) => l.startsWith('stats:')) ?? `no stats line (exit ${String(r.status)}): ${(r.stderr ?? '').slice(0, 400)}`;
  return { wallS, stats, code: r.status };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const nodes = fleet(flag(argv, '--nodes', 1213));
  const keepAt = argv.indexOf('--keep');
  const dir = keepAt >= 0 ? (argv[keepAt + 1] ?? '.') : mkdtempSync(join(tmpdir(), 'cascade-bench-cli-'));
  const slices = await simulatedFleetSlices(nodes);
  const devices = slices.reduce((n, s) => n + (s.spec.devices?.length ?? 0), 0);
  const nodeDocs = nodes.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } },
    status: { allocatable: { cpu: '128', memory: '1Ti', pods: '110' } },
  }));
  const docs: unknown[] = [...cascadeDeviceClasses(D), ...nodeDocs, ...slices, ...workload(flag(argv, '--claims', 600))];
  const yamlFile = join(dir, 'fleet.yaml');
  const listFile = join(dir, 'fleet-list.yaml');
  const jsonFile = join(dir, 'fleet.json');
  const yamlText = docs.map((d) => dump(d, { noRefs: true, lineWidth: -1 })).join('---\n');
  writeFileSync(yamlFile, yamlText);
  // kubectl get -o yaml's layout: one List document, its items starting with "- " in the first column.
  writeFileSync(listFile, dump({ apiVersion: 'v1', items: docs, kind: 'List', metadata: { resourceVersion: '' } }, { noRefs: true, lineWidth: -1, noArrayIndent: true }));
  writeFileSync(jsonFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }, null, 1));
  const mib = (f: string): string => (statSync(f).size / 2 ** 20).toFixed(0);
  process.stdout.write(
    `fleet: ${nodes.length} nodes, ${nodes.reduce((n, x) => n + x.config.gpus.length, 0)} H100s with dynamic MIG, ${devices} devices in ${slices.length} slices; node ${process.version}\n`,
  );
  process.stdout.write(`input: ${yamlFile} ${mib(yamlFile)} MiB, ${listFile} ${mib(listFile)} MiB, ${jsonFile} ${mib(jsonFile)} MiB; ${availableParallelism()} cores\n\n`);

  // Baseline: the previous reader on the first 1/16 of the YAML (it reads at well under 1 MB/s).
  const cut = yamlText.indexOf('\n---\n', Math.floor(yamlText.length / 16));
  const prefix = yamlText.slice(0, cut < 0 ? yamlText.length : cut);
  const b0 = performance.now();
  for (const d of parseAllDocuments(prefix) as unknown as { toJS(): unknown }[]) d.toJS();
  const baseS = (performance.now() - b0) / 1000;
  const baseRate = prefix.length / 2 ** 20 / baseS;
  process.stdout.write(
    `baseline (yaml parseAllDocuments, the previous reader): ${(prefix.length / 2 ** 20).toFixed(1)} MiB in ${baseS.toFixed(1)} s = ${baseRate.toFixed(2)} MiB/s; the whole YAML projected: ${(yamlText.length / 2 ** 20 / baseRate).toFixed(0)} s\n`,
  );
  for (const [label, file] of [
    ['YAML documents', yamlFile],
    ['YAML List (kubectl get -o yaml)', listFile],
    ['JSON List', jsonFile],
  ] as const) {
    const r = runCli(file);
    process.stdout.write(`cascade allocate, ${label}: ${r.wallS.toFixed(1)} s wall in all, exit ${String(r.code)}\n  ${r.stats}\n`);
  }
  process.stdout.write('\ntarget: the YAML loads in at most 20 s with at most 1.5 GiB RSS (stats: "read ... in" is the load)\n');
  if (keepAt < 0) rmSync(dir, { recursive: true, force: true });
}

await main();
