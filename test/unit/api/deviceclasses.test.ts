// The DeviceClasses the tools and tests build must be the ones the add-on installs.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { cascadeDeviceClasses } from '../../../pkg/api/deviceclasses.js';

describe('DeviceClasses', () => {
  it('are the same objects as manifests/base/deviceclasses.yaml', () => {
    const installed = parseAllDocuments(readFileSync('manifests/base/deviceclasses.yaml', 'utf8')).map((d) => d.toJS() as unknown);
    expect(cascadeDeviceClasses()).toEqual(installed);
  });

  it('follow the driver name', () => {
    const classes = cascadeDeviceClasses('gpu.example.com');
    expect(classes.map((c) => c.metadata.name)).toEqual(['gpu.gpu.example.com', 'mig.gpu.example.com', 'shared.gpu.example.com', 'vfio.gpu.example.com']);
    expect(classes[2]?.spec?.selectors?.[0]?.cel?.expression).toBe('device.driver == "gpu.example.com" && device.attributes["gpu.example.com"].type == "shared"');
  });
});
