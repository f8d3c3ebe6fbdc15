// Tiny random models of both families for the baseline tests: random weights and a hash-seeded
// "text encoder" (each prompt its own fixed random token sequence and pooled vector; "" too), the
// EOT at a fixed position.
import { tf, type Tensor } from '../../../src/engine/tf.js';
import { randnArray } from '../../../src/engine/rng.js';
import { initFluxWeights } from '../../../src/models/flux/index.js';
import { initUnetWeights, type UnetParams } from '../../../src/models/unet/index.js';
import { fluxBaselineModel, unetBaselineModel, type BaselineModel } from '../../../src/erase/baselines/family.js';
import { TINY } from '../tiny.js';

export const TINY_UNET: UnetParams = {
  sample_size: 4,
  in_channels: 2,
  out_channels: 2,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 16,
  num_attention_heads: [2, 4],
  transformer_layers_per_block: 1,
  norm_num_groups: 4,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
};

const T = 4;

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

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
