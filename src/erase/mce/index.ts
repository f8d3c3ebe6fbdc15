// Minimalist Concept Erasure (mce-method.md): masks (hard-concrete, groups, binarise / top-k /
// merge, sparsity), objectives on the final output with checkpointed backprop through every step
// (FLUX + Euler in objective.ts, SD-style UNet + DDIM in unet.ts), the trainer, prompt sets,
// mask files, folding masks into checkpoints (FLUX and UNet) or into a loaded model
// (masked-model.ts), held-out evaluation (the HTML report is report/erase-run.ts); the model being erased whatever its
// family (subject.ts) and the run's grids (grids.ts).
export * from './hardconcrete.js';
export * from './masks.js';
export * from './objective.js';
export * from './unet.js';
export * from './train.js';
export * from './prompts.js';
export * from './maskfile.js';
export * from './apply.js';
export * from './apply-unet.js';
export * from './masked-model.js';
export * from './evaluate.js';
export * from './acceptance.js';
export * from './subject.js';
export * from './grids.js';
