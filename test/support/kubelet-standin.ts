// The gRPC half of a kubelet stand-in: finds a DRA plugin by its registration
// socket as the kubelet's plugin watcher does, completes the handshake
// (GetInfo, then NotifyRegistrationStatus), and calls prepare, unprepare and
// the health stream over the endpoint the plugin announced.
import { readdir, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { DRAPluginClient as V1Client } from '../../pkg/generated/k8s/io/kubelet/pkg/apis/dra/v1/DRAPlugin.js';
import type { DRAPluginClient as V1beta1Client } from '../../pkg/generated/k8s/io/kubelet/pkg/apis/dra/v1beta1/DRAPlugin.js';
import type { NodePrepareResourcesResponse__Output as V1PrepareOutput } from '../../pkg/generated/k8s/io/kubelet/pkg/apis/dra/v1/NodePrepareResourcesResponse.js';
import type { NodeUnprepareResourcesResponse__Output as UnprepareOutput } from '../../pkg/generated/k8s/io/kubelet/pkg/apis/dra/v1/NodeUnprepareResourcesResponse.js';
import type { NodePrepareResourcesResponse__Output as V1beta1PrepareOutput } from '../../pkg/generated/k8s/io/kubelet/pkg/apis/dra/v1beta1/NodePrepareResourcesResponse.js';
import type { PluginInfo__Output as InfoOutput } from '../../pkg/generated/pluginregistration/PluginInfo.js';
import type { RegistrationClient } from '../../pkg/generated/pluginregistration/Registration.js';
import type { DRAResourceHealthClient } from '../../pkg/generated/v1alpha1/DRAResourceHealth.js';
import type { DeviceHealth__Output } from '../../pkg/generated/v1alpha1/DeviceHealth.js';
import type { NodeWatchResourcesResponse__Output } from '../../pkg/generated/v1alpha1/NodeWatchResourcesResponse.js';
import { DRA_PLUGIN_TYPE, SUPPORTED_SERVICE, loadProtos } from '../../pkg/kubeletplugin/protos.js';

export interface StandinClaim {
  readonly namespace: string;
  readonly uid: string;
  readonly name: string;
}

export interface StandinDevice {
  readonly requestNames: readonly string[];
  readonly poolName: string;
  readonly deviceName: string;
  readonly cdiDeviceIds: readonly string[];
  readonly shareId?: string;
}

export interface StandinPrepareResult {
  readonly devices: readonly StandinDevice[];
  /** "" when the claim was prepared. */
  readonly error: string;
}

export interface StandinUnprepareResult {
  readonly error: string;
}

export interface PluginInfo {
  readonly type: string;
  readonly name: string;
  readonly endpoint: string;
  readonly supportedVersions: readonly string[];
}

export interface DiscoverOptions {
  /** The directory the kubelet's plugin watcher watches (plugins_registry). */
  readonly registryDir: string;
  /** Only this driver's socket (<driver>-reg.sock); default: the first *-reg.sock found. */
  readonly driverName?: string;
  /** How long to wait for the registration socket and the handshake. Default 10 s. */
  readonly timeoutMs?: number;
  /** Per-call deadline, as the kubelet's 45 s. */
  readonly callTimeoutMs?: number;
  /** DRA services this "kubelet" knows; default v1 then v1beta1. */
  readonly kubeletSupports?: readonly string[];
}

/** Polls check until it returns a value other than undefined, or throws after timeoutMs. */
export async function pollUntil<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function findRegistrationSocket(registryDir: string, driverName: string | undefined): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(registryDir);
  } catch {
    return undefined;
  }
  const wanted = driverName ? [`${driverName}-reg.sock`] : names.filter((n) => n.endsWith('-reg.sock')).sort();
  for (const name of wanted) {
    if (!names.includes(name)) continue;
    const path = join(registryDir, name);
    if ((await lstat(path)).isSocket()) return path;
  }
  return undefined;
}

