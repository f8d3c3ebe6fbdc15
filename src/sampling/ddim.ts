// Deterministic DDIM sampling (eta = 0) for epsilon-prediction diffusion models, as diffusers'
// DDIMScheduler.step computes it with SD's configuration (see diffusion-schedule.ts for the schedule,
// the "leading" timesteps with steps_offset 1, and set_alpha_to_one False):
//
//   x0_pred = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)
//   x_prev  = sqrt(ab_prev) x0_pred + sqrt(1 - ab_prev) eps          (no clipping, no thresholding)
//
// Classifier-free guidance runs inside each step as ONE forward over the doubled batch [x; x] with
// context [uncond; cond] (`guidedEps`): eps = eps_uncond + cfg * (eps_cond - eps_uncond).
// Plain functions, no state: a model is an eps function of (x, integer timestep) and a run is a DdimPlan.
//
//   ddimSample      no tape; optionally the trajectory (every x_t and every predicted x0);
//   ddimStepFn      the DDIM step as an engine `Step`, for checkpointed backprop;
//   ddimSampleGrad  final output and gradients of a loss on it through every step, with per-step
//                   recompute (engine/checkpoint.ts): memory flat in the number of steps.
import { tf, type Tensor } from '../engine/tf.js';
import { checkpointedGrad, type CheckpointedRun, type Step } from '../engine/checkpoint.js';
import type { DdimPlan } from './diffusion-schedule.js';

const f32 = Math.fround;

/** A noise-prediction model at one integer timestep t for the whole batch. */
export type EpsFn = (x: Tensor, t: number) => Tensor;

/**
 * A noise-prediction model whose trainable tensors are explicit arguments (so gradients reach them),
 * with a seed for any randomness inside (e.g. hard-concrete mask noise); the same seed must give the
 * same numbers, since the reverse sweep recomputes each step.
 */
export type ParamEpsFn = (x: Tensor, t: number, params: readonly Tensor[], seed: number) => Tensor;

function checkPlan(plan: DdimPlan): void {
  const n = plan.timesteps.length;
  if (n < 1 || plan.alphas.length !== n || plan.alphasPrev.length !== n) throw new Error('DDIM: the plan needs at least one step and one alpha pair per step');
}

/** The coefficients of one step, float32 as torch computes them from float32 alpha-bars. */
function coefficients(aT: number, aPrev: number): { sa: number; sb: number; sap: number; sbp: number } {
  return {
    sa: f32(Math.sqrt(aT)),
    sb: f32(Math.sqrt(f32(1 - aT))),
    sap: f32(Math.sqrt(aPrev)),
    sbp: f32(Math.sqrt(f32(1 - aPrev))),
  };
}

/** Predicted clean sample from x_t and eps: (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t). */
export function predictX0(x: Tensor, eps: Tensor, aT: number): Tensor {
  const { sa, sb } = coefficients(aT, 1);
  return tf.tidy(() => tf.div(tf.sub(x, tf.mul(eps, sb)), sa));
}

/** One DDIM (eta = 0) update: returns [x_prev, x0_pred]. */
export function ddimUpdate(x: Tensor, eps: Tensor, aT: number, aPrev: number): [Tensor, Tensor] {
  const { sa, sb, sap, sbp } = coefficients(aT, aPrev);
  const out = tf.tidy(() => {
    const x0 = tf.div(tf.sub(x, tf.mul(eps, sb)), sa);
    return [tf.add(tf.mul(x0, sap), tf.mul(eps, sbp)), x0];
  });
  return [out[0]!, out[1]!];
}

/** Doubles the batch, [x; x] (the guided forward's input). */
function doubled(x: Tensor): Tensor {
  return tf.concat([x, x], 0);
}

/** eps_u + scale (eps_c - eps_u) from the doubled-batch output [eps_u; eps_c]. */
export function combineGuidance(pairOut: Tensor, scale: number): Tensor {
  return tf.tidy(() => {
    const [u, c] = tf.split(pairOut, 2, 0) as [Tensor, Tensor];
    return tf.add(u, tf.mul(tf.sub(c, u), scale));
  });
}

