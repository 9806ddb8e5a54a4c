// Kubernetes quantity parsing and exact comparison.
import { Quantity, QuantityError } from '../../../pkg/cel/quantity.js';

const q = (s: string): Quantity => Quantity.parse(s);

describe('Quantity', () => {
  it.each([
    ['1Ki', 1024n * 10n ** 9n],
    ['1Mi', 1048576n * 10n ** 9n],
    ['40Gi', 40n * 2n ** 30n * 10n ** 9n],
    ['1Ti', 2n ** 40n * 10n ** 9n],
    ['1Pi', 2n ** 50n * 10n ** 9n],
    ['1Ei', 2n ** 60n * 10n ** 9n],
    ['1k', 1000n * 10n ** 9n],
    ['1M', 10n ** 15n],
    ['1G', 10n ** 18n],
    ['1T', 10n ** 21n],
    ['1P', 10n ** 24n],
    ['1E', 10n ** 27n],
    ['500m', 5n * 10n ** 8n],
    ['250u', 250n * 1000n],
    ['7n', 7n],
    ['1.5', 15n * 10n ** 8n],
    ['.5', 5n * 10n ** 8n],
    ['2.', 2n * 10n ** 9n],
    ['1e3', 1000n * 10n ** 9n],
    ['1E3', 1000n * 10n ** 9n],
    ['5e-3', 5n * 10n ** 6n],
    ['-2Gi', -2n * 2n ** 30n * 10n ** 9n],
    ['+3', 3n * 10n ** 9n],
    ['0', 0n],
  ])('parses %s exactly', (text, nanos) => {
    expect(q(text).nanos).toBe(nanos);
  });

  it('rounds precision finer than a nano up, as Kubernetes does', () => {
    expect(q('0.0000000001').nanos).toBe(1n);
    expect(q('1.0000000001').nanos).toBe(10n ** 9n + 1n);
  });

  it.each(['', 'abc', '1Gb', '1 Gi', 'Gi', '1.2.3', '--1', '1ee3', '1Ki2'])('rejects %j', (text) => {
    expect(() => q(text)).toThrow(QuantityError);
    expect(Quantity.tryParse(text)).toBeUndefined();
  });

  it('compares binary and decimal spellings exactly', () => {
    expect(q('1Gi').compareTo(q('1024Mi'))).toBe(0);
    expect(q('1Gi').compareTo(q('1G'))).toBe(1);
    expect(q('1000m').equals(q('1'))).toBe(true);
    expect(q('81920Mi').compareTo(q('80Gi'))).toBe(0);
    expect(q('80Gi').compareTo(q('85899345921'))).toBe(-1);
  });

  it('stays exact where doubles would not', () => {
    const big = q('9007199254740993');
    expect(big.compareTo(q('9007199254740992'))).toBe(1);
  });

  it('adds and subtracts', () => {
    expect(q('1Gi').add(q('512Mi')).equals(q('1536Mi'))).toBe(true);
    expect(q('1').sub(q('250m')).equals(q('750m'))).toBe(true);
  });

  it('converts to integers only when whole and in int64 range', () => {
    expect(q('2k').asInteger()).toBe(2000n);
    expect(q('2k').isInteger()).toBe(true);
    expect(q('1500m').isInteger()).toBe(false);
    expect(() => q('1500m').asInteger()).toThrow(/fractional/);
    expect(() => q('16Ei').asInteger()).toThrow(/overflow/);
    expect(q('16Ei').isInteger()).toBe(false);
  });

  it('gives an approximate float', () => {
    expect(q('1.5Gi').asApproximateFloat()).toBeCloseTo(1.5 * 2 ** 30);
    expect(q('250m').asApproximateFloat()).toBeCloseTo(0.25);
  });

  it('prints a short canonical form', () => {
    expect(q('1536Mi').toString()).toBe('1536Mi');
    expect(q('1E').toString()).toBe('1E');
    expect(q('0.5').toString()).toBe('500m');
    expect(q('2048').toString()).toBe('2Ki');
  });
});
