// P4D (Prompting4Debugging, Chin et al., ICML 2024; joycenerd/P4D), the P4D-N variant: N free
// tokens, optimised so that the ERASED model's prediction under them matches the ORIGINAL model's
// prediction for the concept prompt on the same latent:
//   loss = || p_erased(x_t, t, adv) - p_original(x_t, t, concept) ||^2
// with x_t a state of the original model's own (CFG) sampling of the concept prompt at a random
// step, p the noise (UNet) or velocity (FLUX), both conditional. The tokens are hard, by PEZ's
// projection (prompt-optimiser.ts); of the prompts the search visits, the one with the lowest
// objective on the first, middle and last step's states is kept. One search per concept prompt;
// the found prompts are then generated on the attacked model and the classifier says whether the
// concept came back.
// Published: prompt_len 16, lr 0.1, weight decay 0.1 (PEZ's AdamW), 3000 iterations. Used: as many
// tokens as the text encoder's context holds (flux-emoji: 16 - SOT - EOT = 14), the iterations of
// the budget (settings record both).
import { tf, type Tensor } from '../engine/tf.js';
import { Rng, mixSeed } from '../engine/rng.js';
import { disposeCond, guidedPredict, type BaselineModel } from '../erase/baselines/family.js';
import type { ErasureTarget } from '../world/targets.js';
import { layoutText, slotCond, slotLayout, textEncoderOf, type SlotLayout } from './embeddings.js';
import { baselineRate, measureDetection } from './measure.js';
import { conceptPrompts, tokenSpace } from './tokens.js';
import { optimiseSlots, type SlotSearchResult } from './prompt-optimiser.js';
import type { Attack, AttackOptions } from './types.js';
import { mse, transferNote } from './white-box.js';

export const P4D_PUBLISHED = Object.freeze({ promptLen: 16, iterations: 3000, lr: 0.1, weightDecay: 0.1, source: 'joycenerd/P4D (P4D-N), optimiser from PEZ (YuxinWenRick/hard-prompts-made-easy)' });

export interface P4dSettings {
  /** Free tokens (capped by the text encoder's context). */
  tokens: number;
  iters: number;
  lr: number;
  weightDecay: number;
  /** Concept prompts attacked (one search each). */
  prompts: number;
  /** Original-model trajectories the states are drawn from. */
  latents: number;
  /** States per iteration (same step, different trajectories). */
  batch: number;
}

export const P4D_BUDGETS: Readonly<Record<AttackOptions['budget'], P4dSettings>> = Object.freeze({
  quick: { tokens: 16, iters: 20, lr: 0.1, weightDecay: 0.1, prompts: 2, latents: 2, batch: 2 },
  full: { tokens: 16, iters: 100, lr: 0.1, weightDecay: 0.1, prompts: 4, latents: 4, batch: 2 },
});

export interface P4dSearch {
  /** The concept prompt the original model is asked for. */
  prompt: string;
  settings: P4dSettings;
  /** Sampler steps and CFG of the original model's trajectories. */
  steps: number;
  cfg: number;
  seed: number;
  onStep?: (it: number, loss: number) => void;
}

/**
 * The original model's (CFG) trajectories of `prompt` from seeded noise: per sampler step k, the
 * states of every trajectory [latents, ...] and the original's conditional prediction there.
 */
export function teacherStates(original: BaselineModel, prompt: string, steps: number, cfg: number, latents: number, seed: number): { x: Tensor; target: Tensor; t: number }[] {
  const s = original.sampler(steps);
  const cond = original.encode(Array<string>(latents).fill(prompt));
  const uncond = original.encode(Array<string>(latents).fill(''));
  const out: { x: Tensor; target: Tensor; t: number }[] = [];
  let x = tf.tidy(() => tf.concat(Array.from({ length: latents }, (_, i) => original.noise(mixSeed(seed, 0x70346400, i), 1)), 0));
  for (let k = 0; k < steps; k++) {
    const t = s.times[k]!;
    out.push({ x, target: original.predict(x, t, cond), t });
    const cur = x;
    x = tf.tidy(() => s.update(cur, guidedPredict(original, cur, t, cond, uncond, cfg), k));
  }
  x.dispose();
  disposeCond(cond);
  disposeCond(uncond);
  return out;
}

