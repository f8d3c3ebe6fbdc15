// Text-to-image with a shipped SD-style diffusion bundle (sd-emoji): load the bundle (manifest +
// UNet + text encoder + autoencoder), then sample with deterministic DDIM (eta 0, SD's "leading"
// timesteps) and classifier-free guidance inside each step, and decode the latent to RGB.
//
// Bundle folder (models/sd-emoji/):
//   manifest.json             format 'mce-sd-emoji/1', UnetParams, text encoder params, latent
//                             geometry, schedule, sampling defaults, file hashes, training record, quality
//   unet.safetensors          the UNet, diffusers parameter names (BF16)
//   text_encoder.safetensors  CLIP-named text transformer (BF16) + 'vocab.clip_ids' (I32)
//   ae.safetensors            the flux-emoji autoencoder (a copy: the bundle is self-contained)
//
// Determinism: image k of a call starts from the latent noise randn(mixSeed(seed, k)) (NCHW), so the
// same seed and flags give the same pixels (and the PNG encoder gives the same bytes).
import { tf, type Tensor } from '../engine/tf.js';
import { randnBatch } from '../engine/rng.js';
import type { AutoEncoder } from '../models/flux/autoencoder.js';
import type { TextEncoder, TextEncoderParams } from '../models/text/encoder.js';
import { unetDenoiser, validateUnetWeights, type UnetParams, type UnetWeights } from '../models/unet/index.js';
import { ddimSample, guidedEps } from '../sampling/ddim.js';
import { guidanceScale } from '../sampling/guidance.js';
import { ddimPlan } from '../sampling/diffusion-schedule.js';
import { loadBundleParts, readBundle } from './bundle.js';
import { toRgbImages, type GenerateOptions, type GenerateResult, type RgbImage } from './flux-emoji.js';

export const SD_EMOJI_FORMAT = 'mce-sd-emoji/1';

export interface SdEmojiManifest {
  format: string;
  name: string;
  unet: UnetParams;
  text_encoder: { params: TextEncoderParams; vocab_rows: number };
  latent: { kind: 'ae' | 'pixels'; shape: [number, number, number] };
  image_size: number;
  sampling: { steps: number; cfg: number };
  files: Record<string, { sha256: string; bytes: number }>;
  [k: string]: unknown;
}

/** A loaded sd-emoji bundle. */
export interface SdEmojiModel {
  dir: string;
  manifest: SdEmojiManifest;
  cfg: UnetParams;
  weights: UnetWeights;
  text: TextEncoder;
  ae: AutoEncoder | null;
  dispose(): void;
}

/** Load a bundle (one clear line on a bad path or bad files). */
export async function loadSdEmoji(nameOrPath: string): Promise<SdEmojiModel> {
  const { dir, manifest, file } = readBundle<SdEmojiManifest>(nameOrPath, SD_EMOJI_FORMAT);
  const parts = await loadBundleParts(dir, file, manifest, 'unet.safetensors', (w) => validateUnetWeights(manifest.unet, w));
  return { dir, manifest, cfg: manifest.unet, ...parts, weights: parts.weights as UnetWeights };
}

/** NCHW latents -> RGB images (decoded by the autoencoder, or pixels as they are). */
export function decodeLatents(model: SdEmojiModel, z: Tensor): RgbImage[] {
  const x = model.ae ? model.ae.decode(z) : z;
  const imgs = toRgbImages(x);
  if (x !== z) x.dispose();
  return imgs;
}

/** Sample n images for a prompt: DDIM with CFG (cfg 1 = off); `steps` are DDIM steps. */
export function generateSd(model: SdEmojiModel, opts: GenerateOptions): GenerateResult {
  const m = model.manifest;
  const seed = opts.seed ?? 0;
  const steps = opts.steps ?? m.sampling.steps;
  const cfg = opts.cfg ?? m.sampling.cfg;
  const cfgInterval = opts.cfgInterval ?? null;
  const n = opts.n ?? 1;
  const plan = ddimPlan(steps);
  const [lc, lh, lw] = m.latent.shape;
  const per = lc * lh * lw;
  const noise = randnBatch(n, per, seed, opts.first ?? 0);
  const xT = tf.tensor4d(noise, [n, lc, lh, lw]);
  const guided = cfg !== 1;
  const cond = model.text.encode(Array.from({ length: n }, () => opts.prompt));
  const uncond = guided ? model.text.encode([opts.negative ?? '']) : null;
  const den = unetDenoiser(model.cfg, model.weights, { context: cond.txt, uncond: uncond?.txt ?? null });
  // DDIM timesteps run 999 -> 0: the guidance interval reads them as t / 1000.
  const eps = guided ? guidedEps(den.pairEpsFn(), (t) => guidanceScale(cfg, t / 1000, cfgInterval)) : den.epsFn();
  const res = ddimSample(eps, xT, plan, { trajectory: opts.trajectory ?? false });
  const images = decodeLatents(model, res.final);
  const trajectory = opts.trajectory ? res.x0Preds!.map((p) => decodeLatents(model, p)) : undefined;
  // res.xs[N] is res.final; dispose each tensor once.
  tf.dispose([...new Set([res.final, ...(res.xs ?? []), ...(res.x0Preds ?? [])]), xT, cond.txt, cond.y]);
  if (uncond) tf.dispose([uncond.txt, uncond.y]);
  den.dispose();
  return { images, trajectory, steps, cfg, seed, timesteps: [...plan.timesteps] };
}
