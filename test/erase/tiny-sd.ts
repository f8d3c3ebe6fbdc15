// A tiny random sd-emoji-format bundle for the MCE tests (the real sd-emoji is minutes to load and
// hours to train): an 8x8 pixel-space UNet (2 cross-attention levels), a 1-layer text encoder over
// the CLIP ids of a few phrases, random weights (BF16 as shipped), no autoencoder.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { writeSafetensors, type WriteTensor } from '../../src/io/safetensors.js';
import { initUnetWeights, type UnetParams } from '../../src/models/unet/index.js';
import { buildTextVocab, initTextEncoderWeights, type TextEncoderParams } from '../../src/models/text/encoder.js';
import { SD_EMOJI_FORMAT } from '../../src/generate/sd-emoji.js';

export const TINY_SD_UNET: UnetParams = {
  sample_size: 8, in_channels: 3, out_channels: 3, block_out_channels: [8, 16], layers_per_block: 1,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'], up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn', cross_attention_dim: 16, num_attention_heads: [1, 2], transformer_layers_per_block: 1,
  norm_num_groups: 4, norm_eps: 1e-5, use_linear_projection: true, flip_sin_to_cos: true, freq_shift: 0,
};

export const TINY_SD_TEXT: TextEncoderParams = { context_length: 8, width: 16, heads: 2, layers: 1 };

const PHRASES = ['a an the of with in style', 'kitchen knife', 'knife', 'spoon', 'fork', 'dagger', 'cat', 'dog', 'apple', 'car', 'emoji', 'icon', 'picture', 'drawing'];

function bf16(ts: Record<string, Tensor>): Record<string, WriteTensor> {
  const out: Record<string, WriteTensor> = {};
  for (const [n, t] of Object.entries(ts)) out[n] = { dtype: 'BF16', shape: t.shape, data: t.dataSync() as Float32Array };
  return out;
}

/** Write the bundle into `dir` (created); returns `dir`. Same seed, same bytes. */
export async function writeTinySdBundle(dir: string, seed = 3, sampling = { steps: 3, cfg: 3 }): Promise<string> {
  await useBackend();
  mkdirSync(dir, { recursive: true });
  const vocab = buildTextVocab(PHRASES);
  const unet = initUnetWeights(TINY_SD_UNET, seed);
  const text = initTextEncoderWeights(TINY_SD_TEXT, vocab.length + 1, seed + 1);
  try {
    await writeSafetensors(join(dir, 'unet.safetensors'), bf16(unet), { format: SD_EMOJI_FORMAT });
    await writeSafetensors(join(dir, 'text_encoder.safetensors'), {
      ...bf16(text),
      'vocab.clip_ids': { dtype: 'I32', shape: [vocab.length], data: Int32Array.from(vocab) },
    }, { format: SD_EMOJI_FORMAT });
  } finally {
    tf.dispose([...Object.values(unet), ...Object.values(text)]);
  }
  const manifest = {
    format: SD_EMOJI_FORMAT,
    name: 'tiny-sd',
    unet: TINY_SD_UNET,
    text_encoder: { params: TINY_SD_TEXT, vocab_rows: vocab.length + 1 },
    latent: { kind: 'pixels', shape: [3, 8, 8] },
    image_size: 8,
    sampling,
    files: {},
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
  return dir;
}
