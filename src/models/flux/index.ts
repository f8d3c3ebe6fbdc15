// The FLUX transformer: params and presets, weights, mask hook points, forward, packing.
export * from './params.js';
export * from './weights.js';
export * from './masks.js';
export * from './embed.js';
export * from './blocks.js';
export * from './model.js';
export * from './pack.js';
