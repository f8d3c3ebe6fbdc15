// EAP (Erasing Undesirable Concepts with Adversarial Preservation, Bui et al., NeurIPS 2024): ESD's
// negative-guidance erasure plus a preservation term on the concept the erasure damages MOST, found
// anew at every step: among candidate concepts, the one whose prediction on the step's x_t moved
// furthest from the frozen model's (EAP searches with a Gumbel-softmax relaxation over the
// vocabulary; on our small concept set the search is exact: every candidate is scored, argmax).
//
//   loss = MSE(p_theta(x_t, c), p*(x_t, "") - eta (p*(x_t, c) - p*(x_t, "")))
//        + w * MSE(p_theta(x_t, c_adv), p*(x_t, c_adv)),   c_adv = argmax_k ||p_theta(x_t, c_k) - p*(x_t, c_k)||^2
//
// Trained weights: ESD-x's (esd.ts). Published (anchors.md, erase-eval defaults): lr 1e-5, 1000
// iterations, gumbel lr 1e-3, temperature 2, 1000 closest tokens, 100 k-means centres, 2 inner steps.
// Here: 8 candidates drawn per step from the model's concepts (neighbours included), weight 1, and
// ESD's defaults (30 iterations, lr 3e-5, esd.ts). Several concepts: one prompt per step, drawn as ESD draws it.
import { tf, type Tensor } from '../../engine/tf.js';
import { mixSeed } from '../../engine/rng.js';
import { concatCond, disposeCond, sampleTo, type BaselineModel } from './family.js';
import { ESD_DEFAULTS, esdParts, pickPrompt, type EsdSettings } from './esd.js';
import { finetune, type FinetuneBatch, type FinetuneResult, type TrainablePart } from './finetune.js';
import type { ProgressOptions } from '../../train/progress.js';

export interface EapSettings extends EsdSettings {
  /** Candidates scored per step. */
  candidates: number;
  /** Weight of the adversarial preservation term. */
  preserveWeight: number;
}

export const EAP_PUBLISHED = Object.freeze({ lr: 1e-5, iters: 1000, gumbelLr: 1e-3, gumbelTemp: 2, gumbelKClosest: 1000, kmeansCenters: 100, pgdSteps: 2, source: 'tuananhbui89/Erasing-Adversarial-Preservation via anchors.md' });

export interface EapRun extends FinetuneResult {
  settings: EapSettings;
  parts: TrainablePart[];
  /** The adversarial concept chosen at each step. */
  adversaries: string[];
  /** The concept prompt each step trained. */
  stepPrompts: string[];
}

export async function runEap(model: BaselineModel, prompts: readonly string[], pool: readonly string[], settings: Partial<EapSettings> & { steps: number },
  opts: { progress?: Omit<ProgressOptions, 'total' | 'start' | 'elapsedOffset'> | false; dir?: string } = {}): Promise<EapRun> {
  if (pool.length === 0) throw new Error('EAP: no candidate concepts');
  if (prompts.length === 0) throw new Error('EAP: no concept prompt');
  const s: EapSettings = { ...ESD_DEFAULTS, candidates: 8, preserveWeight: 1, ...settings };
  const parts = esdParts(model, 'esd-x');
  const sampler = model.sampler(s.steps);
  const conds = prompts.map((p) => model.encode([p]));
  const uncond = model.encode(['']);
  const adversaries: string[] = [];
  const stepPrompts: string[] = [];
  try {
    const makeBatch = (rng: { int(n: number): number }, step: number, current: Record<string, Tensor>): FinetuneBatch => {
      const i = pickPrompt(rng, prompts.length);
      const cond = conds[i]!;
      stepPrompts[step] = prompts[i]!;
      const k = rng.int(s.steps);
      const noise = model.noise(mixSeed(s.seed, rng.int(0x7fffffff)), 1);
      const x = sampleTo(model, sampler, noise, k, cond, uncond, s.startGuidance);
      noise.dispose();
      const t = sampler.times[k]!;
      const picks = [...new Set(Array.from({ length: Math.min(s.candidates, pool.length) }, () => pool[rng.int(pool.length)]!))];
      const cands = model.encode(picks);
      const xs = tf.tidy(() => tf.tile(x, [picks.length, ...x.shape.slice(1).map(() => 1)]));
      // How far each candidate's prediction has moved from the frozen model's.
      const moved = tf.tidy(() => {
        const d = tf.sub(model.predict(xs, t, cands, current), model.predict(xs, t, cands));
        return tf.mean(tf.square(d).reshape([picks.length, -1]), 1);
      });
      const scores = moved.dataSync();
      moved.dispose();
      let best = 0;
      for (let i = 1; i < picks.length; i++) if (scores[i]! > scores[best]!) best = i;
      adversaries[step] = picks[best]!;
      disposeCond(cands);
      xs.dispose();
      const adv = model.encode([picks[best]!]);
      const batch = tf.tidy(() => {
        const pc = model.predict(x, t, cond);
        const pu = model.predict(x, t, uncond);
        const erase = tf.sub(pu, tf.mul(tf.sub(pc, pu), s.eta));
        const keep = model.predict(x, t, adv);
        const both = concatCond(cond, adv);
        return { x: tf.concat([x, x], 0), txt: both.txt, y: both.y ?? undefined, target: tf.concat([erase, keep], 0) };
      });
      disposeCond(adv);
      x.dispose();
      return { ...batch, t, rowWeights: [1, s.preserveWeight] };
    };
    const r = await finetune(model, {
      parts, iters: s.iters, lr: s.lr, weightDecay: s.weightDecay, seed: s.seed, makeBatch,
      progress: opts.progress, dir: opts.dir, config: { method: 'eap', concept: prompts.join(', '), pool, ...s },
    });
    return { ...r, settings: s, parts, adversaries, stepPrompts };
  } finally {
    for (const c of conds) disposeCond(c);
    disposeCond(uncond);
  }
}
