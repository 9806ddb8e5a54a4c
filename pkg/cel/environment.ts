// Kubernetes' CEL environment for DRA device selectors on top of cel-js: the
// `device` variable, Quantity and semver types, a compile cache and the cost/size limits.
import { Environment, serialize, type ASTNode } from '@marcbachmann/cel-js';
import type { DeviceAttribute, DeviceCapacity } from '../api/resource.js';
import { LIMITS } from '../api/resource.js';
import { CEL_COST_LIMIT, estimateCost, isNode } from './cost.js';
import { Quantity } from './quantity.js';
import { registerKubernetesLibrary } from './library.js';
import { re2Matches } from './regex.js';
import { selectorInputs, type SelectorInput } from './inputs.js';
import { Semver } from './semver.js';

type CelScalar = bigint | boolean | string | Semver;

/** A value of device.attributes[domain][name]: a scalar, or a list (list-type attributes, KEP-5491). */
export type CelAttributeValue = CelScalar | readonly CelScalar[];

/**
 * Attributes of one domain. A plain object rather than a Map: devices of one
 * driver share its shape, which keeps 100k devices' worth of them small.
 */
export type CelBag<V> = Readonly<Record<string, V>>;

/** The `device` variable as selectors see it. */
export class CelDevice {
  readonly driver: string;
  readonly attributes: ReadonlyMap<string, CelBag<CelAttributeValue>>;
  readonly capacity: ReadonlyMap<string, CelBag<Quantity>>;
  readonly allowMultipleAllocations: boolean;

  constructor(driver: string, attributes: ReadonlyMap<string, CelBag<CelAttributeValue>>, capacity: ReadonlyMap<string, CelBag<Quantity>>, allowMultipleAllocations: boolean) {
    this.driver = driver;
    this.attributes = attributes;
    this.capacity = capacity;
    this.allowMultipleAllocations = allowMultipleAllocations;
  }
}

const EMPTY_DOMAIN: CelBag<never> = Object.freeze({});

/**
 * A map of domains where an unknown domain reads as an empty map, as Kubernetes
 * specifies; cel-js looks keys up with Map#get, so the instance's get is replaced.
 */
function domainMap<V>(entries: Map<string, Record<string, V>>): ReadonlyMap<string, CelBag<V>> {
  const plainGet = entries.get.bind(entries);
  Object.defineProperty(entries, 'get', { value: (key: string) => plainGet(key) ?? EMPTY_DOMAIN, enumerable: false });
  return entries;
}

// Values repeat across a fleet (same versions, memory sizes); sharing them saves memory.
const semverIntern = new Map<string, Semver | string>();
const quantityIntern = new Map<string, Quantity | null>();
const INTERN_LIMIT = 100_000;

function interned<V>(table: Map<string, V>, key: string, make: () => V): V {
  const hit = table.get(key);
  if (hit !== undefined || table.has(key)) return hit as V;
  const v = make();
  if (table.size >= INTERN_LIMIT) table.clear();
  table.set(key, v);
  return v;
}

function setOwn<V>(bag: Record<string, V>, key: string, value: V): void {
  // defineProperty so that a name like "__proto__" stays an ordinary key.
  if (key === '__proto__') Object.defineProperty(bag, key, { value, enumerable: true, configurable: true, writable: true });
  else bag[key] = value;
}

/** Splits "domain/name"; a bare name belongs to the driver's domain. */
export function splitQualifiedName(driver: string, name: string): readonly [string, string] {
  const slash = name.indexOf('/');
  return slash < 0 ? [driver, name] : [name.slice(0, slash), name.slice(slash + 1)];
}

