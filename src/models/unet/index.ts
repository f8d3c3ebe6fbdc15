// The SD-style UNet (diffusers UNet2DConditionModel names and layouts): params and presets,
// weights, mask hook points, blocks, forward, and the denoiser binding for the DDIM sampler.
export * from './params.js';
export * from './weights.js';
export * from './masks.js';
// Blocks as a namespace: their names (timestepEmbedding, groupNormNHWC, ...) also exist in models/flux.
export * as unetBlocks from './blocks.js';
export * from './model.js';
export * from './denoiser.js';
