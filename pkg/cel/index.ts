// Kubernetes' CEL environment for DRA device selectors: the public surface.
export { Quantity, QuantityError } from './quantity.js';
export { Semver, SemverError } from './semver.js';
export { CEL_COST_LIMIT, estimateCost } from './cost.js';
export {
  CelDevice,
  attributeToCel,
  celEnvironment,
  compileSelector,
  makeCelDevice,
  splitQualifiedName,
  type CelAttributeValue,
  type CelBag,
  type CompileResult,
  type CompiledSelector,
  type SelectorOutcome,
} from './environment.js';