/** Converts one API attribute to its CEL value (versions become Semver). */
export function attributeToCel(attr: DeviceAttribute): CelAttributeValue | undefined {
  if (attr.int !== undefined) return BigInt(attr.int);
  if (attr.bool !== undefined) return attr.bool;
  if (attr.string !== undefined) return attr.string;
  if (attr.version !== undefined) return semverOf(attr.version);
  if (attr.ints !== undefined) return attr.ints.length > 0 ? attr.ints.map((x) => BigInt(x)) : undefined;
  if (attr.bools !== undefined) return attr.bools.length > 0 ? [...attr.bools] : undefined;
  if (attr.strings !== undefined) return attr.strings.length > 0 ? [...attr.strings] : undefined;
  if (attr.versions !== undefined) return attr.versions.length > 0 ? attr.versions.map(semverOf) : undefined;
  return undefined;
}

function semverOf(v: string): Semver | string {
  return interned(semverIntern, v, () => Semver.tryParse(v) ?? v);
}

function sameScalar(a: unknown, b: unknown): boolean {
  if (a instanceof Semver && b instanceof Semver) return a.equals(b);
  return a === b;
}

/**
 * `x.includes(v)` (Kubernetes 1.36, with list-type attributes): whether the
 * list x holds v, or the scalar x equals it.
 */
export function celIncludes(x: unknown, v: unknown): boolean {
  if (Array.isArray(x)) {
    if (x.length > LIST_MAX) throw new Error(`includes: a list of ${x.length} values is longer than the ${LIST_MAX} an attribute may hold`);
    return (x as readonly unknown[]).some((e) => sameScalar(e, v));
  }
  return sameScalar(x, v);
}

/** Attribute values a device may carry in all (list elements counted), as the API limits them. */
const LIST_MAX = 48;

/** Builds the CEL view of a device from its API fields. */
export function makeCelDevice(
  driver: string,
  attributes: Readonly<Record<string, DeviceAttribute>> | undefined,
  capacity: Readonly<Record<string, DeviceCapacity>> | undefined,
  allowMultipleAllocations: boolean,
): CelDevice {
  const attrs = new Map<string, Record<string, CelAttributeValue>>();
  for (const [name, attr] of Object.entries(attributes ?? {})) {
    const value = attributeToCel(attr);
    if (value === undefined) continue;
    const [domain, id] = splitQualifiedName(driver, name);
    let m = attrs.get(domain);
    if (m === undefined) attrs.set(domain, (m = {}));
    setOwn(m, id, value);
  }
  const caps = new Map<string, Record<string, Quantity>>();
  for (const [name, cap] of Object.entries(capacity ?? {})) {
    const text = cap.value;
    const q = interned(quantityIntern, text, () => Quantity.tryParse(text) ?? null);
    if (q === null) continue;
    const [domain, id] = splitQualifiedName(driver, name);
    let m = caps.get(domain);
    if (m === undefined) caps.set(domain, (m = {}));
    setOwn(m, id, q);
  }
  return new CelDevice(driver, domainMap(attrs), domainMap(caps), allowMultipleAllocations);
}

/** [key, value] pairs of a map, or [index, value] pairs of a list (two-variable comprehensions). */
function pairsOf(x: unknown): unknown[][] {
  if (Array.isArray(x)) return (x as readonly unknown[]).map((v, i): unknown[] => [BigInt(i), v]);
  if (x instanceof Map) return [...x.entries()] as unknown[][];
  if (typeof x === 'object' && x !== null) return Object.entries(x);
  throw new Error('a two-variable comprehension needs a list or a map');
}

function mapOfPairs(pairs: readonly unknown[]): Map<unknown, unknown> {
  return new Map(pairs.map((p) => (Array.isArray(p) ? [p[0], p[1]] : [p, p])));
}

function cmp(c: -1 | 0 | 1): bigint {
  return BigInt(c);
}

