// Small hand-built fleets for controller tests: whole GPUs on fake nodes,
// published as ResourceSlices in Cascade's device model.
import type { DeviceClass, ResourceSlice } from '../../pkg/api/resource.js';
import { ATTR, qualify } from '../../pkg/api/devicemodel.js';
import { cascadeDeviceClasses } from '../../pkg/api/deviceclasses.js';

export interface FakeGpu {
  readonly product: string;
  readonly memoryGi: number;
  readonly nvlinkDomain?: string;
}

export function gpuSlice(driver: string, node: string, gpus: readonly FakeGpu[]): ResourceSlice {
  return {
    metadata: { name: `${node}-${driver.replace(/\./g, '-')}-0` },
    spec: {
      driver,
      nodeName: node,
      pool: { name: node, generation: 1, resourceSliceCount: 1 },
      devices: gpus.map((g, i) => ({
        name: `gpu-${i}`,
        attributes: {
          [qualify(driver, ATTR.type)]: { string: 'gpu' },
          [qualify(driver, ATTR.productName)]: { string: g.product },
          [qualify(driver, ATTR.index)]: { int: i },
          [qualify(driver, ATTR.uuid)]: { string: `GPU-${node}-${i}` },
          ...(g.nvlinkDomain ? { [qualify(driver, ATTR.nvlinkDomain)]: { string: g.nvlinkDomain } } : {}),
        },
        capacity: { [qualify(driver, 'memory')]: { value: `${g.memoryGi}Gi` } },
      })),
    },
  };
}

/** gpu.<driver>, mig.<driver> and shared.<driver> classes, as the add-on installs them. */
export function deviceClasses(driver: string): DeviceClass[] {
  return cascadeDeviceClasses(driver);
}
