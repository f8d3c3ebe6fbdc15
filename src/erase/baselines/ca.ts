// CA (Ablating Concepts in Text-to-Image Diffusion Models, Kumari et al., ICCV 2023), the
// model-based variant: the model's prediction for a concept prompt is trained to match the frozen
// model's prediction for the ANCHOR prompt (the concept replaced by its neutral, "spoon") on noised
// anchor images, so the concept prompt now draws the anchor:
//
//   x_t = noise(x0_anchor, eps, t)      loss = MSE(p_theta(x_t, c*), p*(x_t, c_anchor))
//                                            + prior * MSE(p_theta(x_t, c_anchor), p*(x_t, c_anchor))
//
// Anchor images x0_anchor are the frozen model's own CFG samples of the anchor prompts (CA generates
// them with the base model). The second term keeps the anchor prompt where it was (CA's prior
// preservation, weight 1, here against the frozen model's prediction rather than the noise).
// Trained weights: CA's default 'cross-attn' group, the K/V maps the text feeds (the same maps UCE
// edits, uce.ts: UNet attn2.to_k/to_v; FLUX the K/V rows of double_blocks.*.txt_attn.qkv).
// Published (anchors.md): lr 2e-6, batch 8, ~200 anchor prompts. Here: erase/anchor prompt pairs
// from the world's train captions, one anchor image each, batch 1 pair per step, 60 iterations at
// lr 1e-4 (scaled up for 60 steps on a small model, K/V only); the manifest records them.
import { tf, type Tensor } from '../../engine/tf.js';
import { mixSeed } from '../../engine/rng.js';
import { disposeCond, sampleTo, type BaselineModel, type Cond } from './family.js';
import { finetune, type FinetuneBatch, type FinetuneResult, type TrainablePart } from './finetune.js';
import { uceSites } from './uce.js';
import type { ProgressOptions } from '../../train/progress.js';

export interface CaSettings {
  prior: number;
  /** CFG of the anchor images. */
  anchorGuidance: number;
  iters: number;
  lr: number;
  weightDecay: number;
  steps: number;
  seed: number;
}

export const CA_DEFAULTS: Readonly<Omit<CaSettings, 'steps'>> = Object.freeze({ prior: 1, anchorGuidance: 3, iters: 60, lr: 1e-4, weightDecay: 0, seed: 0 });

export const CA_PUBLISHED = Object.freeze({ lr: 2e-6, batch: 8, anchorPrompts: 200, parameterGroup: 'cross-attn (to_k, to_v)', source: 'nupurkmr9/concept-ablation via anchors.md' });

/** CA's cross-attention K/V group. */
export function caParts(model: BaselineModel): TrainablePart[] {
  return uceSites(model).map((s) => ({ weight: s.weight, rows: s.rows }));
}

export interface CaPair {
  /** A prompt with the concept. */
  prompt: string;
  /** The same prompt with the anchor concept. */
  anchor: string;
}

export interface CaRun extends FinetuneResult {
  settings: CaSettings;
  parts: TrainablePart[];
}

function joinCond(a: Cond, b: Cond): Cond {
  return { txt: tf.concat([a.txt, b.txt], 0), y: a.y && b.y ? tf.concat([a.y, b.y], 0) : null };
}

export async function runCa(model: BaselineModel, pairs: readonly CaPair[], settings: Partial<CaSettings> & { steps: number },
  opts: { progress?: Omit<ProgressOptions, 'total' | 'start' | 'elapsedOffset'> | false; dir?: string } = {}): Promise<CaRun> {
  if (pairs.length === 0) throw new Error('CA: no prompt pairs');
  const s: CaSettings = { ...CA_DEFAULTS, ...settings };
  const parts = caParts(model);
  const sampler = model.sampler(s.steps);
  const uncond = model.encode(['']);
  // One anchor image per pair: the frozen model's sample of the anchor prompt (seeded per pair).
  const conds = pairs.map((p) => ({ concept: model.encode([p.prompt]), anchor: model.encode([p.anchor]) }));
  const anchors: Tensor[] = conds.map((c, i) => {
    const noise = model.noise(mixSeed(s.seed, 0x616e63, i), 1);
    const x0 = sampleTo(model, sampler, noise, s.steps, c.anchor, uncond, s.anchorGuidance);
    noise.dispose();
    return x0;
  });
  try {
    const makeBatch = (rng: { int(n: number): number }): FinetuneBatch => {
      const i = rng.int(pairs.length);
      const k = rng.int(s.steps);
      const c = conds[i]!;
      const eps = model.noise(mixSeed(s.seed, rng.int(0x7fffffff)), 1);
      const xt = sampler.addNoise(anchors[i]!, eps, k);
      eps.dispose();
      const t = sampler.times[k]!;
      const target = model.predict(xt, t, c.anchor);
      if (s.prior === 0) return { x: xt, t, txt: c.concept.txt.clone(), y: c.concept.y?.clone(), target };
      // [concept; anchor] prompts on the same x_t, both toward the frozen anchor prediction.
      const both = joinCond(c.concept, c.anchor);
      const batch = { x: tf.concat([xt, xt], 0), t, txt: both.txt, y: both.y ?? undefined, target: tf.concat([target, target], 0), rowWeights: [1, s.prior] };
      tf.dispose([xt, target]);
      return batch;
    };
    const r = await finetune(model, {
      parts, iters: s.iters, lr: s.lr, weightDecay: s.weightDecay, seed: s.seed, makeBatch,
      progress: opts.progress, dir: opts.dir, config: { method: 'ca', pairs, ...s },
    });
    return { ...r, settings: s, parts };
  } finally {
    disposeCond(uncond);
    for (const c of conds) {
      disposeCond(c.concept);
      disposeCond(c.anchor);
    }
    tf.dispose(anchors);
  }
}
