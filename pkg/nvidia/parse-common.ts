// Helpers shared by the nvidia-smi output parsers: line splitting, the many
// spellings of "no value", and integer reading that reports the offending line.
import { NvidiaSmiParseError } from './errors.js';

/** Splits output into lines, tolerating CRLF and a trailing newline. */
export function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

// nvidia-smi writes ANSI underline codes into the `topo -m` header even when
// stdout is not a terminal.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

// Every way nvidia-smi says "there is no value here", bracketed in CSV output
// and bare in XML and text output.
const MISSING = /^\[?(N\/A|Not Supported|Insufficient Permissions|Unknown Error|Not Available|Requested functionality has been deprecated|GPU requires reset)\]?$/i;

/** True for an absent value: empty, "[N/A]", "N/A", "[Not Supported]", ... */
export function isMissing(value: string | undefined): boolean {
  if (value === undefined) return true;
  const v = value.trim();
  return v === '' || MISSING.test(v);
}

/** The value, or undefined when nvidia-smi reported it missing. */
export function present(value: string | undefined): string | undefined {
  return isMissing(value) ? undefined : value?.trim();
}

/** Parses a non-negative decimal integer or throws a parse error naming the line. */
export function readInt(command: string, lineNumber: number, line: string, value: string, what: string): number {
  const v = value.trim();
  if (!/^\d{1,9}$/.test(v)) {
    throw new NvidiaSmiParseError(command, lineNumber, line, `${what} ${JSON.stringify(v)} is not a non-negative integer`);
  }
  return Number(v);
}

/** Reads "40960 MiB" or "40960" as MiB. */
export function readMiB(command: string, lineNumber: number, line: string, value: string, what: string): number {
  const m = /^\s*(\d{1,9})(?:\s*MiB)?\s*$/.exec(value);
  if (!m?.[1]) {
    throw new NvidiaSmiParseError(command, lineNumber, line, `${what} ${JSON.stringify(value.trim())} is not a size in MiB`);
  }
  return Number(m[1]);
}

/** Normalises "00000000:06:00.0" (nvidia-smi's 8-digit domain) to sysfs form "0000:06:00.0". */
export function normalizePciBusId(value: string): string | undefined {
  const m = /^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(value.trim());
  if (!m?.[1] || !m[2] || !m[3] || !m[4]) return undefined;
  const domain = m[1].slice(-4);
  return `${domain}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

/** Drops the "MIG " prefix nvidia-smi puts before profile names. */
export function profileName(name: string): string {
  return name.replace(/^MIG\s+/, '').trim();
}

/** Compute slices from a profile name: "3g.40gb" -> 3, "1c.3g.40gb" -> 3. */
export function computeSlicesOf(profile: string): number | undefined {
  const m = /(?:^|\.)(\d)g\./.exec(profile);
  return m?.[1] ? Number(m[1]) : undefined;
}
