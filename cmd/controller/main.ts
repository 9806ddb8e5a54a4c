#!/usr/bin/env node
// Entry point of the Cascade controller: flags and environment to a typed config, then run.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import { DEFAULT_DRIVER_NAME } from '../../pkg/api/resource.js';
import { runController, type ControllerConfig } from '../../pkg/controller/run.js';
import { errorMessage, rootLogger } from '../../pkg/log/logger.js';

const program = new Command()
  .name('cascade-controller')
  .description('Allocates ResourceClaims for the Cascade GPU DRA driver')
  .option('--kubeconfig <path>', 'kubeconfig (default: in-cluster service account, then $KUBECONFIG)', process.env.KUBECONFIG)
  .option('--driver-name <name>', 'DRA driver name', process.env.CASCADE_DRIVER_NAME ?? DEFAULT_DRIVER_NAME)
  .option('--namespace <ns>', 'namespace for the leader Lease and the webhook Secret', process.env.POD_NAMESPACE ?? 'cascade-system')
  .option('--identity <id>', 'this replica in leader election and Events', process.env.POD_NAME ?? hostname())
  .addOption(new Option('--policy <policy>', 'placement policy').choices(['cascade', 'first-fit']).default('cascade'))
  .option('--workers <n>', 'concurrent syncs (decisions are made one at a time; the workers overlap their API writes)', '32')
  .option('--http-port <port>', '/metrics, /healthz, /readyz port (0 = any)', '8080')
  .option('--http-host <host>', 'bind address for the HTTP port', '0.0.0.0')
  .option('--no-leader-elect', 'run without leader election (one replica only)')
  .option('--lease-name <name>', 'leader election Lease', 'cascade-controller')
  .option('--lease-duration <seconds>', 'leader election lease duration', '15')
  .option('--webhook-port <port>', 'HTTPS port of the scheduling-gate webhook (-1 disables it)', '8443')
  .option('--webhook-host <host>', 'bind address of the webhook', '0.0.0.0')
  .option('--webhook-service <name>', 'Service in front of the webhook', 'cascade-webhook')
  .option('--webhook-secret <name>', 'Secret holding the webhook certificate', 'cascade-webhook-tls')
  .option('--webhook-config <name>', 'MutatingWebhookConfiguration to publish the CA bundle into', 'cascade-scheduling-gate')
  .option('--webhook-ip <ip...>', 'extra IP SANs for the webhook certificate (local clusters)', [])
  .option('--webhook-client-ca <file>', "PEM CA of the API server's webhook client certificate; when set, the webhook refuses callers without one")
  .option('--no-preemption', 'never evict lower-priority pods for a higher-priority pod whose claims fit nowhere')
  .option('--no-failover-reserves', 'ignore FailoverReserve objects (and need no FailoverReserve CRD)')
  .option('--defrag-interval <seconds>', 'carry out the defragmentation plan, one step at most this often (0: off; pods opt in with gpu.cascade.dev/movable)', '0')
  .option(
    '--co-allocate-drivers <names>',
    'comma-separated other DRA drivers whose devices Cascade allocates too, so one claim can hold GPUs with their CPUs or NICs (e.g. dra.cpu,dra.net)',
    process.env.CASCADE_CO_ALLOCATE_DRIVERS ?? '',
  );

program.parse();
const o = program.opts<{
  kubeconfig?: string;
  driverName: string;
  namespace: string;
  identity: string;
  policy: 'cascade' | 'first-fit';
  workers: string;
  httpPort: string;
  httpHost: string;
  leaderElect: boolean;
  leaseName: string;
  leaseDuration: string;
  webhookPort: string;
  webhookHost: string;
  webhookService: string;
  webhookSecret: string;
  webhookConfig: string;
  webhookIp: string[];
  webhookClientCa?: string;
  coAllocateDrivers: string;
  preemption: boolean;
  failoverReserves: boolean;
  defragInterval: string;
}>();

// A driver name is a DNS subdomain (the API validates ResourceSlice.spec.driver the same way).
const DNS_SUBDOMAIN = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
function coAllocated(list: string): string[] {
  const names = list
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  for (const n of names) {
    if (!DNS_SUBDOMAIN.test(n)) {
      console.error(`cascade-controller: --co-allocate-drivers: ${JSON.stringify(n)} is not a DRA driver name (a DNS subdomain of at most 63 characters)`);
      process.exit(2);
    }
  }
  return [...new Set(names)];
}

const int = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) {
    console.error(`cascade-controller: --${name} must be an integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};

function readClientCa(file: string): string {
  try {
    const pem = readFileSync(file, 'utf8');
    if (!pem.includes('BEGIN CERTIFICATE')) throw new Error('no PEM certificate in it');
    return pem;
  } catch (err) {
    console.error(`cascade-controller: --webhook-client-ca ${file}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  }
}

const webhookPort = int('webhook-port', o.webhookPort);
const config: ControllerConfig = {
  kubeconfig: o.kubeconfig,
  driver: o.driverName,
  namespace: o.namespace,
  identity: o.identity,
  policy: o.policy,
  workers: int('workers', o.workers),
  httpPort: int('http-port', o.httpPort),
  httpHost: o.httpHost,
  leaderElection: o.leaderElect,
  leaseName: o.leaseName,
  leaseDurationSeconds: int('lease-duration', o.leaseDuration),
  coAllocatedDrivers: coAllocated(o.coAllocateDrivers),
  preemption: o.preemption,
  failoverReserves: o.failoverReserves,
  defragIntervalMs: int('defrag-interval', o.defragInterval) * 1000,
  webhook:
    webhookPort < 0
      ? undefined
      : {
          port: webhookPort,
          host: o.webhookHost,
          serviceName: o.webhookService,
          secretName: o.webhookSecret,
          configName: o.webhookConfig,
          extraIpAddresses: o.webhookIp,
          ...(o.webhookClientCa ? { clientCaPem: readClientCa(o.webhookClientCa) } : {}),
        },
};

const log = rootLogger().child({ component: 'controller' });
try {
  const running = await runController(config, () => {
    log.error('lost leadership; exiting so the replica restarts clean');
    process.exit(1);
  });
  log.info('cascade controller running', { httpPort: running.httpPort, webhookPort: running.webhookPort, driver: config.driver, coAllocatedDrivers: config.coAllocatedDrivers });
  const shutdown = (): void => {
    log.info('shutting down');
    void running.stop().finally(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
} catch (err) {
  log.error('controller failed to start', { error: errorMessage(err) });
  process.exit(1);
}
