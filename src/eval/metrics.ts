// The image metrics of mce, one file each; this module gathers them. Everything built on the
// emoji-world evaluators is named for them (see METRIC_NAMES in evaluators.ts).
export { fid, frechetDistance } from './fid.js';
export { kid, type KidOptions, type KidResult } from './kid.js';
export { ssim, type SsimOptions } from './ssim.js';
export { featureDistance, stageMaps, FEATURE_DISTANCE_NAME } from './feature-distance.js';
export { meanCov, symmetricEigen, sqrtPsd, type FeatureSet } from './linalg.js';
