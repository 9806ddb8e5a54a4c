#!/usr/bin/env node
// kubectl plugin: `kubectl cascade explain <claim>`, `fleet`, `defrag` and `uninstall`.
// Install by putting `kubectl-cascade` (the package's bin) on PATH.
import { Command } from 'commander';
import { DEFAULT_DRIVER_NAME, type ResourceClaim } from '../../pkg/api/resource.js';
import { renderExplain } from '../../pkg/cli/explain.js';
import { fleetRows, renderFleet } from '../../pkg/cli/fleet.js';
import { planDefrag, renderDefrag } from '../../pkg/cli/defrag.js';
import { renderUninstall, uninstall } from '../../pkg/cli/uninstall.js';
import { claimOwnership } from '../../pkg/controller/ownership.js';
import { nodeFacts, podFacts } from '../../pkg/controller/podfacts.js';
import { KubeClient } from '../../pkg/k8s/client.js';
import { Kube } from '../../pkg/k8s/resources.js';
import { errorMessage } from '../../pkg/log/logger.js';

const program = new Command()
  .name('kubectl cascade')
  .description('Inspect Cascade GPU allocations')
  .option('--kubeconfig <path>', 'kubeconfig file', process.env.KUBECONFIG)
  .option('--driver-name <name>', 'DRA driver name', DEFAULT_DRIVER_NAME);

function kube(): Kube {
  const o = program.opts<{ kubeconfig?: string }>();
  return new Kube(KubeClient.fromDefault(o.kubeconfig));
}

program
  .command('explain <claim>')
  .description('the decision for a claim, the alternatives and why they lost')
  .option('-n, --namespace <ns>', 'namespace of the claim', 'default')
  .action(async (name: string, opts: { namespace: string }) => {
    const k = kube();
    try {
      const driver = program.opts<{ driverName: string }>().driverName;
      const claim: ResourceClaim = await k.resourceClaims.get(name, opts.namespace);
      const [claims, slices, classes, nodes, pods, events] = await Promise.all([
        k.resourceClaims.list(),
        k.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${driver}` }),
        k.deviceClasses.list(),
        k.nodes.list(),
        k.pods.list(),
        k.events.list(opts.namespace, { fieldSelector: `regarding.name=${name}` }),
      ]);
      console.log(renderExplain({ claim, claims, slices, classes, nodes: nodeFacts(nodes, pods), events: events.filter((e) => e.regarding.uid === claim.metadata.uid), driver }));
    } finally {
      k.close();
    }
  });

program
  .command('fleet')
  .description('per node and GPU: whole, MIG layout, free, tainted')
  .action(async () => {
    const k = kube();
    try {
      const driver = program.opts<{ driverName: string }>().driverName;
      const [slices, claims] = await Promise.all([k.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${driver}` }), k.resourceClaims.list()]);
      console.log(renderFleet(fleetRows(slices, claims, driver)));
    } finally {
      k.close();
    }
  });

program
  .command('defrag')
  .description('a plan of moves (pods annotated <driver>/movable: "true") that makes room for the claims waiting now; nothing is changed')
  .option('--json', 'print the plan as JSON')
  .action(async (opts: { json?: boolean }) => {
    const k = kube();
    try {
      const driver = program.opts<{ driverName: string }>().driverName;
      const [slices, classes, nodes, pods, claims] = await Promise.all([
        k.resourceSlices.list(undefined, { fieldSelector: `spec.driver=${driver}` }),
        k.deviceClasses.list(),
        k.nodes.list(),
        k.pods.list(),
        k.resourceClaims.list(),
      ]);
      const byName = new Map(classes.map((c) => [c.metadata.name ?? '', c]));
      const plan = planDefrag({ slices, classes, nodes: nodeFacts(nodes, pods), claims, pods, driver, podFacts, ours: (c) => claimOwnership(c.spec, byName, driver).ours });
      console.log(opts.json ? JSON.stringify(plan, null, 2) : renderDefrag(plan));
    } finally {
      k.close();
    }
  });

program
  .command('uninstall')
  .description("after `kubectl delete -k` of the add-on: remove Cascade's scheduling gates, claim finalizers, webhook configuration and ResourceSlices, so that nothing waits for Cascade")
  .option('--dry-run', 'only say what would be done')
  .option('--webhook-config <name>', 'the scheduling-gate MutatingWebhookConfiguration', 'cascade-scheduling-gate')
  .action(async (opts: { dryRun?: boolean; webhookConfig: string }) => {
    const k = kube();
    try {
      const driver = program.opts<{ driverName: string }>().driverName;
      const report = await uninstall(k, { driver, webhookConfigName: opts.webhookConfig, dryRun: opts.dryRun === true });
      console.log(renderUninstall(report, opts.dryRun === true));
    } finally {
      k.close();
    }
  });

program.parseAsync().catch((err: unknown) => {
  console.error(`kubectl cascade: ${errorMessage(err)}`);
  process.exit(1);
});
