// The parts of Kubernetes' CEL library that cel-js does not have, so that a
// selector valid in Kubernetes 1.36 is valid here too: the strings, lists and
// sets extensions, regex find/findAll, url() and ip()/cidr(). Semantics follow
// cel-go's ext package and k8s.io/apiserver/pkg/cel/library; regexes are RE2.
import type { Environment } from '@marcbachmann/cel-js';
import { compileRegex } from './regex.js';
import { Cidr, IpAddress, Url } from './net.js';

/** Thrown for a runtime error; the selector's evaluation reports its message. */
function fail(message: string): never {
  throw new Error(message);
}

const int = (n: number): bigint => BigInt(n);
const num = (n: bigint): number => Number(n);

function codePoints(s: string): string[] {
  return Array.from(s);
}

/** CEL equality for the values selectors handle: numbers across int/double, and objects with equals(). */
export function celEquals(a: unknown, b: unknown): boolean {
  if (typeof a === 'bigint' && typeof b === 'number') return Number(a) === b;
  if (typeof a === 'number' && typeof b === 'bigint') return a === Number(b);
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const eq = (a as { equals?: (o: unknown) => boolean }).equals;
    if (typeof eq === 'function') return eq.call(a, b);
    if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => celEquals(x, b[i]));
  }
  return a === b;
}

function compare(a: unknown, b: unknown): number {
  if ((typeof a === 'bigint' || typeof a === 'number') && (typeof b === 'bigint' || typeof b === 'number')) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return a === b ? 0 : a ? 1 : -1;
  const cmp = (a as { compareTo?: (o: unknown) => number } | null)?.compareTo;
  if (typeof cmp === 'function') return cmp.call(a, b);
  return fail('list elements are not comparable');
}

/** The `%` verbs of cel-go's string.format that selectors can use. */
export function formatString(format: string, args: readonly unknown[]): string {
  let next = 0;
  return format.replace(/%(\.(\d+))?([%sdfeExXob])/g, (_m, _p: string | undefined, precision: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (next >= args.length) fail(`format: not enough arguments for "${format}"`);
    const v = args[next++];
    switch (verb) {
      case 's':
        return stringOf(v);
      case 'd':
        if (typeof v !== 'bigint') fail('format: %d needs an integer');
        return v.toString();
      case 'f':
        return asNumber(v).toFixed(precision === undefined ? 6 : Number(precision));
      case 'e':
      case 'E': {
        const t = asNumber(v)
          .toExponential(precision === undefined ? 6 : Number(precision))
          .replace(/e([+-])(\d)$/, 'e$10$2');
        return verb === 'E' ? t.toUpperCase() : t;
      }
      case 'x':
      case 'X': {
        const t = typeof v === 'string' ? Buffer.from(v, 'utf8').toString('hex') : asInteger(v).toString(16);
        return verb === 'X' ? t.toUpperCase() : t;
      }
      case 'o':
        return asInteger(v).toString(8);
      case 'b':
        return typeof v === 'boolean' ? String(v) : asInteger(v).toString(2);
      default:
        return fail(`format: unknown verb %${verb}`);
    }
  });
}

function asNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return fail('format: %f and %e need a number');
}

function asInteger(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  return fail('format: this verb needs an integer');
}

