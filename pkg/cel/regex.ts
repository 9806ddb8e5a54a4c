// CEL's matches() with RE2 semantics. Kubernetes evaluates selectors with
// cel-go, whose regexes are Go's RE2: linear in the input, no backreferences.
// JavaScript's RegExp backtracks, so a valid selector such as
// "aaaa!".matches("^(a|a)*$") could hold the event loop for minutes. re2js is
// a port of RE2 that keeps the linear-time guarantee.
import { RE2JS } from 're2js';

type Compiled = { readonly ok: true; readonly re: RE2JS } | { readonly ok: false; readonly error: string };

const compiled = new Map<string, Compiled>();
const COMPILED_LIMIT = 1024;

/** Compiles a pattern with RE2 syntax; errors are values. */
export function compileRegex(pattern: string): Compiled {
  const hit = compiled.get(pattern);
  if (hit !== undefined) return hit;
  let result: Compiled;
  try {
    result = { ok: true, re: RE2JS.compile(pattern) };
  } catch (err: unknown) {
    result = { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  if (compiled.size >= COMPILED_LIMIT) compiled.clear();
  compiled.set(pattern, result);
  return result;
}

/** CEL `s.matches(re)`: true when re matches any part of s (RE2's partial match). */
export function re2Matches(s: string, pattern: string): boolean {
  const c = compileRegex(pattern);
  if (!c.ok) throw new Error(`invalid regular expression ${JSON.stringify(pattern)}: ${c.error}`);
  return c.re.test(s);
}