function buildEnvironment(): Environment {
  return registerKubernetesLibrary(
    new Environment({ homogeneousAggregateLiterals: false, enableOptionalTypes: true, limits: { maxAstNodes: 10_000, maxDepth: 100 } })
      .registerType('Quantity', Quantity)
      .registerType('Semver', Semver)
      .registerType('Device', {
        ctor: CelDevice,
        fields: {
          driver: 'string',
          attributes: 'map<string, map<string, dyn>>',
          capacity: 'map<string, map<string, Quantity>>',
          allowMultipleAllocations: 'bool',
        },
      })
      .registerVariable('device', 'Device')
      .registerFunction('dyn.includes(dyn): bool', (x: unknown, v: unknown) => celIncludes(x, v))
      .registerFunction('quantity(string): Quantity', (s: string) => Quantity.parse(s))
      .registerFunction('isQuantity(string): bool', (s: string) => Quantity.tryParse(s) !== undefined)
      .registerFunction('Quantity.compareTo(Quantity): int', (a: Quantity, b: Quantity) => cmp(a.compareTo(b)))
      .registerFunction('Quantity.isGreaterThan(Quantity): bool', (a: Quantity, b: Quantity) => a.compareTo(b) > 0)
      .registerFunction('Quantity.isLessThan(Quantity): bool', (a: Quantity, b: Quantity) => a.compareTo(b) < 0)
      .registerFunction('Quantity.add(Quantity): Quantity', (a: Quantity, b: Quantity) => a.add(b))
      .registerFunction('Quantity.add(int): Quantity', (a: Quantity, b: bigint) => a.add(Quantity.fromInteger(b)))
      .registerFunction('Quantity.sub(Quantity): Quantity', (a: Quantity, b: Quantity) => a.sub(b))
      .registerFunction('Quantity.sub(int): Quantity', (a: Quantity, b: bigint) => a.sub(Quantity.fromInteger(b)))
      .registerFunction('Quantity.sign(): int', (a: Quantity) => cmp(a.sign()))
      .registerFunction('Quantity.isInteger(): bool', (a: Quantity) => a.isInteger())
      .registerFunction('Quantity.asInteger(): int', (a: Quantity) => a.asInteger())
      .registerFunction('Quantity.asApproximateFloat(): double', (a: Quantity) => a.asApproximateFloat())
      .registerOperator('Quantity == Quantity', (a: Quantity, b: Quantity) => a.equals(b))
      .registerFunction('semver(string): Semver', (s: string) => Semver.parse(s))
      .registerFunction('semver(string, bool): Semver', (s: string, normalize: boolean) => Semver.parse(s, normalize))
      .registerFunction('isSemver(string): bool', (s: string) => Semver.tryParse(s) !== undefined)
      .registerFunction('isSemver(string, bool): bool', (s: string, normalize: boolean) => Semver.tryParse(s, normalize) !== undefined)
      .registerFunction('Semver.major(): int', (v: Semver) => v.major)
      .registerFunction('Semver.minor(): int', (v: Semver) => v.minor)
      .registerFunction('Semver.patch(): int', (v: Semver) => v.patch)
      .registerFunction('Semver.compareTo(Semver): int', (a: Semver, b: Semver) => cmp(a.compareTo(b)))
      .registerFunction('Semver.isGreaterThan(Semver): bool', (a: Semver, b: Semver) => a.compareTo(b) > 0)
      .registerFunction('Semver.isLessThan(Semver): bool', (a: Semver, b: Semver) => a.compareTo(b) < 0)
      .registerOperator('Semver == Semver', (a: Semver, b: Semver) => a.equals(b))
      .registerFunction('matches(string, string): bool', re2Matches)
      .registerFunction('cascadePairs(dyn): list<dyn>', pairsOf)
      .registerFunction('cascadePairsToMap(list<dyn>): map<dyn, dyn>', mapOfPairs),
  );
}

let environment: Environment | undefined;

/** The shared environment; building one is expensive, so it is made once. */
export function celEnvironment(): Environment {
  environment ??= buildEnvironment();
  return environment;
}

/** Outcome of evaluating one selector against one device. */
export type SelectorOutcome = { readonly ok: true; readonly matches: boolean } | { readonly ok: false; readonly error: string };

