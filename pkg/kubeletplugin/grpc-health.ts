// The standard grpc.health.v1 service, so generic probes (grpc_health_probe,
// a kubelet gRPC liveness probe on a TCP port) can check the plugin's servers.
import * as grpc from '@grpc/grpc-js';
import type { HealthHandlers } from '../generated/grpc/health/v1/Health.js';
import type { HealthCheckRequest__Output } from '../generated/grpc/health/v1/HealthCheckRequest.js';
import type { HealthCheckResponse } from '../generated/grpc/health/v1/HealthCheckResponse.js';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

export class GrpcHealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<HealthCheckRequest__Output, HealthCheckResponse> }>();

  /** services: the names clients may ask about; "" (the whole server) is always known. */
  constructor(services: readonly string[], initial: ServingStatus = 'NOT_SERVING') {
    for (const s of ['', ...services]) this.statuses.set(s, initial);
  }

  /** Sets one service's status, or every known service's when service is undefined. */
  setStatus(status: ServingStatus, service?: string): void {
    const targets = service === undefined ? [...this.statuses.keys()] : [service];
    for (const s of targets) this.statuses.set(s, status);
    for (const w of this.watchers) {
      if (targets.includes(w.service) && !w.call.writableEnded) w.call.write({ status });
    }
  }

  handlers(): HealthHandlers {
    return {
      Check: (call, callback) => {
        const status = this.statuses.get(call.request.service);
        if (status === undefined) {
          callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(call.request.service)}` });
          return;
        }
        callback(null, { status });
      },
      Watch: (call) => {
        const watcher = { service: call.request.service, call };
        this.watchers.add(watcher);
        const drop = (): void => {
          this.watchers.delete(watcher);
        };
        call.on('cancelled', drop);
        call.on('close', drop);
        call.write({ status: this.statuses.get(watcher.service) ?? 'SERVICE_UNKNOWN' });
      },
    };
  }

  /** Ends Watch streams so that a graceful shutdown can complete. */
  closeAll(): void {
    for (const w of this.watchers) if (!w.call.writableEnded) w.call.end();
    this.watchers.clear();
  }
}
