// The kubelet plugin's servers over real unix sockets, driven by the kubelet
// stand-in: registration handshake, prepare/unprepare on v1 and v1beta1,
// per-claim errors, sockets and shutdown, grpc health, the health stream.
import { lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { HealthClient } from '../../../pkg/generated/grpc/health/v1/Health.js';
import type { HealthCheckResponse__Output } from '../../../pkg/generated/grpc/health/v1/HealthCheckResponse.js';
import { rootLogger } from '../../../pkg/log/logger.js';
import { DeviceHealthBoard } from '../../../pkg/kubeletplugin/health.js';
import { GRPC_SERVICE, SUPPORTED_SERVICE, loadProtos } from '../../../pkg/kubeletplugin/protos.js';
import { type KubeletPluginOptions, KubeletPlugin } from '../../../pkg/kubeletplugin/server.js';
import { KubeletStandin, pollUntil } from '../../support/kubelet-standin.js';
import { DRIVER, FakePreparer, claim, gate, makeStaleSocket, tempDir } from './fakes.js';

interface Harness {
  plugin: KubeletPlugin;
  preparer: FakePreparer;
  registryDir: string;
  pluginsDir: string;
}

let cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  rootLogger().silent = true;
});

afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function startPlugin(options: Partial<KubeletPluginOptions> = {}): Promise<Harness> {
  const { dir, cleanup } = await tempDir();
  const preparer = new FakePreparer();
  const registryDir = join(dir, 'plugins_registry');
  const pluginsDir = join(dir, 'plugins');
  const plugin = new KubeletPlugin({ driverName: DRIVER, preparer, registryDir, pluginsDir, shutdownGraceMs: 2000, ...options });
  cleanups.push(cleanup);
  await plugin.start();
  cleanups.push(() => plugin.stop());
  return { plugin, preparer, registryDir, pluginsDir };
}

async function standin(h: Harness, extra: { kubeletSupports?: readonly string[] } = {}): Promise<KubeletStandin> {
  const s = await KubeletStandin.discover({ registryDir: h.registryDir, timeoutMs: 5000, callTimeoutMs: 10_000, ...extra });
  cleanups.push(async () => s.close());
  return s;
}

