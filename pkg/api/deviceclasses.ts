// The DeviceClasses the add-on installs (manifests/base/deviceclasses.yaml),
// as objects, for the tools and tests that need them without a cluster. A test
// keeps the two in step.
import type { DeviceClass } from './resource.js';
import { DEFAULT_DRIVER_NAME, RESOURCE_API_VERSION } from './resource.js';
import { ATTR } from './devicemodel.js';

/** The device types Cascade publishes, each with the class `<type>.<driver>`. */
export const DEVICE_TYPES = ['gpu', 'mig', 'shared', 'vfio'] as const;
export type DeviceType = (typeof DEVICE_TYPES)[number];

export function deviceClassName(type: DeviceType, driver = DEFAULT_DRIVER_NAME): string {
  return `${type}.${driver}`;
}

/** One class per device type, selecting this driver's devices of that type. */
export function cascadeDeviceClasses(driver = DEFAULT_DRIVER_NAME): DeviceClass[] {
  return DEVICE_TYPES.map((type) => ({
    apiVersion: RESOURCE_API_VERSION,
    kind: 'DeviceClass',
    metadata: { name: deviceClassName(type, driver) },
    spec: { selectors: [{ cel: { expression: `device.driver == "${driver}" && device.attributes["${driver}"].${ATTR.type} == "${type}"` } }] },
  }));
}
