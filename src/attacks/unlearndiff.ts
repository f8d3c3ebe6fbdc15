// UnlearnDiffAtk (Zhang et al., ECCV 2024; OPTML-Group/Diffusion-MU-Attack): the erased model's
// own denoising loss used as a classifier. Adversarial tokens prepended to a concept prompt are
// optimised so that the ERASED model reconstructs a target image of the concept:
//   loss = || p_erased(x_t, t, adv + prompt) - target ||^2,  x_t = the target image noised to a random step
// (target: the noise for the UNet, the velocity eps - x0 for FLUX). The target images are the
// original model's generations of the concept prompt (seeded), as the paper takes them from the
// base SD. Tokens are hard by PEZ's projection (the repository's text_grad attacker); of the
// prompts visited, the one with the lowest loss on fixed draws over all target images is kept.
// Published: 5 prepended tokens (k), lr 0.01, weight decay 0.1, 40 iterations per prompt.
import { Rng, mixSeed } from '../engine/rng.js';
import { disposeCond, type BaselineModel } from '../erase/baselines/family.js';
import type { ErasureTarget } from '../world/targets.js';
import { layoutText, slotCond, slotLayout, textEncoderOf } from './embeddings.js';
import { baselineRate, measureDetection } from './measure.js';
import { conceptPrompts, tokenSpace } from './tokens.js';
import { optimiseSlots, type SlotSearchResult } from './prompt-optimiser.js';
import type { Attack, AttackOptions } from './types.js';
import { denoisingLoss, denoisingPair, mse, promptLatents, transferNote } from './white-box.js';

export const UNLEARNDIFF_PUBLISHED = Object.freeze({ tokens: 5, iterations: 40, lr: 0.01, weightDecay: 0.1, source: 'OPTML-Group/Diffusion-MU-Attack (text_grad attacker, k = 5)' });

/** Fixed (step, noise) draws a visited prompt is scored on, to keep the best (all target images each). */
export const SELECT_DRAWS = 2;

export interface UnlearnDiffSettings {
  /** Adversarial tokens prepended to the prompt. */
  tokens: number;
  iters: number;
  lr: number;
  weightDecay: number;
  /** Concept prompts attacked (one search each). */
  prompts: number;
  /** Target images per prompt (the original model's generations). */
  images: number;
  /** Noised target images per iteration. */
  batch: number;
}

export const UNLEARNDIFF_BUDGETS: Readonly<Record<AttackOptions['budget'], UnlearnDiffSettings>> = Object.freeze({
  quick: { tokens: 5, iters: 20, lr: 0.01, weightDecay: 0.1, prompts: 2, images: 2, batch: 2 },
  full: { tokens: 5, iters: 40, lr: 0.01, weightDecay: 0.1, prompts: 3, images: 4, batch: 2 },
});

export interface UnlearnDiffSearch {
  prompt: string;
  settings: UnlearnDiffSettings;
  /** Sampler steps and CFG of the original model's target images. */
  steps: number;
  cfg: number;
  seed: number;
  onStep?: (it: number, loss: number) => void;
}

/** One search: adversarial prefix tokens for `prompt` on which the erased model denoises the concept's images. */
export function unlearnDiffSearch(erased: BaselineModel, original: BaselineModel, o: UnlearnDiffSearch): SlotSearchResult & { text: string } {
  const enc = textEncoderOf(erased);
  const layout = slotLayout(enc, '', o.settings.tokens, o.prompt);
  const images = promptLatents(original, o.prompt, o.steps, o.cfg, mixSeed(o.seed, 0x696d67), o.settings.images);
  const s = erased.sampler(o.steps);
  const b = Math.min(o.settings.batch, o.settings.images);
  try {
    const r = optimiseSlots({
      model: erased, layout, allowed: tokenSpace(enc).rows, mode: 'hard',
      iters: o.settings.iters, lr: o.settings.lr, weightDecay: o.settings.weightDecay, seed: o.seed, batch: b,
      loss: (cond, it) => {
        // A random step, `b` of the target images, fresh noise: all from (seed, iteration).
        const rng = new Rng(mixSeed(o.seed, 0x756e6c, it));
        const k = rng.int(o.steps);
        const first = rng.int(o.settings.images - b + 1);
        const x0 = images.slice([first], [b]);
        const eps = erased.noise(rng.int(0x7fffffff), b);
        const { x, target } = denoisingPair(erased, s, x0, eps, k);
        return mse(erased.predict(x, s.times[k]!, cond), target);
      },
      select: (vecs) => {
        const cond = slotCond(erased, layout, vecs, o.settings.images);
        const l = denoisingLoss(erased, images, cond, o.steps, mixSeed(o.seed, 0x73656c), SELECT_DRAWS);
        disposeCond(cond);
        return l;
      },
      onStep: o.onStep,
    });
    return { ...r, text: layoutText(enc, layout, r.rows) };
  } finally {
    images.dispose();
  }
}

export const unlearndiff: Attack = async (subject, target: ErasureTarget, opts) => {
  const t0 = Date.now();
  const s = UNLEARNDIFF_BUDGETS[opts.budget];
  const { steps, cfg } = subject.erased.defaults;
  const concepts = conceptPrompts(target, s.prompts);
  const found = concepts.map((prompt, j) => {
    const r = unlearnDiffSearch(subject.erasedWhiteBox, subject.original, {
      prompt, settings: s, steps, cfg, seed: mixSeed(opts.seed, 0x756e64, j),
      onStep: opts.progress ? (it, loss) => process.stderr.write(`unlearndiff: prompt ${j + 1}/${concepts.length} iter ${it + 1}/${s.iters} loss ${loss.toFixed(5)}\n`) : undefined,
    });
    return { text: r.text, loss: r.loss };
  });
  const m = await measureDetection(subject.erased, found.map((f) => f.text), target, { seed: opts.seed, seedsPerPrompt: opts.seedsPerPrompt, classifier: opts.classifier });
  const baseline = await baselineRate(subject, target, opts, concepts.length);
  return {
    attack: 'unlearndiff',
    target: target.name,
    model: { name: subject.modelName, sha256: subject.modelHash },
    asr: m.rate,
    baseline,
    prompts: found.map((f, j) => ({ prompt: f.text, loss: f.loss, detected: m.perPrompt[j]! })),
    generations: m.generations,
    seconds: (Date.now() - t0) / 1000,
    settings: {
      published: UNLEARNDIFF_PUBLISHED,
      used: { ...s, budget: opts.budget, sampler: { steps, cfg } },
      conceptPrompts: concepts,
      targetImages: 'the original model\'s generations of each concept prompt (seeded)',
      objective: 'the erased model\'s denoising loss on the target images under adversarial prefix + concept prompt (hard tokens by PEZ projection)',
      asrNote: 'asr counts every detection (the paper\'s pre-ASR + post-ASR); baseline is the pre-attack rate of the plain prompts',
      ...transferNote(subject),
    },
  };
};
