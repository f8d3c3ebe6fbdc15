// ESD (Erasing Concepts from Diffusion Models, Gandikota et al., ICCV 2023): fine-tune so the
// model's prediction for the concept becomes the frozen model's prediction pushed AWAY from the
// concept (negative guidance):
//
//   target = p*(x_t, "") - eta (p*(x_t, c) - p*(x_t, ""))        loss = MSE(p_theta(x_t, c), target)
//
// with x_t the frozen model's own CFG sample of the concept prompt run to a random step t (as
// rohitgandikota/erasing's MM-DiT trainer draws it), p the noise (UNet) or the velocity (FLUX).
// Several concepts: each step trains one prompt drawn from the seeded stream, as the reference's
// train-esd.py samples one of its separator-split prompts per iteration (one prompt: no draw, so
// a single-concept run's stream, and weights, are what they were).
// Which weights:
//   esd-x  UNet: every cross-attention weight (`attn2.*`). FLUX: the joint attention's linear maps of
//          the double blocks (`img_attn`/`txt_attn` qkv and proj, the MM-DiT trainer's '.attn.'
//          modules; single blocks fuse attention with their MLP in linear1/linear2, so they go to esd-u).
//   esd-u  UNet: everything else but the time embedding ('noxattn'). FLUX: every other linear map
//          (QK-norm scales stay).
// Published settings: the paper's SD1.4 runs: eta 1, start guidance 3, lr 1e-5, 1000 iterations,
// 50 DDIM steps; the later trainers: lr 5e-5 (SD1.4) / 3e-5 (SD3.5 MM-DiT), 200 iterations, eta 2.
// Defaults here: eta 1, guidance 3, the model's own sampler steps, lr 3e-5 (the MM-DiT trainer's)
// and 30 iterations. Measured with scripts/baselines-compare.ts (emoji classifier's mean p(target)
// on 8 train captions x 2 seeds; SSIM to the base on 8 neighbour captions), "kitchen knife":
//   an earlier sweep on flux-emoji's stage-2 weights (while the classifier was being replaced too,
//   so only its SSIMs are solid): 60 x 1e-4 broke the model (neighbour SSIM 0.575), 30 x 3e-5 0.945;
//   flux-emoji stage-3 weights (2026-11-26 02:41): 30 x 3e-5: p 0.010 -> 0.004, neighbour SSIM 0.979.
// The bundle's manifest records the settings used.
import { tf } from '../../engine/tf.js';
import { mixSeed } from '../../engine/rng.js';
import { disposeCond, sampleTo, type BaselineModel } from './family.js';
import { finetune, type FinetuneBatch, type FinetuneResult, type TrainablePart } from './finetune.js';
import type { ProgressOptions } from '../../train/progress.js';

export type EsdMethod = 'esd-x' | 'esd-u';

export interface EsdSettings {
  eta: number;
  /** CFG of the frozen model's sampling of x_t. */
  startGuidance: number;
  iters: number;
  lr: number;
  weightDecay: number;
  /** Sampler steps (the caller passes the model's default). */
  steps: number;
  seed: number;
}

export const ESD_DEFAULTS: Readonly<Omit<EsdSettings, 'steps'>> = Object.freeze({ eta: 1, startGuidance: 3, iters: 30, lr: 3e-5, weightDecay: 0, seed: 0 });

/** The published settings the defaults scale down (recorded beside the run's). */
export const ESD_PUBLISHED = Object.freeze({ eta: 1, startGuidance: 3, lr: 1e-5, iters: 1000, ddimSteps: 50, source: 'ESD paper SD1.4 (rohitgandikota/erasing); diffusers trainers: lr 5e-5 (SD) / 3e-5 (SD3.5), 200 iters, eta 2' });

/** The weights each ESD variant trains. */
export function esdParts(model: BaselineModel, method: EsdMethod): TrainablePart[] {
  const names = Object.keys(model.weights).sort();
  const isX = model.family === 'flow'
    ? (n: string) => /^double_blocks\.\d+\.(img|txt)_attn\.(qkv|proj)\.(weight|bias)$/.test(n)
    : (n: string) => n.includes('.attn2.');
  const isU = model.family === 'flow'
    ? (n: string) => !isX(n) && !n.endsWith('.scale')
    : (n: string) => !isX(n) && !n.startsWith('time_embedding.');
  return names.filter(method === 'esd-x' ? isX : isU).map((weight) => ({ weight }));
}

export interface EsdRun extends FinetuneResult {
  settings: EsdSettings;
  parts: TrainablePart[];
  /** The prompt each step trained. */
  stepPrompts: string[];
}

/** Step's prompt index: drawn from the stream only when there is a choice (one prompt keeps the old stream). */
export function pickPrompt(rng: { int(n: number): number }, n: number): number {
  return n > 1 ? rng.int(n) : 0;
}

export async function runEsd(model: BaselineModel, method: EsdMethod, prompts: readonly string[], settings: Partial<EsdSettings> & { steps: number },
  opts: { progress?: Omit<ProgressOptions, 'total' | 'start' | 'elapsedOffset'> | false; dir?: string } = {}): Promise<EsdRun> {
  if (prompts.length === 0) throw new Error('ESD: no concept prompt');
  const s: EsdSettings = { ...ESD_DEFAULTS, ...settings };
  const parts = esdParts(model, method);
  const sampler = model.sampler(s.steps);
  const conds = prompts.map((p) => model.encode([p]));
  const uncond = model.encode(['']);
  const stepPrompts: string[] = [];
  try {
    const makeBatch = (rng: { int(n: number): number }, step: number): FinetuneBatch => {
      const i = pickPrompt(rng, prompts.length);
      const cond = conds[i]!;
      stepPrompts[step] = prompts[i]!;
      const k = rng.int(s.steps);
      const noise = model.noise(mixSeed(s.seed, rng.int(0x7fffffff)), 1);
      const x = sampleTo(model, sampler, noise, k, cond, uncond, s.startGuidance);
      noise.dispose();
      const t = sampler.times[k]!;
      const target = tf.tidy(() => {
        const pc = model.predict(x, t, cond);
        const pu = model.predict(x, t, uncond);
        return tf.sub(pu, tf.mul(tf.sub(pc, pu), s.eta));
      });
      return { x, t, txt: cond.txt.clone(), y: cond.y?.clone(), target };
    };
    const r = await finetune(model, {
      parts, iters: s.iters, lr: s.lr, weightDecay: s.weightDecay, seed: s.seed, makeBatch,
      progress: opts.progress, dir: opts.dir, config: { method, concept: prompts.join(', '), ...s },
    });
    return { ...r, settings: s, parts, stepPrompts };
  } finally {
    for (const c of conds) disposeCond(c);
    disposeCond(uncond);
  }
}

