// Runs nvidia-smi: execFile with an argument array (never a shell), LC_ALL=C,
// a timeout and bounded output, exit codes mapped to NvidiaSmiError kinds.
import { execFile } from 'node:child_process';
import { NvidiaSmiError, kindForExitCode, refineKind } from './errors.js';

export interface SmiExecOptions {
  /** Path of the nvidia-smi binary (or the simulator). */
  readonly path: string;
  /** Per-call limit; nvidia-smi hangs when the driver is wedged. */
  readonly timeoutMs: number;
  /** Bound on stdout and stderr each; `-q -x` on 8 GPUs is about 200 KiB. */
  readonly maxBufferBytes: number;
  /** Extra environment (the simulator reads its config path from here). */
  readonly env?: Readonly<Record<string, string>>;
}

export const DEFAULT_EXEC_OPTIONS: Omit<SmiExecOptions, 'path'> = {
  timeoutMs: 30_000,
  maxBufferBytes: 16 * 1024 * 1024,
};

export interface SmiResult {
  readonly command: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** How a command line reads in messages. */
export function describeCommand(args: readonly string[]): string {
  return ['nvidia-smi', ...args].join(' ');
}

interface ExecFailure {
  code?: number | string | null;
  killed?: boolean;
  signal?: NodeJS.Signals | null;
  message?: string;
}

function asFailure(err: unknown): ExecFailure {
  if (typeof err !== 'object' || err === null) return { message: String(err) };
  const failure: ExecFailure = err;
  return failure;
}

/** The line to quote in an error: the last non-empty line of stderr, else stdout. */
function mainLine(stdout: string, stderr: string): string {
  const pick = (s: string): string | undefined =>
    s
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .pop();
  return pick(stderr) ?? pick(stdout) ?? 'no output';
}

/** An nvidia-smi stand-in called in process (the benchmark's simulated fleets): argv in, output out. */
export type SmiInvoke = (args: readonly string[]) => { readonly stdout: string; readonly stderr: string; readonly exitCode: number };

/** The same contract as runSmi for an in-process stand-in: exit codes mapped exactly alike. */
export function invokeSmi(invoke: SmiInvoke, args: readonly string[], okExitCodes: readonly number[] = []): SmiResult {
  const command = describeCommand(args);
  const r = invoke(args);
  if (r.exitCode === 0 || okExitCodes.includes(r.exitCode)) return { command, stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
  const output = `${r.stdout}\n${r.stderr}`;
  throw new NvidiaSmiError(command, refineKind(kindForExitCode(r.exitCode), output), r.exitCode, mainLine(r.stdout, r.stderr), output);
}

/**
 * Runs nvidia-smi and resolves with its output when the exit code is 0 or in
 * `okExitCodes` (listing commands exit 6 for "nothing found"); otherwise
 * rejects with an NvidiaSmiError.
 */
export function runSmi(options: SmiExecOptions, args: readonly string[], okExitCodes: readonly number[] = []): Promise<SmiResult> {
  const command = describeCommand(args);
  return new Promise((resolve, reject) => {
    execFile(
      options.path,
      [...args],
      {
        env: { ...process.env, ...options.env, LC_ALL: 'C', LANG: 'C' },
        timeout: options.timeoutMs,
        maxBuffer: options.maxBufferBytes,
        killSignal: 'SIGKILL',
        encoding: 'utf8',
        windowsHide: true,
        shell: false,
      },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ command, stdout, stderr, exitCode: 0 });
          return;
        }
        const f = asFailure(error);
        if (typeof f.code === 'number') {
          if (okExitCodes.includes(f.code)) {
            resolve({ command, stdout, stderr, exitCode: f.code });
            return;
          }
          const output = `${stdout}\n${stderr}`;
          reject(new NvidiaSmiError(command, refineKind(kindForExitCode(f.code), output), f.code, mainLine(stdout, stderr), output));
          return;
        }
        if (f.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
          reject(new NvidiaSmiError(command, 'output-too-large', undefined, `output exceeded ${options.maxBufferBytes} bytes`));
          return;
        }
        if (f.killed || f.signal) {
          reject(new NvidiaSmiError(command, 'timeout', undefined, `no answer within ${options.timeoutMs} ms (killed with ${f.signal ?? 'SIGKILL'})`));
          return;
        }
        if (f.code === 'ENOENT' || f.code === 'EACCES') {
          reject(new NvidiaSmiError(command, 'not-executable', undefined, `cannot run ${options.path}: ${String(f.code)}`));
          return;
        }
        reject(new NvidiaSmiError(command, 'other', undefined, f.message ?? 'failed'));
      },
    );
  });
}
