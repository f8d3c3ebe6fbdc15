// emoji-world: the catalogue of concepts, the art styles (vendors), erasure targets, captions with
// train / held-out splits, and the rendered dataset. See DESIGN.md ("emoji-world").
export * from './vendors.js';
export * from './catalogue.js';
export * from './targets.js';
export * from './captions.js';
export * from './dataset.js';
export { editDistance } from './util.js';