export interface CompiledSelector {
  readonly expression: string;
  /** Worst-case cost estimate (see cost.ts). */
  readonly cost: number;
  /** The device fields the expression reads, when that is a fixed set (see inputs.ts). */
  readonly inputs: readonly SelectorInput[] | undefined;
  evaluate(device: CelDevice): SelectorOutcome;
}

export type CompileResult = { readonly ok: true; readonly selector: CompiledSelector } | { readonly ok: false; readonly expression: string; readonly error: string };

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}

/** An AST node as serialize() reads it: spans are not needed. */
type Bare = { op: ASTNode['op']; args: unknown };

const ONE_VAR_MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);
const TWO_VAR_MACROS = new Set(['all', 'exists', 'existsOne', 'exists_one', 'transformList', 'transformMap']);

/** The tree with identifiers replaced, except where a nested comprehension binds the same name. */
function substitute(v: unknown, names: ReadonlyMap<string, Bare>): unknown {
  if (Array.isArray(v)) return v.map((x) => substitute(x, names));
  if (!isNode(v)) return v;
  if (v.op === 'id' && typeof v.args === 'string') return names.get(v.args) ?? { op: 'id', args: v.args };
  if (v.op === 'rcall' && ONE_VAR_MACROS.has(v.args[0])) {
    const [name, receiver, args] = v.args;
    const bound = args[0]?.op === 'id' ? String(args[0].args) : undefined;
    const inner = new Map(names);
    if (bound !== undefined) inner.delete(bound);
    return { op: 'rcall', args: [name, substitute(receiver, names), args.map((a, i) => (i === 0 ? substitute(a, new Map()) : substitute(a, inner)))] };
  }
  return { op: v.op, args: substitute(v.args, names) };
}

/**
 * Kubernetes' two-variable comprehensions (`all(k, v, p)`, `exists`, `existsOne`,
 * `transformList`, `transformMap`, on lists as index/value and maps as
 * key/value), which cel-js lacks, as one-variable comprehensions over
 * `cascadePairs(x)` ([key, value] pairs), with k and v read from the pair.
 */
function twoVariableComprehension(node: ASTNode, copy: (v: unknown) => unknown, freshName: () => string): Bare | undefined {
  if (node.op !== 'rcall' || !TWO_VAR_MACROS.has(node.args[0])) return undefined;
  const [name, receiver, args] = node.args;
  const [k, v, ...rest] = args;
  if (k?.op !== 'id' || v?.op !== 'id' || rest.length < 1 || rest.length > 2) return undefined;
  const oneVarForm = (name === 'all' || name === 'exists' || name === 'exists_one' || name === 'existsOne') && rest.length === 1;
  if (!oneVarForm && name !== 'transformList' && name !== 'transformMap') return undefined;
  const p = freshName();
  const at = (i: number): Bare => ({
    op: '[]',
    args: [
      { op: 'id', args: p },
      { op: 'value', args: BigInt(i) },
    ],
  });
  const names = new Map<string, Bare>([
    [String(k.args), at(0)],
    [String(v.args), at(1)],
  ]);
  const body = rest.map((r) => substitute(copy(r), names));
  const pairs: Bare = { op: 'call', args: ['cascadePairs', [copy(receiver)]] };
  const pv: Bare = { op: 'id', args: p };
  if (oneVarForm) return { op: 'rcall', args: [name === 'existsOne' ? 'exists_one' : name, pairs, [pv, ...body]] };
  if (name === 'transformList') return { op: 'rcall', args: ['map', pairs, [pv, ...body]] };
  // transformMap: the same keys, each with its new value.
  const entries = body.map((b, i) => (i === body.length - 1 ? { op: 'list', args: [at(0), b] } : b));
  return { op: 'call', args: ['cascadePairsToMap', [{ op: 'rcall', args: ['map', pairs, [pv, ...entries]] }]] };
}

