// The URL, IP and CIDR values of Kubernetes' CEL library (url(), ip(), cidr()).
// Parsing is as strict as Go's net/netip, which Kubernetes uses: IPv4 without
// leading zeros, no IPv6 zones, no IPv4-mapped IPv6 addresses.
import { isIPv4, isIPv6 } from 'node:net';

export class CelNetError extends Error {}

function v4Bytes(s: string): number[] | undefined {
  if (!isIPv4(s)) return undefined;
  const parts = s.split('.');
  if (parts.some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
  return parts.map(Number);
}

function v6Bytes(s: string): number[] | undefined {
  if (s.includes('%') || !isIPv6(s)) return undefined;
  let text = s;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = v4Bytes(text.slice(lastColon + 1));
    if (!v4) return undefined;
    tail.push(...v4);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (g: string): string[] => (g === '' ? [] : g.split(':'));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const fill = rest === undefined ? 0 : 8 - h.length - r.length;
  const all = [...h, ...Array.from({ length: fill }, () => '0'), ...r];
  if (all.length !== 8) return undefined;
  const bytes = all.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

export class IpAddress {
  private constructor(
    readonly bytes: readonly number[],
    readonly family: 4 | 6,
  ) {}

  static tryParse(s: string): IpAddress | undefined {
    const v4 = v4Bytes(s);
    if (v4) return new IpAddress(v4, 4);
    const v6 = v6Bytes(s);
    if (!v6) return undefined;
    // IPv4-mapped IPv6 (::ffff:a.b.c.d) is refused, as Kubernetes does.
    if (v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) return undefined;
    return new IpAddress(v6, 6);
  }

  static parse(s: string): IpAddress {
    const ip = IpAddress.tryParse(s);
    if (!ip) throw new CelNetError(`IP Address ${JSON.stringify(s)} parse error during conversion from string`);
    return ip;
  }

  isCanonical(text: string): boolean {
    return this.toString() === text;
  }

  isUnspecified(): boolean {
    return this.bytes.every((b) => b === 0);
  }

  isLoopback(): boolean {
    return this.family === 4 ? this.bytes[0] === 127 : this.bytes.slice(0, 15).every((b) => b === 0) && this.bytes[15] === 1;
  }

  isLinkLocalMulticast(): boolean {
    return this.family === 4 ? this.bytes[0] === 224 && this.bytes[1] === 0 && this.bytes[2] === 0 : this.bytes[0] === 0xff && ((this.bytes[1] ?? 0) & 0x0f) === 0x02;
  }

  isLinkLocalUnicast(): boolean {
    return this.family === 4 ? this.bytes[0] === 169 && this.bytes[1] === 254 : this.bytes[0] === 0xfe && ((this.bytes[1] ?? 0) & 0xc0) === 0x80;
  }

  isGlobalUnicast(): boolean {
    if (this.isUnspecified() || this.isLoopback() || this.isLinkLocalUnicast() || this.isLinkLocalMulticast()) return false;
    if (this.family === 4) return !(this.bytes[0] !== undefined && this.bytes[0] >= 224) && !this.bytes.every((b) => b === 255);
    return this.bytes[0] !== 0xff;
  }

  equals(o: unknown): boolean {
    return o instanceof IpAddress && o.family === this.family && o.bytes.every((b, i) => b === this.bytes[i]);
  }

  toString(): string {
    if (this.family === 4) return this.bytes.join('.');
    const groups = Array.from({ length: 8 }, (_x, i) => (((this.bytes[2 * i] ?? 0) << 8) | (this.bytes[2 * i + 1] ?? 0)).toString(16));
    // The longest run of two or more zero groups becomes "::" (RFC 5952).
    let best = -1;
    let bestLen = 1;
    for (let i = 0; i < 8;) {
      if (groups[i] !== '0') {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && groups[j] === '0') j++;
      if (j - i > bestLen) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    if (best < 0) return groups.join(':');
    return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  }
}

export class Cidr {
  private constructor(
    readonly ip: IpAddress,
    readonly prefixLength: number,
  ) {}

  static tryParse(s: string): Cidr | undefined {
    const slash = s.indexOf('/');
    if (slash < 0) return undefined;
    const ip = IpAddress.tryParse(s.slice(0, slash));
    const bitsText = s.slice(slash + 1);
    if (!ip || !/^(0|[1-9]\d{0,2})$/.test(bitsText)) return undefined;
    const bits = Number(bitsText);
    if (bits > (ip.family === 4 ? 32 : 128)) return undefined;
    return new Cidr(ip, bits);
  }

  static parse(s: string): Cidr {
    const c = Cidr.tryParse(s);
    if (!c) throw new CelNetError(`network address ${JSON.stringify(s)} parse error during conversion from string`);
    return c;
  }

  private prefixOf(ip: IpAddress): boolean {
    if (ip.family !== this.ip.family) return false;
    for (let bit = 0; bit < this.prefixLength; bit++) {
      const mask = 0x80 >> (bit % 8);
      if (((ip.bytes[bit >> 3] ?? 0) & mask) !== ((this.ip.bytes[bit >> 3] ?? 0) & mask)) return false;
    }
    return true;
  }

  containsIp(ip: IpAddress): boolean {
    return this.prefixOf(ip);
  }

  containsCidr(o: Cidr): boolean {
    return o.ip.family === this.ip.family && o.prefixLength >= this.prefixLength && this.prefixOf(o.ip);
  }

  masked(): Cidr {
    const bytes = this.ip.bytes.map((b, i) => {
      const keep = Math.max(0, Math.min(8, this.prefixLength - 8 * i));
      return b & ((0xff << (8 - keep)) & 0xff);
    });
    return new Cidr(IpAddress.parse(this.ip.family === 4 ? bytes.join('.') : v6Text(bytes)), this.prefixLength);
  }

  equals(o: unknown): boolean {
    return o instanceof Cidr && o.prefixLength === this.prefixLength && o.ip.equals(this.ip);
  }

  toString(): string {
    return `${this.ip.toString()}/${this.prefixLength}`;
  }
}

function v6Text(bytes: readonly number[]): string {
  return Array.from({ length: 8 }, (_x, i) => (((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0)).toString(16)).join(':');
}

/** url(): an absolute URL, or an absolute path, as Go's url.ParseRequestURI takes them. */
export class Url {
  private constructor(
    readonly scheme: string,
    readonly host: string,
    readonly hostname: string,
    readonly port: string,
    readonly escapedPath: string,
    private readonly search: string,
  ) {}

  static tryParse(s: string): Url | undefined {
    if (s.startsWith('/')) {
      const q = s.indexOf('?');
      return new Url('', '', '', '', q < 0 ? s : s.slice(0, q), q < 0 ? '' : s.slice(q));
    }
    const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(s);
    if (!m) return undefined;
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return undefined;
    }
    const host = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(s)?.[1] ?? '';
    const hostname = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '');
    const port = host.startsWith('[') ? (/\]:(\d*)$/.exec(host)?.[1] ?? '') : (/:(\d*)$/.exec(host)?.[1] ?? '');
    return new Url((m[1] ?? '').toLowerCase(), host, hostname, port, u.pathname === '/' && !/^[^:]+:\/\/[^/]*\//.test(s) ? '' : u.pathname, u.search);
  }

  static parse(s: string): Url {
    const u = Url.tryParse(s);
    if (!u) throw new CelNetError(`URL parse error during conversion from string: parse ${JSON.stringify(s)}: invalid URI for request`);
    return u;
  }

  query(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [k, v] of new URLSearchParams(this.search)) {
      const list = out.get(k);
      if (list) list.push(v);
      else out.set(k, [v]);
    }
    return out;
  }
}
