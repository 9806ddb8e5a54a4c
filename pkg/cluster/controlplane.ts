// A real Kubernetes control plane on loopback for tests, the demo and humans:
// etcd, kube-apiserver (RBAC on), kube-controller-manager and kube-scheduler,
// with certificates generated into a temp dir, and nothing left behind on stop,
// even when the owning process dies (a detached watchdog cleans up).
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as https from 'node:https';
import YAML from 'yaml';
import { createCA, issueCertificate, type CertificateAuthority } from '../certs/certs.js';
import { ensureBinaries } from './binaries.js';
import { Kube } from '../k8s/resources.js';
import { isAlreadyExists } from '../k8s/client.js';
import type { Node } from '../k8s/types.js';

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

interface ProcessSpec {
  readonly name: Component;
  readonly command: string;
  readonly args: string[];
}

/** What is written to <dir>/state.json so any process can find, restart or stop the components. */
interface ClusterState {
  readonly dir: string;
  readonly server: string;
  readonly version: string;
  readonly specs: ProcessSpec[];
  pids: Partial<Record<Component, number>>;
}

export interface ControlPlaneOptions {
  /** Where the binaries are; default: build or reuse the cache. */
  readonly binDir?: string;
  /** Print progress lines here (default: nothing). */
  readonly progress?: (line: string) => void;
  /** Keep the temp dir after stop (for debugging). */
  readonly keepDir?: boolean;
}

export interface FakeNodeOptions {
  readonly cpu?: string;
  readonly memory?: string;
  readonly pods?: string;
  readonly labels?: Record<string, string>;
}

const ORDER: readonly Component[] = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True while a process with this PID exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, deadlineMs: number, check: () => Promise<boolean>, onTimeout: () => string): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not become ready within ${deadlineMs / 1000}s\n${onTimeout()}`);
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function startProcess(dir: string, spec: ProcessSpec): number {
  const logFd = openSync(join(dir, `${spec.name}.log`), 'a');
  const child = spawn(spec.command, spec.args, { stdio: ['ignore', logFd, logFd], detached: true });
  closeSync(logFd);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${spec.name}`);
  return child.pid;
}

function readState(dir: string): ClusterState {
  return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as ClusterState;
}

