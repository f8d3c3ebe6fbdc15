// A tiny random FLUX erase model for the MCE tests: random weights, a hash-seeded "text encoder"
// (each prompt maps to its own fixed random embedding; "" too), 4x4 latent -> 4 packed tokens.
import { tf, type Tensor } from '../../src/engine/tf.js';
import { randnArray } from '../../src/engine/rng.js';
import { initFluxWeights, type FluxParams } from '../../src/models/flux/index.js';
import type { UnetParams } from '../../src/models/unet/index.js';
import type { FluxEraseModel } from '../../src/erase/mce/objective.js';

export const TINY: FluxParams = {
  in_channels: 8,
  out_channels: 8,
  vec_in_dim: 6,
  context_in_dim: 10,
  hidden_size: 32,
  mlp_ratio: 2,
  num_heads: 2,
  depth: 1,
  depth_single_blocks: 1,
  axes_dim: [4, 6, 6],
  theta: 10_000,
  qkv_bias: true,
  guidance_embed: false,
};

/** FNV-1a: a fixed seed per prompt for the hash-seeded test text encoders. */
export function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export function tinyModel(seed = 5, cfg: FluxParams = TINY): FluxEraseModel & { dispose(): void } {
  const weights = initFluxWeights(cfg, seed);
  const T = 3;
  return {
    cfg,
    weights,
    latent: [2, 4, 4],
    encode: (prompts) =>
      tf.tidy(() => {
        const txt = tf.stack(prompts.map((p) => tf.tensor(randnArray(T * cfg.context_in_dim, hash(`t:${p}`)), [T, cfg.context_in_dim])));
        const y = tf.stack(prompts.map((p) => tf.tensor(randnArray(cfg.vec_in_dim, hash(`y:${p}`)), [cfg.vec_in_dim])));
        return { txt, y } as { txt: Tensor; y: Tensor };
      }),
    dispose: () => tf.dispose(Object.values(weights)),
  };
}

/** A tiny SD-style UNet config for the MCE and baseline tests. */
export const TINY_UNET: UnetParams = {
  sample_size: 4,
  in_channels: 2,
  out_channels: 2,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 6,
  num_attention_heads: [2, 4],
  transformer_layers_per_block: 1,
  norm_num_groups: 4,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
};
