// Assembles the node plugin: checkpoint, start-up recovery, the inventory and
// publish loop, the kubelet-facing gRPC servers, the claim status writer and
// /healthz and /readyz; stops it gracefully on SIGTERM.
import { driverFileEdits } from './driver-files.js';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { KubeClient } from '../k8s/client.js';
import { Kube } from '../k8s/resources.js';
import { CdiSpecWriter } from '../kubeletplugin/cdi-writer.js';
import { CheckpointStore } from './checkpoint.js';
import { DeviceHealthBoard } from '../kubeletplugin/health.js';
import { SerialQueue } from '../kubeletplugin/serialize.js';
import { KubeletPlugin } from '../kubeletplugin/server.js';
import { errorMessage, type Logger, logger } from '../log/logger.js';
import type { GpuBackend } from '../nvidia/backend.js';
import { NvidiaSmiBackend } from '../nvidia/smi-backend.js';
import { SlicePublisher } from '../publish/publisher.js';
import { type ClaimSource, type ClaimStatusSink, KubeClaimSource, KubeClaimStatus } from './claims.js';
import type { NodePluginConfig } from './config.js';
import { InventoryLoop } from './inventory-loop.js';
import { NodePreparer } from './preparer.js';
import { MpsControl } from './mps.js';
import { PublishedInventory } from './published-inventory.js';
import { Passthrough, passthroughEnabled } from './passthrough.js';
import { PciSysfs } from './vfio.js';

export const CHECKPOINT_FILE = 'checkpoint.json';

/** Replacements for the real I/O, for tests and the benchmark. */
export interface NodePluginDeps {
  readonly backend?: GpuBackend;
  /** null: run without an API server (no publishing, no status writes); claims must then be given. */
  readonly kube?: Kube | null;
  readonly claims?: ClaimSource;
  readonly readBootId?: () => Promise<string>;
}

export interface RunningNodePlugin {
  readonly plugin: KubeletPlugin;
  readonly preparer: NodePreparer;
  readonly inventory: InventoryLoop;
  readonly board: DeviceHealthBoard;
  /** The health server's port, when one was asked for. */
  readonly healthPort: number | undefined;
  /** Waits for pending claim status writes (tests). */
  statusIdle(): Promise<void>;
  /** Stops serving; slices and checkpoint stay as they are. */
  stop(): Promise<void>;
}

