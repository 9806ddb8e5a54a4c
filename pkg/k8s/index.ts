// The project's Kubernetes layer: raw-JSON client, typed resources, informers,
// retries and events.
export * from './client.js';
export * from './resources.js';
export * from './informer.js';
export * from './retry.js';
export * from './events.js';
export type * from './types.js';
