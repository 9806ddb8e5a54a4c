// Installs the add-on from manifests/ on the local control plane the way a user
// would (kubectl kustomize + kubectl apply --server-side), and runs its
// components as local processes under their own ServiceAccounts.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import { freePort, kubeconfigYaml, writeServiceAccountKubeconfig } from '../../pkg/cluster/controlplane.js';
import { isAlreadyExists } from '../../pkg/k8s/client.js';
import type { Kube } from '../../pkg/k8s/resources.js';
import { adminKubeconfig, binPath, clusterDir, kubectl, type CommandResult } from './tools.js';

export const ADDON_NAMESPACE = 'cascade-system';

export type Doc = Record<string, unknown> & { kind?: string; metadata?: { name?: string; namespace?: string } };

/** The overlay rendered by the real kubectl kustomize. */
export async function renderManifests(overlay = 'dev', root = repoRoot()): Promise<Doc[]> {
  const out = await kubectl(['kustomize', join(root, 'manifests', 'overlays', overlay)]);
  if (out.code !== 0) throw new Error(`kubectl kustomize failed: ${out.stderr}`);
  return YAML.parseAllDocuments(out.stdout).map((d) => d.toJSON() as Doc);
}

/**
 * Points the webhook at a loopback URL: the local control plane has no Service
 * network, and the API server must never dial a ClusterIP here.
 */
export function webhookToUrl(docs: Doc[], url: string, onlyNamespacesLabelled?: Record<string, string>): Doc[] {
  return docs.map((d) => {
    if (d.kind !== 'MutatingWebhookConfiguration') return d;
    const hooks = (d.webhooks as { clientConfig: Record<string, unknown> }[]).map((w) => ({
      ...w,
      clientConfig: { url },
      // Tests scope the (fail-closed) webhook to their own namespace, so other tests never meet it.
      ...(onlyNamespacesLabelled ? { namespaceSelector: { matchLabels: onlyNamespacesLabelled } } : {}),
    }));
    return { ...d, webhooks: hooks };
  });
}

/** kubectl apply --server-side -f - with the given documents. */
export async function applyServerSide(docs: Doc[], kubeconfig = adminKubeconfig()): Promise<CommandResult> {
  const text = docs.map((d) => YAML.stringify(d)).join('---\n');
  return await new Promise((resolve) => {
    const child = spawn(binPath('kubectl'), ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--field-manager=cascade-e2e', '--force-conflicts', '-f', '-']);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(text);
  });
}

/** A kubeconfig with a token of `sa` bound to a placeholder Pod on `node` (so the token names the node). */
export async function nodeBoundKubeconfig(kube: Kube, sa: string, node: string, path: string): Promise<string> {
  const podName = `${sa}-${node}`.slice(0, 63);
  let pod;
  try {
    pod = await kube.pods.create({
      metadata: { name: podName, namespace: ADDON_NAMESPACE, labels: { 'app.kubernetes.io/name': sa } },
      spec: { nodeName: node, serviceAccountName: sa, automountServiceAccountToken: false, containers: [{ name: 'plugin', image: 'cascade:dev' }] },
    });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    pod = await kube.pods.get(podName, ADDON_NAMESPACE);
  }
  const tr = await kube.client.request<{ status: { token: string } }>('POST', kube.serviceAccounts.path(ADDON_NAMESPACE, sa, 'token'), {
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 7200, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: podName, uid: pod.metadata.uid } },
    },
  });
  const cluster = kube.client.kubeConfig.getCurrentCluster();
  const ca = Buffer.from(cluster?.caData ?? '', 'base64').toString('utf8');
  await writeFile(path, kubeconfigYaml(cluster?.server ?? '', ca, `system:serviceaccount:${ADDON_NAMESPACE}:${sa}`, { token: tr.status.token }), { mode: 0o600 });
  return path;
}

export interface ControllerProcessOptions {
  readonly name: string;
  readonly kubeconfig: string;
  readonly webhookPort: number;
  /** Extra flags, e.g. --lease-duration=4. */
  readonly extraArgs?: readonly string[];
  /** The build to run (a dist/ directory); default: this checkout's. */
  readonly distRoot?: string;
}

/** The controller from dist/, as the Deployment runs it, with its webhook on loopback. */
export function controllerProcess(o: ControllerProcessOptions): Component {
  return new Component(
    o.name,
    'cmd/controller/main.js',
    [
      `--kubeconfig=${o.kubeconfig}`,
      `--namespace=${ADDON_NAMESPACE}`,
      `--identity=${o.name}`,
      '--http-port=0',
      '--http-host=127.0.0.1',
      `--webhook-port=${o.webhookPort}`,
      '--webhook-host=127.0.0.1',
      '--webhook-ip=127.0.0.1',
      // The local control plane presents a client certificate to webhooks; only it may call ours.
      `--webhook-client-ca=${join(clusterDir(), 'pki', 'webhook-client-ca.crt')}`,
      ...(o.extraArgs ?? []),
    ],
    {},
    o.distRoot,
  );
}

/**
 * The add-on as a user installs it (the dev overlay, its webhook pointed at a
 * loopback port and limited to namespaces with `labels`), and the controller
 * running under its own ServiceAccount serving that webhook.
 */
export async function installAddonWithController(name: string, labels: Record<string, string>, extraArgs: readonly string[] = []): Promise<Component> {
  const port = await freePort();
  const applied = await applyServerSide(webhookToUrl(await renderManifests('dev'), `https://127.0.0.1:${port}/mutate-pods`, labels));
  if (applied.code !== 0) throw new Error(applied.stderr);
  const kc = await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, 'cascade-controller', join(clusterDir(), `${name}.kubeconfig`));
  return controllerProcess({ name, kubeconfig: kc, webhookPort: port, extraArgs }).start();
}

/** A component (controller or node plugin) running from dist/ as a child process, logging to a file. */
export class Component {
  private child: ChildProcess | undefined;
  readonly logFile: string;

  constructor(
    readonly name: string,
    private readonly script: string,
    private readonly args: readonly string[],
    private readonly env: Record<string, string> = {},
    /** The build to run (a dist/ directory); default: this checkout's. */
    readonly distRoot: string = join(repoRoot(), 'dist'),
  ) {
    this.logFile = join(clusterDir(), `${name}.log`);
  }

  start(): this {
    const fd = openSync(this.logFile, 'a');
    this.child = spawn(process.execPath, [join(this.distRoot, this.script), ...this.args], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, CASCADE_LOG_FORMAT: 'json', CASCADE_LOG_LEVEL: 'debug', ...this.env },
    });
    closeSync(fd);
    return this;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops it (SIGTERM, then SIGKILL after the grace period) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