function stringOf(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return Number.isInteger(v) ? v.toFixed(1).replace(/\.0$/, '') : String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(stringOf).join(', ')}]`;
  // Quantity, Semver, IP, CIDR: each has its own toString().
  if (typeof v === 'object' && 'toString' in v && v.toString !== Object.prototype.toString) return (v as { toString(): string }).toString();
  return fail('format: %s cannot print this value');
}

function quote(s: string): string {
  return JSON.stringify(s);
}

function flatten(list: readonly unknown[], depth: number): unknown[] {
  if (depth < 0) fail('flatten: depth must not be negative');
  const out: unknown[] = [];
  for (const x of list) {
    if (Array.isArray(x) && depth > 0) out.push(...flatten(x, depth - 1));
    else out.push(x);
  }
  return out;
}

function distinct(list: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const x of list) if (!out.some((y) => celEquals(x, y))) out.push(x);
  return out;
}

function checkSortable(list: readonly unknown[]): void {
  for (let i = 1; i < list.length; i++) compare(list[i - 1], list[i]);
}

/** The registration calls of an Environment this library uses. */
interface Registrar {
  registerFunction(signature: string, handler: (...args: never[]) => unknown): Registrar;
  registerOperator(signature: string, handler: (...args: never[]) => unknown): Registrar;
  registerType(name: string, ctor: object): Registrar;
  registerConstant(name: string, type: string, value: unknown): Registrar;
}

class SetsNamespace {}
class ListsNamespace {}
class StringsNamespace {}
class IpNamespace {}

function listIndex(list: readonly unknown[], x: unknown, fromEnd: boolean): bigint {
  if (fromEnd) {
    for (let i = list.length - 1; i >= 0; i--) if (celEquals(list[i], x)) return int(i);
  } else {
    for (let i = 0; i < list.length; i++) if (celEquals(list[i], x)) return int(i);
  }
  return -1n;
}

function rangeCheck(what: string, i: bigint, max: number): number {
  const n = num(i);
  if (n < 0 || n > max) fail(`${what}: index ${n} out of range`);
  return n;
}

function registerStrings(env: Registrar): Registrar {
  return env
    .registerType('StringsNamespace', StringsNamespace)
    .registerConstant('strings', 'StringsNamespace', new StringsNamespace())
    .registerFunction('string.charAt(int): string', (s: string, i: bigint) => {
      const cps = codePoints(s);
      return cps[rangeCheck('charAt', i, cps.length)] ?? '';
    })
    .registerFunction('string.replace(string, string): string', (s: string, a: string, b: string) => s.split(a).join(b))
    .registerFunction('string.replace(string, string, int): string', (s: string, a: string, b: string, n: bigint) => {
      if (n < 0n) return s.split(a).join(b);
      const parts = s.split(a);
      const k = Math.min(num(n), parts.length - 1);
      return parts.slice(0, k + 1).join(b) + (k + 1 < parts.length ? a + parts.slice(k + 1).join(a) : '');
    })
    .registerFunction('string.reverse(): string', (s: string) => codePoints(s).reverse().join(''))
    .registerFunction('list<string>.join(string): string', (l: readonly string[], sep: string) => l.join(sep))
    .registerFunction('string.format(list<dyn>): string', (f: string, args: readonly unknown[]) => formatString(f, args))
    .registerFunction('StringsNamespace.quote(string): string', (_ns: StringsNamespace, s: string) => quote(s));
}

function registerLists(env: Registrar): Registrar {
  return env
    .registerType('ListsNamespace', ListsNamespace)
    .registerConstant('lists', 'ListsNamespace', new ListsNamespace())
    .registerFunction('ListsNamespace.range(int): list<int>', (_ns: ListsNamespace, n: bigint) => {
      if (n < 0n || n > 10_000n) fail('lists.range: the count must be between 0 and 10000');
      return Array.from({ length: num(n) }, (_x, i) => int(i));
    })
    .registerFunction('list<dyn>.slice(int, int): list<dyn>', (l: readonly unknown[], a: bigint, b: bigint) => {
      const start = rangeCheck('slice', a, l.length);
      const end = rangeCheck('slice', b, l.length);
      if (end < start) fail(`slice: end ${end} is before start ${start}`);
      return l.slice(start, end);
    })
    .registerFunction('list<dyn>.flatten(): list<dyn>', (l: readonly unknown[]) => flatten(l, 1))
    .registerFunction('list<dyn>.flatten(int): list<dyn>', (l: readonly unknown[], d: bigint) => flatten(l, num(d)))
    .registerFunction('list<dyn>.distinct(): list<dyn>', (l: readonly unknown[]) => distinct(l))
    .registerFunction('list<dyn>.reverse(): list<dyn>', (l: readonly unknown[]) => [...l].reverse())
    .registerFunction('list<dyn>.sort(): list<dyn>', (l: readonly unknown[]) => {
      checkSortable(l);
      return [...l].sort(compare);
    })
    .registerFunction('list<dyn>.isSorted(): bool', (l: readonly unknown[]) => l.every((x, i) => i === 0 || compare(l[i - 1], x) <= 0))
    .registerFunction('list<dyn>.indexOf(dyn): int', (l: readonly unknown[], x: unknown) => listIndex(l, x, false))
    .registerFunction('list<dyn>.lastIndexOf(dyn): int', (l: readonly unknown[], x: unknown) => listIndex(l, x, true))
    .registerFunction('list<dyn>.sum(): dyn', (l: readonly unknown[]) => {
      if (l.length === 0) return 0n;
      if (l.every((x) => typeof x === 'bigint')) return (l as bigint[]).reduce((a, b) => a + b, 0n);
      if (l.every((x) => typeof x === 'number')) return (l as number[]).reduce((a, b) => a + b, 0);
      return fail('sum: the list must hold only ints or only doubles');
    })
    .registerFunction('list<dyn>.min(): dyn', (l: readonly unknown[]) => (l.length === 0 ? fail('min: the list is empty') : l.reduce((a, b) => (compare(b, a) < 0 ? b : a))))
    .registerFunction('list<dyn>.max(): dyn', (l: readonly unknown[]) => (l.length === 0 ? fail('max: the list is empty') : l.reduce((a, b) => (compare(b, a) > 0 ? b : a))));
}

function registerSets(env: Registrar): Registrar {
  const has = (l: readonly unknown[], x: unknown): boolean => l.some((y) => celEquals(x, y));
  return env
    .registerType('SetsNamespace', SetsNamespace)
    .registerConstant('sets', 'SetsNamespace', new SetsNamespace())
    .registerFunction('SetsNamespace.contains(list<dyn>, list<dyn>): bool', (_ns: SetsNamespace, a: readonly unknown[], b: readonly unknown[]) => b.every((x) => has(a, x)))
    .registerFunction(
      'SetsNamespace.equivalent(list<dyn>, list<dyn>): bool',
      (_ns: SetsNamespace, a: readonly unknown[], b: readonly unknown[]) => b.every((x) => has(a, x)) && a.every((x) => has(b, x)),
    )
    .registerFunction('SetsNamespace.intersects(list<dyn>, list<dyn>): bool', (_ns: SetsNamespace, a: readonly unknown[], b: readonly unknown[]) => b.some((x) => has(a, x)));
}

function regexOf(pattern: string): ReturnType<typeof compileRegex> & { ok: true } {
  const c = compileRegex(pattern);
  if (!c.ok) fail(`invalid regular expression ${JSON.stringify(pattern)}: ${c.error}`);
  return c;
}

function findAll(s: string, pattern: string, limit: number): string[] {
  const m = regexOf(pattern).re.matcher(s);
  const out: string[] = [];
  while ((limit < 0 || out.length < limit) && m.find()) out.push(m.group() ?? '');
  return out;
}

function registerRegex(env: Registrar): Registrar {
  return env
    .registerFunction('string.find(string): string', (s: string, p: string) => findAll(s, p, 1)[0] ?? '')
    .registerFunction('string.findAll(string): list<string>', (s: string, p: string) => findAll(s, p, -1))
    .registerFunction('string.findAll(string, int): list<string>', (s: string, p: string, n: bigint) => findAll(s, p, num(n)));
}

function registerNet(env: Registrar): Registrar {
  return env
    .registerType('net.URL', Url)
    .registerType('net.IP', IpAddress)
    .registerType('net.CIDR', Cidr)
    .registerType('IpNamespace', IpNamespace)
    .registerConstant('ip', 'IpNamespace', new IpNamespace())
    .registerFunction('url(string): net.URL', (s: string) => Url.parse(s))
    .registerFunction('isURL(string): bool', (s: string) => Url.tryParse(s) !== undefined)
    .registerFunction('net.URL.getScheme(): string', (u: Url) => u.scheme)
    .registerFunction('net.URL.getHost(): string', (u: Url) => u.host)
    .registerFunction('net.URL.getHostname(): string', (u: Url) => u.hostname)
    .registerFunction('net.URL.getPort(): string', (u: Url) => u.port)
    .registerFunction('net.URL.getEscapedPath(): string', (u: Url) => u.escapedPath)
    .registerFunction('net.URL.getQuery(): map<string, list<string>>', (u: Url) => u.query())
    .registerFunction('ip(string): net.IP', (s: string) => IpAddress.parse(s))
    .registerFunction('isIP(string): bool', (s: string) => IpAddress.tryParse(s) !== undefined)
    .registerFunction('IpNamespace.isCanonical(string): bool', (_ns: IpNamespace, s: string) => IpAddress.parse(s).isCanonical(s))
    .registerFunction('net.IP.family(): int', (ip: IpAddress) => int(ip.family))
    .registerFunction('net.IP.isUnspecified(): bool', (ip: IpAddress) => ip.isUnspecified())
    .registerFunction('net.IP.isLoopback(): bool', (ip: IpAddress) => ip.isLoopback())
    .registerFunction('net.IP.isLinkLocalMulticast(): bool', (ip: IpAddress) => ip.isLinkLocalMulticast())
    .registerFunction('net.IP.isLinkLocalUnicast(): bool', (ip: IpAddress) => ip.isLinkLocalUnicast())
    .registerFunction('net.IP.isGlobalUnicast(): bool', (ip: IpAddress) => ip.isGlobalUnicast())
    .registerFunction('string(net.IP): string', (ip: IpAddress) => ip.toString())
    .registerOperator('net.IP == net.IP', (a: IpAddress, b: IpAddress) => a.equals(b))
    .registerFunction('cidr(string): net.CIDR', (s: string) => Cidr.parse(s))
    .registerFunction('isCIDR(string): bool', (s: string) => Cidr.tryParse(s) !== undefined)
    .registerFunction('net.CIDR.containsIP(net.IP): bool', (c: Cidr, ip: IpAddress) => c.containsIp(ip))
    .registerFunction('net.CIDR.containsIP(string): bool', (c: Cidr, ip: string) => c.containsIp(IpAddress.parse(ip)))
    .registerFunction('net.CIDR.containsCIDR(net.CIDR): bool', (c: Cidr, o: Cidr) => c.containsCidr(o))
    .registerFunction('net.CIDR.containsCIDR(string): bool', (c: Cidr, o: string) => c.containsCidr(Cidr.parse(o)))
    .registerFunction('net.CIDR.ip(): net.IP', (c: Cidr) => c.ip)
    .registerFunction('net.CIDR.masked(): net.CIDR', (c: Cidr) => c.masked())
    .registerFunction('net.CIDR.prefixLength(): int', (c: Cidr) => int(c.prefixLength))
    .registerFunction('string(net.CIDR): string', (c: Cidr) => c.toString())
    .registerOperator('net.CIDR == net.CIDR', (a: Cidr, b: Cidr) => a.equals(b));
}

/**
 * Adds Kubernetes' CEL extension libraries to an environment. Overloads that
 * cel-js already has (some string functions) are kept as they are.
 */
export function registerKubernetesLibrary(env: Environment): Environment {
  const existing = new Set(env.getDefinitions().functions.map((f) => f.signature));
  const r: Registrar = {
    registerFunction: (signature, handler) => {
      if (!existing.has(signature)) env.registerFunction(signature, handler);
      return r;
    },
    registerOperator: (signature, handler) => {
      env.registerOperator(signature, handler as never);
      return r;
    },
    registerType: (name, ctor) => {
      env.registerType(name, ctor as never);
      return r;
    },
    registerConstant: (name, type, value) => {
      env.registerConstant(name, type, value);
      return r;
    },
  };
  registerNet(registerRegex(registerSets(registerLists(registerStrings(r)))));
  return env;
}