/**
 * Two spellings cel-js cannot take as Kubernetes writes them, rewritten in the
 * tree before checking (serialize() turns the tree back into source):
 * - has() on a map entry, has(device.attributes["d"].name): cel-js accepts has()
 *   only on field selections from a variable; on a map has() means "key present",
 *   so it becomes `"name" in (...)`.
 * - `s.matches(re)`: cel-js's built-in uses JavaScript's backtracking RegExp; it
 *   becomes the global `matches(s, re)`, which this environment backs with RE2.
 * Returns undefined when nothing needed rewriting.
 */
function kubernetesRewrites(root: ASTNode): string | undefined {
  let changed = false;
  const copy = (v: unknown): unknown => (isNode(v) ? visit(v) : Array.isArray(v) ? v.map(copy) : v);
  const visit = (node: ASTNode): Bare => {
    if (node.op === 'call' && node.args[0] === 'has' && node.args[1].length === 1) {
      const arg = node.args[1][0];
      if (arg !== undefined && arg.op === '.') {
        let base: ASTNode = arg;
        while (base.op === '.') base = base.args[0];
        if (base.op !== 'id') {
          changed = true;
          return { op: 'in', args: [{ op: 'value', args: arg.args[1] }, copy(arg.args[0])] };
        }
      }
    }
    if (node.op === 'rcall' && node.args[0] === 'matches' && node.args[2].length === 1) {
      changed = true;
      return { op: 'call', args: ['matches', [copy(node.args[1]), copy(node.args[2][0])]] };
    }
    const twoVar = twoVariableComprehension(node, copy, () => `__cascade_kv${fresh++}`);
    if (twoVar) {
      changed = true;
      return twoVar;
    }
    return { op: node.op, args: copy(node.args) };
  };
  let fresh = 0;
  const rewritten = visit(root);
  return changed ? serialize(rewritten as ASTNode) : undefined;
}

const cache = new Map<string, CompileResult>();
const CACHE_LIMIT = 4096;

/** Compiles (or returns the cached) selector; compile errors are values, not exceptions. */
export function compileSelector(expression: string): CompileResult {
  const hit = cache.get(expression);
  if (hit !== undefined) return hit;
  const result = compileUncached(expression);
  // The cache only needs to cover the classes and claims of one cluster.
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(expression, result);
  return result;
}

function compileUncached(expression: string): CompileResult {
  const bytes = Buffer.byteLength(expression, 'utf8');
  if (bytes > LIMITS.celExpressionBytes) {
    return { ok: false, expression, error: `expression is ${bytes} bytes, the limit is ${LIMITS.celExpressionBytes}` };
  }
  const env = celEnvironment();
  try {
    let parsed = env.parse(expression);
    const rewritten = kubernetesRewrites(parsed.ast);
    if (rewritten !== undefined) parsed = env.parse(rewritten);
    const checked = parsed.check();
    if (!checked.valid) return { ok: false, expression, error: firstLine(checked.error) };
    if (checked.type !== 'bool' && checked.type !== 'dyn') {
      return { ok: false, expression, error: `expression must evaluate to bool, not ${checked.type ?? 'unknown'}` };
    }
    const cost = estimateCost(parsed.ast);
    if (cost > CEL_COST_LIMIT) {
      return { ok: false, expression, error: `estimated cost ${cost} exceeds the limit of ${CEL_COST_LIMIT}` };
    }
    const fn = parsed;
    const selector: CompiledSelector = {
      expression,
      cost,
      inputs: selectorInputs(parsed.ast),
      evaluate(device: CelDevice): SelectorOutcome {
        try {
          const v: unknown = fn({ device });
          if (typeof v !== 'boolean') return { ok: false, error: `expression must evaluate to bool, got ${typeof v}` };
          return { ok: true, matches: v };
        } catch (err: unknown) {
          return { ok: false, error: firstLine(err) };
        }
      },
    };
    return { ok: true, selector };
  } catch (err: unknown) {
    return { ok: false, expression, error: firstLine(err) };
  }
}
