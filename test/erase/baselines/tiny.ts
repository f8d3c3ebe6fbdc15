// Tiny random models of both families for the baseline tests: random weights and a hash-seeded
// "text encoder" (each prompt its own fixed random token sequence and pooled vector; "" too), the
// EOT at a fixed position.
import { tf, type Tensor } from '../../../src/engine/tf.js';
import { randnArray } from '../../../src/engine/rng.js';
import { initFluxWeights } from '../../../src/models/flux/index.js';
import { initUnetWeights, type UnetParams } from '../../../src/models/unet/index.js';
import { fluxBaselineModel, unetBaselineModel, type BaselineModel } from '../../../src/erase/baselines/family.js';
import { hash, TINY, TINY_UNET as TINY_UNET_BASE } from '../tiny.js';

export const TINY_UNET: UnetParams = { ...TINY_UNET_BASE, cross_attention_dim: 16 };

const T = 4;


function hashEncoder(width: number, pooled: number) {
  return (prompts: readonly string[]): { txt: Tensor; y: Tensor } =>
    tf.tidy(() => ({
      txt: tf.stack(prompts.map((p) => tf.tensor(randnArray(T * width, hash(`t:${p}`)), [T, width]))),
      y: tf.stack(prompts.map((p) => tf.tensor(randnArray(pooled, hash(`y:${p}`)), [pooled]))),
    }));
}

export function tinyFlux(seed = 5): BaselineModel & { dispose(): void } {
  const weights = initFluxWeights(TINY, seed);
  const m = fluxBaselineModel(TINY, { weights, encode: hashEncoder(TINY.context_in_dim, TINY.vec_in_dim), eot: () => 2, latent: [2, 4, 4] });
  return { ...m, dispose: () => tf.dispose(Object.values(weights)) };
}

export function tinyUnet(seed = 3): BaselineModel & { dispose(): void } {
  const weights = initUnetWeights(TINY_UNET, seed);
  const m = unetBaselineModel(TINY_UNET, { weights, encode: hashEncoder(TINY_UNET.cross_attention_dim, 4), eot: () => 2, latent: [2, 4, 4] });
  return { ...m, dispose: () => tf.dispose(Object.values(weights)) };
}
