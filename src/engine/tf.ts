// The one place that imports tfjs. The union package is used because its Node bundle registers
// every gradient and the chained ops; tfjs-core's own CJS bundle does not (engine-measurements §2a).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { tf };
export type Tensor = tf.Tensor;
export type Rank = tf.Rank;
