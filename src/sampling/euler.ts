// Flow-matching Euler sampling (reference flux/sampling.py `denoise`): from x at t = 1 (noise)
// to t = 0 along a schedule, x <- x + (t_next - t_cur) * v(x, t_cur). Plain functions, no state:
// the model is a velocity function and the schedule a list of timesteps (see schedule.ts).
//
// Three ways to run it:
//   eulerSample      no tape; optionally the trajectory (every x_t and predicted x0 = x_t - t v);
//   eulerStepFn      the Euler step as an engine `Step`, for checkpointed backprop;
//   eulerSampleGrad  final output and gradients of a loss on it through every step, with per-step
//                    recompute (engine/checkpoint.ts): memory flat in the number of steps.
import { tf, type Tensor } from '../engine/tf.js';
import { checkpointedGrad, stepSeed, type CheckpointedRun, type Step } from '../engine/checkpoint.js';

/** A velocity model at scalar time t for the whole batch. */
export type VelocityFn = (x: Tensor, t: number) => Tensor;

/**
 * A velocity model whose trainable tensors are explicit arguments (so gradients reach them), with
 * a seed for any randomness inside (e.g. hard-concrete mask noise); the same seed must give the
 * same numbers, since the reverse sweep recomputes each step.
 */
export type ParamVelocityFn = (x: Tensor, t: number, params: readonly Tensor[], seed: number) => Tensor;

function checkSchedule(timesteps: readonly number[]): void {
  if (timesteps.length < 2) throw new Error('euler: the schedule needs at least 2 timesteps (1 step)');
}

/** One Euler step: x + (tNext - tCur) * v. */
export function eulerUpdate(x: Tensor, v: Tensor, tCur: number, tNext: number): Tensor {
  return tf.tidy(() => tf.add(x, tf.mul(v, tNext - tCur)));
}

export interface SampleOptions {
  /** Keep every state x_k and every predicted x0 (x_k - t_k * v_k). Default false. */
  trajectory?: boolean;
  /** Called after each step with the step index and the new state (not to be disposed). */
  onStep?: (k: number, x: Tensor) => void;
}

export interface SampleResult {
  /** x at the last timestep (t = 0 for a full schedule). A new tensor, the caller's. */
  final: Tensor;
  /** With `trajectory`: [x_0 (a clone of the input), x_1, ..., x_N]; xs[N] is `final`. */
  xs?: Tensor[];
  /** With `trajectory`: predicted clean sample at each step, x_k - t_k * v(x_k, t_k), k < N. */
  x0Preds?: Tensor[];
}

/** Euler sampling without a tape. The input x0 is not disposed. */
export function eulerSample(v: VelocityFn, x0: Tensor, timesteps: readonly number[], opts: SampleOptions = {}): SampleResult {
  checkSchedule(timesteps);
  const keep = opts.trajectory ?? false;
  const xs: Tensor[] = keep ? [x0.clone()] : [];
  const preds: Tensor[] = [];
  let x = x0;
  for (let k = 0; k + 1 < timesteps.length; k++) {
    const tCur = timesteps[k]!;
    const tNext = timesteps[k + 1]!;
    const prev = x;
    const out = tf.tidy(() => {
      const vel = v(prev, tCur);
      const next = eulerUpdate(prev, vel, tCur, tNext);
      return keep ? [next, tf.sub(prev, tf.mul(vel, tCur))] : [next];
    });
    x = out[0]!;
    if (keep) {
      xs.push(x);
      preds.push(out[1]!);
    } else if (prev !== x0) {
      prev.dispose();
    }
    opts.onStep?.(k, x);
  }
  return keep ? { final: x, xs, x0Preds: preds } : { final: x === x0 ? x0.clone() : x };
}

/** The Euler step as an engine `Step`: step k maps x_k to x_{k+1}. */
export function eulerStepFn(v: ParamVelocityFn, timesteps: readonly number[]): Step {
  checkSchedule(timesteps);
  return (x, params, k, seed) => {
    const tCur = timesteps[k]!;
    const tNext = timesteps[k + 1]!;
    return tf.tidy(() => eulerUpdate(x, v(x, tCur, params, seed), tCur, tNext));
  };
}

/**
 * Euler sampling with gradients of a loss on the final output: `upstream(final)` returns dL/dfinal;
 * the result holds `final`, dL/dx0 and dL/dparams, computed through every step with per-step
 * recompute. Step k's seed is `stepSeed(seed, k)`, the same in the forward and reverse passes.
 */
export function eulerSampleGrad(
  v: ParamVelocityFn,
  x0: Tensor,
  params: readonly Tensor[],
  timesteps: readonly number[],
  upstream: (final: Tensor) => Tensor,
  seed = 0,
): CheckpointedRun {
  return checkpointedGrad(eulerStepFn(v, timesteps), x0, params, timesteps.length - 1, upstream, seed);
}

export { stepSeed };
