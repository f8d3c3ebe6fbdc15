// What the white-box attacks (P4D, UnlearnDiffAtk, concept inversion, editing) share besides the
// prompt search: the baseline every result reports (the target's plain prompts, tokens.ts), the original
// model's images of the concept as latents (P4D's trajectories, UnlearnDiffAtk's and inversion's
// target images, the edit's source), the denoising objective on them, a sampler run from any
// conditioning (inversion generates from a learned embedding, which no text prompt can carry), and
// decoding latents to RGB with the attacked bundle's autoencoder.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { Rng, mixSeed } from '../engine/rng.js';
import { loadAutoEncoderFile, readManifest } from '../generate/bundle.js';
import { toRgbImages, type RgbImage } from '../generate/flux-emoji.js';
import { unpackLatents } from '../models/flux/pack.js';
import type { ErasureTarget } from '../world/targets.js';
import { disposeCond, sampleTo, type BaselineModel, type Cond, type Sampler } from '../erase/baselines/family.js';
import type { AttackSubject } from './types.js';

/**
 * A sampler run of n images under cond with CFG against uncond (both batch n), from the noise the
 * generators draw for `seed` (image i from randn(mixSeed(seed, i))): the final latents.
 */
export function sampleLatents(model: BaselineModel, s: Sampler, cond: Cond, uncond: Cond, cfg: number, seed: number, n: number): Tensor {
  const noise = model.noise(seed, n);
  const x = sampleTo(model, s, noise, s.steps, cond, uncond, cfg);
  noise.dispose();
  return x;
}

/**
 * The prompt's and the empty prompt's conditioning, encoded in the batches the model's generator
 * uses, so that the pixels match it byte for byte (a batch of another size can round differently):
 * flux-emoji encodes [prompts; negatives] in one call, sd-emoji each on its own.
 */
function encodeLikeGenerator(model: BaselineModel, prompt: string, n: number): { cond: Cond; uncond: Cond } {
  if (model.family !== 'flow') return { cond: model.encode(Array<string>(n).fill(prompt)), uncond: model.encode(Array<string>(n).fill('')) };
  const both = model.encode([...Array<string>(n).fill(prompt), ...Array<string>(n).fill('')]);
  const [tc, tu] = tf.split(both.txt, 2, 0) as [Tensor, Tensor];
  const [yc, yu] = both.y ? (tf.split(both.y, 2, 0) as [Tensor, Tensor]) : [null, null];
  disposeCond(both);
  return { cond: { txt: tc, y: yc }, uncond: { txt: tu, y: yu } };
}

/** The model's own images of `prompt` as latents (n seeds), sampled as its generator does. */
export function promptLatents(model: BaselineModel, prompt: string, steps: number, cfg: number, seed: number, n: number): Tensor {
  const { cond, uncond } = encodeLikeGenerator(model, prompt, n);
  try {
    return sampleLatents(model, model.sampler(steps), cond, uncond, cfg, seed, n);
  } finally {
    disposeCond(cond);
    disposeCond(uncond);
  }
}

/**
 * The denoising objective's pair for clean latents x0 at sampler step k with noise eps: the noised
 * state and what the model should predict there (flow: the velocity eps - x0; diffusion: eps).
 */
export function denoisingPair(model: BaselineModel, s: Sampler, x0: Tensor, eps: Tensor, k: number): { x: Tensor; target: Tensor } {
  return { x: s.addNoise(x0, eps, k), target: model.family === 'flow' ? tf.sub(eps, x0) : eps.clone() };
}

/**
 * The denoising loss of a conditioning (batch = the images') on fixed draws of (step, noise) from
 * `seed`: every conditioning compared with the same seed sees the same draws.
 */
export function denoisingLoss(model: BaselineModel, images: Tensor, cond: Cond, steps: number, seed: number, draws: number): number {
  const s = model.sampler(steps);
  const n = images.shape[0]!;
  let total = 0;
  for (let d = 0; d < draws; d++) {
    const rng = new Rng(mixSeed(seed, 0x6576616c, d));
    const k = rng.int(steps);
    const l = tf.tidy(() => {
      const { x, target } = denoisingPair(model, s, images, model.noise(rng.int(0x7fffffff), n), k);
      return mse(model.predict(x, s.times[k]!, cond), target);
    });
    total += l.dataSync()[0]!;
    l.dispose();
  }
  return total / draws;
}

/** Mean squared error as a scalar. */
export function mse(a: Tensor, b: Tensor): tf.Scalar {
  return tf.mean(tf.square(tf.sub(a, b)));
}

export interface LatentDecoder {
  /** Latents in the model's layout (flow: packed) -> RGB images. */
  decode(latents: Tensor): RgbImage[];
  dispose(): void;
}

/** The attacked bundle's autoencoder (or none, for a pixel-latent bundle) as a latent decoder for `model`. */
export async function latentDecoder(model: BaselineModel, bundleDir: string): Promise<LatentDecoder> {
  const { manifest } = readManifest(bundleDir);
  const kind = (manifest['latent'] as { kind?: string } | undefined)?.kind;
  const file = join(bundleDir, 'ae.safetensors');
  const ae = kind === 'ae' && existsSync(file) ? await loadAutoEncoderFile(file) : null;
  if (kind === 'ae' && !ae) throw new Error(`${bundleDir}: the latent is an autoencoder's, but ae.safetensors is missing`);
  const [, h, w] = model.latent;
  return {
    decode: (latents) => {
      const x = tf.tidy(() => {
        const lat = model.family === 'flow' ? unpackLatents(latents, h, w) : latents;
        return ae ? ae.decode(lat) : lat.clone();
      });
      const imgs = toRgbImages(x);
      x.dispose();
      return imgs;
    },
    dispose: () => ae?.dispose(),
  };
}

/** The note every white-box result of a wrapper subject carries. */
export function transferNote(subject: AttackSubject): Record<string, unknown> {
  return subject.whiteBoxIsBase
    ? { transfer: 'the attacked model is an inference wrapper: the search ran on its base model (white-box) and was measured through the wrapper, a transfer attack' }
    : {};
}
