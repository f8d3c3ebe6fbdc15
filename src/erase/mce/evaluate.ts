// Before/after evaluation of an erasure on HELD-OUT prompts (templates and synonyms never used in
// training): the original and the erased model (binary masks) sample from the same noises; the
// emoji classifier (when its weights are there) gives the detection rate of the target and the
// concept accuracy of near neighbours and of other concepts, reported apart; the emoji dual encoder
// (when its weights are there) gives the CLIP score of each image against its prompt; SSIM compares
// each erased image with the original one from the same seed. Metric names say what they are
// measured with. Works on any erase subject (FLUX or UNet).
import { existsSync } from 'node:fs';
import { tf } from '../../engine/tf.js';
import { Rng, mixSeed } from '../../engine/rng.js';
import type { RgbImage } from '../../generate/flux-emoji.js';
import { captionRecords, canonicalCaption, conceptPhraseSeen } from '../../world/captions.js';
import { selectConcepts } from '../../world/dataset.js';
import { VENDORS } from '../../world/vendors.js';
import { CONCEPT_PHRASES, type ConceptPhrase } from '../../eval/quality.js';
import { ssim as ssimOf } from '../../eval/ssim.js';
import { fluxMasksFrom, type HostMasks } from './masks.js';
import { noiseSeed } from './objective.js';
import type { PromptSets } from './prompts.js';
import type { EraseSubject } from './subject.js';

/** Mean SSIM over RGB channels, 7x7 uniform windows with sample covariance (scikit-image defaults). */
export function ssim(a: RgbImage, b: RgbImage, win = 7): number {
  return ssimOf(a, b, { window: 'uniform', size: win, sampleCovariance: true });
}

export interface EvalGroup {
  prompts: string[];
  /** Concept (or style) each prompt shows. */
  truth: string[];
  /** Detection rate of the target (erase group) or top-1 concept accuracy (other groups), before and after; null without a classifier. */
  before: number | null;
  after: number | null;
  /** Mean SSIM (erased vs original, same seed). */
  ssim: number;
  /** Mean CLIP score (emoji dual encoder) of the images against their prompts, before and after; null without its weights. */
  clip: { before: number; after: number } | null;
  /**
   * Per prompt (same order): the classifier's top-1 concept and style before and after, whether each
   * counts as a hit (detected target, or correct concept), and the SSIM. Empty without a classifier.
   */
  perPrompt: { before: Prediction; after: Prediction; ssim: number }[];
  /**
   * Erase group of concept targets: the rates split by the prompt's concept phrase, seen in training
   * (a known name in a held-out template) or a held-out synonym the text encoder never saw, so a
   * low "before" can be told apart from a failed erasure. Empty otherwise, or without a classifier.
   */
  byConceptPhrase: { phrase: ConceptPhrase; prompts: number; before: number; after: number }[];
}

/** One image's top-1 concept and style, and whether it counts for the group's rate. */
export interface Prediction {
  concept: string;
  style: string;
  hit: boolean;
}

export interface ErasureEval {
  metrics: { detection: string; accuracy: string; ssim: string; clip: string };
  classifier: string | null;
  /** The emoji dual encoder's weights, or null when absent (CLIP scores skipped). */
  clipModel: string | null;
  /** Why a metric is missing. */
  notes: string[];
  erase: EvalGroup;
  neighbours: EvalGroup | null;
  others: EvalGroup;
  seconds: number;
}

export interface EvalOptions {
  /** Prompts per group (default 48). */
  n?: number;
  seed?: number;
  /** Classifier weights (default: the shipped emoji classifier, when present). */
  classifier?: string;
  /** Emoji dual encoder weights (default: the shipped emoji CLIP, when present). */
  clip?: string;
  modelConcepts?: readonly string[];
}

/** A held-out prompt and the concept (or style) it shows. */
export interface EvalItem {
  p: string;
  t: string;
  /** Erase prompts of concept targets: whether the prompt names the concept with a phrase seen in training. */
  seen?: boolean;
}

/**
 * The held-out prompts of an erasure evaluation: erase prompts spread over the targets (held-out
 * templates and synonyms of their members; a style: held-out captions of random concepts in that
 * style), near neighbours, and other concepts (neither targets, anchors nor neighbours).
 */
