// Retry helpers: re-run read-modify-write steps on 409 Conflict, and
// transient failures (5xx, 429, connection errors) with backoff.
import { KubeApiError, isConflict } from './client.js';

export interface RetryOptions {
  readonly attempts?: number;
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
}

/** Runs `fn` again (it should re-read what it modifies) while it fails with 409 Conflict. */
export async function retryOnConflict<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  return await retryWhen(fn, isConflict, opts);
}

/** True for errors worth retrying: 409, 429, 5xx and transport errors. */
export function isTransient(err: unknown): boolean {
  if (err instanceof KubeApiError) return err.code === 409 || err.code === 429 || err.code >= 500;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || err.name === 'TimeoutError' || err.name === 'AbortError';
  }
  return false;
}

export async function retryWhen<T>(fn: (attempt: number) => Promise<T>, shouldRetry: (err: unknown) => boolean, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 5;
  let delay = opts.initialDelayMs ?? 50;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !shouldRetry(err)) throw err;
      await new Promise((r) => setTimeout(r, delay + Math.floor(Math.random() * delay)));
      delay = Math.min(opts.maxDelayMs ?? 2_000, delay * 2);
    }
  }
}
