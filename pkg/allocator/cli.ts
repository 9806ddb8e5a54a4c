// `cascade allocate`: reads ResourceSlices, DeviceClasses, Nodes, Namespaces,
// ResourceClaims, ResourceClaimTemplates and Pods from YAML or JSON text (one
// object per document, or `kubectl get -o json|yaml` Lists), allocates each Pod's
// claims together with the pod's cpu/memory, node selector, affinity and
// tolerations, then the claims no pod names, in document order, and prints one
// JSON line per claim plus a totals line. I/O is injected so tests run it directly.
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import type { DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice } from '../api/resource.js';
import type { Pod } from '../k8s/types.js';
import { podFacts, podRequest } from '../controller/podfacts.js';
import { DEFAULT_DRIVER_NAME } from '../api/resource.js';
import { Quantity } from '../cel/quantity.js';
import { Allocator } from './allocator.js';
import { claimLabel } from './plan.js';
import { allocatedDevicesOf } from './snapshot.js';
import type { NodeFacts, NodeTaint, PolicyName } from './types.js';

export interface AllocateCommand {
  /** Input files; "-" is standard input. */
  readonly files: readonly string[];
  readonly policy: PolicyName;
  readonly driver: string;
  /** Also explain successful placements (why this node, why these devices). */
  readonly explain: boolean;
  /** Print load time, memory and decision rate to the error stream. */
  readonly stats?: boolean;
  /** Files the caller has already read and parsed (cmd/cascade reads large YAML on several threads), and how long that took. */
  readonly documents?: ReadonlyMap<string, readonly unknown[]>;
  readonly readMs?: number;
}

export interface CliIO {
  readFile(path: string): string;
  out(line: string): void;
  err(line: string): void;
  /** Resident memory in bytes, for --stats (process.memoryUsage().rss). */
  rss?(): number;
}

/** One line of output per claim. */
export interface ClaimLine {
  readonly namespace: string;
  readonly name: string;
  /** The pod whose claims were allocated together with this one. */
  readonly pod?: string;
  readonly allocated: boolean;
  readonly allocation: unknown;
  readonly explanation: string | null;
}

export const EXIT_OK = 0;
export const EXIT_UNALLOCATED = 1;
export const EXIT_BAD_INPUT = 2;

class InputError extends Error {
  override readonly name = 'InputError';
}

interface Inputs {
  slices: ResourceSlice[];
  classes: DeviceClass[];
  nodes: NodeFacts[];
  claims: ResourceClaim[];
  templates: ResourceClaimTemplate[];
  pods: Pod[];
  /** Allocated claims of the cluster: in use, not reported. */
  inUse: ResourceClaim[];
  namespaceLabels: Record<string, Record<string, string>>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function strMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isRecord(v)) for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

