// Opaque GpuConfig validation: every accepted shape and every rejection names
// the offending field; resolution of class and claim configs per request.
import type { DeviceAllocationConfiguration } from '../../../pkg/api/resource.js';
import { checkConfigForDevice, configAppliesTo, parseGpuConfig, resolveDeviceConfig, sharingFor } from '../../../pkg/nodeplugin/gpu-config.js';

const base = { apiVersion: 'gpu.cascade.dev/v1alpha1', kind: 'GpuConfig' };

describe('GpuConfig validation', () => {
  it.each<[string, unknown, unknown]>([
    ['no sharing means the device type decides', base, {}],
    ['MPS', { ...base, sharing: { strategy: 'MPS' } }, { sharing: { strategy: 'MPS' } }],
    ['exclusive sharing', { ...base, sharing: { strategy: 'Exclusive' } }, { sharing: { strategy: 'Exclusive' } }],
    ['time slicing defaults its interval', { ...base, sharing: { strategy: 'TimeSlicing' } }, { sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Default' } } }],
    ['time slicing with an empty timeSlicing', { ...base, sharing: { strategy: 'TimeSlicing', timeSlicing: {} } }, { sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Default' } } }],
    [
      'time slicing with a long interval',
      { ...base, sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Long' } } },
      { sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Long' } } },
    ],
  ])('accepts %s', (_name, input, config) => {
    expect(parseGpuConfig(input)).toEqual({ ok: true, config });
  });

  it.each<[string, unknown, string]>([
    ['a string', 'Exclusive', 'parameters: must be an object, got "Exclusive"'],
    ['null', null, 'parameters: must be an object, got null'],
    ['an array', [base], 'parameters: must be an object, got an array'],
    ['a missing apiVersion', { kind: 'GpuConfig' }, 'apiVersion: required ("gpu.cascade.dev/v1alpha1")'],
    ['another apiVersion', { ...base, apiVersion: 'gpu.cascade.dev/v1' }, 'apiVersion: must be "gpu.cascade.dev/v1alpha1", got "gpu.cascade.dev/v1"'],
    ['a missing kind', { apiVersion: base.apiVersion }, 'kind: required ("GpuConfig")'],
    ['another kind', { ...base, kind: 'MigConfig' }, 'kind: must be "GpuConfig", got "MigConfig"'],
    ['an unknown top-level field', { ...base, replicas: 2 }, 'replicas: unknown field (allowed: apiVersion, kind, sharing)'],
    ['sharing that is not an object', { ...base, sharing: 'TimeSlicing' }, 'sharing: must be an object, got "TimeSlicing"'],
    ['sharing without a strategy', { ...base, sharing: {} }, 'sharing.strategy: required'],
    ['an unknown strategy', { ...base, sharing: { strategy: 'Sometimes' } }, 'sharing.strategy: must be one of "Exclusive", "TimeSlicing", "MPS", got "Sometimes"'],
    ['a strategy of the wrong type', { ...base, sharing: { strategy: 1 } }, 'sharing.strategy: must be one of "Exclusive", "TimeSlicing", "MPS", got number 1'],
    ['timeSlicing with MPS', { ...base, sharing: { strategy: 'MPS', timeSlicing: {} } }, 'sharing.timeSlicing: only allowed with strategy "TimeSlicing"'],
    ['an unknown sharing field', { ...base, sharing: { strategy: 'Exclusive', mps: {} } }, 'sharing.mps: unknown field (allowed: strategy, timeSlicing)'],
    ['timeSlicing with exclusive sharing', { ...base, sharing: { strategy: 'Exclusive', timeSlicing: {} } }, 'sharing.timeSlicing: only allowed with strategy "TimeSlicing"'],
    [
      'an unknown interval',
      { ...base, sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Forever' } } },
      'sharing.timeSlicing.interval: must be one of "Default", "Short", "Medium", "Long", got "Forever"',
    ],
    ['an unknown timeSlicing field', { ...base, sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Short', ms: 5 } } }, 'sharing.timeSlicing.ms: unknown field (allowed: interval)'],
    ['timeSlicing that is not an object', { ...base, sharing: { strategy: 'TimeSlicing', timeSlicing: true } }, 'sharing.timeSlicing: must be an object, got boolean true'],
  ])('rejects %s, naming the field', (_name, input, error) => {
    expect(parseGpuConfig(input)).toEqual({ ok: false, error });
  });
});

describe('config resolution for a device', () => {
  const DRIVER = 'gpu.cascade.dev';
  const ts = (interval: string): unknown => ({ ...base, sharing: { strategy: 'TimeSlicing', timeSlicing: { interval } } });

  it('matches a config to requests by full or base name, or to every request when it names none', () => {
    expect(configAppliesTo(undefined, 'gpu/large')).toBe(true);
    expect(configAppliesTo([], 'gpu')).toBe(true);
    expect(configAppliesTo(['gpu'], 'gpu/large')).toBe(true);
    expect(configAppliesTo(['gpu/large'], 'gpu/large')).toBe(true);
    expect(configAppliesTo(['gpu/small'], 'gpu/large')).toBe(false);
    expect(configAppliesTo(['other'], 'gpu')).toBe(false);
  });

  it('lets a claim config override a class config, and ignores other drivers', () => {
    const configs: DeviceAllocationConfiguration[] = [
      { source: 'FromClaim', requests: ['gpu'], opaque: { driver: DRIVER, parameters: ts('Long') } },
      { source: 'FromClass', opaque: { driver: DRIVER, parameters: ts('Short') } },
      { source: 'FromClaim', opaque: { driver: 'net.example.com', parameters: { anything: true } } },
    ];
    expect(resolveDeviceConfig(DRIVER, configs, { request: 'gpu' })).toEqual({
      ok: true,
      config: { sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Long' } } },
    });
    expect(resolveDeviceConfig(DRIVER, configs, { request: 'other' })).toEqual({
      ok: true,
      config: { sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Short' } } },
    });
  });

  it('leaves the sharing to the device type when nothing applies: exclusive for a GPU or MIG device, MPS for a shared GPU', () => {
    const none = resolveDeviceConfig(DRIVER, undefined, { request: 'gpu' });
    expect(none).toEqual({ ok: true, config: {} });
    expect(sharingFor({}, 'gpu')).toEqual({ strategy: 'Exclusive' });
    expect(sharingFor({}, 'mig')).toEqual({ strategy: 'Exclusive' });
    expect(sharingFor({}, 'shared')).toEqual({ strategy: 'MPS' });
  });

  it('fails the claim on an invalid config even when a later one would override it, saying where it came from', () => {
    const configs: DeviceAllocationConfiguration[] = [
      { source: 'FromClass', opaque: { driver: DRIVER, parameters: { ...base, color: 'red' } } },
      { source: 'FromClaim', requests: ['gpu'], opaque: { driver: DRIVER, parameters: base } },
    ];
    expect(resolveDeviceConfig(DRIVER, configs, { request: 'gpu' })).toEqual({
      ok: false,
      error: 'invalid gpu.cascade.dev/v1alpha1 GpuConfig in the device class config: color: unknown field (allowed: apiVersion, kind, sharing)',
    });
  });

  it('takes MPS but not time-slicing on a MIG device, rejects Exclusive on a shared GPU, and takes both on a whole GPU', () => {
    const slicing = { sharing: { strategy: 'TimeSlicing', timeSlicing: { interval: 'Default' } } } as const;
    expect(checkConfigForDevice(slicing, 'mig', 'gpu-0-mig-1g-10gb-0')).toBe(
      'sharing.strategy: "TimeSlicing" is not supported on MIG device gpu-0-mig-1g-10gb-0: nvidia-smi sets a time slice for a whole GPU, not for one MIG instance; use "MPS" to share the partition among the claim\'s containers, or "Exclusive"',
    );
    expect(checkConfigForDevice({ sharing: { strategy: 'MPS' } }, 'mig', 'gpu-0-mig-1g-10gb-0')).toBeUndefined();
    expect(checkConfigForDevice(slicing, 'gpu', 'gpu-0')).toBeUndefined();
    expect(checkConfigForDevice({ sharing: { strategy: 'MPS' } }, 'gpu', 'gpu-0')).toBeUndefined();
    expect(checkConfigForDevice({ sharing: { strategy: 'Exclusive' } }, 'shared', 'gpu-0-shared')).toMatch(/"Exclusive" contradicts shared GPU gpu-0-shared/);
    expect(checkConfigForDevice({}, 'shared', 'gpu-0-shared')).toBeUndefined();
  });
});
