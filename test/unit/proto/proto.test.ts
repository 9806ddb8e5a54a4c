// Pins Cascade's .proto files to the kubelet's wire protocol: package and
// service names, method paths, streaming, and every field's number and type.
import { join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, PROTO_FILES, protoDir } from '../../../pkg/kubeletplugin/protos.js';

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}

interface EnumDescriptor {
  value: { name: string; number: number }[];
}

interface MessageDescriptor {
  field: FieldDescriptor[];
  nestedType: (MessageDescriptor & { name: string; options: { mapEntry?: boolean } | null })[];
  oneofDecl: { name: string }[];
}

const definition = protoLoader.loadSync(
  PROTO_FILES.map((f) => join(protoDir(), f)),
  { ...LOADER_OPTIONS, includeDirs: [protoDir()] },
);

function message(fullName: string): MessageDescriptor {
  const def = definition[fullName] as protoLoader.MessageTypeDefinition<object, object> | undefined;
  if (!def || def.format !== 'Protocol Buffer 3 DescriptorProto') throw new Error(`no message ${fullName}`);
  return def.type as MessageDescriptor;
}

function service(fullName: string): protoLoader.ServiceDefinition {
  const def = definition[fullName];
  if (!def || 'format' in def) throw new Error(`no service ${fullName}`);
  return def;
}

/** [name, number, label, type, typeName] with label R(epeated)/O(ptional). */
type Field = [string, number, 'R' | 'O', string, string?];

function fieldsOf(desc: MessageDescriptor): Field[] {
  return desc.field.map((f) => {
    const row: Field = [f.name, f.number, f.label === 'LABEL_REPEATED' ? 'R' : 'O', f.type.replace('TYPE_', '').toLowerCase()];
    if (f.typeName) row.push(f.typeName);
    return row;
  });
}

const DRA = 'k8s.io.kubelet.pkg.apis.dra';

