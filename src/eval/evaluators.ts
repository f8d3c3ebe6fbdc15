// The shipped evaluators of emoji-world, as functions: concept/style detection, the feature space
// of FID/KID, and the CLIP score. All are trained on real renders only (see models/*/manifest.json),
// and every metric built on them is named for what it is:
//   "FID (emoji classifier features)", "KID (emoji classifier features)", "CLIP score (emoji dual encoder)".
//
// Images go in as RgbImage[] (any size; resampled) or as a tensor of generator output: NCHW
// [N, 3, H, W] in [-1, 1] by default (the sampler/autoencoder convention), or NHWC with layout 'NHWC'.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf, type Tensor } from '../engine/tf.js';
import { Classifier, type Prediction } from '../models/classifier/classifier.js';
import { imagesToInput, tensorToInput, type RgbImage } from '../models/classifier/images.js';
import { EmojiClip } from '../models/clip/clip.js';

/** Metric names, as every report and output must spell them. */
export const METRIC_NAMES = {
  clipScore: 'CLIP score (emoji dual encoder)',
  fid: 'FID (emoji classifier features)',
  kid: 'KID (emoji classifier features)',
  detection: 'detection rate (emoji classifier)',
  /** eval/nudity.ts: nsfwjs, a stand-in for the paper's NudeNet. */
  nudity: 'nudity rate (nsfwjs MobileNetV2)',
} as const;

/** The package root (two levels above this file, from src/ and from dist/). */
function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Shipped evaluator names and their folders under models/. */
export const EVALUATORS = { classifier: 'emoji-classifier', clip: 'emoji-clip' } as const;

/** Path of a shipped evaluator's weights. */
export function evaluatorPath(which: keyof typeof EVALUATORS): string {
  return join(packageRoot(), 'models', EVALUATORS[which], 'model.safetensors');
}

const cache = new Map<string, Promise<Classifier | EmojiClip>>();

function cached<T extends Classifier | EmojiClip>(key: string, load: () => Promise<T>): Promise<T> {
  let p = cache.get(key) as Promise<T> | undefined;
  if (!p) {
    p = load();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** The concept/style classifier (default: the shipped one), loaded once per path. */
export function loadClassifier(path: string = evaluatorPath('classifier')): Promise<Classifier> {
  const full = resolve(path);
  return cached(`classifier:${full}`, async () => {
    if (!existsSync(full)) throw new Error(`classifier weights not found: ${full}`);
    return Classifier.load(full);
  });
}

/** The emoji dual encoder (default: the shipped one), loaded once per path. */
export function loadClip(path: string = evaluatorPath('clip')): Promise<EmojiClip> {
  const full = resolve(path);
  return cached(`clip:${full}`, async () => {
    if (!existsSync(full)) throw new Error(`emoji CLIP weights not found: ${full}`);
    return EmojiClip.load(full);
  });
}

/** Images as evaluator input: RgbImage[] or a generator tensor (NCHW in [-1, 1] unless layout says NHWC). */
export type EvalImages = readonly RgbImage[] | Tensor;

export function toEvalInput(images: EvalImages, size: number, layout: 'NCHW' | 'NHWC' = 'NCHW'): Tensor {
  return images instanceof tf.Tensor ? tensorToInput(images, size, layout) : imagesToInput(images as readonly RgbImage[], size);
}

export interface EvalOptions {
  /** Layout of a tensor input (default NCHW). */
  layout?: 'NCHW' | 'NHWC';
  /** Weights file (default: the shipped evaluator). */
  model?: string;
}

/** Top-k concepts and the style of each image. */
export async function detect(images: EvalImages, k = 5, opts: EvalOptions = {}): Promise<Prediction[]> {
  const clf = await loadClassifier(opts.model);
  const x = toEvalInput(images, clf.size, opts.layout);
  try {
    return clf.predict(x, k);
  } finally {
    x.dispose();
  }
}

/** Concept and style probabilities [N, #concepts], [N, #styles] as host arrays, with the label lists. */
export async function classify(images: EvalImages, opts: EvalOptions = {}): Promise<{
  concepts: readonly string[];
  styles: readonly string[];
  conceptProbs: Float32Array;
  styleProbs: Float32Array;
}> {
  const clf = await loadClassifier(opts.model);
  const x = toEvalInput(images, clf.size, opts.layout);
  try {
    const { concepts, styles } = clf.probabilities(x);
    const out = { concepts: clf.config.concepts, styles: clf.config.styles, conceptProbs: concepts.dataSync() as Float32Array, styleProbs: styles.dataSync() as Float32Array };
    tf.dispose([concepts, styles]);
    return out;
  } finally {
    x.dispose();
  }
}

/**
 * Penultimate features of the concept classifier, [N, F] row-major: the feature space of
 * "FID/KID (emoji classifier features)".
 */
export async function features(images: EvalImages, opts: EvalOptions = {}): Promise<{ dim: number; data: Float32Array }> {
  const clf = await loadClassifier(opts.model);
  const x = toEvalInput(images, clf.size, opts.layout);
  try {
    const f = clf.features(x);
    const out = { dim: f.shape[1]!, data: f.dataSync() as Float32Array };
    f.dispose();
    return out;
  } finally {
    x.dispose();
  }
}

/**
 * "CLIP score (emoji dual encoder)" of each (image, prompt) pair: 100 * max(cos(image, text), 0), as
 * the standard CLIP score but with mce's emoji dual encoder. `prompts` has one prompt per image, or
 * one prompt for all.
 */
export async function clipScore(images: EvalImages, prompts: string | readonly string[], opts: EvalOptions = {}): Promise<number[]> {
  const clip = await loadClip(opts.model);
  const x = toEvalInput(images, clip.size, opts.layout);
  try {
    const n = x.shape[0]!;
    const list = typeof prompts === 'string' ? [prompts] : prompts;
    if (list.length !== 1 && list.length !== n) throw new Error(`clipScore: ${n} images but ${list.length} prompts`);
    const ie = clip.encodeImages(x);
    const te = clip.encodeTexts(list);
    const s = tf.tidy(() => tf.mul(tf.relu(tf.sum(tf.mul(ie, list.length === 1 ? te.tile([n, 1]) : te), 1)), 100));
    const out = Array.from(s.dataSync());
    tf.dispose([ie, te, s]);
    return out;
  } finally {
    x.dispose();
  }
}

/** Cosine similarities [images x texts] under the emoji dual encoder (for zero-shot use). */
export async function clipSimilarity(images: EvalImages, texts: readonly string[], opts: EvalOptions = {}): Promise<{ rows: number; cols: number; data: Float32Array }> {
  const clip = await loadClip(opts.model);
  const x = toEvalInput(images, clip.size, opts.layout);
  try {
    const ie = clip.encodeImages(x);
    const te = clip.encodeTexts(texts);
    const s = tf.matMul(ie, te, false, true);
    const out = { rows: ie.shape[0]!, cols: te.shape[0]!, data: s.dataSync() as Float32Array };
    tf.dispose([ie, te, s]);
    return out;
  } finally {
    x.dispose();
  }
}

/** Drop the cached models (tests, long-running servers). */
export async function unloadEvaluators(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const p of all) {
    try {
      (await p).dispose();
    } catch {
      /* failed loads have nothing to free */
    }
  }
}
