// The discrete diffusion (DDPM) noise schedule of Stable Diffusion and the DDIM timestep selection,
// computed as diffusers' DDIMScheduler computes them (float32 values, bit-exact to torch):
//
//   betas          = linspace(sqrt(0.00085), sqrt(0.012), 1000, float32) ** 2      ("scaled_linear")
//   alphas_cumprod = cumprod(1 - betas)   (torch's CPU cumprod accumulates in double, rounds to float32)
//   q(x_t | x_0)   = sqrt(alphas_cumprod[t]) x_0 + sqrt(1 - alphas_cumprod[t]) eps
//
// DDIM timesteps follow SD's DDIMScheduler config: timestep_spacing "leading", steps_offset 1,
// set_alpha_to_one False. For N steps, ratio = 1000 // N, timesteps = [(N-1)*ratio, ..., ratio, 0] + 1
// (4 steps: 751, 501, 251, 1), and the step from t goes to t - ratio; below 0 it lands on
// alphas_cumprod[0] (set_alpha_to_one False), not on alpha = 1. So the sampler's final output
// keeps the tiny noise level of t = 0 (sqrt(1 - 0.99915) = 0.029), exactly like SD pipelines;
// `setAlphaToOne: true` ends on the clean sample instead. "trailing" spacing (starts at t = 999)
// is available as an option; it is not SD's default.
import { tf, type Tensor } from '../engine/tf.js';
import { Rng } from '../engine/rng.js';

const f32 = Math.fround;

/**
 * torch.linspace(start, end, steps, dtype=float32) as torch's CPU kernel computes it (AVX2 build,
 * verified bit-exact against torch 1.13 for 1000 steps): step = (end - start) / (steps - 1) in float32;
 * blocks of 16 values are two 8-lane vectors, each from a base start + step*idx (first half) or
 * end - step*(steps-1-idx) (second half), computed with one rounding (the compiler contracts it to an
 * FMA), then base + j*step per lane with two roundings; the tail past the last block of 16 is scalar.
 * (engine-independent: the numbers are JS doubles rounded to float32 exactly where torch rounds.)
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = f32(start);
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const at = (i: number): number => (i < half ? f32(s + step * i) : f32(e - step * (steps - i - 1)));
  let c = 0;
  for (; c + 16 <= steps; c += 16) {
    for (const v of [c, c + 8]) {
      const base = at(v);
      for (let j = 0; j < 8; j++) out[v + j] = f32(base + f32(j * step));
    }
  }
  for (; c < steps; c++) out[c] = at(c);
  return out;
}

export interface DiffusionSchedule {
  readonly numTrainTimesteps: number;
  /** beta_t, float32 values. */
  readonly betas: Float32Array;
  /** alpha-bar_t = prod_{s <= t} (1 - beta_s), float32 values. */
  readonly alphasCumprod: Float32Array;
}

export interface ScaledLinearOptions {
  betaStart?: number;
  betaEnd?: number;
  numTrainTimesteps?: number;
}

/** SD's "scaled_linear" schedule (defaults: 0.00085 to 0.012 over 1000 steps). */
export function scaledLinearSchedule(opts: ScaledLinearOptions = {}): DiffusionSchedule {
  const start = opts.betaStart ?? 0.00085;
  const end = opts.betaEnd ?? 0.012;
  const n = opts.numTrainTimesteps ?? 1000;
  if (!Number.isInteger(n) || n < 2) throw new Error(`diffusion schedule: numTrainTimesteps must be an integer >= 2, got ${n}`);
  if (!(start > 0 && end > start && end < 1)) throw new Error(`diffusion schedule: need 0 < betaStart < betaEnd < 1, got ${start}, ${end}`);
  const roots = torchLinspaceF32(Math.sqrt(start), Math.sqrt(end), n);
  const betas = new Float32Array(n);
  const ac = new Float32Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    const b = f32(roots[i]! * roots[i]!);
    betas[i] = b;
    prod *= f32(1 - b);
    ac[i] = prod;
  }
  return { numTrainTimesteps: n, betas, alphasCumprod: ac };
}

let sdSchedule: DiffusionSchedule | null = null;

/** The Stable Diffusion schedule (scaled_linear 0.00085 to 0.012, 1000 steps), computed once. */
export function sdDiffusionSchedule(): DiffusionSchedule {
  sdSchedule ??= scaledLinearSchedule();
  return sdSchedule;
}

export type TimestepSpacing = 'leading' | 'trailing';