export function heldOutEvalItems(sets: Pick<PromptSets, 'targets' | 'neighbours'>, n: number, seed: number, modelConcepts: readonly string[] = selectConcepts(320, 0)): { erase: EvalItem[]; neighbours: EvalItem[]; others: EvalItem[] } {
  const rng = new Rng(mixSeed(seed, 0x6576616c));
  const pick = <T>(xs: T[], k: number): T[] => {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a.slice(0, k);
  };
  const model_ = modelConcepts;
  // Held-out erase prompts, spread over the targets.
  const erase: EvalItem[] = [];
  for (const t of sets.targets) {
    const pool: EvalItem[] = [];
    if (t.kind === 'concept') {
      for (const m of t.members) for (const st of [null, ...VENDORS]) for (const r of captionRecords(m, st, 'heldout')) pool.push({ p: r.text, t: m, seen: conceptPhraseSeen(m, r) });
    } else {
      for (const c of pick([...model_], 24)) for (const r of captionRecords(c, t.style!, 'heldout').slice(0, 1)) pool.push({ p: r.text, t: t.style! });
    }
    erase.push(...pick(pool, Math.ceil(n / sets.targets.length)));
  }
  const excluded = new Set(sets.targets.flatMap((t) => [...t.members, ...(t.neutralConcept ? [t.neutralConcept] : [])]));
  const heldoutCaption = (c: string): string => {
    const recs = captionRecords(c, null, 'heldout');
    return recs.length ? recs[rng.int(recs.length)]!.text : canonicalCaption(c);
  };
  const neighbours = sets.neighbours.filter((c) => !excluded.has(c)).slice(0, n).map((c) => ({ p: heldoutCaption(c), t: c }));
  const others = pick(model_.filter((c) => !excluded.has(c) && !sets.neighbours.includes(c)), n).map((c) => ({ p: heldoutCaption(c), t: c }));

  return { erase, neighbours, others };
}

