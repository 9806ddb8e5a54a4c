// matches() runs with RE2 semantics, as cel-go does in Kubernetes: linear time,
// so a selector cannot hold the controller's event loop, and RE2 syntax only.
import { compileSelector, makeCelDevice } from '../../../pkg/cel/index.js';

const D = 'gpu.cascade.dev';
const device = makeCelDevice(D, { productName: { string: 'NVIDIA H100 80GB HBM3' }, pad: { string: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' } }, {}, false);

function run(expression: string): ReturnType<NonNullable<Extract<ReturnType<typeof compileSelector>, { ok: true }>['selector']>['evaluate']> | { ok: false; error: string } {
  const c = compileSelector(expression);
  if (!c.ok) return { ok: false, error: `compile: ${c.error}` };
  return c.selector.evaluate(device);
}

describe('CEL matches() with RE2 semantics', () => {
  it.each([
    [`device.attributes["${D}"].productName.matches("H100")`, true],
    [`device.attributes["${D}"].productName.matches("^NVIDIA H(100|200)")`, true],
    [`device.attributes["${D}"].productName.matches("^H100")`, false],
    [`device.attributes["${D}"].productName.matches("(?i)nvidia h100")`, true],
    [`device.attributes["${D}"].productName.matches("[0-9]+GB")`, true],
    [`device.attributes["${D}"].productName.matches("\\\\d{2}GB")`, true],
    [`matches(device.attributes["${D}"].productName, "HBM3$")`, true],
    [`"abc".matches("b") && !"abc".matches("^b")`, true],
    [`device.attributes["${D}"].productName.matches("H100") == device.attributes["${D}"].productName.matches("HBM")`, true],
    [`("x" + device.attributes["${D}"].productName).matches("xNVIDIA")`, true],
  ])('%s is %s', (expression, want) => {
    expect(run(expression)).toEqual({ ok: true, matches: want });
  });

  it('runs a pattern that makes a backtracking engine explode in linear time (the selector is valid RE2)', () => {
    // With JavaScript's RegExp this took about 100 s for a 28-character input; the
    // 64-character attribute here would take longer than the universe is old.
    const r = run(`device.attributes["${D}"].pad.matches("^(a|a)*$")`);
    expect(r).toEqual({ ok: true, matches: false });
    expect(run(`"aaaaaaaaaaaaaaaaaaaaaaaaaaa!".matches("^(a|aa)*$")`)).toEqual({ ok: true, matches: false });
  });

  it('refuses what RE2 does not have, such as backreferences, as an evaluation error that names the pattern', () => {
    const r = run(`device.attributes["${D}"].productName.matches("(a)\\\\1")`);
    expect(r).toEqual({ ok: false, error: expect.stringContaining('invalid regular expression') });
    expect(r.ok === false && r.error).toContain('(a)\\\\1');
  });

  it('rewrites matches() nested inside has() and inside another matches() receiver', () => {
    expect(run(`has(device.attributes["${D}"].productName) && device.attributes["${D}"].productName.matches("H1")`)).toEqual({ ok: true, matches: true });
    expect(run(`"true".matches(string("H100".matches("H")))`)).toEqual({ ok: true, matches: true });
  });

  it('still refuses matches() on a non-string at compile time', () => {
    const c = compileSelector('(1).matches("x")');
    expect(c.ok).toBe(false);
  });
});

describe('rewrites keep the meaning of parenthesised and nested receivers', () => {
  it.each([
    ['(("a(") + "b").matches("a\\\\(b")', true],
    ['((("x")) + "y").matches("^xy$")', true],
    ['!("abc").matches("z") && ("a" + ("b")).matches(("a") + "b")', true],
  ])('%s is %s', (expression, want) => {
    expect(run(expression)).toEqual({ ok: true, matches: want });
  });
});