/**
 * Classifier-free guidance as an EpsFn: `pair` takes the doubled batch [x; x] (2B) and must condition
 * its first half on the unconditional context and its second half on the prompt (a UNet denoiser's
 * `pairEpsFn`); one forward per step.
 */
export function guidedEps(pair: EpsFn, scale: number | ((t: number) => number)): EpsFn {
  const at = typeof scale === 'number' ? () => scale : scale;
  return (x, t) => tf.tidy(() => combineGuidance(pair(doubled(x), t), at(t)));
}

/** `guidedEps` for a ParamEpsFn (the guided step differentiable in the params). */
export function guidedParamEps(pair: ParamEpsFn, scale: number): ParamEpsFn {
  return (x, t, params, seed) => tf.tidy(() => combineGuidance(pair(doubled(x), t, params, seed), scale));
}

export interface DdimSampleOptions {
  /** Keep every state x_k and every predicted x0. Default false. */
  trajectory?: boolean;
  /** Called after each step with the step index and the new state (not to be disposed). */
  onStep?: (k: number, x: Tensor) => void;
}

export interface DdimSampleResult {
  /** x after the last step. A new tensor, the caller's. */
  final: Tensor;
  /** With `trajectory`: [x_0 (a clone of the input noise), x_1, ..., x_N]; xs[N] is `final`. */
  xs?: Tensor[];
  /** With `trajectory`: the predicted clean sample at each step k < N (from x_k and eps at t_k). */
  x0Preds?: Tensor[];
}

/**
 * DDIM sampling without a tape, from xT (the initial noise; not disposed) along `plan`.
 * With set_alpha_to_one False (SD) the final state keeps alpha-bar_0's noise level; `x0Preds[N-1]`
 * is the last step's clean prediction.
 */
export function ddimSample(eps: EpsFn, xT: Tensor, plan: DdimPlan, opts: DdimSampleOptions = {}): DdimSampleResult {
  checkPlan(plan);
  const keep = opts.trajectory ?? false;
  const xs: Tensor[] = keep ? [xT.clone()] : [];
  const preds: Tensor[] = [];
  let x = xT;
  for (let k = 0; k < plan.timesteps.length; k++) {
    const prev = x;
    const [next, x0] = tf.tidy(() => {
      const e = eps(prev, plan.timesteps[k]!);
      return ddimUpdate(prev, e, plan.alphas[k]!, plan.alphasPrev[k]!);
    });
    x = next;
    if (keep) {
      xs.push(x);
      preds.push(x0);
    } else {
      x0.dispose();
      if (prev !== xT) prev.dispose();
    }
    opts.onStep?.(k, x);
  }
  return keep ? { final: x, xs, x0Preds: preds } : { final: x };
}

/** The DDIM step as an engine `Step`: step k maps x_k (at plan.timesteps[k]) to x_{k+1}. */
export function ddimStepFn(eps: ParamEpsFn, plan: DdimPlan): Step {
  checkPlan(plan);
  return (x, params, k, seed) =>
    // The x0 prediction is not returned, so the tidy frees it.
    tf.tidy(() => ddimUpdate(x, eps(x, plan.timesteps[k]!, params, seed), plan.alphas[k]!, plan.alphasPrev[k]!)[0]);
}

/**
 * DDIM sampling with gradients of a loss on the final output: `upstream(final)` returns dL/dfinal;
 * the result holds `final`, dL/dxT and dL/dparams, computed through every step with per-step
 * recompute. Step k's seed is `stepSeed(seed, k)`, the same in the forward and reverse passes.
 * For CFG inside each step pass `guidedParamEps(pair, scale)` as `eps`.
 */
export function ddimSampleGrad(
  eps: ParamEpsFn,
  xT: Tensor,
  params: readonly Tensor[],
  plan: DdimPlan,
  upstream: (final: Tensor) => Tensor,
  seed = 0,
): CheckpointedRun {
  return checkpointedGrad(ddimStepFn(eps, plan), xT, params, plan.timesteps.length, upstream, seed);
}
