// The one place that imports tfjs. The union package is used because its Node bundle registers
// every gradient and the chained ops; tfjs-core's own CJS bundle does not (engine-measurements §2a).
//
// It is loaded with require, not `import`: an ES import of a CommonJS package makes Node scan the
// source for export names, following the union's re-exports through all seven tfjs bundles (~7 MB);
// that scan cost about 0.8 s of every command's start on the 2-core machine, the require itself 0.3 s.
import { createRequire } from 'node:module';
import type * as TF from '@tensorflow/tfjs';
import type * as TFL from '@tensorflow/tfjs-layers';

const require = createRequire(import.meta.url);

// The union also loads tfjs-layers, -converter, -data and -backend-webgl (3.8 MB of the 7 MB it
// compiles, 0.15-0.25 s of every start); mce uses none of them, so they resolve to empty modules
// here. tf.layers, tf.data, tf.loadGraphModel etc. are therefore absent at run time (but see
// tfLayers below).
const stubs = new Set<string>();
for (const unused of ['@tensorflow/tfjs-layers', '@tensorflow/tfjs-converter', '@tensorflow/tfjs-data', '@tensorflow/tfjs-backend-webgl']) {
  const file = require.resolve(unused);
  if (require.cache[file]) continue;
  require.cache[file] = { id: file, filename: file, loaded: true, exports: {}, children: [], paths: [] } as unknown as NodeJS.Module;
  stubs.add(file);
}

export const tf = require('@tensorflow/tfjs') as typeof TF;
// Registers the wasm backend with tfjs (initialised only when a backend selects it).
require('@tensorflow/tfjs-backend-wasm');

/**
 * The real tfjs-layers, for the one evaluator that is a Keras model (nsfwjs, eval/nudity.ts): the
 * stub above is dropped and the package loaded on first call. It requires the tfjs-core that the
 * union already loaded, so it shares its engine, kernels and backend (there is one copy of core).
 */
export function tfLayers(): typeof TFL {
  const file = require.resolve('@tensorflow/tfjs-layers');
  if (stubs.delete(file)) delete require.cache[file];
  return require(file) as typeof TFL;
}

// The tfjs types mce names as `tf.X` (a namespace of types only merges with the value above).
export declare namespace tf {
  export type Tensor<R extends TF.Rank = TF.Rank> = TF.Tensor<R>;
  export type Scalar = TF.Scalar;
  export type Tensor1D = TF.Tensor1D;
  export type Tensor2D = TF.Tensor2D;
  export type Tensor3D = TF.Tensor3D;
  export type Tensor4D = TF.Tensor4D;
  export type Variable<R extends TF.Rank = TF.Rank> = TF.Variable<R>;
  export type Rank = TF.Rank;
  export type GradSaveFunc = TF.GradSaveFunc;
  export type TensorContainer = TF.TensorContainer;
  export type NamedTensorMap = TF.NamedTensorMap;
  export namespace backend_util {
    export type ExplicitPadding = TF.backend_util.ExplicitPadding;
  }
}

export type Tensor = TF.Tensor;
export type Rank = TF.Rank;
