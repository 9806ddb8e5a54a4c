// Jest global setup for the integration and e2e projects: one real control
// plane per test run, shared by every test file through environment variables.
// Plain ESM on the built dist/ (every test script runs `npm run build` first),
// because jest loads global setup outside its module mapping.
import { ControlPlane } from '../../dist/pkg/cluster/controlplane.js';
import { binDir, ensureHelm, goAvailable, haveAll } from '../../dist/pkg/cluster/binaries.js';

export default async function setup() {
  globalThis.__cascade ??= { users: 0 };
  const shared = globalThis.__cascade;
  shared.users++;
  if (shared.controlPlane || process.env.CASCADE_SKIP_CLUSTER) return;
  if (!haveAll(await binDir()) && !(await goAvailable())) {
    const reason = 'Go is not installed, so the Kubernetes binaries cannot be built: integration and e2e tests are SKIPPED.';
    const bar = '!'.repeat(100);
    process.stderr.write(`\n${bar}\ncascade: ${reason}\ncascade: install Go 1.26+ to run them.\n${bar}\n\n`);
    process.env.CASCADE_SKIP_CLUSTER = reason;
    return;
  }
  const cp = await ControlPlane.start({ progress: (l) => process.stderr.write(`cascade: ${l}\n`) });
  shared.controlPlane = cp;
  process.env.CASCADE_KUBECONFIG = cp.adminKubeconfigPath;
  process.env.CASCADE_CLUSTER_DIR = cp.dir;
  process.env.CASCADE_BIN_DIR = cp.binDir;
  process.env.CASCADE_SERVER_VERSION = cp.version;
  // The chart tests run helm, built from its Go module like the control plane.
  process.env.CASCADE_HELM = await ensureHelm();
  process.stderr.write(`\ncascade: tests run against kube-apiserver ${cp.version} at ${cp.server}\n`);
}
