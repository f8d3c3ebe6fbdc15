// The hard-concrete relaxation of a binary keep-mask (Louizos et al. 2018), as the MCE reference
// uses it (mce-method.md §2.2): for a logit λ and uniform noise u,
//   s = sigmoid((log(u + ε) - log(1 - u + ε) + λ) / b)
//   m = clamp(s · (ζ - γ) + γ, 0, 1)
// with temperature b = 0.83, stretch (γ, ζ) = (-0.1, 1.1) and noise clamp ε = 0.5 (the reference's
// `masking_eps`: it bounds the logistic noise to about ±1.0986, so the relaxation is only mildly
// stochastic). The mask is differentiable in λ (zero gradient where the clamp is active).
//
// The noise is a pure function of a seed (engine/rng.ts), never of global state: the checkpointed
// reverse sweep recomputes every sampling step with the step's seed, so it replays the same mask
// draw and the gradients equal full backprop (the reference re-sampled here; see §10.6).
import { tf, type Tensor } from '../../engine/tf.js';
import { mixSeed, uniformArray } from '../../engine/rng.js';

export interface HardConcreteParams {
  /** Temperature b (default 0.83). */
  beta: number;
  /** Lower stretch γ (default -0.1). */
  gamma: number;
  /** Upper stretch ζ (default 1.1). */
  zeta: number;
  /** Noise clamp ε inside the logs (default 0.5, the reference's masking_eps). */
  eps: number;
}

export const HARD_CONCRETE_DEFAULTS: Readonly<HardConcreteParams> = Object.freeze({ beta: 0.83, gamma: -0.1, zeta: 1.1, eps: 0.5 });

/**
 * How a logit becomes a mask:
 * - 'hard-concrete': the stochastic relaxation (training);
 * - 'continuous': hard-concrete at the noise median (u = 0.5, i.e. no noise): a deterministic soft mask;
 * - 'sigmoid': sigmoid(λ);
 * - 'binary': 1[λ > threshold] (evaluation and inference; no gradient).
 */
export type MaskMode = 'hard-concrete' | 'continuous' | 'sigmoid' | 'binary';

/** The logistic noise term log(u + ε) - log(1 - u + ε) for uniform u (host arrays). */
export function logisticNoise(u: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = Math.log(u[i]! + eps) - Math.log(1 - u[i]! + eps);
  return out;
}

/** Uniform noise for one hook point of one sampling step: a pure function of (seed, stream). */
export function hardConcreteUniform(size: number, seed: number, stream: number): Float32Array {
  return uniformArray(size, mixSeed(seed, 0x68636d6b, stream));
}

/** Hard-concrete mask from logits and a noise term (`logisticNoise` output as a tensor, or null for none). */
export function hardConcreteFromNoise(logits: Tensor, noise: Tensor | null, p: HardConcreteParams = HARD_CONCRETE_DEFAULTS): Tensor {
  return tf.tidy(() => {
    const z = noise ? tf.add(logits, noise) : logits;
    const s = tf.sigmoid(tf.div(z, p.beta));
    return tf.clipByValue(tf.add(tf.mul(s, p.zeta - p.gamma), p.gamma), 0, 1);
  });
}

/** Hard-concrete mask with the noise drawn from (seed, stream). */
export function hardConcrete(logits: Tensor, seed: number, stream: number, p: HardConcreteParams = HARD_CONCRETE_DEFAULTS): Tensor {
  const size = logits.size;
  const n = logisticNoise(hardConcreteUniform(size, seed, stream), p.eps);
  return tf.tidy(() => hardConcreteFromNoise(logits, tf.tensor(n, logits.shape), p));
}

/** A mask in a deterministic mode ('continuous', 'sigmoid' or 'binary' at `threshold`). */
export function deterministicMask(logits: Tensor, mode: Exclude<MaskMode, 'hard-concrete'>, threshold = 0, p: HardConcreteParams = HARD_CONCRETE_DEFAULTS): Tensor {
  return tf.tidy(() => {
    if (mode === 'binary') return tf.cast(tf.greater(logits, threshold), 'float32');
    if (mode === 'sigmoid') return tf.sigmoid(logits);
    return hardConcreteFromNoise(logits, null, p);
  });
}

/**
 * Host-side hard-concrete for one logit value and noise u (for tests and reports): the same
 * formula as the tensor version.
 */
export function hardConcreteScalar(lambda: number, u: number, p: HardConcreteParams = HARD_CONCRETE_DEFAULTS): number {
  const z = Math.log(u + p.eps) - Math.log(1 - u + p.eps) + lambda;
  const s = 1 / (1 + Math.exp(-z / p.beta));
  return Math.min(1, Math.max(0, s * (p.zeta - p.gamma) + p.gamma));
}

/** The logit range outside which the mask is constant (0 below, 1 above) for every noise draw. */
export function deadZone(p: HardConcreteParams = HARD_CONCRETE_DEFAULTS): { low: number; high: number } {
  const nmax = Math.log(1 + p.eps) - Math.log(p.eps); // largest |noise|
  // m = 0 when s <= -γ/(ζ-γ); m = 1 when s >= (1-γ)/(ζ-γ).
  const logit = (q: number): number => Math.log(q / (1 - q));
  const s0 = -p.gamma / (p.zeta - p.gamma);
  const s1 = (1 - p.gamma) / (p.zeta - p.gamma);
  return { low: p.beta * logit(s0) - nmax, high: p.beta * logit(s1) + nmax };
}

/**
 * Expected L0 norm term per unit: P(m > 0) = sigmoid(λ - b · log(-γ/ζ)) (Louizos et al.), for
 * the optional sparsity regulariser (ignores the ε clamp of the noise).
 */
export function expectedL0(logits: Tensor, p: HardConcreteParams = HARD_CONCRETE_DEFAULTS): Tensor {
  return tf.tidy(() => tf.sigmoid(tf.sub(logits, p.beta * Math.log(-p.gamma / p.zeta))));
}
