// Tiny random flux-emoji and sd-emoji bundles on disk (pixel latent, no autoencoder): the loaders,
// `mce generate`, `mce baseline` and the wrapper loader take them like the shipped ones.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../src/io/atomic.js';
import { writeSafetensors, type WriteTensor } from '../../../src/io/safetensors.js';
import { tf, type Tensor } from '../../../src/engine/tf.js';
import { initFluxWeights, type FluxParams } from '../../../src/models/flux/index.js';
import { buildTextVocab, initTextEncoderWeights, type TextEncoderParams } from '../../../src/models/text/encoder.js';
import { FLUX_EMOJI_FORMAT } from '../../../src/generate/flux-emoji.js';
import { TINY } from '../tiny.js';
import { SD_EMOJI_FORMAT } from '../../../src/generate/sd-emoji.js';
import { initUnetWeights } from '../../../src/models/unet/index.js';
import { TINY_UNET } from './tiny.js';

// The MCE tests' tiny FLUX with 3-channel pixels packed (12 channels) and a 16-wide text encoder.
export const TINY_BUNDLE_FLUX: FluxParams = { ...TINY, in_channels: 12, out_channels: 12, vec_in_dim: 16, context_in_dim: 16 };

const TEXT: TextEncoderParams = { context_length: 8, width: 16, heads: 2, layers: 1 };

async function save(path: string, w: Record<string, Tensor>, extra: Record<string, WriteTensor> = {}): Promise<void> {
  const out: Record<string, WriteTensor> = { ...extra };
  for (const [n, t] of Object.entries(w)) out[n] = { dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array };
  await writeSafetensors(path, out);
}

/** The text encoder file (vocabulary: every token of `phrases`); returns the vocabulary rows. */
async function saveTextEncoder(dir: string, phrases: readonly string[], seed: number): Promise<number> {
  const vocab = buildTextVocab(phrases);
  const tw = initTextEncoderWeights(TEXT, vocab.length + 1, seed);
  await save(join(dir, 'text_encoder.safetensors'), tw, { 'vocab.clip_ids': { dtype: 'I32', shape: [vocab.length], data: Int32Array.from(vocab) } });
  tf.dispose(Object.values(tw));
  return vocab.length + 1;
}

/** Write the FLUX bundle into dir (created); the text vocabulary covers `phrases`. */
export async function writeTinyFluxBundle(dir: string, phrases: readonly string[], seed = 1): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const rows = await saveTextEncoder(dir, phrases, seed);
  const fw = initFluxWeights(TINY_BUNDLE_FLUX, seed + 1);
  await save(join(dir, 'transformer.safetensors'), fw);
  tf.dispose(Object.values(fw));
  const manifest = {
    format: FLUX_EMOJI_FORMAT,
    name: 'tiny-flux',
    flux: TINY_BUNDLE_FLUX,
    text_encoder: { params: TEXT, vocab_rows: rows },
    latent: { kind: 'pixels', shape: [3, 8, 8], packed_tokens: 16, packed_channels: 12 },
    image_size: 8,
    sampling: { steps: 3, cfg: 3, shift: true },
    files: {},
  };
  await writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

/** Write an sd-emoji-format bundle (the tests' tiny UNet on 3 x 8 x 8 pixels) into dir. */
export async function writeTinySdBundle(dir: string, phrases: readonly string[], seed = 1): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const rows = await saveTextEncoder(dir, phrases, seed);
  const unet = { ...TINY_UNET, sample_size: 8, in_channels: 3, out_channels: 3 };
  const uw = initUnetWeights(unet, seed + 1);
  await save(join(dir, 'unet.safetensors'), uw);
  tf.dispose(Object.values(uw));
  const manifest = {
    format: SD_EMOJI_FORMAT,
    name: 'tiny-sd',
    unet,
    text_encoder: { params: TEXT, vocab_rows: rows },
    latent: { kind: 'pixels', shape: [3, 8, 8] },
    image_size: 8,
    sampling: { steps: 3, cfg: 3 },
    files: {},
  };
  await writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}
