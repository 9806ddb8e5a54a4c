// Which claims are Cascade's. The rule (documented in docs/architecture.md):
// a DeviceClass is ours when one of its CEL selectors requires device.driver
// to be a driver Cascade allocates (its own, or one of the other drivers it is
// configured to co-allocate, --co-allocate-drivers) as a top-level && term; a
// claim is ours when every device class its requests name (in `exactly` or in
// any `firstAvailable` entry) exists and is ours. A claim that names no class
// of ours, or a class that does not exist, is left to the kube-scheduler's
// built-in allocator. A claim that mixes classes of ours with classes of other
// drivers is nobody's: two allocators over one claim would race for its
// devices, so Cascade refuses it (the pod stays gated, with an Event that says why).
import type { ASTNode } from '@marcbachmann/cel-js';
import type { DeviceClass, ResourceClaim, ResourceClaimSpec } from '../api/resource.js';
import { celEnvironment } from '../cel/index.js';

/** The driver names Cascade allocates: its own first, then the co-allocated ones. */
export type Drivers = string | readonly string[];

function driverList(d: Drivers): readonly string[] {
  return typeof d === 'string' ? [d] : d;
}

function isDriverLiteral(node: ASTNode, drivers: readonly string[]): boolean {
  return node.op === 'value' && typeof node.args === 'string' && drivers.includes(node.args);
}

function isDeviceDriver(node: ASTNode): boolean {
  return node.op === '.' && node.args[1] === 'driver' && node.args[0].op === 'id' && node.args[0].args === 'device';
}

/** Whether the expression, read as a chain of &&, requires device.driver == one of the drivers. */
function requiresDriver(node: ASTNode, drivers: readonly string[]): boolean {
  if (node.op === '&&') return requiresDriver(node.args[0], drivers) || requiresDriver(node.args[1], drivers);
  if (node.op !== '==') return false;
  const [a, b] = node.args;
  return (isDeviceDriver(a) && isDriverLiteral(b, drivers)) || (isDeviceDriver(b) && isDriverLiteral(a, drivers));
}

/**
 * A class is ours when one of its selectors requires device.driver == our
 * driver as one of its top-level && terms: then every device it can select is
 * ours. Text that merely mentions the driver (`!(device.driver == "...")`,
 * `... || true`) does not make a class ours.
 */
export function classIsOurs(dc: DeviceClass, drivers: Drivers): boolean {
  const list = driverList(drivers);
  return (dc.spec.selectors ?? []).some((s) => s.cel?.expression !== undefined && selectorRequiresDriver(s.cel.expression, list));
}

// Every gate decision and sync asks this for the same few classes: parse each expression once.
const requiresCache = new Map<string, boolean>();

function selectorRequiresDriver(expression: string, drivers: readonly string[]): boolean {
  const key = `${drivers.join(',')}\u0000${expression}`;
  let hit = requiresCache.get(key);
  if (hit === undefined) {
    try {
      hit = requiresDriver(celEnvironment().parse(expression).ast, drivers);
    } catch {
      hit = false;
    }
    if (requiresCache.size >= 1024) requiresCache.clear();
    requiresCache.set(key, hit);
  }
  return hit;
}

/** Every device class name a claim spec refers to. */
export function classNamesOf(spec: ResourceClaimSpec): string[] {
  const names = new Set<string>();
  for (const r of spec.devices?.requests ?? []) {
    if (r.exactly) names.add(r.exactly.deviceClassName);
    for (const s of r.firstAvailable ?? []) names.add(s.deviceClassName);
  }
  return [...names];
}

/**
 * Whether Cascade allocates a claim. `mixed` is set when the claim names
 * classes of ours and classes of drivers Cascade does not allocate: such a
 * claim is refused rather than left to race.
 */
export type Ownership = { readonly ours: true } | { readonly ours: false; readonly why: string; readonly mixed?: { readonly ours: readonly string[]; readonly others: readonly string[] } };

