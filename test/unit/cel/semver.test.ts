// Semantic versions: strict parsing, normalisation and precedence.
import { Semver, SemverError } from '../../../pkg/cel/semver.js';

const v = (s: string): Semver => Semver.parse(s);

describe('Semver', () => {
  it('parses major, minor, patch, pre-release and build', () => {
    const x = v('1.22.333-rc.1+build.5');
    expect([x.major, x.minor, x.patch]).toEqual([1n, 22n, 333n]);
    expect(x.prerelease).toEqual(['rc', '1']);
    expect(x.build).toEqual(['build', '5']);
  });

  it.each(['1.2', 'v1.2.3', '01.2.3', '1.2.3-', '1.2.3-01', 'a.b.c', ''])('rejects %j in strict mode', (s) => {
    expect(() => v(s)).toThrow(SemverError);
  });

  it('normalises when asked: leading v, missing parts, leading zeros', () => {
    expect(Semver.parse('v1.2', true).toString()).toBe('1.2.0');
    expect(Semver.parse('01.02.03', true).toString()).toBe('1.2.3');
    expect(Semver.parse('3', true).toString()).toBe('3.0.0');
  });

  it.each([
    ['1.0.0', '2.0.0', -1],
    ['2.1.0', '2.0.9', 1],
    ['1.10.0', '1.9.0', 1],
    ['1.0.0-alpha', '1.0.0', -1],
    ['1.0.0-alpha', '1.0.0-alpha.1', -1],
    ['1.0.0-alpha.1', '1.0.0-alpha.beta', -1],
    ['1.0.0-beta.2', '1.0.0-beta.11', -1],
    ['1.0.0-rc.1', '1.0.0-beta.11', 1],
    ['1.0.0+a', '1.0.0+b', 0],
  ] as const)('orders %s against %s as %i', (a, b, want) => {
    expect(v(a).compareTo(v(b))).toBe(want);
  });
});
