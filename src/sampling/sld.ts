// Safe Latent Diffusion guidance (Schramowski et al., CVPR 2023; diffusers
// StableDiffusionPipelineSafe): classifier-free guidance with a third prediction, for a "safety
// concept" text, whose direction is subtracted where the prompt's prediction is close to it.
// Per step, elementwise (equation numbers of the paper):
//
//   g      = c - u                                           (the CFG direction)
//   scale  = min(|c - s| * sGuidance, 1)                     (6)
//   scale  = 0 where (c - s) >= threshold                    (6)
//   gs     = (s - u) * scale + momentumScale * m             (4), (7)
//   m     <- beta * m + (1 - beta) * gs                      (8)
//   g      = g - gs   from step `warmup` on                  (3)
//   pred   = u + cfg * g
//
// The same rule works on any prediction that CFG combines linearly: the UNet's noise, or FLUX's
// velocity (v = eps - x0 moves with eps, so "away from the safety concept's velocity" is "away from
// its image", as for eps). sGuidance = 0 gives plain CFG.
import { tf, type Tensor } from '../engine/tf.js';

export interface SldParams {
  /** Steps of plain CFG before the safety term is applied. */
  warmupSteps: number;
  guidanceScale: number;
  threshold: number;
  momentumScale: number;
  momBeta: number;
}

/** Momentum carried across the steps of one sampling run. */
export interface SldState {
  momentum: Tensor | null;
}

/** The guided prediction at step `step` from the conditional, unconditional and safety predictions; updates state.momentum. */
export function sldCombine(cond: Tensor, uncond: Tensor, safety: Tensor, cfg: number, p: SldParams, step: number, state: SldState): Tensor {
  const [pred, momentum] = tf.tidy(() => {
    let g = tf.sub(cond, uncond);
    const diff = tf.sub(cond, safety);
    const scale = tf.minimum(tf.mul(tf.abs(diff), p.guidanceScale), 1);
    const safetyScale = tf.where(tf.greaterEqual(diff, p.threshold), tf.zerosLike(scale), scale);
    let gs = tf.mul(tf.sub(safety, uncond), safetyScale);
    const m0 = state.momentum ?? tf.zerosLike(g);
    gs = tf.add(gs, tf.mul(m0, p.momentumScale));
    const m1 = tf.add(tf.mul(m0, p.momBeta), tf.mul(gs, 1 - p.momBeta));
    if (step >= p.warmupSteps) g = tf.sub(g, gs);
    return [tf.add(uncond, tf.mul(g, cfg)), m1];
  });
  state.momentum?.dispose();
  // kept: the caller may run this inside its own tidy, and the momentum lives across steps
  state.momentum = tf.keep(momentum!);
  return pred!;
}

/**
 * The warm-up of a run of `steps` sampler steps, for a warm-up given in a run of `referenceSteps`
 * (SLD's presets count SD's 50 steps): the same fraction, rounded.
 */
export function scaledWarmup(warmupSteps: number, steps: number, referenceSteps: number): number {
  return Math.round((warmupSteps * steps) / referenceSteps);
}
