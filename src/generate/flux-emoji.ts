// Text-to-image with a shipped FLUX-architecture model bundle (flux-emoji): load the bundle
// (manifest + transformer + text encoder + autoencoder), then sample with the FLUX schedule (time
// shift), Euler steps and classifier-free guidance, and decode to RGB.
//
// Bundle folder (models/flux-emoji/):
//   manifest.json             format 'mce-flux-emoji/1', FluxParams, text encoder params, latent
//                             geometry, sampling defaults, file hashes, training record, quality
//   transformer.safetensors   the FLUX transformer, reference parameter names (BF16)
//   text_encoder.safetensors  CLIP-named text transformer (BF16) + 'vocab.clip_ids' (I32)
//   ae.safetensors            the FLUX autoencoder, reference names (F32), params in its metadata
//
// Determinism: image k of a call uses noise randn(mixSeed(seed, k)) in the unpacked latent, so the
// same seed and flags give the same pixels (and the PNG encoder gives the same bytes).
import { tf, type Tensor } from '../engine/tf.js';
import { randnBatch } from '../engine/rng.js';
import type { AutoEncoder } from '../models/flux/autoencoder.js';
import { makeImgIds, makeTxtIds, packLatents, unpackLatents } from '../models/flux/pack.js';
import type { FluxParams } from '../models/flux/params.js';
import { validateFluxWeights, type FluxWeights } from '../models/flux/weights.js';
import type { TextEncoder, TextEncoderParams } from '../models/text/encoder.js';
import { loadBundleParts, readBundle } from './bundle.js';
import { eulerSample } from '../sampling/euler.js';
import { fluxDenoiser } from '../sampling/flux.js';
import { fluxSchedule } from '../sampling/schedule.js';
import { guidanceScale, type GuidanceInterval } from '../sampling/guidance.js';

export const FLUX_EMOJI_FORMAT = 'mce-flux-emoji/1';

export { ModelLoadError, resolveModelDir, SHIPPED_MODEL_NAMES } from './bundle.js';

export interface FluxEmojiManifest {
  format: string;
  name: string;
  flux: FluxParams;
  text_encoder: { params: TextEncoderParams; vocab_rows: number };
  latent: { kind: 'ae' | 'pixels'; shape: [number, number, number]; packed_tokens: number; packed_channels: number };
  image_size: number;
  sampling: { steps: number; cfg: number; shift: boolean };
  files: Record<string, { sha256: string; bytes: number }>;
  [k: string]: unknown;
}

/** A loaded model bundle. */
export interface FluxEmojiModel {
  dir: string;
  manifest: FluxEmojiManifest;
  cfg: FluxParams;
  weights: FluxWeights;
  text: TextEncoder;
  ae: AutoEncoder | null;
  dispose(): void;
}

/** Load a bundle (one clear line on a bad path or bad files). */
export async function loadFluxEmoji(nameOrPath: string): Promise<FluxEmojiModel> {
  const { dir, manifest, file } = readBundle<FluxEmojiManifest>(nameOrPath, FLUX_EMOJI_FORMAT);
  const parts = await loadBundleParts(dir, file, manifest, 'transformer.safetensors', (w) => validateFluxWeights(manifest.flux, w));
  return { dir, manifest, cfg: manifest.flux, ...parts, weights: parts.weights as FluxWeights };
}

export interface GenerateOptions {
  prompt: string;
  seed?: number;
  steps?: number;
  cfg?: number;
  n?: number;
  /** Index of the call's first image in a larger sweep (default 0): image i of the call is image first + i of the sweep, its noise seeded by mixSeed(seed, first + i). */
  first?: number;
  /** Also decode the predicted x0 at every step. */
  trajectory?: boolean;
  /** Negative / unconditional prompt for CFG (default ""). */
  negative?: string;
  /**
   * Guide only while the sampler's time (1 = noise) is in [lo, hi] (sampling/guidance.ts). Default:
   * every step, as mce erase, the baselines and the attacks sample.
   */
  cfgInterval?: GuidanceInterval | null;
}

/** An RGB image, H x W x 3 bytes. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface GenerateResult {
  images: RgbImage[];
  /** With trajectory: trajectory[k][i] is image i's predicted x0 at step k. */
  trajectory?: RgbImage[][];
  steps: number;
  cfg: number;
  seed: number;
  timesteps: number[];
}

