// List-type attributes (KEP-5491, alpha in Kubernetes 1.36 behind the
// DRAListTypeAttributes gate): an attribute may hold a non-empty list of
// strings, ints, bools or versions. The allocator keys an attribute value as a
// string ("s:x", "i:3"...); a list is keyed "L:" followed by its elements' keys,
// sorted and without repeats. For constraints every value is a set, a scalar
// the set of itself:
//   matchAttribute:    all devices share at least one element (the running
//                      intersection of their sets stays non-empty);
//   distinctAttribute: no two devices share an element.
// So a scalar matches a list that contains it, and values of different types
// never match.
export const LIST_PREFIX = 'L:';
const SEP = '\u0001';

const splitCache = new Map<string, readonly string[]>();

/** The elements of a keyed value: a scalar key is its own one element. */
export function elementsOf(key: string): readonly string[] {
  if (!key.startsWith(LIST_PREFIX)) return [key];
  let hit = splitCache.get(key);
  if (hit === undefined) {
    hit = key.slice(LIST_PREFIX.length).split(SEP);
    if (splitCache.size > 100_000) splitCache.clear();
    splitCache.set(key, hit);
  }
  return hit;
}

/** The key of a set of element keys: one element keys as the scalar itself. */
export function keyOfElements(elements: readonly string[]): string | undefined {
  const unique = [...new Set(elements)].sort();
  if (unique.length === 0) return undefined;
  if (unique.length === 1) return unique[0];
  return LIST_PREFIX + unique.join(SEP);
}

/** Whether two keyed values share an element. */
export function overlaps(a: string, b: string): boolean {
  if (!a.startsWith(LIST_PREFIX) && !b.startsWith(LIST_PREFIX)) return a === b;
  const eb = elementsOf(b);
  return elementsOf(a).some((x) => eb.includes(x));
}

/** The key of the elements two values share; undefined when they share none. */
export function intersection(a: string, b: string): string | undefined {
  if (!a.startsWith(LIST_PREFIX) && !b.startsWith(LIST_PREFIX)) return a === b ? a : undefined;
  const eb = elementsOf(b);
  return keyOfElements(elementsOf(a).filter((x) => eb.includes(x)));
}
