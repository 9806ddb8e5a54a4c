// Kubernetes' CEL extension libraries in device selectors: selectors that
// Kubernetes 1.36 accepts must compile and evaluate the same here. Cases
// follow the libraries' documented behaviour (cel-go ext: strings, lists,
// sets; k8s.io/apiserver/pkg/cel/library: lists, regex, url, ip, cidr) and
// optional types.
import { compileSelector, makeCelDevice } from '../../../pkg/cel/index.js';

const D = 'gpu.cascade.dev';
const device = makeCelDevice(D, { productName: { string: 'NVIDIA H100 80GB HBM3' }, index: { int: 3 } }, { memory: { value: '80Gi' } }, false);

function evaluate(expression: string): { ok: true; matches: boolean } | { ok: false; error: string } {
  const c = compileSelector(expression);
  if (!c.ok) return { ok: false, error: `compile: ${c.error}` };
  return c.selector.evaluate(device);
}

const holds: [string, string][] = [
  // strings
  ['charAt', '"abc".charAt(1) == "b" && "abc".charAt(3) == ""'],
  ['indexOf from an offset', '"hello".indexOf("l", 3) == 3'],
  ['lastIndexOf up to an offset', '"hello".lastIndexOf("l", 2) == 2'],
  ['replace all', '"a-b-c".replace("-", "+") == "a+b+c"'],
  ['replace n', '"a-b-c".replace("-", "+", 1) == "a+b-c" && "a-b-c".replace("-", "+", -1) == "a+b+c"'],
  ['reverse', '"abc".reverse() == "cba"'],
  ['join with a separator', '["a", "b"].join("-") == "a-b"'],
  ['format %s and %d', '"%s has %d GPUs".format(["node", 8]) == "node has 8 GPUs"'],
  ['format %.2f', '"%.2f".format([1.5]) == "1.50"'],
  ['strings.quote', 'strings.quote("a\\"b") == "\\"a\\\\\\"b\\""'],
  ['lowerAscii and upperAscii', '"NVIDIA".lowerAscii() == "nvidia" && "h100".upperAscii() == "H100"'],
  // lists
  ['lists.range', 'lists.range(3) == [0, 1, 2]'],
  ['slice', '[1, 2, 3, 4].slice(1, 3) == [2, 3]'],
  ['flatten', '[[1], [2, 3]].flatten() == [1, 2, 3] && [[1, [2]]].flatten(2) == [1, 2]'],
  ['sort', '[3, 1, 2].sort() == [1, 2, 3] && ["b", "a"].sort() == ["a", "b"]'],
  ['distinct', '[1, 1, 2].distinct() == [1, 2]'],
  ['reverse a list', '[1, 2].reverse() == [2, 1]'],
  ['sum, min, max', '[1, 2, 3].sum() == 6 && [1, 5, 3].max() == 5 && [4, 2].min() == 2'],
  ['isSorted', '[1, 2, 2].isSorted() && ![2, 1].isSorted()'],
  ['indexOf and lastIndexOf in a list', '[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2 && [1].indexOf(5) == -1'],
  // sets
  ['sets.contains', 'sets.contains([1, 2, 3], [2, 3]) && !sets.contains([1], [2])'],
  ['sets.equivalent', 'sets.equivalent([1, 2], [2, 1, 1])'],
  ['sets.intersects', 'sets.intersects([1], [1, 2]) && !sets.intersects([1], [2])'],
  // regex (RE2)
  ['find', '"abc123".find("[0-9]+") == "123" && "abc".find("[0-9]") == ""'],
  ['findAll', '"a1b22".findAll("[0-9]+") == ["1", "22"] && "a1b22c3".findAll("[0-9]+", 2) == ["1", "22"]'],
  ['(?i) flag', `device.attributes["${D}"].productName.matches("(?i)h100")`],
  // url
  ['url host and port', 'url("https://example.com:8080/a/b?x=1").getHost() == "example.com:8080" && url("https://example.com:8080/").getPort() == "8080"'],
  ['url hostname of IPv6', 'url("https://[::1]:80/").getHostname() == "::1"'],
  ['url path and query', 'url("https://e.com/a%20b").getEscapedPath() == "/a%20b" && url("https://e.com/?x=1&x=2").getQuery()["x"] == ["1", "2"]'],
  ['isURL', 'isURL("/just/a/path") && isURL("https://e.com") && !isURL("not a url")'],
  // ip and cidr
  ['ip family', 'ip("10.0.0.1").family() == 4 && ip("::1").family() == 6'],
  ['ip kinds', 'ip("::1").isLoopback() && ip("0.0.0.0").isUnspecified() && ip("169.254.1.1").isLinkLocalUnicast() && ip("8.8.8.8").isGlobalUnicast()'],
  ['isIP is strict', 'isIP("1.2.3.4") && !isIP("01.2.3.4") && !isIP("::ffff:1.2.3.4") && !isIP("fe80::1%eth0")'],
  ['ip.isCanonical', 'ip.isCanonical("2001:db8::1") && !ip.isCanonical("2001:DB8::1")'],
  ['string(ip)', 'string(ip("2001:db8:0:0:0:0:0:1")) == "2001:db8::1"'],
  ['cidr containsIP', 'cidr("10.0.0.0/8").containsIP(ip("10.1.2.3")) && !cidr("10.0.0.0/8").containsIP("11.1.2.3")'],
  ['cidr containsCIDR and masked', 'cidr("2001:db8::/32").containsCIDR("2001:db8:1::/48") && cidr("10.1.2.3/8").masked() == cidr("10.0.0.0/8")'],
  ['cidr prefixLength and ip', 'cidr("192.168.0.0/16").prefixLength() == 16 && cidr("192.168.0.0/16").ip() == ip("192.168.0.0")'],
  // two-variable comprehensions
  ['all over a map, key and value', `device.attributes["${D}"].all(k, v, k != "" && v != null)`],
  ['exists over a list, index and value', '[10, 20, 30].exists(i, v, i == 1 && v == 20)'],
  ['existsOne', '[1, 2, 3].existsOne(i, v, v > 2) && !{"a": 1, "b": 1}.existsOne(k, v, v == 1)'],
  ['transformList with and without a filter', '[1, 2, 3].transformList(i, v, v * i) == [0, 2, 6] && [1, 2, 3].transformList(i, v, i > 0, v) == [2, 3]'],
  ['transformMap', '{"a": 1, "b": 2}.transformMap(k, v, v * 10) == {"a": 10, "b": 20} && {"a": 1, "b": 2}.transformMap(k, v, v > 1, v) == {"b": 2}'],
  ['an inner comprehension that rebinds a name keeps its own', '[1, 2].all(i, v, [5].all(v, v == 5) && v < 3)'],
  // optional types
  ['optional field present', `device.attributes["${D}"].?productName.orValue("x") == "NVIDIA H100 80GB HBM3"`],
  ['optional field absent', `device.attributes["${D}"].?nothing.orValue("none") == "none" && !device.attributes["${D}"].?nothing.hasValue()`],
  ['optional.of and none', 'optional.of(1).value() == 1 && !optional.none().hasValue()'],
];

describe('Kubernetes CEL libraries in selectors', () => {
  it.each(holds)('%s', (_name, expression) => {
    expect(evaluate(expression)).toEqual({ ok: true, matches: true });
  });

  it.each([
    ['charAt past the end', '"abc".charAt(4) == ""', /charAt: index 4 out of range/],
    ['an IP with a leading zero', 'ip("01.2.3.4").family() == 4', /IP Address "01.2.3.4" parse error/],
    ['a CIDR without a prefix', 'cidr("10.0.0.1").prefixLength() == 32', /network address "10.0.0.1" parse error/],
    ['a URL that is not one', 'url("nope").getHost() == ""', /URL parse error/],
    ['lists.range of a negative count', 'lists.range(-1) == []', /lists.range/],
    ['sorting mixed types', '[1, "a"].sort() == []', /not comparable/],
    ['format with too few arguments', '"%s %s".format(["a"]) == ""', /not enough arguments/],
    ['min of an empty list', '[].min() == 0', /empty/],
  ])('reports %s as an evaluation error that says why', (_name, expression, why) => {
    const r = evaluate(expression);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error).toMatch(why);
  });
});
