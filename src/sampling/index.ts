// Samplers: the FLUX schedule, flow-matching Euler (plain, trajectory, checkpointed gradients),
// and FLUX bound as a velocity function.
export * from './schedule.js';
export * from './euler.js';
export * from './flux.js';
