// Original file: proto/dra_v1beta1.proto


export interface NodeUnprepareResourceResponse {
  'error'?: (string);
}

export interface NodeUnprepareResourceResponse__Output {
  'error': (string);
}
