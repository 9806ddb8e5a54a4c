// Loads Cascade's .proto files (proto/) once and exposes them with the checked-in
// generated types, plus the wire names the kubelet uses to find our services.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as DraHealthV1alpha1 } from '../generated/dra_health_v1alpha1.js';
import type { ProtoGrpcType as DraV1 } from '../generated/dra_v1.js';
import type { ProtoGrpcType as DraV1beta1 } from '../generated/dra_v1beta1.js';
import type { ProtoGrpcType as GrpcHealthV1 } from '../generated/grpc_health_v1.js';
import type { ProtoGrpcType as PluginRegistration } from '../generated/pluginregistration.js';

/** PluginInfo.type of a DRA driver. */
export const DRA_PLUGIN_TYPE = 'DRAPlugin';

/**
 * The names advertised in PluginInfo.supported_versions. The kubelet picks the
 * first DRA service it knows and ignores names it does not know.
 */
export const SUPPORTED_SERVICE = {
  draV1: 'v1.DRAPlugin',
  draV1beta1: 'v1beta1.DRAPlugin',
  healthV1alpha1: 'v1alpha1.DRAResourceHealth',
} as const;

/** Fully qualified gRPC service names, as they appear in method paths. */
export const GRPC_SERVICE = {
  registration: 'pluginregistration.Registration',
  draV1: 'k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin',
  draV1beta1: 'k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin',
  healthV1alpha1: 'v1alpha1.DRAResourceHealth',
  grpcHealth: 'grpc.health.v1.Health',
} as const;

export const PROTO_FILES = ['pluginregistration.proto', 'dra_v1.proto', 'dra_v1beta1.proto', 'dra_health_v1alpha1.proto', 'grpc_health_v1.proto'] as const;

/**
 * The loader options must match the `proto:gen` script, or the generated types
 * would describe objects the loader does not produce (snake_case keys, enums as
 * strings, int64 as numbers, defaults filled in).
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export type CascadeProtos = PluginRegistration & DraV1 & DraV1beta1 & DraHealthV1alpha1 & GrpcHealthV1;

/**
 * The proto/ directory: two levels up from this file in the source tree, three
 * from dist/pkg/kubeletplugin in a build; CASCADE_PROTO_DIR wins when set.
 */
export function protoDir(): string {
  const override = process.env.CASCADE_PROTO_DIR;
  if (override) return resolve(override);
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', '..', 'proto'), join(here, '..', '..', '..', 'proto')];
  for (const dir of candidates) {
    if (existsSync(join(dir, PROTO_FILES[0]))) return dir;
  }
  throw new Error(`cannot find Cascade's proto files: looked in ${candidates.join(', ')}; set CASCADE_PROTO_DIR`);
}

let cached: CascadeProtos | undefined;

/** The package definitions of every proto file, loaded on first use. */
export function loadProtos(): CascadeProtos {
  if (cached) return cached;
  const dir = protoDir();
  const definition = protoLoader.loadSync(
    PROTO_FILES.map((f) => join(dir, f)),
    { ...LOADER_OPTIONS, includeDirs: [dir] },
  );
  // The generated ProtoGrpcType interfaces describe exactly what
  // loadPackageDefinition builds for these files and options.
  cached = grpc.loadPackageDefinition(definition) as unknown as CascadeProtos;
  return cached;
}
