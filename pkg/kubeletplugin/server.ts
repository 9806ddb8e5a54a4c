// The node plugin's kubelet-facing side: the DRA service (v1 and v1beta1) and
// the health stream on <plugins>/<driver>/dra.sock, the registration service on
// <plugins_registry>/<driver>-reg.sock, and grpc.health.v1 on both.
import * as grpc from '@grpc/grpc-js';
import type { RegistrationHandlers } from '../generated/pluginregistration/Registration.js';
import { errorMessage, logger, type Logger } from '../log/logger.js';
import { PRIVATE_DIR_MODE, ensureDir } from './atomic-file.js';
import { DraService } from './dra-service.js';
import { GrpcHealthService } from './grpc-health.js';
import { routeGrpcLogs } from './grpc-logging.js';
import { type DeviceHealthSource, HealthStreamService } from './health.js';
import type { ClaimPreparer } from './preparer.js';
import { DRA_PLUGIN_TYPE, GRPC_SERVICE, SUPPORTED_SERVICE, loadProtos } from './protos.js';
import type { SerialQueue } from './serialize.js';
import { type PluginPaths, bindUnixSocket, pluginPaths, removeOwnSocket, shutdownServer } from './sockets.js';

export type DraApiVersion = 'v1' | 'v1beta1';

export interface KubeletPluginOptions {
  readonly driverName: string;
  readonly preparer: ClaimPreparer;
  /** Default /var/lib/kubelet/plugins_registry. */
  readonly registryDir?: string;
  /** Default /var/lib/kubelet/plugins. */
  readonly pluginsDir?: string;
  /** Serves v1alpha1.DRAResourceHealth (and advertises it) when given. */
  readonly health?: DeviceHealthSource;
  /** DRA API versions to serve, in order of preference. Default ["v1", "v1beta1"]. */
  readonly draVersions?: readonly DraApiVersion[];
  /** Shared with start-up recovery so it never overlaps a prepare. */
  readonly queue?: SerialQueue;
  /** What usually makes a prepare slow on this driver, for the kubelet's answer. */
  readonly slowReason?: string;
  /** How long stop() lets running calls finish. Default 5000 ms. */
  readonly shutdownGraceMs?: number;
  /** Called with each NotifyRegistrationStatus from the kubelet. */
  readonly onRegistrationStatus?: (status: RegistrationState) => void;
}

export interface RegistrationState {
  readonly registered: boolean;
  readonly error: string;
}

const DRA_SERVICE_NAME: Record<DraApiVersion, string> = {
  v1: SUPPORTED_SERVICE.draV1,
  v1beta1: SUPPORTED_SERVICE.draV1beta1,
};

export class KubeletPlugin {
  readonly paths: PluginPaths;
  readonly dra: DraService;
  private readonly log: Logger;
  private readonly versions: readonly DraApiVersion[];
  private readonly healthStream: HealthStreamService | undefined;
  private readonly draHealth: GrpcHealthService;
  private readonly regHealth: GrpcHealthService;
  private draServer: grpc.Server | undefined;
  private regServer: grpc.Server | undefined;
  private draInode = 0;
  private regInode = 0;
  private lastStatus: RegistrationState | undefined;