function quantityText(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

function toNode(doc: Record<string, unknown>, where: string): NodeFacts {
  const meta = isRecord(doc.metadata) ? doc.metadata : {};
  const name = str(meta.name);
  if (name === undefined) throw new InputError(`${where}: Node without metadata.name`);
  const spec = isRecord(doc.spec) ? doc.spec : {};
  const status = isRecord(doc.status) ? doc.status : {};
  const alloc = isRecord(status.allocatable) ? status.allocatable : {};
  const taints: NodeTaint[] = [];
  for (const t of Array.isArray(spec.taints) ? spec.taints : []) {
    if (!isRecord(t)) continue;
    const effect = str(t.effect);
    const key = str(t.key);
    if (key === undefined || (effect !== 'NoSchedule' && effect !== 'PreferNoSchedule' && effect !== 'NoExecute')) continue;
    const value = str(t.value);
    taints.push(value === undefined ? { key, effect } : { key, value, effect });
  }
  const cpu = quantityText(alloc.cpu);
  const memory = quantityText(alloc.memory);
  return {
    name,
    labels: strMap(meta.labels),
    taints,
    unschedulable: spec.unschedulable === true,
    free: { ...(cpu !== undefined ? { cpu } : {}), ...(memory !== undefined ? { memory } : {}) },
  };
}

function requireShape(doc: Record<string, unknown>, kind: string, where: string): void {
  if (!isRecord(doc.metadata) || typeof doc.metadata.name !== 'string') throw new InputError(`${where}: ${kind} without metadata.name`);
  if (!isRecord(doc.spec)) throw new InputError(`${where}: ${kind} ${doc.metadata.name} without spec`);
}

/** Where each kind with metadata.name and spec goes. */
const LISTS = { ResourceSlice: 'slices', DeviceClass: 'classes', ResourceClaim: 'claims', ResourceClaimTemplate: 'templates', Pod: 'pods' } as const;

function collect(docs: readonly unknown[], where: string, into: Inputs, warn: (s: string) => void): void {
  for (const [i, raw] of docs.entries()) {
    if (raw === null || raw === undefined) continue;
    const at = `${where} document ${i + 1}`;
    if (!isRecord(raw)) throw new InputError(`${at}: not a Kubernetes object`);
    const kind = str(raw.kind);
    switch (kind) {
      case 'List':
        collect(Array.isArray(raw.items) ? raw.items : [], at, into, warn);
        break;
      case 'ResourceSlice':
      case 'DeviceClass':
      case 'ResourceClaim':
      case 'ResourceClaimTemplate':
      case 'Pod':
        requireShape(raw, kind, at);
        (into[LISTS[kind]] as unknown[]).push(raw);
        break;
      case 'Node':
        into.nodes.push(toNode(raw, at));
        break;
      case 'Namespace': {
        const meta = isRecord(raw.metadata) ? raw.metadata : {};
        const name = str(meta.name);
        if (name !== undefined) into.namespaceLabels[name] = strMap(meta.labels);
        break;
      }
      default:
        warn(`${at}: ignoring kind ${kind ?? '(none)'}`);
    }
  }
}

/**
 * The documents of one input: JSON (one object, a List or an array) when the
 * text starts with "{" or "[", else YAML documents separated by "---". Both
 * parsers build plain objects directly, so a dump of a large fleet loads at
 * tens of MB/s.
 */
export function parseDocuments(text: string, file: string): unknown[] {
  const start = /\S/.exec(text)?.index ?? 0;
  const first = text[start];
  if (first === '{' || first === '[') {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err: unknown) {
      throw new InputError(`${file}: invalid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    return Array.isArray(v) ? v : [v];
  }
  try {
    // YAML 1.2's core schema, as Kubernetes reads YAML: timestamps stay strings.
    return loadAll(text, undefined, { filename: file, json: true, schema: CORE_SCHEMA });
  } catch (err: unknown) {
    const msg = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
    throw new InputError(`${file}: invalid YAML: ${msg}`);
  }
}

/** Pods that are not bound yet, each with the claims it names (found, or generated from its templates). */
interface PodGroup {
  readonly pod: Pod;
  readonly claims: readonly ResourceClaim[];
}

function podGroups(inputs: Inputs): { groups: PodGroup[]; standalone: ResourceClaim[] } {
  const byName = new Map(inputs.claims.map((c) => [`${c.metadata.namespace ?? 'default'}/${c.metadata.name ?? ''}`, c]));
  const templates = new Map(inputs.templates.map((t) => [`${t.metadata.namespace ?? 'default'}/${t.metadata.name ?? ''}`, t]));
  const taken = new Set<ResourceClaim>();
  const groups: PodGroup[] = [];
  for (const pod of inputs.pods) {
    // Bound pods only take their node's cpu/memory (withBoundPods); pods without claims need no devices.
    if (pod.spec.nodeName || (pod.spec.resourceClaims ?? []).length === 0) continue;
    const ns = pod.metadata.namespace ?? 'default';
    const claims: ResourceClaim[] = [];
    for (const rc of pod.spec.resourceClaims ?? []) {
      if (rc.resourceClaimName !== undefined) {
        const c = byName.get(`${ns}/${rc.resourceClaimName}`);
        if (c === undefined) throw new InputError(`pod ${ns}/${pod.metadata.name ?? ''}: claim ${rc.resourceClaimName} is not in the input`);
        taken.add(c);
        claims.push(c);
      } else if (rc.resourceClaimTemplateName !== undefined) {
        const t = templates.get(`${ns}/${rc.resourceClaimTemplateName}`);
        if (t === undefined) throw new InputError(`pod ${ns}/${pod.metadata.name ?? ''}: claim template ${rc.resourceClaimTemplateName} is not in the input`);
        // Named as the claim controller would before its random suffix: <pod>-<claim entry>.
        claims.push({
          apiVersion: 'resource.k8s.io/v1',
          kind: 'ResourceClaim',
          metadata: { ...(t.spec.metadata ?? {}), name: `${pod.metadata.name ?? ''}-${rc.name}`, namespace: ns },
          spec: t.spec.spec,
        });
      }
    }
    groups.push({ pod, claims });
  }
  return { groups, standalone: inputs.claims.filter((c) => !taken.has(c)) };
}

/** Nodes' free cpu/memory: allocatable minus what the input's pods bound to them request. */
function withBoundPods(nodes: readonly NodeFacts[], pods: readonly Pod[]): NodeFacts[] {
  const used = new Map<string, { cpu: number; memory: number }>();
  for (const p of pods) {
    const n = p.spec.nodeName;
    if (!n || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    const u = used.get(n) ?? { cpu: 0, memory: 0 };
    u.cpu += podRequest(p, 'cpu');
    u.memory += podRequest(p, 'memory');
    used.set(n, u);
  }
  if (used.size === 0) return [...nodes];
  return nodes.map((n) => {
    const u = used.get(n.name);
    if (u === undefined) return n;
    const cpu = n.free?.cpu !== undefined ? Quantity.tryParse(n.free.cpu) : undefined;
    const mem = n.free?.memory !== undefined ? Quantity.tryParse(n.free.memory) : undefined;
    return {
      ...n,
      free: {
        ...(cpu !== undefined ? { cpu: `${Math.floor(cpu.asApproximateFloat() * 1000 - u.cpu)}m` } : {}),
        ...(mem !== undefined ? { memory: `${Math.floor(mem.asApproximateFloat() - u.memory)}` } : {}),
      },
    };
  });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs `cascade allocate`; returns the exit code. `live` holds objects read from
 * a cluster (--kubeconfig): they describe the fleet as it is now (slices,
 * classes, nodes, namespaces, the claims already allocated and the pods bound
 * to nodes); only the files' claims and pods are decided, and nothing is written.
 */
export function runAllocate(cmd: AllocateCommand, io: CliIO, live?: readonly unknown[]): number {
  const inputs: Inputs = { slices: [], classes: [], nodes: [], claims: [], templates: [], pods: [], inUse: [], namespaceLabels: {} };
  const t0 = performance.now();
  let plan: { groups: PodGroup[]; standalone: ResourceClaim[] };
  try {
    if (live !== undefined) {
      const now: Inputs = { slices: [], classes: [], nodes: [], claims: [], templates: [], pods: [], inUse: [], namespaceLabels: {} };
      collect(live, 'the cluster', now, (s) => io.err(s));
      inputs.slices.push(...now.slices);
      inputs.classes.push(...now.classes);
      inputs.nodes.push(...now.nodes);
      Object.assign(inputs.namespaceLabels, now.namespaceLabels);
      // What is already allocated or running counts as in use; what is pending is the controller's to decide.
      inputs.inUse.push(...now.claims.filter((c) => c.status?.allocation !== undefined));
      inputs.pods.push(...now.pods.filter((p) => p.spec.nodeName));
    }
    for (const file of cmd.files) collect(cmd.documents?.get(file) ?? parseDocuments(io.readFile(file), file), file, inputs, (s) => io.err(s));
    plan = podGroups(inputs);
  } catch (err: unknown) {
    io.err(`cascade allocate: ${message(err)}`);
    return EXIT_BAD_INPUT;
  }
  const loaded = performance.now();

  let allocator: Allocator;
  try {
    allocator = new Allocator(
      {
        slices: inputs.slices,
        classes: inputs.classes,
        ...(inputs.nodes.length > 0 ? { nodes: withBoundPods(inputs.nodes, inputs.pods) } : {}),
        allocated: allocatedDevicesOf([...inputs.inUse, ...inputs.claims]),
        namespaceLabels: inputs.namespaceLabels,
      },
      { policy: cmd.policy, driver: cmd.driver || DEFAULT_DRIVER_NAME },
    );
  } catch (err: unknown) {
    io.err(`cascade allocate: ${message(err)}`);
    return EXIT_BAD_INPUT;
  }
  for (const p of allocator.inventory.poolProblems) io.err(`warning: ${p}`);
  const indexed = performance.now();

  let allocated = 0;
  let failed = 0;
  let decided = 0;
  const decide = (claims: readonly ResourceClaim[], pod: Pod | undefined): boolean => {
    const podName = pod === undefined ? undefined : `${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''}`;
    const tag = podName === undefined ? {} : { pod: podName };
    const open = claims.filter((c) => c.status?.allocation === undefined);
    for (const c of claims) {
      if (c.status?.allocation === undefined) continue;
      allocated++;
      io.out(
        JSON.stringify({
          namespace: c.metadata.namespace ?? 'default',
          name: c.metadata.name ?? '',
          ...tag,
          allocated: true,
          allocation: c.status.allocation,
          explanation: cmd.explain ? 'already allocated' : null,
        }),
      );
    }
    if (open.length === 0) return true;
    let outcome;
    try {
      decided++;
      outcome = allocator.allocate({ claims: open, ...(pod !== undefined ? { pod: podFacts(pod) } : {}) });
    } catch (err: unknown) {
      io.err(`cascade allocate: ${podName !== undefined ? `pod ${podName}` : `claim ${claimLabel(open[0] ?? claims[0]!)}`}: ${message(err)}`);
      return false;
    }
    if (outcome.kind === 'allocated') allocator.commit(outcome);
    for (const [i, c] of open.entries()) {
      const base = { namespace: c.metadata.namespace ?? 'default', name: c.metadata.name ?? '', ...tag };
      let line: ClaimLine;
      if (outcome.kind === 'allocated') {
        allocated++;
        const mine = outcome.claims.find((x) => x.namespace === base.namespace && x.name === base.name) ?? outcome.claims[i];
        line = { ...base, allocated: true, allocation: mine?.allocation ?? null, explanation: cmd.explain ? outcome.explanation.short : null };
      } else {
        failed++;
        line = { ...base, allocated: false, allocation: null, explanation: outcome.explanation.short };
      }
      io.out(JSON.stringify(line));
    }
    return true;
  };
  for (const g of plan.groups) if (!decide(g.claims, g.pod)) return EXIT_BAD_INPUT;
  for (const claim of plan.standalone) if (!decide([claim], undefined)) return EXIT_BAD_INPUT;
  const done = performance.now();

  const usage = allocator.usage();
  const total = allocated + failed;
  io.out(
    JSON.stringify({
      totals: true,
      policy: cmd.policy,
      claims: total,
      pods: plan.groups.length,
      allocated,
      unallocated: failed,
      capacityUsed: usage.units > 0 ? Math.round((1000 * usage.used) / usage.units) / 1000 : 0,
    }),
  );
  if (cmd.stats === true) {
    const s = (ms: number): string => (ms / 1000).toFixed(2);
    const rss = io.rss?.();
    io.err(
      `stats: read ${inputs.slices.length} slices, ${inputs.claims.length} claims, ${inputs.pods.length} pods in ${s(loaded - t0 + (cmd.readMs ?? 0))} s; index built in ${s(indexed - loaded)} s; ` +
        `${decided} decisions in ${s(done - indexed)} s (${decided > 0 ? Math.round(decided / Math.max(1e-9, (done - indexed) / 1000)) : 0}/s)` +
        (rss !== undefined ? `; RSS ${Math.round(rss / 2 ** 20)} MiB` : ''),
    );
  }
  return failed > 0 ? EXIT_UNALLOCATED : EXIT_OK;
}
