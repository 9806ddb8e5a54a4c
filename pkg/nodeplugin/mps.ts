// MPS control daemons, one per shared GPU or shared MIG device: started with the GPU's first MPS
// sharer, stopped after its last, found again after a plugin restart through the
// control interface itself (the daemon outlives the plugin, so running clients
// keep their server). Every call is `nvidia-cuda-mps-control` with an argument
// array and its commands on stdin, never a shell.
//
// Layout: <root>/<GPU or MIG UUID>/pipe (CUDA_MPS_PIPE_DIRECTORY, mounted into the
// claim's containers) and <root>/<GPU UUID>/log (CUDA_MPS_LOG_DIRECTORY).
import { spawn } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage, type Logger } from '../log/logger.js';

/**
 * NVIDIA GPU UUIDs ("GPU-" and hex groups) and MIG device UUIDs ("MIG-" and hex
 * groups, R470 drivers and later). Anything else never becomes a path.
 */
const GPU_UUID = /^(GPU|MIG)-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/;

export interface MpsDirs {
  readonly pipe: string;
  readonly log: string;
}

export interface MpsControlOptions {
  /** nvidia-cuda-mps-control (or the stand-in in hack/fake-mps-control). */
  readonly controlPath: string;
  /** Directory holding one subdirectory per GPU with an MPS daemon. */
  readonly root: string;
  readonly timeoutMs?: number;
  /** Extra environment for the control program (tests point the stand-in at its state). */
  readonly env?: Readonly<Record<string, string>>;
  readonly log: Logger;
}

interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export class MpsError extends Error {
  override readonly name = 'MpsError';
}

export class MpsControl {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly o: MpsControlOptions) {}

  get root(): string {
    return this.o.root;
  }

  dirs(gpuUuid: string): MpsDirs {
    if (!GPU_UUID.test(gpuUuid)) throw new MpsError(`GPU UUID ${JSON.stringify(gpuUuid.slice(0, 80))} is not a GPU UUID`);
    const base = path.join(this.o.root, gpuUuid);
    return { pipe: path.join(base, 'pipe'), log: path.join(base, 'log') };
  }

  /** One operation per GPU at a time: two prepares must not both start a daemon. */
  private serial<T>(gpuUuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(gpuUuid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(gpuUuid, tail);
    void tail.then(() => {
      if (this.locks.get(gpuUuid) === tail) this.locks.delete(gpuUuid);
    });
    return next;
  }

  private run(gpuUuid: string, args: readonly string[], input: string | undefined): Promise<RunResult> {
    const dirs = this.dirs(gpuUuid);
    const env = {
      ...process.env,
      ...this.o.env,
      CUDA_VISIBLE_DEVICES: gpuUuid,
      CUDA_MPS_PIPE_DIRECTORY: dirs.pipe,
      CUDA_MPS_LOG_DIRECTORY: dirs.log,
    };
    return new Promise((resolve, reject) => {
      const child = spawn(this.o.controlPath, [...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), this.o.timeoutMs ?? 30_000);
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c.slice(0, 65536)));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c.slice(0, 65536)));
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new MpsError(`cannot run ${this.o.controlPath}: ${errorMessage(err)}`));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? '');
    });
  }

  /** Whether the GPU's control daemon answers. */
  async running(gpuUuid: string): Promise<boolean> {
    const r = await this.run(gpuUuid, [], 'get_default_active_thread_percentage\n');
    return r.code === 0;
  }

  /** Starts the GPU's control daemon unless it already runs; returns its directories. */
  ensure(gpuUuid: string): Promise<MpsDirs> {
    return this.serial(gpuUuid, async () => {
      const dirs = this.dirs(gpuUuid);
      if (await this.running(gpuUuid)) return dirs;
      // Containers of every sharer reach the daemon through the pipe directory.
      await mkdir(dirs.pipe, { recursive: true, mode: 0o755 });
      await mkdir(dirs.log, { recursive: true, mode: 0o700 });
      const r = await this.run(gpuUuid, ['-d'], undefined);
      if (r.code !== 0) throw new MpsError(`cannot start the MPS control daemon for ${gpuUuid}: ${(r.stderr || r.stdout).trim() || `exit code ${String(r.code)}`}`);
      if (!(await this.running(gpuUuid))) throw new MpsError(`the MPS control daemon for ${gpuUuid} started but does not answer`);
      this.o.log.info('started MPS control daemon', { gpu: gpuUuid, pipe: dirs.pipe });
      return dirs;
    });
  }

  /** Stops the GPU's daemon (gone already counts as stopped) and removes its directories. */
  stop(gpuUuid: string): Promise<void> {
    return this.serial(gpuUuid, async () => {
      if (await this.running(gpuUuid)) {
        const r = await this.run(gpuUuid, [], 'quit\n');
        if (r.code !== 0 && (await this.running(gpuUuid))) {
          throw new MpsError(`cannot stop the MPS control daemon for ${gpuUuid}: ${(r.stderr || r.stdout).trim() || `exit code ${String(r.code)}`}`);
        }
        this.o.log.info('stopped MPS control daemon', { gpu: gpuUuid });
      }
      await rm(path.dirname(this.dirs(gpuUuid).pipe), { recursive: true, force: true });
    });
  }

  /** GPUs that have a daemon directory under the root (a daemon may or may not run there). */
  async known(): Promise<string[]> {
    try {
      return (await readdir(this.o.root)).filter((n) => GPU_UUID.test(n));
    } catch {
      return [];
    }
  }
}