function healthCheck(socket: string, service: string): Promise<HealthCheckResponse__Output> {
  const client: HealthClient = new (loadProtos().grpc.health.v1.Health)(`unix://${socket}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Check({ service }, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

/** Opens and closes one connection to a unix socket. */
function connectOnce(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve();
    });
    sock.once('error', reject);
  });
}

describe('the kubelet plugin', () => {
  it('completes the registration handshake and announces its DRA endpoint', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    expect(s.info).toEqual({
      type: 'DRAPlugin',
      name: DRIVER,
      endpoint: join(h.pluginsDir, DRIVER, 'dra.sock'),
      supportedVersions: ['v1.DRAPlugin', 'v1beta1.DRAPlugin'],
    });
    expect(s.version).toBe('v1');
    await pollUntil(() => h.plugin.registration, 5000, 'NotifyRegistrationStatus');
    expect(h.plugin.registration).toEqual({ registered: true, error: '' });
  });

  it('prepares and unprepares claims over the real sockets', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const a = claim('a');
    const prepared = await s.prepare([a]);
    expect(prepared).toEqual(
      new Map([
        [
          a.uid,
          {
            error: '',
            devices: [{ requestNames: ['gpu'], poolName: 'node-a', deviceName: 'gpu-0', cdiDeviceIds: [`k8s.${DRIVER}/gpu=${a.uid}-gpu-0`] }],
          },
        ],
      ]),
    );
    expect([...h.preparer.prepared.keys()]).toEqual([a.uid]);
    expect(await s.unprepare([a])).toEqual(new Map([[a.uid, { error: '' }]]));
    expect(h.preparer.prepared.size).toBe(0);
  });

  it('sends share_id on v1 only when the device has one', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const shared = claim('shared-1');
    const plain = claim('plain-1');
    const res = await s.prepare([shared, plain]);
    expect(res.get(shared.uid)?.devices[0]?.shareId).toBe('share-1');
    expect(res.get(plain.uid)?.devices[0]).not.toHaveProperty('shareId');
  });

  it('fails only the claim whose preparation failed', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const good = claim('good');
    const bad = claim('fail-1');
    const res = await s.prepare([good, bad]);
    expect(res.get(good.uid)).toMatchObject({ error: '', devices: [{ deviceName: 'gpu-0' }] });
    expect(res.get(bad.uid)).toEqual({ error: 'claim fail-1: placement 0 on gpu-0 is taken', devices: [] });
    const un = await s.unprepare([good, bad]);
    expect(un.get(good.uid)).toEqual({ error: '' });
    expect(un.get(bad.uid)?.error).toContain('In use by another client');
  });

  it('turns an exception of the preparer into an error for every claim of the request', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const claims = [claim('x'), claim('throw-1')];
    const res = await s.prepare(claims);
    expect([...res.keys()].sort()).toEqual(claims.map((c) => c.uid).sort());
    for (const c of claims) expect(res.get(c.uid)?.error).toMatch(new RegExp(`prepare claim default/${c.name} \\(${c.uid}\\): backend exploded`));
    const un = await s.unprepare(claims);
    for (const c of claims) expect(un.get(c.uid)?.error).toContain('backend exploded');
  });

  it('answers a claim the preparer left out with an error instead of dropping it', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const missing = claim('skip-1');
    const res = await s.prepare([missing, claim('ok')]);
    expect(res.get(missing.uid)?.error).toContain('the driver returned no result');
    expect(res.get('uid-ok')?.error).toBe('');
  });

  it('rejects a claim without a UID without calling the preparer', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const res = await s.prepare([{ namespace: 'default', name: 'anon', uid: '' }]);
    expect(res.get('')?.error).toBe('claim default/anon has no UID');
    expect(h.preparer.calls).toEqual([]);
  });

  it('serves v1beta1 to a kubelet that only knows v1beta1, without share_id', async () => {
    const h = await startPlugin();
    const s = await standin(h, { kubeletSupports: [SUPPORTED_SERVICE.draV1beta1] });
    expect(s.version).toBe('v1beta1');
    const c = claim('shared-2');
    const res = await s.prepare([c]);
    expect(res.get(c.uid)).toEqual({
      error: '',
      devices: [{ requestNames: ['gpu'], poolName: 'node-a', deviceName: 'gpu-0', cdiDeviceIds: [`k8s.${DRIVER}/gpu=${c.uid}-gpu-0`] }],
    });
    expect(await s.unprepare([c])).toEqual(new Map([[c.uid, { error: '' }]]));
  });

  it('lets the stand-in fall back to v1beta1 when the plugin does not offer v1', async () => {
    const h = await startPlugin({ draVersions: ['v1beta1'] });
    const s = await standin(h);
    expect(s.info.supportedVersions).toEqual(['v1beta1.DRAPlugin']);
    expect(s.version).toBe('v1beta1');
    expect((await s.prepare([claim('b')])).get('uid-b')?.error).toBe('');
  });

  it('records a registration the kubelet rejected', async () => {
    const h = await startPlugin();
    await expect(standin(h, { kubeletSupports: ['v9.DRAPlugin'] })).rejects.toThrow(/none of the services/);
    await pollUntil(() => h.plugin.registration, 5000, 'NotifyRegistrationStatus');
    expect(h.plugin.registration?.registered).toBe(false);
    expect(h.plugin.registration?.error).toContain('v9.DRAPlugin');
  });

  it('runs prepare and unprepare calls one at a time', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const g = gate();
    h.preparer.gate = g.promise;
    const calls = [s.prepare([claim('p1')]), s.unprepare([claim('p2')]), s.prepare([claim('p3')])];
    await pollUntil(() => (h.plugin.dra.queue.pending === 3 ? true : undefined), 5000, 'three queued calls');
    expect(h.preparer.active).toBe(1);
    g.open();
    await Promise.all(calls);
    expect(h.preparer.maxActive).toBe(1);
    expect(h.preparer.calls).toEqual(['prepare p1', 'unprepare p2', 'prepare p3']);
  });

  it('makes its sockets root-only: files 0600 and its own directory 0700', async () => {
    const h = await startPlugin();
    const reg = join(h.registryDir, `${DRIVER}-reg.sock`);
    const dra = join(h.pluginsDir, DRIVER, 'dra.sock');
    for (const sock of [reg, dra]) {
      const info = await lstat(sock);
      expect(info.isSocket()).toBe(true);
      expect(info.mode & 0o777).toBe(0o600);
    }
    expect((await stat(join(h.pluginsDir, DRIVER))).mode & 0o777).toBe(0o700);
  });

  it('replaces stale socket files left by a crashed run', async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const registryDir = join(dir, 'plugins_registry');
    const pluginsDir = join(dir, 'plugins');
    await mkdir(registryDir, { recursive: true });
    await mkdir(join(pluginsDir, DRIVER), { recursive: true });
    const reg = join(registryDir, `${DRIVER}-reg.sock`);
    const dra = join(pluginsDir, DRIVER, 'dra.sock');
    await makeStaleSocket(reg);
    await makeStaleSocket(dra);
    for (const sock of [reg, dra]) await expect(connectOnce(sock)).rejects.toThrow(/ECONNREFUSED/);

    const plugin = new KubeletPlugin({ driverName: DRIVER, preparer: new FakePreparer(), registryDir, pluginsDir });
    await plugin.start();
    cleanups.push(() => plugin.stop());
    for (const sock of [reg, dra]) await expect(connectOnce(sock)).resolves.toBeUndefined();
    const s = await KubeletStandin.discover({ registryDir, timeoutMs: 5000 });
    cleanups.push(async () => s.close());
    expect((await s.prepare([claim('after-crash')])).get('uid-after-crash')?.error).toBe('');
  });

  it('refuses to replace a regular file sitting where its socket goes', async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const pluginsDir = join(dir, 'plugins');
    await mkdir(join(pluginsDir, DRIVER), { recursive: true });
    const dra = join(pluginsDir, DRIVER, 'dra.sock');
    await writeFile(dra, 'not a socket');
    const plugin = new KubeletPlugin({ driverName: DRIVER, preparer: new FakePreparer(), registryDir: join(dir, 'reg'), pluginsDir });
    await expect(plugin.start()).rejects.toThrow(/exists and is not a socket/);
    await plugin.stop();
    expect(await readFile(dra, 'utf8')).toBe('not a socket');
  });

  it('shuts down gracefully: a call in flight completes and no socket file is left', async () => {
    const h = await startPlugin();
    const s = await standin(h);
    const g = gate();
    h.preparer.gate = g.promise;
    const inFlight = s.prepare([claim('late')]);
    await pollUntil(() => (h.preparer.active === 1 ? true : undefined), 5000, 'the prepare call to start');
    const stopping = h.plugin.stop();
    g.open();
    expect((await inFlight).get('uid-late')?.error).toBe('');
    await stopping;
    await expect(lstat(join(h.registryDir, `${DRIVER}-reg.sock`))).rejects.toThrow(/ENOENT/);
    await expect(lstat(join(h.pluginsDir, DRIVER, 'dra.sock'))).rejects.toThrow(/ENOENT/);
  });

  it('answers the standard grpc health check on both sockets', async () => {
    const h = await startPlugin();
    const dra = join(h.pluginsDir, DRIVER, 'dra.sock');
    const reg = join(h.registryDir, `${DRIVER}-reg.sock`);
    expect(await healthCheck(dra, '')).toEqual({ status: 'SERVING' });
    expect(await healthCheck(dra, GRPC_SERVICE.draV1)).toEqual({ status: 'SERVING' });
    expect(await healthCheck(dra, GRPC_SERVICE.draV1beta1)).toEqual({ status: 'SERVING' });
    expect(await healthCheck(reg, GRPC_SERVICE.registration)).toEqual({ status: 'SERVING' });
    await expect(healthCheck(dra, 'no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('streams the complete device health list on subscribe and on every change', async () => {
    const board = new DeviceHealthBoard();
    board.set({ poolName: 'node-a', deviceName: 'gpu-0', health: 'HEALTHY', lastUpdatedTime: 100 });
    board.set({ poolName: 'node-a', deviceName: 'gpu-1', health: 'HEALTHY', lastUpdatedTime: 100 });
    const h = await startPlugin({ health: board });
    const s = await standin(h);
    expect(s.info.supportedVersions).toEqual(['v1.DRAPlugin', 'v1beta1.DRAPlugin', 'v1alpha1.DRAResourceHealth']);
    const watch = s.watchHealth();
    cleanups.push(async () => watch.close());
    const first = await watch.next();
    expect(first.map((d) => [d.device?.device_name, d.health])).toEqual([
      ['gpu-0', 'HEALTHY'],
      ['gpu-1', 'HEALTHY'],
    ]);
    board.set({ poolName: 'node-a', deviceName: 'gpu-1', health: 'UNHEALTHY', lastUpdatedTime: 160, message: 'GPU is lost' });
    const second = await watch.next();
    expect(second).toEqual([
      { device: { pool_name: 'node-a', device_name: 'gpu-0' }, health: 'HEALTHY', last_updated_time: 100, health_check_timeout_seconds: 0, message: '' },
      { device: { pool_name: 'node-a', device_name: 'gpu-1' }, health: 'UNHEALTHY', last_updated_time: 160, health_check_timeout_seconds: 0, message: 'GPU is lost' },
    ]);
    await h.plugin.stop();
    await pollUntil(() => (watch.ended ? true : undefined), 5000, 'the health stream to end');
    expect(board.listenerCount('change')).toBe(0);
  });
});