export async function startNodePlugin(config: NodePluginConfig, deps: NodePluginDeps = {}): Promise<RunningNodePlugin> {
  const log = logger('node-plugin', { node: config.nodeName, driver: config.driverName });
  const backend = deps.backend ?? new NvidiaSmiBackend({ path: config.nvidiaSmiPath, timeoutMs: config.nvidiaSmiTimeoutMs, sysfsRoot: config.sysfsRoot });
  const passthrough = passthroughEnabled(config.passthrough) ? new Passthrough(new PciSysfs({ root: config.sysfsRoot, devRoot: config.devRoot }), config.passthrough) : undefined;
  const kube = deps.kube === null ? undefined : (deps.kube ?? new Kube(KubeClient.fromDefault(config.kubeconfig)));
  const ownsKube = kube !== undefined && deps.kube === undefined;
  const claims = deps.claims ?? (kube ? new KubeClaimSource(kube) : undefined);
  if (!claims) throw new Error('the node plugin needs an API server or a claim source');
  const status: ClaimStatusSink | undefined = kube ? new KubeClaimStatus(kube, config.driverName, config.nodeName, log) : undefined;
  const queue = new SerialQueue();
  const board = new DeviceHealthBoard();
  const checkpoint = new CheckpointStore({ path: path.join(config.stateDir, CHECKPOINT_FILE), onCorrupt: config.onCorruptCheckpoint, ...(deps.readBootId ? { readBootId: deps.readBootId } : {}) });

  // Prepare validates against what the loop last published; both share this object.
  const published = new PublishedInventory();
  const preparer = new NodePreparer({
    driver: config.driverName,
    nodeName: config.nodeName,
    backend,
    claims,
    status,
    cdi: new CdiSpecWriter(config.driverName, config.cdiRoot),
    checkpoint,
    inventory: published,
    migMinorsPath: config.migMinorsPath,
    dynamicMig: config.dynamicMig,
    driverEdits: driverFileEdits(config.driverRoot, config.hostDriverRoot),
    mps: new MpsControl({ controlPath: config.mpsControlPath, root: config.mpsRoot, log }),
    ...(passthrough ? { passthrough, metadataDir: path.join(config.stateDir, 'dra-device-metadata') } : {}),
    log,
  });
  await preparer.load();
  // Start-up recovery comes before the first publication and before the kubelet
  // can reach us. If nvidia-smi fails now, prepare refuses with the reason and
  // the loop retries recovery before each pass until it succeeds.
  await recoverAtStartup(backend, preparer, queue, log);
  const inventory = new InventoryLoop({
    driver: config.driverName,
    nodeName: config.nodeName,
    backend,
    published,
    ownedInstances: (discovery) => preparer.ownedInstances(discovery),
    pendingRecovery: {
      owed: () => !preparer.isRecovered,
      run: async (discovery) => ((await preparer.recover(discovery))?.destroyed.length ?? 0) > 0,
    },
    queue,
    publisher: kube ? new SlicePublisher(kube, { driver: config.driverName, nodeName: config.nodeName, logger: log }) : undefined,
    board,
    pollIntervalMs: config.pollIntervalMs,
    healthIntervalMs: config.healthIntervalMs,
    dynamicMig: config.dynamicMig,
    sharing: config.sharing,
    ...(passthrough
      ? {
          passthrough: async (discovery) => {
            const gpus = await passthrough.scan(discovery, preparer.stranded);
            // A stranded GPU nvidia-smi lists again is healthy: forget it.
            const back = gpus.filter((g) => g.stranded !== undefined && discovery.gpus.some((d) => d.pciBusId === g.address)).map((g) => g.address);
            await preparer.clearStranded(back);
            return gpus.map((g) => (back.includes(g.address) ? { ...g, stranded: undefined } : g));
          },
        }
      : {}),
    log,
  });

  // The first publication comes before the kubelet can reach us; if nvidia-smi
  // fails now, the loop keeps trying.
  await inventory.initialHealth();
  await inventory.refresh();
  inventory.start();

  const plugin = new KubeletPlugin({
    driverName: config.driverName,
    preparer,
    registryDir: config.registryDir,
    pluginsDir: config.pluginsDir,
    health: board,
    queue,
    slowReason: 'nvidia-smi is slow',
  });
  let server: http.Server | undefined;
  try {
    await plugin.start();
    if (config.healthPort !== undefined) {
      server = await startHealthServer(config.healthHost, config.healthPort, () => {
        if (!preparer.isRecovered) return 'start-up recovery has not completed';
        if (!inventory.inventory) return 'the GPUs have not been discovered yet';
        if (kube && !inventory.lastPublished) return 'the ResourceSlices have not been published yet';
        return undefined;
      });
    }
  } catch (err) {
    await inventory.stop();
    await plugin.stop();
    throw err;
  }
  const healthPort = server ? (server.address() as AddressInfo).port : undefined;
  log.info('node plugin running', { healthPort, stateDir: config.stateDir, cdiRoot: config.cdiRoot });

  let stopping: Promise<void> | undefined;
  return {
    plugin,
    preparer,
    inventory,
    board,
    healthPort,
    statusIdle: async () => await status?.idle(),
    stop: () =>
      (stopping ??= (async () => {
        log.info('node plugin stopping; ResourceSlices and checkpoint stay');
        await plugin.stop();
        await inventory.stop();
        await queue.idle();
        await Promise.race([status?.idle(), new Promise((r) => setTimeout(r, 5000).unref())]);
        if (server) {
          const s = server;
          await new Promise<void>((resolve) => s.close(() => resolve()));
        }
        if (ownsKube) kube?.close();
      })()),
  };
}

/** Discovers once and rolls back what a crash left half done; logs (never throws) when nvidia-smi fails. */
async function recoverAtStartup(backend: GpuBackend, preparer: NodePreparer, queue: SerialQueue, log: Logger): Promise<void> {
  try {
    await queue.run(async () => {
      await preparer.recover(await backend.discover());
    });
  } catch (err) {
    log.error('start-up recovery could not discover the GPUs; prepare refuses until it has run, and it is retried with every discovery', { error: errorMessage(err) });
  }
}

function startHealthServer(host: string, port: number, notReady: () => string | undefined): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz' || req.url === '/livez') {
      res.writeHead(200).end('ok');
    } else if (req.url === '/readyz') {
      const why = notReady();
      res.writeHead(why ? 503 : 200).end(why ?? 'ok');
    } else {
      res.writeHead(404).end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** Runs until SIGTERM or SIGINT, then stops gracefully (what the DaemonSet runs). */
export async function runNodePlugin(config: NodePluginConfig): Promise<void> {
  const running = await startNodePlugin(config);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger('node-plugin').info('received signal; shutting down', { signal });
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  try {
    await running.stop();
  } catch (err) {
    logger('node-plugin').error('shutdown failed', { error: errorMessage(err) });
    throw err;
  }
}
