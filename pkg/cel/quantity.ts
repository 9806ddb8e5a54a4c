// Kubernetes resource quantities ("40Gi", "500m", "1e3"): an exact parser and
// comparator. Values are held as BigInt nano-units, the finest scale Kubernetes keeps.

const NANO = 1_000_000_000n;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/** Thrown for text that is not a Kubernetes quantity, and for impossible conversions. */
export class QuantityError extends Error {
  override readonly name = 'QuantityError';
}

const BINARY_SUFFIX: Readonly<Record<string, bigint>> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};

// Decimal suffixes as powers of ten.
const DECIMAL_SUFFIX: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

// <sign><digits>[.<digits>] then a suffix; the suffix is split apart below because
// "E" alone means exa while "E3" is an exponent.
const NUMBER_RE = /^([+-]?)(\d*)(?:\.(\d*))?(.*)$/;
const EXPONENT_RE = /^[eE]([+-]?\d+)$/;

function pow10(exp: number): bigint {
  return 10n ** BigInt(exp);
}

/** Divides rounding away from zero, as Kubernetes rounds sub-nano precision up. */
function divAwayFromZero(num: bigint, den: bigint): bigint {
  const q = num / den;
  return q * den === num ? q : num < 0n ? q - 1n : q + 1n;
}

export class Quantity {
  /** The value in units of 10^-9. */
  readonly nanos: bigint;

  private constructor(nanos: bigint) {
    this.nanos = nanos;
  }

  static fromNanos(nanos: bigint): Quantity {
    return new Quantity(nanos);
  }

  static fromInteger(value: bigint | number): Quantity {
    return new Quantity(BigInt(value) * NANO);
  }

  /** Parses Kubernetes quantity text; throws QuantityError with the reason. */
  static parse(text: string): Quantity {
    const q = Quantity.tryParse(text);
    if (q === undefined) {
      throw new QuantityError(`quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': ${JSON.stringify(text)}`);
    }
    return q;
  }

  static tryParse(text: string): Quantity | undefined {
    const m = NUMBER_RE.exec(text.trim());
    if (m === null || text.trim() !== text || text.length === 0) return undefined;
    const sign = m[1] === '-' ? -1n : 1n;
    const whole = m[2] ?? '';
    const frac = m[3] ?? '';
    const suffix = m[4] ?? '';
    if (whole.length === 0 && frac.length === 0) return undefined;
    // Digits as one integer, scaled down by the fraction length.
    let num = BigInt((whole || '0') + frac) * sign;
    let den = pow10(frac.length);
    const binary = BINARY_SUFFIX[suffix];
    if (binary !== undefined) {
      num *= binary;
    } else if (Object.prototype.hasOwnProperty.call(DECIMAL_SUFFIX, suffix)) {
      const exp = DECIMAL_SUFFIX[suffix] ?? 0;
      if (exp >= 0) num *= pow10(exp);
      else den *= pow10(-exp);
    } else {
      const e = EXPONENT_RE.exec(suffix);
      if (e === null) return undefined;
      const exp = Number(e[1]);
      // Beyond this range a quantity is meaningless and BigInt powers get huge.
      if (!Number.isFinite(exp) || Math.abs(exp) > 60) return undefined;
      if (exp >= 0) num *= pow10(exp);
      else den *= pow10(-exp);
    }
    return new Quantity(divAwayFromZero(num * NANO, den));
  }

  compareTo(other: Quantity): -1 | 0 | 1 {
    return this.nanos < other.nanos ? -1 : this.nanos > other.nanos ? 1 : 0;
  }

  equals(other: Quantity): boolean {
    return this.nanos === other.nanos;
  }

  add(other: Quantity): Quantity {
    return new Quantity(this.nanos + other.nanos);
  }

  sub(other: Quantity): Quantity {
    return new Quantity(this.nanos - other.nanos);
  }

  sign(): -1 | 0 | 1 {
    return this.nanos < 0n ? -1 : this.nanos > 0n ? 1 : 0;
  }

  /** True when the value is a whole number that fits an int64. */
  isInteger(): boolean {
    if (this.nanos % NANO !== 0n) return false;
    const v = this.nanos / NANO;
    return v >= INT64_MIN && v <= INT64_MAX;
  }

  /** The value as an int64; throws when it has a fraction or overflows. */
  asInteger(): bigint {
    if (this.nanos % NANO !== 0n) throw new QuantityError(`cannot convert quantity ${this.toString()} to an integer: it has a fractional part`);
    const v = this.nanos / NANO;
    if (v < INT64_MIN || v > INT64_MAX) throw new QuantityError(`cannot convert quantity ${this.toString()} to an integer: int64 overflow`);
    return v;
  }

  asApproximateFloat(): number {
    const whole = this.nanos / NANO;
    const rest = this.nanos - whole * NANO;
    return Number(whole) + Number(rest) / 1e9;
  }

  /** A canonical spelling: binary suffix when exact, else decimal SI. */
  toString(): string {
    const n = this.nanos;
    if (n === 0n) return '0';
    if (n % NANO === 0n) {
      const v = n / NANO;
      const abs = v < 0n ? -v : v;
      // Of the exact spellings, the shortest reads best ("1E" rather than "976562500000000Ki").
      let best = v.toString();
      for (const suffix of ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki']) {
        const mult = BINARY_SUFFIX[suffix] ?? 1n;
        if (abs >= mult && abs % mult === 0n) {
          const s = `${v / mult}${suffix}`;
          if (s.length < best.length) best = s;
        }
      }
      for (const [suffix, exp] of [
        ['E', 18],
        ['P', 15],
        ['T', 12],
        ['G', 9],
        ['M', 6],
        ['k', 3],
      ] as const) {
        const mult = pow10(exp);
        if (abs >= mult && abs % mult === 0n) {
          const s = `${v / mult}${suffix}`;
          if (s.length < best.length) best = s;
        }
      }
      return best;
    }
    for (const [suffix, div] of [
      ['m', 1_000_000n],
      ['u', 1000n],
    ] as const) {
      if (n % div === 0n) return `${n / div}${suffix}`;
    }
    return `${n}n`;
  }
}