function deadline(ms: number): grpc.CallOptions {
  return { deadline: Date.now() + ms };
}

function unary<Res>(call: (options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => unknown, ms: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    call(deadline(ms), (err, res) => {
      if (err) reject(err);
      else if (res === undefined) reject(new Error('empty response'));
      else resolve(res);
    });
  });
}

/** Messages of one NodeWatchResources stream, buffered until read. */
export class HealthWatch {
  private readonly buffered: DeviceHealth__Output[][] = [];
  private readonly waiters: { resolve: (v: DeviceHealth__Output[]) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;
  private closed = false;

  constructor(private readonly stream: grpc.ClientReadableStream<NodeWatchResourcesResponse__Output>) {
    stream.on('data', (msg: NodeWatchResourcesResponse__Output) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(msg.devices);
      else this.buffered.push(msg.devices);
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (this.closed && err.code === grpc.status.CANCELLED) return;
      this.fail(err);
    });
    stream.on('end', () => this.fail(new Error('health stream ended by the plugin')));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** The next complete device list the plugin sent. */
  next(timeoutMs = 10_000): Promise<DeviceHealth__Output[]> {
    const ready = this.buffered.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (v: DeviceHealth__Output[]): void => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e: Error): void => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no health update within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Reads updates until one satisfies predicate. */
  async until(predicate: (devices: DeviceHealth__Output[]) => boolean, timeoutMs = 10_000): Promise<DeviceHealth__Output[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const devices = await this.next(Math.max(1, end - Date.now()));
      if (predicate(devices)) return devices;
    }
  }

  /** Whether the stream ended or failed (e.g. the plugin stopped). */
  get ended(): boolean {
    return this.failure !== undefined;
  }

  close(): void {
    this.closed = true;
    this.stream.cancel();
  }
}

export class KubeletStandin {
  private readonly v1: V1Client | undefined;
  private readonly v1beta1: V1beta1Client | undefined;
  private readonly healthClient: DRAResourceHealthClient | undefined;

  private constructor(
    readonly info: PluginInfo,
    readonly version: 'v1' | 'v1beta1',
    private readonly callTimeoutMs: number,
  ) {
    const protos = loadProtos();
    const address = `unix://${info.endpoint}`;
    const creds = grpc.credentials.createInsecure();
    if (version === 'v1') this.v1 = new protos.k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin(address, creds);
    else this.v1beta1 = new protos.k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin(address, creds);
    if (info.supportedVersions.includes(SUPPORTED_SERVICE.healthV1alpha1)) {
      this.healthClient = new protos.v1alpha1.DRAResourceHealth(address, creds);
    }
  }