describe('the proto files', () => {
  it.each([
    ['registration GetInfo', 'pluginregistration.Registration', 'GetInfo', false],
    ['registration NotifyRegistrationStatus', 'pluginregistration.Registration', 'NotifyRegistrationStatus', false],
    ['DRA v1 NodePrepareResources', `${DRA}.v1.DRAPlugin`, 'NodePrepareResources', false],
    ['DRA v1 NodeUnprepareResources', `${DRA}.v1.DRAPlugin`, 'NodeUnprepareResources', false],
    ['DRA v1beta1 NodePrepareResources', `${DRA}.v1beta1.DRAPlugin`, 'NodePrepareResources', false],
    ['DRA v1beta1 NodeUnprepareResources', `${DRA}.v1beta1.DRAPlugin`, 'NodeUnprepareResources', false],
    ['health NodeWatchResources', 'v1alpha1.DRAResourceHealth', 'NodeWatchResources', true],
    ['grpc health Check', 'grpc.health.v1.Health', 'Check', false],
    ['grpc health Watch', 'grpc.health.v1.Health', 'Watch', true],
  ])('serve %s at the kubelet method path', (_name, svc, method, streaming) => {
    const m = service(svc)[method];
    expect(m).toBeDefined();
    expect(m!.path).toBe(`/${svc}/${method}`);
    expect(m!.requestStream).toBe(false);
    expect(m!.responseStream).toBe(streaming);
  });

  it('declare no other services than those five', () => {
    const services = Object.entries(definition)
      .filter(([, d]) => !('format' in d))
      .map(([n]) => n)
      .sort();
    expect(services).toEqual(['grpc.health.v1.Health', `${DRA}.v1.DRAPlugin`, `${DRA}.v1beta1.DRAPlugin`, 'pluginregistration.Registration', 'v1alpha1.DRAResourceHealth']);
  });

  it.each<[string, Field[]]>([
    [
      'pluginregistration.PluginInfo',
      [
        ['type', 1, 'O', 'string'],
        ['name', 2, 'O', 'string'],
        ['endpoint', 3, 'O', 'string'],
        ['supported_versions', 4, 'R', 'string'],
      ],
    ],
    [
      'pluginregistration.RegistrationStatus',
      [
        ['plugin_registered', 1, 'O', 'bool'],
        ['error', 2, 'O', 'string'],
      ],
    ],
    ['pluginregistration.RegistrationStatusResponse', []],
    ['pluginregistration.InfoRequest', []],
    [
      `${DRA}.v1.Claim`,
      [
        ['namespace', 1, 'O', 'string'],
        ['uid', 2, 'O', 'string'],
        ['name', 3, 'O', 'string'],
      ],
    ],
    [`${DRA}.v1.NodePrepareResourcesRequest`, [['claims', 1, 'R', 'message', 'Claim']]],
    [
      `${DRA}.v1.NodePrepareResourceResponse`,
      [
        ['devices', 1, 'R', 'message', 'Device'],
        ['error', 2, 'O', 'string'],
      ],
    ],
    [
      `${DRA}.v1.Device`,
      [
        ['request_names', 1, 'R', 'string'],
        ['pool_name', 2, 'O', 'string'],
        ['device_name', 3, 'O', 'string'],
        ['cdi_device_ids', 4, 'R', 'string'],
        ['share_id', 5, 'O', 'string'],
      ],
    ],
    [`${DRA}.v1.NodeUnprepareResourcesRequest`, [['claims', 1, 'R', 'message', 'Claim']]],
    [`${DRA}.v1.NodeUnprepareResourceResponse`, [['error', 1, 'O', 'string']]],
    [
      `${DRA}.v1beta1.Claim`,
      [
        ['namespace', 1, 'O', 'string'],
        ['uid', 2, 'O', 'string'],
        ['name', 3, 'O', 'string'],
      ],
    ],
    [`${DRA}.v1beta1.NodePrepareResourcesRequest`, [['claims', 1, 'R', 'message', 'Claim']]],
    [
      `${DRA}.v1beta1.NodePrepareResourceResponse`,
      [
        ['devices', 1, 'R', 'message', 'Device'],
        ['error', 2, 'O', 'string'],
      ],
    ],
    [
      `${DRA}.v1beta1.Device`,
      [
        ['request_names', 1, 'R', 'string'],
        ['pool_name', 2, 'O', 'string'],
        ['device_name', 3, 'O', 'string'],
        ['cdi_device_ids', 4, 'R', 'string'],
      ],
    ],
    [`${DRA}.v1beta1.NodeUnprepareResourcesRequest`, [['claims', 1, 'R', 'message', 'Claim']]],
    [`${DRA}.v1beta1.NodeUnprepareResourceResponse`, [['error', 1, 'O', 'string']]],
    ['v1alpha1.NodeWatchResourcesRequest', []],
    [
      'v1alpha1.DeviceIdentifier',
      [
        ['pool_name', 1, 'O', 'string'],
        ['device_name', 2, 'O', 'string'],
      ],
    ],
    [
      'v1alpha1.DeviceHealth',
      [
        ['device', 1, 'O', 'message', 'DeviceIdentifier'],
        ['health', 2, 'O', 'enum', 'HealthStatus'],
        ['last_updated_time', 3, 'O', 'int64'],
        ['health_check_timeout_seconds', 4, 'O', 'int64'],
        ['message', 5, 'O', 'string'],
      ],
    ],
    ['v1alpha1.NodeWatchResourcesResponse', [['devices', 1, 'R', 'message', 'DeviceHealth']]],
    ['grpc.health.v1.HealthCheckRequest', [['service', 1, 'O', 'string']]],
    ['grpc.health.v1.HealthCheckResponse', [['status', 1, 'O', 'enum', 'ServingStatus']]],
  ])('give %s exactly the kubelet field numbers', (name, want) => {
    expect(fieldsOf(message(name))).toEqual(want);
  });

  it.each([
    [`${DRA}.v1.NodePrepareResourcesResponse`, 'NodePrepareResourceResponse'],
    [`${DRA}.v1.NodeUnprepareResourcesResponse`, 'NodeUnprepareResourceResponse'],
    [`${DRA}.v1beta1.NodePrepareResourcesResponse`, 'NodePrepareResourceResponse'],
    [`${DRA}.v1beta1.NodeUnprepareResourcesResponse`, 'NodeUnprepareResourceResponse'],
  ])('make %s.claims field 1 a map from claim UID', (name, valueType) => {
    const desc = message(name);
    expect(desc.field).toHaveLength(1);
    const claims = desc.field[0]!;
    expect([claims.name, claims.number, claims.label]).toEqual(['claims', 1, 'LABEL_REPEATED']);
    const entry = desc.nestedType.find((t) => t.name === claims.typeName);
    expect(entry?.options?.mapEntry).toBe(true);
    expect(fieldsOf(entry!)).toEqual([
      ['key', 1, 'O', 'string'],
      ['value', 2, 'O', 'message', valueType],
    ]);
  });

  it('mark v1 share_id as proto3 optional, so an unset share ID stays absent', () => {
    expect(message(`${DRA}.v1.Device`).oneofDecl.map((o) => o.name)).toEqual(['_share_id']);
  });

  it('number the health status enum as the kubelet does', () => {
    const def = definition['v1alpha1.HealthStatus'] as protoLoader.EnumTypeDefinition | undefined;
    expect(def?.format).toBe('Protocol Buffer 3 EnumDescriptorProto');
    const values = (def!.type as EnumDescriptor).value.map((v) => [v.name, v.number]);
    expect(values).toEqual([
      ['UNKNOWN', 0],
      ['HEALTHY', 1],
      ['UNHEALTHY', 2],
    ]);
  });

  it('number the grpc health serving status enum as the standard protocol does', () => {
    const desc = message('grpc.health.v1.HealthCheckResponse') as MessageDescriptor & { enumType: (EnumDescriptor & { name: string })[] };
    const serving = desc.enumType.find((e) => e.name === 'ServingStatus');
    expect(serving?.value.map((v) => [v.name, v.number])).toEqual([
      ['UNKNOWN', 0],
      ['SERVING', 1],
      ['NOT_SERVING', 2],
      ['SERVICE_UNKNOWN', 3],
    ]);
  });
});