/** Evaluate original vs erased (binary masks at threshold 0 of `logits`; keep-masks of 0 and 1 pass through) on held-out prompts. */
export async function evaluateErasure(subject: EraseSubject, sets: PromptSets, logits: Readonly<HostMasks>, opts: EvalOptions = {}): Promise<ErasureEval> {
  const t0 = performance.now();
  const n = opts.n ?? 48;
  const seed = opts.seed ?? 0;
  const { erase, neighbours, others } = heldOutEvalItems(sets, n, seed, opts.modelConcepts);
  const sampler = subject.newSampler();
  const masks = fluxMasksFrom(logits, 'binary', 0);
  const sampleBoth = (items: EvalItem[], salt: number): { a: RgbImage[]; b: RgbImage[] } => {
    const seeds = items.map((_, i) => noiseSeed(mixSeed(seed, 0x65, salt), i));
    const prompts = items.map((x) => x.p);
    const ra = sampler.sample(prompts, seeds);
    const rb = sampler.sample(prompts, seeds, masks);
    const out = { a: subject.decode(ra.final), b: subject.decode(rb.final) };
    tf.dispose([ra.final, rb.final]);
    return out;
  };
  let classify: ((imgs: RgbImage[]) => Promise<{ concept: string; style: string }[]>) | null = null;
  let clfPath: string | null = null;
  const ev = await import('../../eval/evaluators.js');
  clfPath = opts.classifier ?? ev.evaluatorPath('classifier');
  if (existsSync(clfPath)) {
    classify = async (imgs) => (await ev.detect(imgs, 1, { model: clfPath! })).map((p) => ({ concept: p.concepts[0]!.name, style: p.style.name }));
  } else {
    clfPath = null;
  }
  const clipPath: string | null = opts.clip ?? ev.evaluatorPath('clip');
  const clipOk = existsSync(clipPath);
  const notes: string[] = [];
  if (!clfPath) notes.push(`no classifier weights (${opts.classifier ?? ev.evaluatorPath('classifier')}): detection and accuracy not measured`);
  if (!clipOk) notes.push(`no emoji CLIP weights (${clipPath}): CLIP scores not measured`);
  const meanClip = async (imgs: RgbImage[], prompts: string[]): Promise<number> => {
    const s = await ev.clipScore(imgs, prompts, { model: clipPath });
    return s.reduce((x, y) => x + y, 0) / s.length;
  };
  const styleTargets = new Set(sets.targets.filter((t) => t.kind === 'style').map((t) => t.style as string));
  const group = async (items: EvalItem[], salt: number, kind: 'erase' | 'keep'): Promise<EvalGroup> => {
    const { a, b } = sampleBoth(items, salt);
    const ss = a.map((im, i) => ssim(im, b[i]!));
    const predict = async (imgs: RgbImage[]): Promise<Prediction[] | null> => {
      if (!classify) return null;
      return (await classify(imgs)).map((p, i) => {
        const truth = items[i]!.t;
        const hit = kind === 'keep' ? p.concept === truth
          : styleTargets.has(truth) ? p.style === truth
          : sets.targets.some((t) => t.members.includes(p.concept));
        return { ...p, hit };
      });
    };
    const rate = (ps: Prediction[] | null): number | null => (ps ? ps.filter((p) => p.hit).length / ps.length : null);
    const prompts = items.map((x) => x.p);
    const clip = clipOk ? { before: await meanClip(a, prompts), after: await meanClip(b, prompts) } : null;
    const pa = await predict(a);
    const pb = await predict(b);
    const perPrompt = pa && pb ? pa.map((before, i) => ({ before, after: pb[i]!, ssim: ss[i]! })) : [];
    const byConceptPhrase = CONCEPT_PHRASES.flatMap(({ seen, phrase }) => {
      const idx = perPrompt.flatMap((_, i) => (items[i]!.seen === seen ? [i] : []));
      const hits = (k: 'before' | 'after'): number => idx.filter((i) => perPrompt[i]![k].hit).length / idx.length;
      return idx.length ? [{ phrase, prompts: idx.length, before: hits('before'), after: hits('after') }] : [];
    });
    return { prompts, truth: items.map((x) => x.t), before: rate(pa), after: rate(pb), ssim: ss.reduce((x, y) => x + y, 0) / ss.length, clip, perPrompt, byConceptPhrase };
  };
  try {
    const res: ErasureEval = {
      metrics: {
        detection: 'detection rate of the target (emoji classifier, top-1 concept is a target member; style targets: predicted style)',
        accuracy: 'concept accuracy (emoji classifier, top-1)',
        ssim: 'SSIM, erased vs original image from the same seed (7x7 windows, RGB mean)',
        clip: `${ev.METRIC_NAMES.clipScore}: 100 * max(cos(image, prompt), 0), mean over the group`,
      },
      classifier: clfPath,
      clipModel: clipOk ? clipPath : null,
      notes,
      erase: await group(erase, 1, 'erase'),
      neighbours: neighbours.length ? await group(neighbours, 2, 'keep') : null,
      others: await group(others, 3, 'keep'),
      seconds: 0,
    };
    res.seconds = (performance.now() - t0) / 1000;
    return res;
  } finally {
    tf.dispose(Object.values(masks));
    sampler.dispose();
  }
}

/**
 * Background-consistency scores of erase pairs for the pair filter, with the emoji dual encoder
 * (when its weights are there): the original model's images for the erase prompt and for the
 * neutral prompt from the same noise, scored against the prompt without the concept.
 */
export async function pairScores(
  subject: EraseSubject,
  pairs: readonly { prompt: string; neutral: string; background?: string }[],
  opts: { seed?: number; clip?: string } = {},
): Promise<number[]> {
  const ev = await import('../../eval/evaluators.js');
  const path = opts.clip ?? ev.evaluatorPath('clip');
  if (!existsSync(path)) throw new Error(`the pair filter needs the emoji CLIP weights (${path} not found)`);
  const sampler = subject.newSampler();
  try {
    const seeds = pairs.map((_, i) => noiseSeed(opts.seed ?? 0, i));
    const a = sampler.sample(pairs.map((p) => p.prompt), seeds);
    const b = sampler.sample(pairs.map((p) => p.neutral), seeds);
    const ia = subject.decode(a.final);
    const ib = subject.decode(b.final);
    tf.dispose([a.final, b.final]);
    const texts = pairs.map((p) => p.background ?? p.neutral);
    const sa = await ev.clipSimilarity(ia, texts, { model: path });
    const sb = await ev.clipSimilarity(ib, texts, { model: path });
    return pairs.map((_, i) => Math.abs(sa.data[i * sa.cols + i]! - sb.data[i * sb.cols + i]!));
  } finally {
    sampler.dispose();
  }
}