export function claimOwnership(spec: ResourceClaimSpec, classes: ReadonlyMap<string, DeviceClass>, drivers: Drivers): Ownership {
  const list = driverList(drivers);
  const names = classNamesOf(spec);
  if (names.length === 0) return { ours: false, why: 'the claim requests no devices' };
  const mine: string[] = [];
  const others: string[] = [];
  let missing: string | undefined;
  for (const n of names) {
    const dc = classes.get(n);
    if (!dc) missing ??= n;
    else if (classIsOurs(dc, list)) mine.push(n);
    else others.push(n);
  }
  if (missing !== undefined) return { ours: false, why: `device class ${missing} does not exist` };
  if (others.length === 0) return { ours: true };
  const which = list.length === 1 ? `driver ${list[0] ?? ''}` : `any driver Cascade allocates (${list.join(', ')})`;
  const why = `device class ${others[0] ?? ''} does not select ${which}`;
  if (mine.length === 0) return { ours: false, why };
  return {
    ours: false,
    why: `it mixes device classes Cascade allocates (${mine.join(', ')}) with classes of drivers the kube-scheduler allocates (${others.join(', ')}), and two allocators over one claim would race for its devices`,
    mixed: { ours: mine, others },
  };
}

export function claimIsOurs(claim: ResourceClaim, classes: ReadonlyMap<string, DeviceClass>, drivers: Drivers): boolean {
  return claimOwnership(claim.spec, classes, drivers).ours;
}

/** A Kubernetes label selector (metav1.LabelSelector). */
export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly { readonly key: string; readonly operator: string; readonly values?: readonly string[] }[];
}

/** Whether labels satisfy a selector; an absent or empty selector selects everything. */
export function selectorMatches(sel: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || value === undefined || !values.includes(value)) return false;
        break;
      case 'NotIn':
        if (has && value !== undefined && values.includes(value)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        // An operator the API server would have refused: select nothing rather than guess.
        return false;
    }
  }
  return true;
}

export interface GateWebhookConfig {
  readonly metadata: { readonly name?: string };
  readonly webhooks?: readonly { readonly name: string; readonly namespaceSelector?: LabelSelector }[];
}

/**
 * Which namespaces' claims Cascade allocates: exactly those whose pods the
 * scheduling-gate webhook sees, i.e. the namespaceSelector of the gate's
 * MutatingWebhookConfiguration. Everywhere else pods are not gated, so the
 * kube-scheduler's built-in allocator owns their claims, and Cascade must keep
 * out of them or both would allocate (double booking). One rule, read from the
 * one object the API server also applies.
 */
export class GateScope {
  private constructor(
    private readonly selectors: readonly LabelSelector[] | 'all',
    readonly source: string,
  ) {}

  /** No gate at all (webhook switched off): Cascade is the only allocator it knows of. */
  static everywhere(): GateScope {
    return new GateScope('all', 'the scheduling gate is off, so Cascade allocates claims in every namespace');
  }

  /** The gate's configuration; undefined while it does not exist, when no pod is gated anywhere. */
  static fromWebhookConfig(cfg: GateWebhookConfig | undefined, name: string): GateScope {
    if (!cfg) return new GateScope([], `the MutatingWebhookConfiguration ${name} does not exist, so no pod is gated`);
    return new GateScope(
      (cfg.webhooks ?? []).map((w) => w.namespaceSelector ?? {}),
      `the namespaceSelector of MutatingWebhookConfiguration ${name}`,
    );
  }

  /** Whether pods in a namespace with these labels are gated (kubernetes.io/metadata.name is implied). */
  covers(namespace: string, labels: Readonly<Record<string, string>> | undefined): boolean {
    if (this.selectors === 'all') return true;
    const all = { ...(labels ?? {}), 'kubernetes.io/metadata.name': namespace };
    return this.selectors.some((s) => selectorMatches(s, all));
  }

  /** Why a namespace is outside, in words for a log line or an Event. */
  outside(namespace: string): string {
    return `namespace ${namespace} is outside ${this.source}: its pods are not gated, so the kube-scheduler's built-in allocator handles its claims`;
  }
}
