// A tiny sd-emoji training config (pixels, 8x8, 4 concepts) for the trainer tests: diffusion.test.ts
// trains it in-process; nan-stop.test.ts writes it to JSON for `mce train` with its own train section.
import { join } from 'node:path';
import type { DiffusionTrainConfig } from '../../src/train/diffusion.js';
import { conceptsNeededBy } from '../../src/world/targets.js';

export function tinyDiffusionConfig(dir: string, name: string, over: { train?: Partial<DiffusionTrainConfig['train']>; sampling?: DiffusionTrainConfig['sampling'] } = {}): DiffusionTrainConfig {
  return {
    kind: 'diffusion',
    name: 'tiny-sd',
    run: join(dir, `run-${name}`),
    out: join(dir, `model-${name}`),
    dataset: { size: 8, concepts: conceptsNeededBy().slice(0, 4), seed: 0 },
    latent: { kind: 'pixels' },
    unet: {
      sample_size: 8, in_channels: 3, out_channels: 3, block_out_channels: [16, 32], layers_per_block: 1,
      down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'], up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
      mid_block_type: 'UNetMidBlock2DCrossAttn', cross_attention_dim: 16, num_attention_heads: [1, 2], transformer_layers_per_block: 1,
      norm_num_groups: 8, norm_eps: 1e-5, use_linear_projection: true, flip_sin_to_cos: true, freq_shift: 0,
    },
    text: { context_length: 8, width: 16, heads: 2, layers: 1 },
    train: { steps: 24, batch: 8, lr: 0.003, warmup: 2, weightDecay: 0, seed: 1, captionDropout: 0.1, styledFraction: 0.5, checkpointEvery: 5, exportEvery: 0, ...over.train },
    sampling: over.sampling ?? { steps: 5, cfg: 3 },
  };
}
