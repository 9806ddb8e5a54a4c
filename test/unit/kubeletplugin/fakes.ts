// Test doubles for the kubelet plugin tests: a ClaimPreparer whose behaviour
// each claim's name selects, and helpers for temp dirs and stale sockets.
import { link, mkdtemp, rename, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClaimPreparer, ClaimRef, PrepareResult, UnprepareResult } from '../../../pkg/kubeletplugin/preparer.js';
import { baseRequestName } from '../../../pkg/kubeletplugin/preparer.js';
import { cdiDeviceId } from '../../../pkg/kubeletplugin/cdi.js';

export const DRIVER = 'gpu.cascade.dev';

/**
 * Behaviour by claim name: "fail-*" gets a per-claim error, "skip-*" is left
 * out of the result map, "throw-*" makes the whole call throw; anything else
 * gets one device "gpu-0" for request "gpu/large" (a firstAvailable alternative).
 */
export class FakePreparer implements ClaimPreparer {
  readonly prepared = new Map<string, ClaimRef>();
  readonly calls: string[] = [];
  active = 0;
  maxActive = 0;
  /** While set, calls wait for it: lets a test hold a call in flight. */
  gate: Promise<void> | undefined;

  async prepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, PrepareResult>> {
    return this.track(`prepare ${claims.map((c) => c.name).join(',')}`, () => {
      if (claims.some((c) => c.name.startsWith('throw-'))) throw new Error('backend exploded');
      const out = new Map<string, PrepareResult>();
      for (const c of claims) {
        if (c.name.startsWith('skip-')) continue;
        if (c.name.startsWith('fail-')) {
          out.set(c.uid, { error: `claim ${c.name}: placement 0 on gpu-0 is taken` });
          continue;
        }
        this.prepared.set(c.uid, c);
        out.set(c.uid, {
          devices: [
            {
              requestNames: [baseRequestName('gpu/large')],
              poolName: 'node-a',
              deviceName: 'gpu-0',
              cdiDeviceIds: [cdiDeviceId(DRIVER, c.uid, 'gpu-0')],
              ...(c.name.startsWith('shared-') ? { shareId: 'share-1' } : {}),
            },
          ],
        });
      }
      return out;
    });
  }

  async unprepare(claims: readonly ClaimRef[]): Promise<ReadonlyMap<string, UnprepareResult>> {
    return this.track(`unprepare ${claims.map((c) => c.name).join(',')}`, () => {
      if (claims.some((c) => c.name.startsWith('throw-'))) throw new Error('backend exploded');
      const out = new Map<string, UnprepareResult>();
      for (const c of claims) {
        if (c.name.startsWith('fail-')) out.set(c.uid, { error: `claim ${c.name}: In use by another client` });
        else {
          this.prepared.delete(c.uid);
          out.set(c.uid, {});
        }
      }
      return out;
    });
  }

  private async track<T>(what: string, fn: () => T): Promise<T> {
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.calls.push(what);
    try {
      if (this.gate) await this.gate;
      return fn();
    } finally {
      this.active -= 1;
    }
  }
}

/** A gate a test opens by hand. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

export async function tempDir(prefix = 'cascade-kp-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Leaves a socket file nobody listens on at path, as a crashed plugin does
 * (Node removes its socket on a clean close, so a hard link keeps it alive).
 */
export async function makeStaleSocket(path: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  await link(path, `${path}.keep`);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rename(`${path}.keep`, path);
}

export function claim(name: string, uid = `uid-${name}`, namespace = 'default'): ClaimRef {
  return { namespace, uid, name };
}
