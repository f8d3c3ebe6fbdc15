// Checkpointed backprop through a sampler (DESIGN.md "Engine decision", mce-method §3.2).
//
// The sampler is N steps x_{k+1} = step(x_k, params, k, seed_k). Full backprop would keep every
// step's activations on the tape: memory grows with N. Instead:
//   1. run all steps without a tape, keeping only each step's input x_k (latent-sized);
//   2. given dL/dx_N, walk the steps in reverse: recompute step k on a tape, take its vjp with
//      respect to (x_k, params), carry dL/dx_k and accumulate the parameter gradients.
// Peak memory is one step's activations plus N latents. Any randomness in a step must come from
// its seed, so the recompute replays it exactly; the gradients then equal full backprop.
import { tf, type Tensor } from './tf.js';
import { mixSeed } from './rng.js';

/** One sampler step. It must be a pure function of its arguments (randomness from `seed`). */
export type Step = (x: Tensor, params: readonly Tensor[], k: number, seed: number) => Tensor;

/** The seed handed to step k of a run seeded with `seed`. */
export function stepSeed(seed: number, k: number): number {
  return mixSeed(seed, k);
}

/** Run `n` steps from x0 without a tape. Returns [x0, x1, ..., xN]; x0 is the caller's tensor. */
export function runSteps(step: Step, x0: Tensor, params: readonly Tensor[], n: number, seed: number): Tensor[] {
  const xs = [x0];
  for (let k = 0; k < n; k++) {
    const x = xs[k]!;
    xs.push(tf.tidy(() => step(x, params, k, stepSeed(seed, k))));
  }
  return xs;
}

export interface StepGradients {
  /** dL/dx0. */
  x0: Tensor;
  /** dL/dparams, one per param, in order (zeros for a param no step uses). */
  params: Tensor[];
}

/**
 * The reverse sweep: given the stored inputs xs = [x0..x_{N-1}] (x_N may follow; it is not used)
 * and dL/dx_N, recompute each step with a tape and return dL/dx0 and dL/dparams.
 * Disposes nothing the caller owns; the returned tensors are the caller's.
 */
export function backpropSteps(
  step: Step,
  xs: readonly Tensor[],
  params: readonly Tensor[],
  n: number,
  gradN: Tensor,
  seed: number,
): StepGradients {
  if (xs.length < n) throw new Error(`backpropSteps: need ${n} stored step inputs, got ${xs.length}`);
  let g = gradN.clone();
  let acc: Tensor[] = params.map((p) => tf.zerosLike(p));
  for (let k = n - 1; k >= 0; k--) {
    const xk = xs[k]!;
    const s = stepSeed(seed, k);
    const next = tf.tidy(() => {
      // engine.gradients with allowNoGradients: a param unused by this step gets a null gradient
      // instead of an error (tf.grads would throw).
      const { value, grads } = tf.engine().gradients(() => step(xk, params, k, s), [xk, ...params], g, true);
      value.dispose();
      const gx = grads[0] ?? tf.zerosLike(xk);
      const sums = acc.map((a, i) => (grads[i + 1] ? tf.add(a, grads[i + 1]!) : a.clone()));
      return [gx, ...sums];
    });
    g.dispose();
    for (const a of acc) a.dispose();
    g = next[0]!;
    acc = next.slice(1);
  }
  return { x0: g, params: acc };
}

export interface CheckpointedRun extends StepGradients {
  /** The final state x_N. */
  final: Tensor;
}

/**
 * Run n steps from x0, take the upstream gradient dL/dx_N from `upstream(x_N)`, and backprop
 * through every step with per-step recompute.
 */
export function checkpointedGrad(
  step: Step,
  x0: Tensor,
  params: readonly Tensor[],
  n: number,
  upstream: (final: Tensor) => Tensor,
  seed = 0,
): CheckpointedRun {
  const xs = runSteps(step, x0, params, n, seed);
  const final = xs[n]!;
  const gradN = tf.tidy(() => upstream(final));
  const grads = backpropSteps(step, xs, params, n, gradN, seed);
  gradN.dispose();
  for (let k = 1; k < n; k++) xs[k]!.dispose();
  return { final, ...grads };
}
