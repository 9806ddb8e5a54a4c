// What the allocator needs from pods and nodes: a pod's cpu/memory requests,
// and each node's allocatable minus what its bound pods request.
import { Quantity } from '../cel/quantity.js';
import type { Node, Pod } from '../k8s/types.js';
import type { NodeFacts, NodeTaint, PodFacts } from '../allocator/types.js';

function q(text: string | undefined): Quantity | undefined {
  return text === undefined ? undefined : Quantity.tryParse(text);
}

/** Effective request of a pod for one resource: max(sum of containers, largest init container). */
export function podRequest(pod: Pod, resource: 'cpu' | 'memory'): number {
  const scale = resource === 'cpu' ? 1000 : 1;
  const value = (t: string | undefined): number => (q(t)?.asApproximateFloat() ?? 0) * scale;
  let sum = 0;
  for (const c of pod.spec.containers ?? []) sum += value(c.resources?.requests?.[resource]);
  let init = 0;
  for (const c of pod.spec.initContainers ?? []) init = Math.max(init, value(c.resources?.requests?.[resource]));
  return Math.max(sum, init);
}

export function isTerminal(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

export function podFacts(pod: Pod): PodFacts {
  return {
    namespace: pod.metadata.namespace,
    name: pod.metadata.name,
    cpu: `${Math.ceil(podRequest(pod, 'cpu'))}m`,
    memory: `${Math.ceil(podRequest(pod, 'memory'))}`,
    ...(pod.spec.nodeSelector ? { nodeSelector: pod.spec.nodeSelector } : {}),
    ...(pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution ? { requiredNodeAffinity: pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution } : {}),
    tolerations: (pod.spec.tolerations ?? []).map((t) => ({
      key: t.key,
      operator: t.operator,
      value: t.value,
      effect: t.effect as 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute' | undefined,
    })),
  };
}

/** Node facts with free cpu/memory = allocatable minus requests of the non-terminal pods bound to it. */
export function nodeFacts(nodes: readonly Node[], pods: readonly Pod[]): NodeFacts[] {
  const usedCpu = new Map<string, number>();
  const usedMem = new Map<string, number>();
  for (const p of pods) {
    const n = p.spec.nodeName;
    if (!n || isTerminal(p)) continue;
    usedCpu.set(n, (usedCpu.get(n) ?? 0) + podRequest(p, 'cpu'));
    usedMem.set(n, (usedMem.get(n) ?? 0) + podRequest(p, 'memory'));
  }
  return nodes.map((node) => {
    const name = node.metadata.name ?? '';
    const alloc = node.status?.allocatable ?? {};
    const cpu = q(alloc.cpu);
    const mem = q(alloc.memory);
    const free: { cpu?: string; memory?: string } = {};
    if (cpu) free.cpu = `${Math.floor(cpu.asApproximateFloat() * 1000 - (usedCpu.get(name) ?? 0))}m`;
    if (mem) free.memory = `${Math.floor(mem.asApproximateFloat() - (usedMem.get(name) ?? 0))}`;
    return {
      name,
      labels: node.metadata.labels ?? {},
      taints: withNotReady(
        node,
        (node.spec?.taints ?? []).map((t) => ({ key: t.key, value: t.value, effect: t.effect })),
      ),
      unschedulable: node.spec?.unschedulable === true,
      free,
    };
  });
}

/**
 * A node whose Ready condition is not True gets the NoSchedule taint the node
 * lifecycle controller would give it (node.kubernetes.io/not-ready, or
 * unreachable when its status is Unknown), so the allocator places nothing
 * there that the kube-scheduler would refuse.
 */
function withNotReady(node: Node, taints: NodeTaint[]): NodeTaint[] {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (!ready || ready.status === 'True') return taints;
  const key = ready.status === 'Unknown' ? 'node.kubernetes.io/unreachable' : 'node.kubernetes.io/not-ready';
  return taints.some((t) => t.key === key && t.effect === 'NoSchedule') ? taints : [...taints, { key, effect: 'NoSchedule' }];
}
