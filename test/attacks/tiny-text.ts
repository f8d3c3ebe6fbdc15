// Tiny models of both families with a REAL text encoder (a small CLIP-style transformer over a
// vocabulary of a few test phrases), for the attacks that search the text encoder's token space;
// the baseline tests' tiny models hash prompts and have no token space. Erased and original
// models share the text encoder, as an erased bundle keeps its base's.
import { tf } from '../../src/engine/tf.js';
import { initFluxWeights } from '../../src/models/flux/index.js';
import { initUnetWeights } from '../../src/models/unet/index.js';
import { buildTextVocab, initTextEncoderWeights, TextEncoder, type TextEncoderParams } from '../../src/models/text/encoder.js';
import { fluxBaselineModel, unetBaselineModel, type BaselineModel } from '../../src/erase/baselines/family.js';
import { TINY, TINY_UNET } from '../erase/tiny.js';

export const TEXT: TextEncoderParams = { context_length: 10, width: 8, heads: 2, layers: 1 };

export const PHRASES = [
  'an emoji of a kitchen knife', 'a red apple', 'a spoon and a fork', 'a cat with a hat', 'a green tree in the sun',
  'a blue car', 'a small house', 'a dog', 'pizza', 'an orange balloon', 'a magic wand', 'a hammer',
];

export function tinyText(seed = 11): TextEncoder {
  const vocab = buildTextVocab(PHRASES);
  return new TextEncoder(TEXT, initTextEncoderWeights(TEXT, vocab.length + 1, seed), vocab);
}

function parts(text: TextEncoder) {
  return { encode: (p: readonly string[]) => text.encode(p), eot: (p: string) => text.tokenizer.one(p).eot, latent: [2, 4, 4] as const, text };
}

export function tinyTextFlux(text: TextEncoder, seed = 5): BaselineModel & { dispose(): void } {
  const cfg = { ...TINY, context_in_dim: TEXT.width, vec_in_dim: TEXT.width };
  const weights = initFluxWeights(cfg, seed);
  return { ...fluxBaselineModel(cfg, { weights, ...parts(text) }), dispose: () => tf.dispose(Object.values(weights)) };
}

export function tinyTextUnet(text: TextEncoder, seed = 3): BaselineModel & { dispose(): void } {
  const cfg = { ...TINY_UNET, cross_attention_dim: TEXT.width };
  const weights = initUnetWeights(cfg, seed);
  return { ...unetBaselineModel(cfg, { weights, ...parts(text) }), dispose: () => tf.dispose(Object.values(weights)) };
}