  constructor(private readonly options: KubeletPluginOptions) {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(options.driverName)) {
      throw new Error(`driver name ${JSON.stringify(options.driverName)} is not a DNS subdomain`);
    }
    this.paths = pluginPaths(options.driverName, options.registryDir, options.pluginsDir);
    this.log = logger('kubeletplugin', { driver: options.driverName });
    this.versions = options.draVersions ?? ['v1', 'v1beta1'];
    if (this.versions.length === 0) throw new Error('at least one DRA API version must be served');
    this.dra = new DraService({ preparer: options.preparer, log: this.log, ...(options.queue ? { queue: options.queue } : {}), ...(options.slowReason ? { slowReason: options.slowReason } : {}) });
    this.healthStream = options.health ? new HealthStreamService(options.health, this.log) : undefined;
    const draServices: string[] = this.versions.map((v) => (v === 'v1' ? GRPC_SERVICE.draV1 : GRPC_SERVICE.draV1beta1));
    if (this.healthStream) draServices.push(GRPC_SERVICE.healthV1alpha1);
    this.draHealth = new GrpcHealthService(draServices);
    this.regHealth = new GrpcHealthService([GRPC_SERVICE.registration]);
  }

  /** supported_versions as announced in GetInfo. */
  get supportedServices(): readonly string[] {
    const out = this.versions.map((v) => DRA_SERVICE_NAME[v]);
    if (this.healthStream) out.push(SUPPORTED_SERVICE.healthV1alpha1);
    return out;
  }

  /** The kubelet's last NotifyRegistrationStatus, if any. */
  get registration(): RegistrationState | undefined {
    return this.lastStatus;
  }

  /**
   * Serves the DRA socket first and the registration socket last: the kubelet
   * dials the endpoint as soon as it sees the registration socket.
   */
  async start(): Promise<void> {
    if (this.draServer) throw new Error('kubelet plugin already started');
    routeGrpcLogs();
    const protos = loadProtos();
    await ensureDir(this.paths.pluginDir, PRIVATE_DIR_MODE, true);
    await ensureDir(this.registrationDir(), PRIVATE_DIR_MODE, false);

    const dra = new grpc.Server();
    if (this.versions.includes('v1')) dra.addService(protos.k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin.service, this.dra.v1Handlers());
    if (this.versions.includes('v1beta1')) {
      dra.addService(protos.k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin.service, this.dra.v1beta1Handlers());
    }
    if (this.healthStream) dra.addService(protos.v1alpha1.DRAResourceHealth.service, this.healthStream.handlers());
    dra.addService(protos.grpc.health.v1.Health.service, this.draHealth.handlers());
    this.draServer = dra;
    this.draInode = await bindUnixSocket(dra, this.paths.draSocket);
    this.draHealth.setStatus('SERVING');

    const reg = new grpc.Server();
    reg.addService(protos.pluginregistration.Registration.service, this.registrationHandlers());
    reg.addService(protos.grpc.health.v1.Health.service, this.regHealth.handlers());
    this.regServer = reg;
    try {
      this.regInode = await bindUnixSocket(reg, this.paths.registrationSocket);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.regHealth.setStatus('SERVING');
    this.log.info('kubelet plugin serving', {
      registrationSocket: this.paths.registrationSocket,
      draSocket: this.paths.draSocket,
      services: this.supportedServices,
    });
  }

  /**
   * Stops both servers: the registration socket goes first so the kubelet
   * stops using us, running calls get the grace period, long-lived streams are
   * ended, and our socket files are removed.
   */
  async stop(): Promise<void> {
    const grace = this.options.shutdownGraceMs ?? 5000;
    this.regHealth.setStatus('NOT_SERVING');
    this.draHealth.setStatus('NOT_SERVING');
    this.regHealth.closeAll();
    this.draHealth.closeAll();
    this.healthStream?.closeAll();
    const reg = this.regServer;
    const dra = this.draServer;
    this.regServer = undefined;
    this.draServer = undefined;
    if (reg) {
      await shutdownServer(reg, grace);
      await removeOwnSocket(this.paths.registrationSocket, this.regInode);
    }
    if (dra) {
      await shutdownServer(dra, grace);
      await removeOwnSocket(this.paths.draSocket, this.draInode);
    }
    if (reg || dra) this.log.info('kubelet plugin stopped');
  }

  private registrationDir(): string {
    const sock = this.paths.registrationSocket;
    return sock.slice(0, sock.lastIndexOf('/')) || '/';
  }

  private registrationHandlers(): RegistrationHandlers {
    return {
      GetInfo: (_call, callback) => {
        callback(null, {
          type: DRA_PLUGIN_TYPE,
          name: this.options.driverName,
          endpoint: this.paths.draSocket,
          supported_versions: [...this.supportedServices],
        });
      },
      NotifyRegistrationStatus: (call, callback) => {
        const status: RegistrationState = { registered: call.request.plugin_registered, error: call.request.error };
        this.lastStatus = status;
        if (status.registered) this.log.info('registered with the kubelet');
        else this.log.error('the kubelet rejected the plugin registration', { error: status.error });
        try {
          this.options.onRegistrationStatus?.(status);
        } catch (err) {
          this.log.warn('registration status listener failed', { error: errorMessage(err) });
        }
        callback(null, {});
      },
    };
  }
}
