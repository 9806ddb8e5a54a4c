// Semantic versions (semver 2.0.0) for device attributes of type version and for
// CEL's semver() functions: strict parsing, optional normalisation, precedence.

export class SemverError extends Error {
  override readonly name = 'SemverError';
}

const NUM = '0|[1-9]\\d*';
const PRE_ID = `(?:${NUM}|\\d*[a-zA-Z-][0-9a-zA-Z-]*)`;
const STRICT_RE = new RegExp(`^(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$`);

export class Semver {
  readonly major: bigint;
  readonly minor: bigint;
  readonly patch: bigint;
  readonly prerelease: readonly string[];
  readonly build: readonly string[];

  private constructor(major: bigint, minor: bigint, patch: bigint, prerelease: readonly string[], build: readonly string[]) {
    this.major = major;
    this.minor = minor;
    this.patch = patch;
    this.prerelease = prerelease;
    this.build = build;
  }

  /**
   * Parses a version. With `normalize`, a leading "v", missing minor/patch parts
   * and leading zeros are accepted (as Kubernetes' semver(s, true) does).
   */
  static parse(text: string, normalize = false): Semver {
    const v = Semver.tryParse(text, normalize);
    if (v === undefined) throw new SemverError(`invalid semantic version ${JSON.stringify(text)}`);
    return v;
  }

  static tryParse(text: string, normalize = false): Semver | undefined {
    const input = normalize ? normalizeText(text) : text;
    if (input === undefined) return undefined;
    const m = STRICT_RE.exec(input);
    if (m === null) return undefined;
    return new Semver(BigInt(m[1] ?? '0'), BigInt(m[2] ?? '0'), BigInt(m[3] ?? '0'), m[4] === undefined ? [] : m[4].split('.'), m[5] === undefined ? [] : m[5].split('.'));
  }

  /** Precedence per semver 2.0.0 section 11; build metadata is ignored. */
  compareTo(other: Semver): -1 | 0 | 1 {
    for (const [a, b] of [
      [this.major, other.major],
      [this.minor, other.minor],
      [this.patch, other.patch],
    ] as const) {
      if (a !== b) return a < b ? -1 : 1;
    }
    const pa = this.prerelease;
    const pb = other.prerelease;
    if (pa.length === 0 || pb.length === 0) {
      if (pa.length === pb.length) return 0;
      // A version without pre-release ranks above one with it.
      return pa.length === 0 ? 1 : -1;
    }
    for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
      const c = comparePrerelease(pa[i] ?? '', pb[i] ?? '');
      if (c !== 0) return c;
    }
    return pa.length === pb.length ? 0 : pa.length < pb.length ? -1 : 1;
  }

  equals(other: Semver): boolean {
    return this.compareTo(other) === 0;
  }

  toString(): string {
    let s = `${this.major}.${this.minor}.${this.patch}`;
    if (this.prerelease.length > 0) s += `-${this.prerelease.join('.')}`;
    if (this.build.length > 0) s += `+${this.build.join('.')}`;
    return s;
  }
}

function comparePrerelease(a: string, b: string): -1 | 0 | 1 {
  const an = /^\d+$/.test(a);
  const bn = /^\d+$/.test(b);
  if (an && bn) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x === y ? 0 : x < y ? -1 : 1;
  }
  // Numeric identifiers rank below alphanumeric ones.
  if (an !== bn) return an ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

function normalizeText(text: string): string | undefined {
  let s = text.startsWith('v') ? text.slice(1) : text;
  let suffix = '';
  const cut = s.search(/[-+]/);
  if (cut >= 0) {
    suffix = s.slice(cut);
    s = s.slice(0, cut);
  }
  const parts = s.split('.');
  if (parts.length === 0 || parts.length > 3 || parts.some((p) => !/^\d+$/.test(p))) return undefined;
  while (parts.length < 3) parts.push('0');
  return parts.map((p) => BigInt(p).toString()).join('.') + suffix;
}