  /**
   * Waits for a registration socket, asks the plugin for its info, picks the
   * first DRA service both sides support (the plugin lists them in its order of
   * preference) and reports the outcome with NotifyRegistrationStatus, as the
   * kubelet does. A plugin that offers nothing usable is told so and rejected.
   */
  static async discover(options: DiscoverOptions): Promise<KubeletStandin> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const callTimeoutMs = options.callTimeoutMs ?? 45_000;
    const kubeletSupports = options.kubeletSupports ?? [SUPPORTED_SERVICE.draV1, SUPPORTED_SERVICE.draV1beta1];
    const socket = await pollUntil(() => findRegistrationSocket(options.registryDir, options.driverName), timeoutMs, `a registration socket in ${options.registryDir}`);
    const protos = loadProtos();
    const reg: RegistrationClient = new protos.pluginregistration.Registration(`unix://${socket}`, grpc.credentials.createInsecure());
    try {
      const raw = await unary<InfoOutput>((o, cb) => reg.GetInfo({}, o, cb), timeoutMs);
      const info: PluginInfo = { type: raw.type, name: raw.name, endpoint: raw.endpoint, supportedVersions: raw.supported_versions };
      let problem: string | undefined;
      const chosen = info.supportedVersions.find((v) => kubeletSupports.includes(v));
      if (info.type !== DRA_PLUGIN_TYPE) problem = `plugin type ${JSON.stringify(info.type)} is not ${DRA_PLUGIN_TYPE}`;
      else if (!info.endpoint.startsWith('/')) problem = `endpoint ${JSON.stringify(info.endpoint)} is not an absolute path`;
      else if (!chosen) problem = `none of the services [${info.supportedVersions.join(', ')}] is supported (want one of ${kubeletSupports.join(', ')})`;
      await unary<unknown>((o, cb) => reg.NotifyRegistrationStatus({ plugin_registered: problem === undefined, error: problem ?? '' }, o, cb), timeoutMs);
      if (problem !== undefined || !chosen) throw new Error(`registration of ${info.name} rejected: ${problem ?? 'no service'}`);
      const version = chosen === SUPPORTED_SERVICE.draV1 ? 'v1' : 'v1beta1';
      return new KubeletStandin(info, version, callTimeoutMs);
    } finally {
      reg.close();
    }
  }

  async prepare(claims: readonly StandinClaim[]): Promise<Map<string, StandinPrepareResult>> {
    const request = { claims: claims.map((c) => ({ ...c })) };
    const out = new Map<string, StandinPrepareResult>();
    const v1 = this.v1;
    const v1beta1 = this.v1beta1;
    if (v1) {
      const res = await unary<V1PrepareOutput>((o, cb) => v1.NodePrepareResources(request, o, cb), this.callTimeoutMs);
      for (const [uid, r] of Object.entries(res.claims)) {
        out.set(uid, {
          error: r.error,
          devices: r.devices.map((d) => ({
            requestNames: d.request_names,
            poolName: d.pool_name,
            deviceName: d.device_name,
            cdiDeviceIds: d.cdi_device_ids,
            ...(d.share_id !== undefined ? { shareId: d.share_id } : {}),
          })),
        });
      }
    } else if (v1beta1) {
      const res = await unary<V1beta1PrepareOutput>((o, cb) => v1beta1.NodePrepareResources(request, o, cb), this.callTimeoutMs);
      for (const [uid, r] of Object.entries(res.claims)) {
        out.set(uid, {
          error: r.error,
          devices: r.devices.map((d) => ({
            requestNames: d.request_names,
            poolName: d.pool_name,
            deviceName: d.device_name,
            cdiDeviceIds: d.cdi_device_ids,
          })),
        });
      }
    }
    return out;
  }

  async unprepare(claims: readonly StandinClaim[]): Promise<Map<string, StandinUnprepareResult>> {
    const request = { claims: claims.map((c) => ({ ...c })) };
    const v1 = this.v1;
    const v1beta1 = this.v1beta1;
    let res: UnprepareOutput;
    if (v1) res = await unary<UnprepareOutput>((o, cb) => v1.NodeUnprepareResources(request, o, cb), this.callTimeoutMs);
    else if (v1beta1) res = await unary<UnprepareOutput>((o, cb) => v1beta1.NodeUnprepareResources(request, o, cb), this.callTimeoutMs);
    else throw new Error('no DRA client');
    return new Map(Object.entries(res.claims).map(([uid, r]) => [uid, { error: r.error }]));
  }

  /** Whether the plugin advertised the health stream. */
  get healthSupported(): boolean {
    return this.healthClient !== undefined;
  }

  /** Subscribes to NodeWatchResources; the first message is the complete current list. */
  watchHealth(): HealthWatch {
    if (!this.healthClient) throw new Error(`plugin ${this.info.name} does not offer ${SUPPORTED_SERVICE.healthV1alpha1}`);
    return new HealthWatch(this.healthClient.NodeWatchResources({}));
  }

  close(): void {
    this.v1?.close();
    this.v1beta1?.close();
    this.healthClient?.close();
  }
}