function writeState(state: ClusterState): void {
  const tmp = join(state.dir, `state.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(state, null, 2));
  // rename is atomic: the watchdog and other processes never read half a file.
  renameSync(tmp, join(state.dir, 'state.json'));
}

async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
  }
}

// The watchdog is a separate, detached node process: when the process that
// owns the control plane dies (even by SIGKILL), it stops the components and
// removes the temp dir. It reads the current PIDs from state.json each time.
const WATCHDOG = `
const fs = require('node:fs'); const path = require('node:path');
const [owner, dir] = process.argv.slice(1);
const alive = (p) => { try { process.kill(Number(p), 0); return true; } catch { return false; } };
let pids = [];
const tick = () => {
  // Remember the last PIDs seen, so a removed dir cannot orphan the components.
  try { pids = Object.values(JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')).pids || {}); } catch {}
  if (fs.existsSync(dir) && alive(owner)) return;
  if (!pids.some(alive)) process.exit(0);
  for (const p of pids) { try { process.kill(p, 'SIGTERM'); } catch {} }
  setTimeout(() => {
    for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch {} }
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch {}
    process.exit(0);
  }, 5000);
  clearInterval(timer);
};
const timer = setInterval(tick, 1000);
`;

/**
 * Kubeconfig the API server reads for calling webhooks: the user named "*"
 * applies to every webhook host.
 */
function webhookClientKubeconfig(cert: { certPem: string; keyPem: string }): string {
  const b64 = (t: string): string => Buffer.from(t, 'utf8').toString('base64');
  return JSON.stringify({ apiVersion: 'v1', kind: 'Config', users: [{ name: '*', user: { 'client-certificate-data': b64(cert.certPem), 'client-key-data': b64(cert.keyPem) } }] });
}

function admissionConfig(kubeconfigPath: string): string {
  const webhook = { apiVersion: 'apiserver.config.k8s.io/v1', kind: 'WebhookAdmissionConfiguration', kubeConfigFile: kubeconfigPath };
  return JSON.stringify({
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'AdmissionConfiguration',
    plugins: [
      { name: 'MutatingAdmissionWebhook', configuration: webhook },
      { name: 'ValidatingAdmissionWebhook', configuration: webhook },
    ],
  });
}

export class ControlPlane {
  private stopped = false;
  private watchdogPid: number | undefined;
  private readonly onSignal = (): void => {
    void this.stop().finally(() => process.exit(130));
  };

  private serverVersion = '';

  private constructor(
    readonly dir: string,
    readonly server: string,
    readonly adminKubeconfigPath: string,
    private readonly ca: CertificateAuthority,
    readonly binDir: string,
    private readonly keepDir: boolean,
  ) {}

  /** CA that signs the client certificate the API server presents to webhooks. */
  get webhookClientCaFile(): string {
    return join(this.dir, 'pki', 'webhook-client-ca.crt');
  }

  /** Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler and waits for readiness. */
  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const progress = opts.progress ?? ((): void => undefined);
    const started = Date.now();
    const binDir = opts.binDir ?? (await ensureBinaries());
    const bin = (b: string): string => join(binDir, b);
    const dir = mkdtempSync(join(tmpdir(), 'cascade-cp-'));
    const pki = join(dir, 'pki');
    await mkdir(pki, { mode: 0o700 });
    const file = (name: string): string => join(pki, name);

    progress('generating certificates');
    const ca = await createCA('cascade-local-ca');
    const serving = await issueCertificate(ca, {
      commonName: 'kube-apiserver',
      usage: 'server',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
      ipAddresses: ['127.0.0.1', '10.0.0.1'],
    });
    const admin = await issueCertificate(ca, { commonName: 'cascade-admin', organizations: ['system:masters'], usage: 'client' });
    const kcm = await issueCertificate(ca, { commonName: 'system:kube-controller-manager', usage: 'client' });
    const sched = await issueCertificate(ca, { commonName: 'system:kube-scheduler', usage: 'client' });
    // The API server presents this certificate to admission webhooks, so a webhook can
    // refuse every other caller (see webhookClientCaFile).
    const webhookClient = await issueCertificate(ca, { commonName: 'kube-apiserver-webhook-client', usage: 'client' });
    const sa = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(file('ca.crt'), ca.certPem, { mode: 0o600 });
    await writeFile(file('apiserver.crt'), serving.certPem, { mode: 0o600 });
    await writeFile(file('apiserver.key'), serving.keyPem, { mode: 0o600 });
    await writeFile(file('sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(file('sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o600 });

    const [etcdClient, etcdPeer, apiPort, kcmPort, schedPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = (user: string, cert: { certPem: string; keyPem: string }): string => kubeconfigYaml(server, ca.certPem, user, { clientCertificate: cert.certPem, clientKey: cert.keyPem });
    const adminKubeconfigPath = join(dir, 'admin.kubeconfig');
    await writeFile(adminKubeconfigPath, kubeconfig('cascade-admin', admin), { mode: 0o600 });
    await writeFile(join(dir, 'kcm.kubeconfig'), kubeconfig('kube-controller-manager', kcm), { mode: 0o600 });
    await writeFile(join(dir, 'scheduler.kubeconfig'), kubeconfig('kube-scheduler', sched), { mode: 0o600 });
    await writeFile(file('webhook-client-ca.crt'), ca.certPem, { mode: 0o600 });
    await writeFile(file('webhook-client.kubeconfig'), webhookClientKubeconfig(webhookClient), { mode: 0o600 });
    await writeFile(file('admission.yaml'), admissionConfig(file('webhook-client.kubeconfig')), { mode: 0o600 });

    const specs: ProcessSpec[] = [
      {
        name: 'etcd',
        command: bin('etcd'),
        args: [
          '--name=cascade',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
          `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
          `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-cluster=cascade=http://127.0.0.1:${etcdPeer}`,
          '--unsafe-no-fsync',
          '--log-level=warn',
          '--quota-backend-bytes=4294967296',
        ],
      },
      {
        name: 'kube-apiserver',
        command: bin('kube-apiserver'),
        args: [
          `--etcd-servers=http://127.0.0.1:${etcdClient}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--cert-dir=${join(dir, 'apiserver-certs')}`,
          `--tls-cert-file=${file('apiserver.crt')}`,
          `--tls-private-key-file=${file('apiserver.key')}`,
          `--client-ca-file=${file('ca.crt')}`,
          // Published for the aggregated-auth readers in kcm and the scheduler; no client cert we issue has this name.
          `--requestheader-client-ca-file=${file('ca.crt')}`,
          '--requestheader-allowed-names=front-proxy-client',
          `--service-account-key-file=${file('sa.pub')}`,
          `--service-account-signing-key-file=${file('sa.key')}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          '--service-cluster-ip-range=10.0.0.0/24',
          '--authorization-mode=RBAC',
          '--disable-admission-plugins=ServiceAccount,TaintNodesByCondition',
          `--admission-control-config-file=${file('admission.yaml')}`,
          '--endpoint-reconciler-type=none',
          '--allow-privileged=true',
          '--profiling=false',
          '--v=1',
        ],
      },
      {
        name: 'kube-controller-manager',
        command: bin('kube-controller-manager'),
        args: [
          `--kubeconfig=${join(dir, 'kcm.kubeconfig')}`,
          `--authentication-kubeconfig=${join(dir, 'kcm.kubeconfig')}`,
          `--authorization-kubeconfig=${join(dir, 'kcm.kubeconfig')}`,
          '--controllers=resourceclaim-controller,garbage-collector-controller,namespace-controller,replicaset-controller',
          '--use-service-account-credentials=true',
          `--root-ca-file=${file('ca.crt')}`,
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${kcmPort}`,
          `--cert-dir=${join(dir, 'kcm-certs')}`,
          '--concurrent-gc-syncs=5',
          // The default client limit (20 QPS) caps claim creation from templates at ~10 pods/s,
          // which would hide the schedulers' own speed in benchmarks.
          '--kube-api-qps=200',
          '--kube-api-burst=400',
          '--v=1',
        ],
      },
      {
        name: 'kube-scheduler',
        command: bin('kube-scheduler'),
        args: [
          `--kubeconfig=${join(dir, 'scheduler.kubeconfig')}`,
          `--authentication-kubeconfig=${join(dir, 'scheduler.kubeconfig')}`,
          `--authorization-kubeconfig=${join(dir, 'scheduler.kubeconfig')}`,
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${schedPort}`,
          `--cert-dir=${join(dir, 'scheduler-certs')}`,
          // As for the controller manager: the default (50 QPS) would cap binding, not scheduling.
          '--kube-api-qps=200',
          '--kube-api-burst=400',
          '--v=1',
        ],
      },
    ];
    const state: ClusterState = { dir, server, version: '', specs, pids: {} };
    writeState(state);

    const cp = new ControlPlane(dir, server, adminKubeconfigPath, ca, binDir, opts.keepDir ?? process.env.CASCADE_KEEP_CLUSTER_DIR === '1');
    cp.startWatchdog();
    process.once('SIGINT', cp.onSignal);
    process.once('SIGTERM', cp.onSignal);
    try {
      for (const spec of specs) {
        progress(`starting ${spec.name}`);
        state.pids[spec.name] = startProcess(dir, spec);
        writeState(state);
        cp.lastPids = { ...state.pids };
        if (spec.name === 'etcd') {
          await waitFor(
            'etcd',
            30_000,
            async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok,
            () => tail(join(dir, 'etcd.log')),
          );
        } else if (spec.name === 'kube-apiserver') {
          await waitFor(
            'kube-apiserver',
            90_000,
            () => cp.probe('/readyz'),
            () => tail(join(dir, 'kube-apiserver.log')),
          );
        }
      }
      await waitFor(
        'kube-controller-manager',
        60_000,
        () => probeInsecure(kcmPort, '/healthz'),
        () => tail(join(dir, 'kube-controller-manager.log')),
      );
      await waitFor(
        'kube-scheduler',
        60_000,
        () => probeInsecure(schedPort, '/healthz'),
        () => tail(join(dir, 'kube-scheduler.log')),
      );
    } catch (err) {
      await cp.stop();
      throw err;
    }
    const kube = cp.kube();
    cp.serverVersion = await kube.serverVersion();
    kube.close();
    writeState({ ...readState(dir), version: cp.serverVersion });
    progress(`control plane ${cp.serverVersion} ready at ${server} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return cp;
  }

  /** The server's version as it reports it, e.g. "v1.36.3". */
  get version(): string {
    return this.serverVersion;
  }

  private startWatchdog(): void {
    const child = spawn(process.execPath, ['-e', WATCHDOG, String(process.pid), this.dir], { stdio: 'ignore', detached: true });
    child.unref();
    this.watchdogPid = child.pid;
  }

  /** True when `path` answers 200 for the admin. */
  async probe(path: string): Promise<boolean> {
    const kube = this.kube();
    try {
      const body = await kube.client.request<string>('GET', path, { timeoutMs: 5_000 });
      return body === 'ok';
    } finally {
      kube.close();
    }
  }

  /** A client acting as cluster admin (system:masters). */
  kube(): Kube {
    return Kube.fromFile(this.adminKubeconfigPath);
  }

  get caCertPem(): string {
    return this.ca.certPem;
  }

  private lastPids: Partial<Record<Component, number>> = {};

  /** PIDs of the running components (read from state.json, so restarts are seen). */
  pids(): Partial<Record<Component, number>> {
    try {
      this.lastPids = readState(this.dir).pids;
    } catch {
      // state.json removed under us: keep what we knew.
    }
    return this.lastPids;
  }

  /** Creates a fake Node (Ready, no taints) with capacity and allocatable set. */
  async createNode(name: string, opts: FakeNodeOptions = {}): Promise<Node> {
    return await createFakeNode(this.kube(), name, opts);
  }

  /** Writes a kubeconfig for a ServiceAccount's token (creating the SA if needed). */
  async serviceAccountKubeconfig(namespace: string, name: string, path?: string): Promise<string> {
    return await writeServiceAccountKubeconfig(this.adminKubeconfigPath, namespace, name, path ?? join(this.dir, `sa-${namespace}-${name}.kubeconfig`));
  }

  /** Kills and restarts kube-apiserver with the same flags (for recovery tests). */
  async restartApiServer(downtimeMs = 0): Promise<void> {
    await restartApiServer(this.dir, downtimeMs);
  }

  /** Stops every component, the watchdog, and removes the temp dir. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    await stopClusterDir(this.dir, this.keepDir, this.pids());
    if (this.watchdogPid) await stopPid(this.watchdogPid, 1_000);
  }
}

async function probeInsecure(port: number, path: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, timeout: 3_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

/**
 * Stops the components recorded in <dir>/state.json (or, when that is gone,
 * the PIDs the caller last knew) and removes the dir.
 */
export async function stopClusterDir(dir: string, keepDir = false, knownPids: Partial<Record<Component, number>> = {}): Promise<void> {
  const pids = existsSync(join(dir, 'state.json')) ? readState(dir).pids : knownPids;
  for (const name of [...ORDER].reverse()) {
    const pid = pids[name];
    if (pid) await stopPid(pid);
  }
  if (!keepDir) rmSync(dir, { recursive: true, force: true });
}

/** Restarts kube-apiserver of the control plane in `dir`, from any process. */
export async function restartApiServer(dir: string, downtimeMs = 0): Promise<void> {
  const state = readState(dir);
  const pid = state.pids['kube-apiserver'];
  if (pid) await stopPid(pid);
  if (downtimeMs > 0) await new Promise((r) => setTimeout(r, downtimeMs));
  const spec = state.specs.find((s) => s.name === 'kube-apiserver');
  if (!spec) throw new Error('no kube-apiserver in state.json');
  state.pids['kube-apiserver'] = startProcess(dir, spec);
  writeState(state);
  const kube = Kube.fromFile(join(dir, 'admin.kubeconfig'));
  try {
    await waitFor(
      'kube-apiserver (restarted)',
      90_000,
      async () => (await kube.client.request<string>('GET', '/readyz', { timeoutMs: 5_000 })) === 'ok',
      () => tail(join(dir, 'kube-apiserver.log')),
    );
  } finally {
    kube.close();
  }
}

export interface KubeconfigAuth {
  readonly clientCertificate?: string;
  readonly clientKey?: string;
  readonly token?: string;
}

/** Renders a one-context kubeconfig with the CA and credentials embedded. */
export function kubeconfigYaml(server: string, caPem: string, user: string, auth: KubeconfigAuth): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const userEntry: Record<string, string> = {};
  if (auth.clientCertificate) userEntry['client-certificate-data'] = b64(auth.clientCertificate);
  if (auth.clientKey) userEntry['client-key-data'] = b64(auth.clientKey);
  if (auth.token) userEntry.token = auth.token;
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'cascade', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name: user, user: userEntry }],
    contexts: [{ name: user, context: { cluster: 'cascade', user } }],
    'current-context': user,
  });
}