/** NCHW [-1, 1] -> one RGB byte image per batch item. */
export function toRgbImages(x: Tensor): RgbImage[] {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const t = tf.tidy(() => tf.clipByValue(tf.round(tf.mul(tf.add(tf.clipByValue(x, -1, 1), 1), 127.5)), 0, 255).transpose([0, 2, 3, 1]));
  const data = t.dataSync();
  t.dispose();
  const out: RgbImage[] = [];
  for (let i = 0; i < n; i++) {
    const img = new Uint8Array(h * w * 3);
    for (let j = 0; j < h * w; j++) for (let ch = 0; ch < 3; ch++) img[j * 3 + ch] = c === 3 ? data[(i * h * w + j) * c + ch]! : data[(i * h * w + j) * c]!;
    out.push({ width: w, height: h, data: img });
  }
  return out;
}

/** Packed latents -> RGB images (decode with the autoencoder, or unpack pixels). */
export function decodePacked(model: FluxEmojiModel, packed: Tensor): RgbImage[] {
  const [, lh, lw] = model.manifest.latent.shape;
  const x = tf.tidy(() => {
    const lat = unpackLatents(packed, lh, lw);
    return model.ae ? model.ae.decode(lat) : lat;
  });
  const imgs = toRgbImages(x);
  x.dispose();
  return imgs;
}

/** Sample n images for a prompt. */
export function generate(model: FluxEmojiModel, opts: GenerateOptions): GenerateResult {
  const m = model.manifest;
  const seed = opts.seed ?? 0;
  const steps = opts.steps ?? m.sampling.steps;
  const cfg = opts.cfg ?? m.sampling.cfg;
  const cfgInterval = opts.cfgInterval ?? null;
  const n = opts.n ?? 1;
  const [lc, lh, lw] = m.latent.shape;
  const tokens = m.latent.packed_tokens;
  const timesteps = fluxSchedule(steps, { imageSeqLen: tokens, shift: m.sampling.shift });
  const guided = cfg !== 1;
  const prompts = Array.from({ length: n }, () => opts.prompt);
  const negatives = Array.from({ length: n }, () => opts.negative ?? '');
  const enc = model.text.encode(guided ? [...prompts, ...negatives] : prompts);
  const b = enc.txt.shape[0]!;
  const img_ids = makeImgIds(b, lh / 2, lw / 2);
  const txt_ids = makeTxtIds(b, enc.txt.shape[1]!);
  const den = fluxDenoiser(model.cfg, model.weights, { img_ids, txt: enc.txt, txt_ids, y: enc.y });
  const per = lc * lh * lw;
  const noise = randnBatch(n, per, seed, opts.first ?? 0);
  const x0 = tf.tidy(() => packLatents(tf.tensor4d(noise, [n, lc, lh, lw])));
  const velocity = (x: Tensor, t: number): Tensor =>
    tf.tidy(() => {
      if (!guided) return den.velocity(x, t);
      const v = den.velocity(tf.concat([x, x], 0), t);
      const vc = v.slice([0, 0, 0], [n, -1, -1]);
      const vu = v.slice([n, 0, 0], [n, -1, -1]);
      return tf.add(vu, tf.mul(tf.sub(vc, vu), guidanceScale(cfg, t, cfgInterval)));
    });
  const res = eulerSample(velocity, x0, timesteps, { trajectory: opts.trajectory ?? false });
  const images = decodePacked(model, res.final);
  let trajectory: RgbImage[][] | undefined;
  if (opts.trajectory) trajectory = res.x0Preds!.map((p) => decodePacked(model, p));
  tf.dispose([res.final, ...(res.xs ?? []), ...(res.x0Preds ?? []), x0, img_ids, txt_ids, enc.txt, enc.y]);
  den.dispose();
  return { images, trajectory, steps, cfg, seed, timesteps };
}

/** Tile images into a grid (cols per row), with a `pad`-pixel white gutter. */
export function imageGrid(rows: RgbImage[][], pad = 2): RgbImage {
  const h = rows[0]![0]!.height;
  const w = rows[0]![0]!.width;
  const cols = Math.max(...rows.map((r) => r.length));
  const W = cols * w + (cols + 1) * pad;
  const H = rows.length * h + (rows.length + 1) * pad;
  const data = new Uint8Array(W * H * 3).fill(255);
  rows.forEach((row, r) =>
    row.forEach((img, c) => {
      for (let y = 0; y < h; y++) {
        const dst = ((pad + r * (h + pad) + y) * W + pad + c * (w + pad)) * 3;
        data.set(img.data.subarray(y * w * 3, (y + 1) * w * 3), dst);
      }
    }),
  );
  return { width: W, height: H, data };
}

/** Lay n images out in a near-square grid. */
export function squareGrid(images: RgbImage[], pad = 2): RgbImage {
  const cols = Math.ceil(Math.sqrt(images.length));
  const rows: RgbImage[][] = [];
  for (let i = 0; i < images.length; i += cols) rows.push(images.slice(i, i + cols));
  return imageGrid(rows, pad);
}
