// Original file: proto/dra_health_v1alpha1.proto


export interface NodeWatchResourcesRequest {
}

export interface NodeWatchResourcesRequest__Output {
}