/** Creates a fake Node whose status says Ready with the given capacity. */
export async function createFakeNode(kube: Kube, name: string, opts: FakeNodeOptions = {}): Promise<Node> {
  const resources = { cpu: opts.cpu ?? '64', memory: opts.memory ?? '512Gi', pods: opts.pods ?? '110' };
  try {
    await kube.nodes.create({
      metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...opts.labels } },
      spec: {},
    });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return await kube.nodes.mergePatch(
    name,
    {
      status: {
        capacity: resources,
        allocatable: resources,
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fake node for Cascade tests', lastHeartbeatTime: now, lastTransitionTime: now }],
      },
    },
    undefined,
    'status',
  );
}

/** Mints a token for a ServiceAccount and writes a kubeconfig that uses it. */
export async function writeServiceAccountKubeconfig(adminKubeconfigPath: string, namespace: string, name: string, path: string, expirationSeconds = 86_400): Promise<string> {
  const kube = Kube.fromFile(adminKubeconfigPath);
  try {
    try {
      await kube.serviceAccounts.create({ metadata: { name, namespace } });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    const tr = await kube.client.request<{ status: { token: string } }>('POST', kube.serviceAccounts.path(namespace, name, 'token'), {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
    });
    const cluster = kube.client.kubeConfig.getCurrentCluster();
    if (!cluster?.caData) throw new Error('admin kubeconfig has no embedded CA');
    const caPem = Buffer.from(cluster.caData, 'base64').toString('utf8');
    await writeFile(path, kubeconfigYaml(cluster.server, caPem, `system:serviceaccount:${namespace}:${name}`, { token: tr.status.token }), { mode: 0o600 });
    return path;
  } finally {
    kube.close();
  }
}

/** Reads the server URL and version a running control plane recorded. */
export async function describeClusterDir(dir: string): Promise<{ server: string; version: string; pids: Partial<Record<Component, number>> }> {
  const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as ClusterState;
  return { server: state.server, version: state.version, pids: state.pids };
}
