// Samplers: the FLUX schedule, flow-matching Euler (plain, trajectory, checkpointed gradients),
// FLUX bound as a velocity function, and the SD noise schedule with DDIM.
export * from './schedule.js';
export * from './euler.js';
export * from './flux.js';
export * from './diffusion-schedule.js';
export * from './ddim.js';
