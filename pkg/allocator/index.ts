// Cascade's allocator: the public surface the controller and the CLI use.
export { Allocator, allocateOnce, type AllocatorOptions } from './allocator.js';
export { makePolicy, damage, type PlacementPolicy, type PolicyContext, type RankedDevice, type Score, type SearchPlan, type Pick } from './policy.js';
export { SHORT_LIMIT, truncateBytes } from './explain.js';
export { ADMIN_ACCESS_LABEL, specProblems } from './plan.js';
export { allocatedDevicesOf } from './snapshot.js';
export { PoolCache } from './inventory.js';
export type * from './types.js';
