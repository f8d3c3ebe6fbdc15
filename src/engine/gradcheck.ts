// Finite-difference gradient checker. The output of f is reduced to a scalar with a fixed random
// projection P (L = sum(f(x) * P), summed in float64 on the host), the analytic gradient of L comes
// from tf.grads, and it is checked along random directions v against a central difference:
//
//   analytic = <dL/dx, v>,   numeric = (L(x + h v) - L(x - h v)) / (2 h).
//
// Each input gets its own directions (a wrong gradient for one input cannot hide behind another).
// v has unit RMS and h = eps * max(1, rms(x)), so eps is a relative step. The forward runs in fp32:
// the central difference's truncation error is O(h^2) and its rounding error is about
// ulp * sum|f * P| / h, so eps = 1e-2 keeps both near 1e-4 of the directional derivative for
// smooth ops; the default tolerance, 3e-2, is the one of engine-measurements §6. Kinks (abs, max,
// maxPool, clip) must be kept more than h * |v| (a few times eps) away from the inputs.
import { tf, type Tensor } from './tf.js';
import { Rng, mixSeed } from './rng.js';

export interface GradCheckOptions {
  /** Seed for the projection and the directions (default 0). Same seed, same check. */
  seed?: number;
  /** Relative step: h = eps * max(1, rms(x)) (default 1e-2). */
  eps?: number;
  /** Absolute step h (overrides eps): keep h * max|v| (about 4h) below the distance to any kink. */
  step?: number;
  /** Largest allowed error (default 3e-2). */
  tol?: number;
  /** Random directions per input (default 2). */
  directions?: number;
}

export interface GradCheckEntry {
  /** Which input of f. */
  input: number;
  /** Which direction for that input. */
  direction: number;
  /** <tf.grads, v>. */
  analytic: number;
  /** Central difference along v. */
  numeric: number;
  /** |analytic - numeric| / max(|analytic|, |numeric|, floor). */
  error: number;
}

export interface GradCheckResult {
  ok: boolean;
  maxError: number;
  /** The entry with the largest error. */
  worst: GradCheckEntry;
  entries: GradCheckEntry[];
  /** f at the unperturbed inputs (for comparing forwards across backends). */
  output: Float32Array;
  outputShape: number[];
}

function normalArray(n: number, rng: Rng): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

function rms(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return a.length ? Math.sqrt(s / a.length) : 0;
}

/**
 * Check tf.grads(f) against central differences. `inputs` are the differentiable inputs (float32);
 * close over anything else (indices, masks). f may return any shape.
 */
export function gradCheck(
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: GradCheckOptions = {},
): GradCheckResult {
  const seed = opts.seed ?? 0;
  const eps = opts.eps ?? 1e-2;
  const tol = opts.tol ?? 3e-2;
  const ndir = opts.directions ?? 2;
  for (const [i, x] of inputs.entries()) {
    if (x.dtype !== 'float32') throw new Error(`gradCheck: input ${i} is ${x.dtype}; differentiable inputs must be float32`);
  }

  const y0 = tf.tidy(() => f(...inputs));
  const output = Float32Array.from(y0.dataSync() as Float32Array);
  const outputShape = y0.shape.slice();
  y0.dispose();
  const proj = normalArray(output.length, new Rng(mixSeed(seed, 0x70)));

  // L in float64, and the scale of its terms (for the rounding-noise floor).
  const lossOf = (xs: Tensor[]): number => {
    const y = tf.tidy(() => f(...xs));
    const v = y.dataSync();
    y.dispose();
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i]! * proj[i]!;
    return s;
  };
  let termScale = 0;
  for (let i = 0; i < output.length; i++) termScale += Math.abs(output[i]! * proj[i]!);

  const grads = tf.tidy(() => {
    const p = tf.tensor(Float32Array.from(proj), outputShape, 'float32');
    return tf.grads(f)(inputs, p);
  });
  const gvals = grads.map((g) => Float64Array.from(g.dataSync() as Float32Array));
  for (const g of grads) g.dispose();

  const entries: GradCheckEntry[] = [];
  for (const [i, x] of inputs.entries()) {
    const xv = x.dataSync() as Float32Array;
    const h = opts.step ?? eps * Math.max(1, rms(xv));
    const g = gvals[i]!;
    const gnorm = Math.sqrt(g.reduce((s, a) => s + a * a, 0));
    for (let d = 0; d < ndir; d++) {
      const v = normalArray(xv.length, new Rng(mixSeed(seed, 0x71, i, d)));
      // The perturbed inputs are rounded to fp32: use the steps actually taken.
      const plus = new Float32Array(xv.length);
      const minus = new Float32Array(xv.length);
      for (let k = 0; k < xv.length; k++) {
        plus[k] = xv[k]! + h * v[k]!;
        minus[k] = xv[k]! - h * v[k]!;
      }
      let analytic = 0;
      for (let k = 0; k < xv.length; k++) analytic += g[k]! * (plus[k]! - minus[k]!);
      analytic /= 2 * h;
      const xp = tf.tensor(plus, x.shape, 'float32');
      const xm = tf.tensor(minus, x.shape, 'float32');
      const withX = (t: Tensor): Tensor[] => inputs.map((o, j) => (j === i ? t : o));
      const numeric = (lossOf(withX(xp)) - lossOf(withX(xm))) / (2 * h);
      xp.dispose();
      xm.dispose();
      // Directional derivatives are typically ~|g| (v has unit RMS); below a tenth of that, or
      // below the fp32 rounding noise of the difference, compare absolutely against that floor.
      const noise = (2 ** -17 * termScale) / h;
      const floor = Math.max(0.1 * gnorm, noise, 1e-30);
      const error = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), floor);
      entries.push({ input: i, direction: d, analytic, numeric, error });
    }
  }
  const worst = entries.reduce((a, b) => (b.error > a.error ? b : a), entries[0] ?? {
    input: -1,
    direction: -1,
    analytic: 0,
    numeric: 0,
    error: 0,
  });
  return { ok: worst.error <= tol, maxError: worst.error, worst, entries, output, outputShape };
}

/** One line describing a result, for assertion messages. */
export function formatGradCheck(r: GradCheckResult): string {
  const w = r.worst;
  return (
    `max error ${r.maxError.toExponential(2)} at input ${w.input} direction ${w.direction}: ` +
    `analytic ${w.analytic.toPrecision(6)} vs numeric ${w.numeric.toPrecision(6)}`
  );
}
