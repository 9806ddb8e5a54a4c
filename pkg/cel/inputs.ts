// What a selector reads of the device, when that is a fixed set of fields:
// `device.driver`, `device.allowMultipleAllocations`, and attributes and
// capacities named with literal domain and name. Devices that agree on those
// fields get the same answer, so a fleet of 100k devices with a handful of
// distinct models is evaluated a handful of times. Any other use of `device`
// (iterating its maps, a computed name) means the selector reads more, and every
// device is evaluated.
import type { ASTNode } from '@marcbachmann/cel-js';
import { COMPREHENSIONS, isNode } from './cost.js';
import type { CelDevice } from './environment.js';
import { Quantity } from './quantity.js';
import { Semver } from './semver.js';

export type SelectorInput = { readonly kind: 'driver' } | { readonly kind: 'allowMultipleAllocations' } | { readonly kind: 'attribute' | 'capacity'; readonly domain: string; readonly name: string };

function literalString(n: unknown): string | undefined {
  return isNode(n) && n.op === 'value' && typeof n.args === 'string' ? n.args : undefined;
}

function isDevice(n: unknown): boolean {
  return isNode(n) && n.op === 'id' && n.args === 'device';
}

/** What one node of a selector's AST reads: an input, the whole device ("open"), or nothing to say. */
type Read = SelectorInput | 'open' | undefined;

/** device.driver, device.allowMultipleAllocations; any other field of the device reads more. */
function fieldRead(n: ASTNode): Read {
  if (n.op !== '.' || !Array.isArray(n.args) || !isDevice(n.args[0])) return undefined;
  const field = n.args[1];
  if (field === 'driver') return { kind: 'driver' };
  if (field === 'allowMultipleAllocations') return { kind: 'allowMultipleAllocations' };
  return 'open';
}

/** device.attributes["domain"].name or device.attributes["domain"]["name"] (and capacity). */
function mapRead(n: ASTNode): Read {
  if ((n.op !== '.' && n.op !== '[]') || !Array.isArray(n.args)) return undefined;
  const inner = n.args[0];
  if (!isNode(inner) || inner.op !== '[]' || !Array.isArray(inner.args)) return undefined;
  const map = inner.args[0];
  if (!isNode(map) || map.op !== '.' || !Array.isArray(map.args) || !isDevice(map.args[0])) return undefined;
  const which = map.args[1];
  const domain = literalString(inner.args[1]);
  const name = n.op === '.' ? (typeof n.args[1] === 'string' ? n.args[1] : undefined) : literalString(n.args[1]);
  if ((which !== 'attributes' && which !== 'capacity') || domain === undefined || name === undefined) return 'open';
  return { kind: which === 'attributes' ? 'attribute' : 'capacity', domain, name };
}

/** "name" in device.attributes["domain"] (what has() on an attribute becomes). */
function presenceRead(n: ASTNode): Read {
  if (n.op !== 'in' || !Array.isArray(n.args)) return undefined;
  const name = literalString(n.args[0]);
  const map = n.args[1];
  if (name === undefined || !isNode(map) || map.op !== '[]' || !Array.isArray(map.args)) return undefined;
  const field = map.args[0];
  const domain = literalString(map.args[1]);
  if (!isNode(field) || field.op !== '.' || !Array.isArray(field.args) || !isDevice(field.args[0]) || domain === undefined) return undefined;
  const which = field.args[1];
  if (which !== 'attributes' && which !== 'capacity') return undefined;
  return { kind: which === 'attributes' ? 'attribute' : 'capacity', domain, name };
}

/** The device itself, or a comprehension variable named `device` that would hide it: reads everything. */
function wholeRead(n: ASTNode): Read {
  if (isDevice(n)) return 'open';
  if (n.op === 'rcall' && Array.isArray(n.args) && COMPREHENSIONS.has(n.args[0])) {
    const rest = n.args[2];
    if (Array.isArray(rest) && isDevice(rest[0])) return 'open';
  }
  return undefined;
}

function inputId(i: SelectorInput): string {
  if (i.kind === 'driver') return 'd';
  if (i.kind === 'allowMultipleAllocations') return 'm';
  return `${i.kind}\u0000${i.domain}\u0000${i.name}`;
}

/** The fields a selector reads, or undefined when it may read more of the device. */
export function selectorInputs(root: ASTNode): readonly SelectorInput[] | undefined {
  const inputs = new Map<string, SelectorInput>();
  let open = false;
  const visit = (n: unknown): void => {
    if (open) return;
    if (Array.isArray(n)) {
      for (const x of n) visit(x);
      return;
    }
    if (!isNode(n)) return;
    const read = fieldRead(n) ?? mapRead(n) ?? presenceRead(n) ?? wholeRead(n);
    if (read === 'open') open = true;
    else if (read !== undefined) inputs.set(inputId(read), read);
    else visit(n.args);
  };
  visit(root);
  return open ? undefined : [...inputs.values()];
}

let unique = 0;

function valueKey(v: unknown): string {
  if (v === undefined) return '-';
  if (typeof v === 'string') return `s${v}`;
  if (typeof v === 'bigint') return `i${v}`;
  if (typeof v === 'boolean') return v ? 'T' : 'F';
  if (v instanceof Semver) return `v${v.toString()}`;
  if (v instanceof Quantity) return `q${v.toString()}`;
  // Not a value a device carries: never equal to another device's.
  return `?${unique++}`;
}

/** The values of a selector's inputs on one device, as one string (equal strings, equal answers). */
export function inputKey(inputs: readonly SelectorInput[], device: CelDevice): string {
  let key = '';
  for (const i of inputs) {
    let v: unknown;
    if (i.kind === 'driver') v = device.driver;
    else if (i.kind === 'allowMultipleAllocations') v = device.allowMultipleAllocations;
    else {
      const bag = (i.kind === 'attribute' ? device.attributes : device.capacity).get(i.domain) as Readonly<Record<string, unknown>> | undefined;
      v = bag !== undefined && Object.prototype.hasOwnProperty.call(bag, i.name) ? bag[i.name] : undefined;
    }
    key += `${valueKey(v)}\u0000`;
  }
  return key;
}
