// Worst-case cost of a device selector, computed from the parsed expression with
// the API's input limits; it stands in for Kubernetes' runtime cost limit.
import type { ASTNode } from '@marcbachmann/cel-js';

/** Kubernetes' limit on the cost of one selector evaluation. */
export const CEL_COST_LIMIT = 1_000_000;

// The only collections a selector can iterate that come from the device are its
// attribute and capacity maps, which the API caps at 32 entries; strings at 64 chars.
const MAX_DEVICE_COLLECTION = 32;
const MAX_STRING = 64;

/** The comprehension macros (receiver.name(var, body)). */
export const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);
const STRING_SCANS = new Set(['contains', 'startsWith', 'endsWith', 'indexOf', 'lastIndexOf', 'substring']);

export function isNode(v: unknown): v is ASTNode {
  return typeof v === 'object' && v !== null && 'op' in v && 'args' in v;
}

/** Upper bound on how many elements an expression can evaluate to. */
function collectionBound(node: ASTNode): number {
  switch (node.op) {
    case 'list':
      return node.args.length;
    case 'map':
      return node.args.length;
    case 'rcall':
      // map()/filter() keep at most as many elements as their receiver.
      if (COMPREHENSIONS.has(node.args[0])) return collectionBound(node.args[1]);
      return MAX_DEVICE_COLLECTION;
    default:
      return MAX_DEVICE_COLLECTION;
  }
}

/** Estimated worst-case cost in evaluation steps. */
export function estimateCost(node: ASTNode): number {
  switch (node.op) {
    case 'value':
    case 'id':
      return 1;
    case 'call': {
      const [name, args] = node.args;
      let c = 1;
      for (const a of args) c += estimateCost(a);
      if (name === 'matches') c += MAX_STRING;
      return c;
    }
    case 'rcall': {
      const [name, receiver, args] = node.args;
      if (COMPREHENSIONS.has(name) && args.length >= 2) {
        // receiver.all(x, body): the body runs once per element.
        let body = 1;
        for (const a of args.slice(1)) body += estimateCost(a);
        return estimateCost(receiver) + collectionBound(receiver) * body;
      }
      let c = 1 + estimateCost(receiver);
      for (const a of args) c += estimateCost(a);
      if (name === 'matches') c += MAX_STRING;
      else if (STRING_SCANS.has(name)) c += Math.ceil(MAX_STRING / 10);
      return c;
    }
    case 'map': {
      let c = 1;
      for (const [k, v] of node.args) c += estimateCost(k) + estimateCost(v);
      return c;
    }
    default: {
      let c = 1;
      const args: unknown = node.args;
      if (Array.isArray(args)) {
        for (const a of args) if (isNode(a)) c += estimateCost(a);
      } else if (isNode(args)) {
        c += estimateCost(args);
      }
      return c;
    }
  }
}
