// `cascade allocate`: reads ResourceSlices, DeviceClasses, Nodes, Namespaces and
// ResourceClaims from YAML text, allocates the claims in document order and prints
// one JSON line per claim plus a totals line. I/O is injected so tests run it directly.
import { parseAllDocuments } from 'yaml';
import type { DeviceClass, ResourceClaim, ResourceSlice } from '../api/resource.js';
import { DEFAULT_DRIVER_NAME } from '../api/resource.js';
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
}

export interface CliIO {
  readFile(path: string): string;
  out(line: string): void;
  err(line: string): void;
}

/** One line of output per claim. */
export interface ClaimLine {
  readonly namespace: string;
  readonly name: string;
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
        requireShape(raw, kind, at);
        into.slices.push(raw as unknown as ResourceSlice);
        break;
      case 'DeviceClass':
        requireShape(raw, kind, at);
        into.classes.push(raw as unknown as DeviceClass);
        break;
      case 'ResourceClaim':
        requireShape(raw, kind, at);
        into.claims.push(raw as unknown as ResourceClaim);
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

/** Runs `cascade allocate`; returns the exit code. */
export function runAllocate(cmd: AllocateCommand, io: CliIO): number {
  const inputs: Inputs = { slices: [], classes: [], nodes: [], claims: [], namespaceLabels: {} };
  try {
    for (const file of cmd.files) {
      const text = io.readFile(file);
      const docs = parseAllDocuments(text);
      const list = Array.isArray(docs) ? docs : [docs];
      for (const d of list) if (d.errors.length > 0) throw new InputError(`${file}: ${d.errors[0]?.message ?? 'invalid YAML'}`);
      collect(
        list.map((d) => d.toJS() as unknown),
        file,
        inputs,
        (s) => io.err(s),
      );
    }
  } catch (err: unknown) {
    io.err(`cascade allocate: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_BAD_INPUT;
  }

  let allocator: Allocator;
  try {
    allocator = new Allocator(
      {
        slices: inputs.slices,
        classes: inputs.classes,
        ...(inputs.nodes.length > 0 ? { nodes: inputs.nodes } : {}),
        allocated: allocatedDevicesOf(inputs.claims),
        namespaceLabels: inputs.namespaceLabels,
      },
      { policy: cmd.policy, driver: cmd.driver || DEFAULT_DRIVER_NAME },
    );
  } catch (err: unknown) {
    io.err(`cascade allocate: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_BAD_INPUT;
  }
  for (const p of allocator.inventory.poolProblems) io.err(`warning: ${p}`);

  let allocated = 0;
  let failed = 0;
  for (const claim of inputs.claims) {
    const namespace = claim.metadata.namespace ?? 'default';
    const name = claim.metadata.name ?? '';
    let line: ClaimLine;
    if (claim.status?.allocation !== undefined) {
      line = { namespace, name, allocated: true, allocation: claim.status.allocation, explanation: cmd.explain ? 'already allocated' : null };
      allocated++;
    } else {
      let outcome;
      try {
        outcome = allocator.allocate({ claims: [claim] });
      } catch (err: unknown) {
        io.err(`cascade allocate: claim ${claimLabel(claim)}: ${err instanceof Error ? err.message : String(err)}`);
        return EXIT_BAD_INPUT;
      }
      if (outcome.kind === 'allocated') {
        allocator.commit(outcome);
        allocated++;
        line = { namespace, name, allocated: true, allocation: outcome.claims[0]?.allocation ?? null, explanation: cmd.explain ? outcome.explanation.short : null };
      } else {
        failed++;
        line = { namespace, name, allocated: false, allocation: null, explanation: outcome.explanation.short };
      }
    }
    io.out(JSON.stringify(line));
  }
  const usage = allocator.usage();
  io.out(
    JSON.stringify({
      totals: true,
      policy: cmd.policy,
      claims: inputs.claims.length,
      allocated,
      unallocated: failed,
      capacityUsed: usage.units > 0 ? Math.round((1000 * usage.used) / usage.units) / 1000 : 0,
    }),
  );
  return failed > 0 ? EXIT_UNALLOCATED : EXIT_OK;
}
