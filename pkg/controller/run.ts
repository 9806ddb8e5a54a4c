// Runs the controller process: informers on every replica, the webhook on every
// replica, allocation on the leader only, and /metrics, /healthz, /readyz.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ResourceClaimSpec } from '../api/resource.js';
import type { PolicyName } from '../allocator/types.js';
import { KubeClient, isNotFound } from '../k8s/client.js';
import { Kube } from '../k8s/resources.js';
import { logger as makeLogger, errorMessage } from '../log/logger.js';
import { Controller } from './controller.js';
import { LeaderElector } from './leader.js';
import { ControllerMetrics } from './metrics.js';
import { ensureServingCert, startWebhookServer } from './webhook.js';

export interface ControllerConfig {
  readonly kubeconfig?: string;
  readonly driver: string;
  readonly namespace: string;
  readonly identity: string;
  readonly policy: PolicyName;
  readonly workers: number;
  /** /metrics, /healthz, /readyz; 0 picks a free port. */
  readonly httpPort: number;
  readonly httpHost: string;
  readonly leaderElection: boolean;
  readonly leaseName: string;
  readonly leaseDurationSeconds: number;
  /** Other DRA drivers whose devices Cascade allocates too (their claims are gated and allocated here). */
  readonly coAllocatedDrivers?: readonly string[];
  /** Evict lower-priority pods for higher-priority ones whose claims fit nowhere (default true). */
  readonly preemption?: boolean;
  /** Keep the FailoverReserve objects' headroom (default true; the CRD comes with the manifests). */
  readonly failoverReserves?: boolean;
  /** Carry out the defragmentation plan, one step at most this often (0: off). */
  readonly defragIntervalMs?: number;
  readonly webhook?: {
    readonly port: number;
    readonly host: string;
    readonly serviceName: string;
    readonly secretName: string;
    readonly configName: string;
    readonly extraIpAddresses: readonly string[];
    /** PEM bundle of the CA that signs the API server's webhook client certificate; callers without one are refused. */
    readonly clientCaPem?: string;
  };
}

export interface RunningController {
  readonly controller: Controller;
  readonly httpPort: number;
  readonly webhookPort: number | undefined;
  isLeader(): boolean;
  stop(): Promise<void>;
}

export async function runController(cfg: ControllerConfig, onLostLeadership?: () => void): Promise<RunningController> {
  const log = makeLogger('controller', { driver: cfg.driver, identity: cfg.identity });
  const kube = new Kube(KubeClient.fromDefault(cfg.kubeconfig));
  const metrics = new ControllerMetrics(true);
  const controller = new Controller({
    kube,
    driver: cfg.driver,
    identity: cfg.identity,
    policy: cfg.policy,
    workers: cfg.workers,
    logger: log,
    metrics,
    ...(cfg.webhook ? { gateConfigName: cfg.webhook.configName } : {}),
    ...(cfg.coAllocatedDrivers ? { coAllocatedDrivers: cfg.coAllocatedDrivers } : {}),
    ...(cfg.preemption === false ? { preemption: false } : {}),
    failoverReserves: cfg.failoverReserves ?? true,
    ...(cfg.defragIntervalMs ? { defragIntervalMs: cfg.defragIntervalMs } : {}),
  });
  let leader = !cfg.leaderElection;
  let webhookReady = cfg.webhook === undefined;

  const server = http.createServer((req, res) => {
    void (async () => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      } else if (req.url === '/healthz' || req.url === '/livez') {
        res.writeHead(200).end('ok');
      } else if (req.url === '/readyz') {
        const ready = controller.synced && webhookReady;
        res.writeHead(ready ? 200 : 503).end(ready ? 'ok' : 'informers or webhook not ready');
      } else {
        res.writeHead(404).end('not found');
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(cfg.httpPort, cfg.httpHost, () => resolve()));
  const httpPort = (server.address() as AddressInfo).port;

  await controller.startInformers();

  let webhookServer: Awaited<ReturnType<typeof startWebhookServer>> | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  if (cfg.webhook) {
    const wh = cfg.webhook;
    const certOptions = {
      namespace: cfg.namespace,
      secretName: wh.secretName,
      serviceName: wh.serviceName,
      webhookConfigName: wh.configName,
      extraIpAddresses: wh.extraIpAddresses,
      logger: log,
    };
    const cert = await ensureServingCert(kube, certOptions);
    const lookup = async (kind: 'template' | 'claim', ns: string, name: string): Promise<ResourceClaimSpec | undefined> => {
      // The caches answer almost always; a GET covers objects created a moment ago.
      const cached = kind === 'claim' ? controller.claims.get(`${ns}/${name}`)?.spec : controller.templates.get(`${ns}/${name}`)?.spec.spec;
      if (cached) return cached;
      try {
        return kind === 'template' ? (await kube.resourceClaimTemplates.get(name, ns)).spec.spec : (await kube.resourceClaims.get(name, ns)).spec;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    };
    webhookServer = await startWebhookServer({
      cert,
      port: wh.port,
      host: wh.host,
      ...(wh.clientCaPem ? { clientCaPem: wh.clientCaPem } : {}),
      drivers: controller.drivers,
      logger: log,
      classes: () => new Map(controller.classes.list().map((c) => [c.metadata.name ?? '', c])),
      templateSpec: (ns, name) => lookup('template', ns, name),
      claimSpec: (ns, name) => lookup('claim', ns, name),
    });
    webhookReady = true;
    // Renew (30 days before expiry, in the Secret all replicas share) and serve the new certificate without a restart.
    renewTimer = setInterval(() => {
      ensureServingCert(kube, certOptions)
        .then((c) => webhookServer?.setSecureContext({ cert: c.certPem, key: c.keyPem }))
        .catch((err: unknown) => log.warn('could not renew the webhook certificate', { error: errorMessage(err) }));
    }, 6 * 3600_000);
    renewTimer.unref();
  }

  let elector: LeaderElector | undefined;
  // The Lease has a connection pool of its own: renewals never wait behind bulk writes.
  const leaseKube = cfg.leaderElection ? new Kube(KubeClient.fromDefault(cfg.kubeconfig)) : undefined;
  if (cfg.leaderElection && leaseKube) {
    elector = new LeaderElector(leaseKube, {
      namespace: cfg.namespace,
      name: cfg.leaseName,
      identity: cfg.identity,
      leaseDurationSeconds: cfg.leaseDurationSeconds,
      logger: log,
      onStartedLeading: () => {
        leader = true;
        metrics.isLeader.set(1);
        controller.startProcessing().catch((err: unknown) => log.error('could not start processing', { error: errorMessage(err) }));
      },
      onStoppedLeading: () => {
        leader = false;
        metrics.isLeader.set(0);
        // Stop acting at once; the process restarts to come back with clean state.
        void controller.stop().finally(() => onLostLeadership?.());
      },
    });
    elector.start();
  } else {
    metrics.isLeader.set(1);
    await controller.startProcessing();
  }

  return {
    controller,
    httpPort,
    webhookPort: webhookServer?.port,
    isLeader: () => leader,
    stop: async () => {
      if (renewTimer) clearInterval(renewTimer);
      // Stop acting first, then hand the Lease over, so two leaders never overlap.
      await controller.stop();
      await elector?.stop();
      leaseKube?.close();
      await new Promise<void>((r) => server.close(() => r()));
      if (webhookServer) await new Promise<void>((r) => webhookServer?.close(() => r()));
      kube.close();
    },
  };
}
