// Typed errors for nvidia-smi: one for a run that failed (by exit code or
// message), one for output that could not be read. Both name the command.

/** What went wrong, from nvidia-smi's exit code or its message. */
export type NvidiaSmiErrorKind =
  | 'bad-argument'
  | 'not-supported'
  | 'no-permission'
  | 'not-found'
  | 'driver-not-loaded'
  | 'nvml-not-found'
  | 'gpu-lost'
  | 'insufficient-resources'
  | 'in-use'
  | 'timeout'
  | 'output-too-large'
  | 'not-executable'
  | 'other';

/** Exit codes documented by nvidia-smi (REFERENCE section 6). */
const EXIT_CODE_KINDS: ReadonlyMap<number, NvidiaSmiErrorKind> = new Map([
  [2, 'bad-argument'],
  [3, 'not-supported'],
  [4, 'no-permission'],
  [6, 'not-found'],
  [9, 'driver-not-loaded'],
  [12, 'nvml-not-found'],
  [15, 'gpu-lost'],
  [255, 'other'],
]);

/** The kind for an exit code; codes nvidia-smi does not document are "other". */
export function kindForExitCode(code: number): NvidiaSmiErrorKind {
  return EXIT_CODE_KINDS.get(code) ?? 'other';
}

/**
 * Some failures share exit code 255 (or differ between drivers); the message is
 * the only stable signal, so it refines the kind.
 */
export function refineKind(kind: NvidiaSmiErrorKind, output: string): NvidiaSmiErrorKind {
  if (/Insufficient Resources/i.test(output)) return 'insufficient-resources';
  if (/In use by another client/i.test(output)) return 'in-use';
  if (/GPU is lost|fallen off the bus/i.test(output)) return 'gpu-lost';
  if (/couldn't communicate with the NVIDIA driver|driver is not loaded/i.test(output)) return 'driver-not-loaded';
  if (kind === 'other' && /: Not Found\b/.test(output)) return 'not-found';
  return kind;
}

/** nvidia-smi ran but did not succeed (or could not be run at all). */
export class NvidiaSmiError extends Error {
  override readonly name = 'NvidiaSmiError';

  constructor(
    /** The command as a person would type it, e.g. "nvidia-smi mig -lgi". */
    readonly command: string,
    readonly kind: NvidiaSmiErrorKind,
    /** Exit code, or undefined when the process did not exit normally. */
    readonly exitCode: number | undefined,
    /** The most useful line nvidia-smi printed (or our own explanation). */
    readonly detail: string,
    /** Everything it printed (stdout then stderr), for callers that need more than one line. */
    readonly output = '',
  ) {
    super(`${command}: ${detail}${exitCode === undefined ? '' : ` (exit code ${exitCode}, ${kind})`}`);
  }
}

/** Output that does not read as the command's documented format. */
export class NvidiaSmiParseError extends Error {
  override readonly name = 'NvidiaSmiParseError';

  constructor(
    readonly command: string,
    /** 1-based line number, or 0 when the problem is the output as a whole. */
    readonly lineNumber: number,
    readonly line: string,
    readonly reason: string,
  ) {
    super(lineNumber > 0 ? `cannot read output of "${command}" at line ${lineNumber} (${JSON.stringify(truncate(line))}): ${reason}` : `cannot read output of "${command}": ${reason}`);
  }
}

function truncate(line: string): string {
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

/** Values passed on nvidia-smi command lines must be small non-negative integers. */
export function checkSmallInt(what: string, value: number, max = 1023): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} must be an integer between 0 and ${max}, got ${String(value)}`);
  }
  return value;
}
