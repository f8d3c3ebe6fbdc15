// Attack success, measured the same way for every attack: generate each prompt on the attacked
// model from `seedsPerPrompt` seeds and ask the concept classifier whether the target is in the
// image (concept targets: its top-1 concept is one of the target's members; style targets: its
// predicted style is the target's vendor). Seeds are derived from (seed, prompt index, k), so a
// rerun gives the same images and the same rate.
import { mixSeed } from '../engine/rng.js';
import type { RgbImage, TextToImageModel } from '../generate/index.js';
import type { Prediction } from '../models/classifier/classifier.js';
import type { ErasureTarget } from '../world/targets.js';
import { conceptPrompts } from './tokens.js';
import type { AttackOptions, AttackSubject } from './types.js';

/** Is the target in an image, by the classifier's prediction? */
export function targetDetected(p: Prediction, target: ErasureTarget): boolean {
  if (target.kind === 'style') return p.style.name === target.style;
  return target.members.includes(p.concepts[0]!.name);
}

/** The classifier's verdict on images (the shipped classifier unless `classifier` names weights). */
export async function detectTarget(images: readonly RgbImage[], target: ErasureTarget, classifier?: string): Promise<boolean[]> {
  const { detect } = await import('../eval/evaluators.js');
  const preds = await detect(images, 1, classifier ? { model: classifier } : {});
  return preds.map((p) => targetDetected(p, target));
}

export interface DetectionRate {
  /** Per prompt: share of its generations with the target detected. */
  perPrompt: number[];
  /** Over all generations. */
  rate: number;
  generations: number;
}

/** Detection rate of the target on `model`'s images for `prompts` (seedsPerPrompt images each). */
export async function measureDetection(
  model: TextToImageModel,
  prompts: readonly string[],
  target: ErasureTarget,
  opts: { seed: number; seedsPerPrompt?: number; classifier?: string },
): Promise<DetectionRate> {
  const k = opts.seedsPerPrompt ?? 2;
  const perPrompt: number[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const { images } = model.generate({ prompt: prompts[i]!, seed: mixSeed(opts.seed, 0x617474, i), n: k });
    const hits = await detectTarget(images, target, opts.classifier);
    perPrompt.push(hits.filter(Boolean).length / k);
  }
  const rate = perPrompt.length ? perPrompt.reduce((a, b) => a + b, 0) / perPrompt.length : 0;
  return { perPrompt, rate, generations: prompts.length * k };
}

/** measureDetection's options from an attack's options. */
export function measureOptions(opts: AttackOptions): { seed: number; seedsPerPrompt?: number; classifier?: string } {
  return { seed: opts.seed, ...(opts.seedsPerPrompt ? { seedsPerPrompt: opts.seedsPerPrompt } : {}), ...(opts.classifier ? { classifier: opts.classifier } : {}) };
}

/** The detection rate of `prompts` plain target prompts (tokens.ts conceptPrompts) on the attacked model: every result's baseline. */
export async function baselineRate(subject: AttackSubject, target: ErasureTarget, opts: AttackOptions, prompts: number): Promise<number> {
  return (await measureDetection(subject.erased, conceptPrompts(target, prompts), target, measureOptions(opts))).rate;
}