export interface DdimScheduleOptions {
  schedule?: DiffusionSchedule;
  /** "leading" (SD default) or "trailing". */
  spacing?: TimestepSpacing;
  /** Added to "leading" timesteps (SD: 1). */
  stepsOffset?: number;
  /** Final step lands on alpha = 1 (clean) instead of alphas_cumprod[0] (SD: false). */
  setAlphaToOne?: boolean;
}

/** A DDIM run's plan: per step k, the model timestep and the alpha-bars it moves between. */
export interface DdimPlan {
  /** Model timesteps, descending (SD, 4 steps: [751, 501, 251, 1]). */
  readonly timesteps: readonly number[];
  /** alphas_cumprod[t_k]. */
  readonly alphas: readonly number[];
  /** alphas_cumprod[t_k - ratio], or the final alpha when that is below 0. */
  readonly alphasPrev: readonly number[];
}

/** DDIMScheduler.set_timesteps: the N model timesteps, descending. */
export function ddimTimesteps(numSteps: number, opts: DdimScheduleOptions = {}): number[] {
  const T = (opts.schedule ?? sdDiffusionSchedule()).numTrainTimesteps;
  if (!Number.isInteger(numSteps) || numSteps < 1 || numSteps > T) {
    throw new Error(`DDIM: steps must be an integer in 1..${T}, got ${numSteps}`);
  }
  const spacing = opts.spacing ?? 'leading';
  const out: number[] = [];
  if (spacing === 'leading') {
    const ratio = Math.floor(T / numSteps);
    const offset = opts.stepsOffset ?? 1;
    for (let i = numSteps - 1; i >= 0; i--) out.push(i * ratio + offset);
  } else if (spacing === 'trailing') {
    // np.round(np.arange(T, 0, -T / N)).astype(int64) - 1
    const step = T / numSteps;
    for (let i = 0; i < numSteps; i++) out.push(roundHalfEven(T - i * step) - 1);
  } else {
    throw new Error(`DDIM: unknown timestep spacing '${String(spacing)}' (leading, trailing)`);
  }
  if (out.some((t) => t < 0 || t >= T)) throw new Error(`DDIM: timesteps out of range 0..${T - 1} (steps_offset too large?)`);
  return out;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The DDIM plan for N steps: timesteps and the alpha-bars of every step (DDIMScheduler.step). */
export function ddimPlan(numSteps: number, opts: DdimScheduleOptions = {}): DdimPlan {
  const s = opts.schedule ?? sdDiffusionSchedule();
  const ts = ddimTimesteps(numSteps, opts);
  const ratio = Math.floor(s.numTrainTimesteps / numSteps);
  const finalAlpha = opts.setAlphaToOne ? 1 : s.alphasCumprod[0]!;
  return {
    timesteps: ts,
    alphas: ts.map((t) => s.alphasCumprod[t]!),
    alphasPrev: ts.map((t) => (t - ratio >= 0 ? s.alphasCumprod[t - ratio]! : finalAlpha)),
  };
}

/**
 * Forward noising q(x_t | x_0): sqrt(ab_t) x0 + sqrt(1 - ab_t) noise (diffusers `add_noise`), with
 * one timestep for the batch or one per sample (along axis 0).
 */
export function qSample(x0: Tensor, noise: Tensor, t: number | readonly number[], schedule: DiffusionSchedule = sdDiffusionSchedule()): Tensor {
  const ts = typeof t === 'number' ? [t] : t;
  if (typeof t !== 'number' && ts.length !== x0.shape[0]) throw new Error(`qSample: ${ts.length} timesteps for a batch of ${x0.shape[0]}`);
  for (const v of ts) {
    if (!Number.isInteger(v) || v < 0 || v >= schedule.numTrainTimesteps) throw new Error(`qSample: timestep ${v} outside 0..${schedule.numTrainTimesteps - 1}`);
  }
  return tf.tidy(() => {
    const a = ts.map((v) => f32(Math.sqrt(schedule.alphasCumprod[v]!)));
    const b = ts.map((v) => f32(Math.sqrt(f32(1 - schedule.alphasCumprod[v]!))));
    const shape = [ts.length, ...x0.shape.slice(1).map(() => 1)];
    return tf.add(tf.mul(x0, tf.tensor(a, shape)), tf.mul(noise, tf.tensor(b, shape)));
  });
}

/** n training timesteps drawn uniformly from 0..T-1, seeded. */
export function randomTimesteps(n: number, seed: number, numTrainTimesteps = 1000): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(numTrainTimesteps));
}
