// Fleets for controller tests, built the way the node plugin publishes them:
// the simulator's nvidia-smi, the real parser and pkg/inventory.
import type { DeviceClass, ResourceSlice } from '../../pkg/api/resource.js';
import { cascadeDeviceClasses } from '../../pkg/api/deviceclasses.js';
import { fleetNode, simulatedFleetSlices } from '../../hack/fake-nvidia-smi/fleet.js';

/**
 * The one slice a node with `count` GPUs of a catalog model publishes when it
 * offers them whole only (`--dynamic-mig=false`, no sharing), all on one NVLink
 * domain (named after the node), as the node plugin would.
 */
export async function wholeGpuSlice(driver: string, node: string, model: string, count: number): Promise<ResourceSlice> {
  const slices = await simulatedFleetSlices([fleetNode(node, model, count, { mig: 'whole', sharing: false })], { driver });
  const only = slices[0];
  if (slices.length !== 1 || !only) throw new Error(`expected one slice for ${node}, got ${slices.length}`);
  return only;
}

/** gpu.<driver>, mig.<driver> and shared.<driver> classes, as the add-on installs them. */
export function deviceClasses(driver: string): DeviceClass[] {
  return cascadeDeviceClasses(driver);
}