/** P4D's objective over teacher states (all trajectories at the given steps): how a found prompt is chosen. */
export function p4dObjective(erased: BaselineModel, layout: SlotLayout, vecs: Tensor, pool: readonly { x: Tensor; target: Tensor; t: number }[]): number {
  const cond = slotCond(erased, layout, vecs, pool[0]!.x.shape[0]!);
  let total = 0;
  for (const s of pool) total += tf.tidy(() => mse(erased.predict(s.x, s.t, cond), s.target).dataSync()[0]!);
  disposeCond(cond);
  return total / pool.length;
}

/** The states a visited prompt is scored on: the first, middle and last step (a third of the cost of all six on flux-emoji). */
export function selectStates<T>(pool: readonly T[]): T[] {
  const idx = [...new Set([0, Math.floor((pool.length - 1) / 2), pool.length - 1])];
  return idx.map((i) => pool[i]!);
}

/** One P4D-N search: the hard prompt whose erased-model predictions best match the original's. */
export function p4dSearch(erased: BaselineModel, original: BaselineModel, o: P4dSearch): SlotSearchResult & { text: string } {
  const enc = textEncoderOf(erased);
  const n = Math.min(o.settings.tokens, enc.params.context_length - 2);
  const layout = slotLayout(enc, '', n, '');
  const pool = teacherStates(original, o.prompt, o.steps, o.cfg, o.settings.latents, o.seed);
  const b = Math.min(o.settings.batch, o.settings.latents);
  try {
    const r = optimiseSlots({
      model: erased, layout, allowed: tokenSpace(enc).rows, mode: 'hard',
      iters: o.settings.iters, lr: o.settings.lr, weightDecay: o.settings.weightDecay, seed: o.seed, batch: b,
      loss: (cond, it) => {
        // A random step, and `b` of the trajectories at it (seeded by the iteration).
        const rng = new Rng(mixSeed(o.seed, 0x73746570, it));
        const st = pool[rng.int(pool.length)]!;
        const first = rng.int(o.settings.latents - b + 1);
        const x = st.x.slice([first], [b]);
        const target = st.target.slice([first], [b]);
        return mse(erased.predict(x, st.t, cond), target);
      },
      select: (vecs) => p4dObjective(erased, layout, vecs, selectStates(pool)),
      onStep: o.onStep,
    });
    return { ...r, text: layoutText(enc, layout, r.rows) };
  } finally {
    for (const s of pool) tf.dispose([s.x, s.target]);
  }
}

export const p4d: Attack = async (subject, target: ErasureTarget, opts) => {
  const t0 = Date.now();
  const s = P4D_BUDGETS[opts.budget];
  const { steps, cfg } = subject.erased.defaults;
  const concepts = conceptPrompts(target, s.prompts);
  const found: { text: string; loss: number }[] = [];
  concepts.forEach((prompt, j) => {
    const r = p4dSearch(subject.erasedWhiteBox, subject.original, {
      prompt, settings: s, steps, cfg, seed: mixSeed(opts.seed, 0x703464, j),
      onStep: opts.progress ? (it, loss) => process.stderr.write(`p4d: prompt ${j + 1}/${concepts.length} iter ${it + 1}/${s.iters} loss ${loss.toFixed(5)}\n`) : undefined,
    });
    found.push({ text: r.text, loss: r.loss });
  });
  const m = await measureDetection(subject.erased, found.map((f) => f.text), target, { seed: opts.seed, seedsPerPrompt: opts.seedsPerPrompt, classifier: opts.classifier });
  const baseline = await baselineRate(subject, target, opts, concepts.length);
  const enc = textEncoderOf(subject.erasedWhiteBox);
  return {
    attack: 'p4d',
    target: target.name,
    model: { name: subject.modelName, sha256: subject.modelHash },
    asr: m.rate,
    baseline,
    prompts: found.map((f, j) => ({ prompt: f.text, loss: f.loss, detected: m.perPrompt[j]! })),
    generations: m.generations,
    seconds: (Date.now() - t0) / 1000,
    settings: {
      variant: 'P4D-N',
      published: P4D_PUBLISHED,
      used: { ...s, tokens: Math.min(s.tokens, enc.params.context_length - 2), budget: opts.budget, sampler: { steps, cfg } },
      conceptPrompts: concepts,
      objective: 'MSE between the erased model\'s conditional prediction under the adversarial prompt and the original model\'s for the concept prompt, on states of the original model\'s CFG trajectory',
      ...transferNote(subject),
    },
  };
};
