// Device health as the kubelet's DRAResourceHealth stream reports it: the
// source interface the health poller implements, a simple in-memory board that
// implements it, and the NodeWatchResources handler.
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { DRAResourceHealthHandlers } from '../generated/v1alpha1/DRAResourceHealth.js';
import type { DeviceHealth } from '../generated/v1alpha1/DeviceHealth.js';
import type { NodeWatchResourcesRequest__Output } from '../generated/v1alpha1/NodeWatchResourcesRequest.js';
import type { NodeWatchResourcesResponse } from '../generated/v1alpha1/NodeWatchResourcesResponse.js';
import { errorMessage, type Logger } from '../log/logger.js';

export type DeviceHealthState = 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN';

export interface DeviceHealthEntry {
  readonly poolName: string;
  readonly deviceName: string;
  readonly health: DeviceHealthState;
  /** Unix seconds of the check that produced this state. */
  readonly lastUpdatedTime: number;
  /** Why, e.g. "GPU is lost" or "uncorrectable ECC errors: 3"; at most 1024 characters reach the kubelet. */
  readonly message?: string;
  /** How long the kubelet should trust this entry; 0 = the kubelet's default. */
  readonly healthCheckTimeoutSeconds?: number;
}

/**
 * Where the stream gets device health: a snapshot of every device of the
 * driver, and a "change" event whenever it may differ. Node's EventEmitter
 * satisfies the event half.
 */
export interface DeviceHealthSource {
  snapshot(): readonly DeviceHealthEntry[];
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

function key(poolName: string, deviceName: string): string {
  return `${poolName}/${deviceName}`;
}

/**
 * An in-memory DeviceHealthSource: the health poller sets entries, streams see
 * the whole list on every change. Setting an unchanged state emits nothing.
 */
export class DeviceHealthBoard extends EventEmitter implements DeviceHealthSource {
  private readonly entries = new Map<string, DeviceHealthEntry>();

  snapshot(): readonly DeviceHealthEntry[] {
    return [...this.entries.values()].sort((a, b) => key(a.poolName, a.deviceName).localeCompare(key(b.poolName, b.deviceName)));
  }

  /** Sets (or replaces) one device's entry; emits "change" when health or message changed. */
  set(entry: DeviceHealthEntry): void {
    const k = key(entry.poolName, entry.deviceName);
    const old = this.entries.get(k);
    this.entries.set(k, entry);
    if (!old || old.health !== entry.health || old.message !== entry.message) this.emit('change');
  }

  /** Replaces the whole list (devices not listed are dropped); emits "change" once. */
  replaceAll(entries: readonly DeviceHealthEntry[]): void {
    this.entries.clear();
    for (const e of entries) this.entries.set(key(e.poolName, e.deviceName), e);
    this.emit('change');
  }

  remove(poolName: string, deviceName: string): void {
    if (this.entries.delete(key(poolName, deviceName))) this.emit('change');
  }
}

const MAX_MESSAGE = 1024;

export function toWireHealth(entry: DeviceHealthEntry): DeviceHealth {
  const message = entry.message ?? '';
  return {
    device: { pool_name: entry.poolName, device_name: entry.deviceName },
    health: entry.health,
    last_updated_time: entry.lastUpdatedTime,
    health_check_timeout_seconds: entry.healthCheckTimeoutSeconds ?? 0,
    message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message,
  };
}

export function healthResponse(source: DeviceHealthSource): NodeWatchResourcesResponse {
  return { devices: source.snapshot().map(toWireHealth) };
}

/**
 * NodeWatchResources: the complete list on subscribe and after every change,
 * until the kubelet cancels or the server stops (closeAll).
 */
export class HealthStreamService {
  private readonly calls = new Set<grpc.ServerWritableStream<NodeWatchResourcesRequest__Output, NodeWatchResourcesResponse>>();

  constructor(
    private readonly source: DeviceHealthSource,
    private readonly log: Logger,
  ) {}

  handlers(): DRAResourceHealthHandlers {
    return {
      NodeWatchResources: (call) => {
        this.calls.add(call);
        const send = (): void => {
          if (call.cancelled || call.writableEnded) return;
          try {
            call.write(healthResponse(this.source));
          } catch (err) {
            this.log.warn('cannot send device health', { error: errorMessage(err) });
          }
        };
        const stop = (): void => {
          this.source.off('change', send);
          this.calls.delete(call);
        };
        this.source.on('change', send);
        call.on('cancelled', stop);
        call.on('close', stop);
        call.on('error', stop);
        call.on('finish', stop);
        this.log.debug('health stream opened');
        send();
      },
    };
  }

  /** Open streams, for tests and metrics. */
  get openStreams(): number {
    return this.calls.size;
  }

  /** Ends every open stream so that a graceful server shutdown can complete. */
  closeAll(): void {
    for (const call of this.calls) {
      if (!call.writableEnded) call.end();
    }
    this.calls.clear();
  }
}
