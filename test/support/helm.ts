// The add-on installed the way most platform engineers install it: helm
// install of deployments/helm/cascade (helm built by hack/build-helm.sh). The
// components then run as local processes under the ServiceAccounts the chart
// created, as with the kustomize install in addon.ts.
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../pkg/cluster/binaries.js';
import { freePort, writeServiceAccountKubeconfig } from '../../pkg/cluster/controlplane.js';
import { ADDON_NAMESPACE, controllerProcess, type Component, type Doc } from './addon.js';
import { adminKubeconfig, binPath, clusterDir, kubectl, type CommandResult } from './tools.js';

export const CHART = join(repoRoot(), 'deployments', 'helm', 'cascade');

/** Runs helm with its caches and config inside the cluster directory, never in $HOME. */
export async function helm(args: readonly string[], input?: string): Promise<CommandResult> {
  const bin = process.env.CASCADE_HELM;
  if (!bin) throw new Error('CASCADE_HELM is not set: the e2e global setup builds helm (hack/build-helm.sh)');
  const home = join(clusterDir(), 'helm');
  mkdirSync(home, { recursive: true });
  return await new Promise((resolve) => {
    const child = execFile(
      bin,
      [...args],
      { env: { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') }, maxBuffer: 32 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** helm template of the chart with `--set`/`--set-json` style arguments, as parsed documents. */
export async function helmTemplate(extra: readonly string[] = []): Promise<Doc[]> {
  const out = await helm(['template', 'cascade', CHART, '--namespace', ADDON_NAMESPACE, ...extra]);
  if (out.code !== 0) throw new Error(`helm template failed: ${out.stderr}`);
  return YAML.parseAllDocuments(out.stdout)
    .map((d) => d.toJSON() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

/** Values that point the chart's webhook at a controller on loopback, scoped to namespaces with `labels`. */
export function localValues(webhookPort: number, labels: Record<string, string>): string[] {
  return [
    '--set',
    `gate.url=https://127.0.0.1:${webhookPort}/mutate-pods`,
    '--set-json',
    `gate.namespaceSelector=${JSON.stringify({ matchLabels: labels })}`,
    // As the dev overlay: a locally built image, simulated GPUs.
    '--set',
    'image.repository=cascade,image.tag=dev,controller.replicas=1',
    '--set-json',
    'nodePlugin.nodeSelector={"cascade.dev/simulated-gpus":"true","nvidia.com/gpu.present":null}',
  ];
}

/** Removes Cascade's objects that an earlier kustomize install left, so that helm installs afresh. */
async function removeEarlierInstall(): Promise<void> {
  const docs = await helmTemplate();
  const names = docs.filter((d) => d.kind !== 'CustomResourceDefinition').map((d) => YAML.stringify(d));
  const res = await new Promise<CommandResult>((resolve) => {
    const child = execFile(binPath('kubectl'), ['--kubeconfig', adminKubeconfig(), 'delete', '--ignore-not-found', '--wait', '-f', '-'], (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, stdout, stderr }),
    );
    child.stdin?.end(names.join('---\n'));
  });
  if (res.code !== 0) throw new Error(`removing the earlier install failed: ${res.stderr}`);
  // The CRD goes last and only if no FailoverReserve is left: deleting it would delete those too.
  const left = await kubectl(['get', 'failoverreserves', '-o', 'name']);
  if (left.code === 0 && left.stdout.trim() === '') await kubectl(['delete', 'crd', 'failoverreserves.gpu.cascade.dev', '--ignore-not-found']);
}

export interface HelmInstall {
  readonly controller: Component;
  readonly webhookPort: number;
  /** The helm install output (NOTES included). */
  readonly output: string;
  uninstall(): Promise<void>;
}

/** helm install of the chart, and the controller running under the chart's ServiceAccount serving its webhook. */
export async function installAddonWithHelm(name: string, labels: Record<string, string>, extra: readonly string[] = []): Promise<HelmInstall> {
  await removeEarlierInstall();
  const webhookPort = await freePort();
  const res = await helm(['install', 'cascade', CHART, '--kubeconfig', adminKubeconfig(), '--namespace', ADDON_NAMESPACE, '--create-namespace', ...localValues(webhookPort, labels), ...extra]);
  if (res.code !== 0) throw new Error(`helm install failed: ${res.stderr}`);
  const kc = await writeServiceAccountKubeconfig(adminKubeconfig(), ADDON_NAMESPACE, 'cascade-controller', join(clusterDir(), `${name}.kubeconfig`));
  const controller = controllerProcess({ name, kubeconfig: kc, webhookPort }).start();
  return {
    controller,
    webhookPort,
    output: res.stdout,
    uninstall: async () => {
      await controller.stop();
      const out = await helm(['uninstall', 'cascade', '--kubeconfig', adminKubeconfig(), '--namespace', ADDON_NAMESPACE, '--wait']);
      if (out.code !== 0) throw new Error(`helm uninstall failed: ${out.stderr}`);
    },
  };
}
