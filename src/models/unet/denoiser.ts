// The UNet bound to its text conditioning, as noise-prediction functions for the DDIM sampler
// (sampling/ddim.ts). Plain functions over explicit tensors: the structural types match ddim.ts's
// EpsFn (x, t) and ParamEpsFn (x, t, params, seed) without importing the sampler layer.
//
// Classifier-free guidance is batched: a `pair` function takes the doubled batch [x; x] (2B) and runs
// ONE forward with context [uncond; cond]; sampling/ddim.ts `guidedEps` builds the doubled batch and
// combines eps_uncond + cfg * (eps_cond - eps_uncond).
import { tf, type Tensor } from '../../engine/tf.js';
import type { UnetMasks } from './masks.js';
import { type UnetLayout, unetForward } from './model.js';
import type { UnetParams } from './params.js';
import type { UnetWeights } from './weights.js';

export interface UnetConditioning {
  /** Conditional text sequence [B, T, cross_attention_dim]. */
  context: Tensor;
  /** Unconditional sequence (the empty prompt's encoding) [B or 1, T, cross_attention_dim]; needed for CFG. */
  uncond?: Tensor | null;
}

export interface UnetCallOptions {
  masks?: UnetMasks;
  /** Replacements for some weights (same names), e.g. tensors being differentiated. */
  weights?: UnetWeights;
}

/** A tensor that gradients flow to: a mask hook point or a weight, by name. */
export interface UnetTrainable {
  kind: 'mask' | 'weight';
  name: string;
}

export interface UnetDenoiser {
  readonly cfg: UnetParams;
  /** Layout of the sampler's x ('NCHW' default, or 'NHWC' to skip two transposes per call). */
  readonly layout: UnetLayout;
  /** Conditional eps(x, t) for the batch (x [B, ...]) at integer timestep t. */
  eps(x: Tensor, t: number, opts?: UnetCallOptions): Tensor;
  /** eps over the doubled batch x2 = [x_u; x_c] (2B) with context [uncond; cond], one forward. */
  pairEps(x2: Tensor, t: number, opts?: UnetCallOptions): Tensor;
  /** `eps` with masks fixed, as a sampler's EpsFn. */
  epsFn(masks?: UnetMasks): (x: Tensor, t: number) => Tensor;
  /** `pairEps` with masks fixed: give it to ddim.ts `guidedEps(pair, cfg)`. */
  pairEpsFn(masks?: UnetMasks): (x2: Tensor, t: number) => Tensor;
  /**
   * A ParamEpsFn (x, t, params, seed) whose params are, in order, the named masks and weights in
   * `trainables` (other masks from `fixedMasks`); `pair` selects the doubled-batch CFG form.
   * The seed is unused here (a caller adding mask noise wraps this function).
   */
  paramEpsFn(trainables: readonly UnetTrainable[], fixedMasks?: UnetMasks, pair?: boolean): (x: Tensor, t: number, params: readonly Tensor[], seed: number) => Tensor;
  /** Free the precomputed pair context. */
  dispose(): void;
}

export function unetDenoiser(cfg: UnetParams, weights: UnetWeights, cond: UnetConditioning, layout: UnetLayout = 'NCHW'): UnetDenoiser {
  const b = cond.context.shape[0]!;
  let pairCtx: Tensor | null = null;
  if (cond.uncond) {
    const u = cond.uncond;
    if (u.rank !== 3 || (u.shape[0] !== 1 && u.shape[0] !== b) || u.shape[1] !== cond.context.shape[1] || u.shape[2] !== cond.context.shape[2]) {
      throw new Error(`UNet denoiser: uncond must be [1 or ${b}, ${cond.context.shape[1]}, ${cond.context.shape[2]}], got [${u.shape.join(', ')}]`);
    }
    pairCtx = tf.tidy(() => tf.concat([u.shape[0] === b ? u : tf.tile(u, [b, 1, 1]), cond.context], 0));
  }
  const run = (x: Tensor, t: number, ctx: Tensor, opts: UnetCallOptions): Tensor =>
    tf.tidy(() => {
      if (x.shape[0] !== ctx.shape[0]) throw new Error(`UNet denoiser: x has batch ${x.shape[0]}, the conditioning ${ctx.shape[0]}`);
      const w = opts.weights ? { ...weights, ...opts.weights } : weights;
      return unetForward(cfg, w, { sample: x, timesteps: tf.fill([x.shape[0]!], t), context: ctx }, { masks: opts.masks, layout });
    });
  const needPair = (): Tensor => {
    if (!pairCtx) throw new Error('UNet denoiser: classifier-free guidance needs an unconditional context (cond.uncond)');
    return pairCtx;
  };
  const eps = (x: Tensor, t: number, opts: UnetCallOptions = {}): Tensor => run(x, t, cond.context, opts);
  const pairEps = (x2: Tensor, t: number, opts: UnetCallOptions = {}): Tensor => run(x2, t, needPair(), opts);
  return {
    cfg,
    layout,
    eps,
    pairEps,
    epsFn: (masks) => (x, t) => eps(x, t, { masks }),
    pairEpsFn: (masks) => (x2, t) => pairEps(x2, t, { masks }),
    paramEpsFn: (trainables, fixedMasks = {}, pair = false) => (x, t, params) => {
      if (params.length !== trainables.length) throw new Error(`UNet denoiser: expected ${trainables.length} params, got ${params.length}`);
      const masks: Record<string, Tensor> = { ...fixedMasks };
      const over: Record<string, Tensor> = {};
      trainables.forEach((tr, i) => {
        if (tr.kind === 'mask') masks[tr.name] = params[i]!;
        else {
          if (!(tr.name in weights)) throw new Error(`UNet denoiser: no weight named '${tr.name}'`);
          over[tr.name] = params[i]!;
        }
      });
      return (pair ? pairEps : eps)(x, t, { masks, weights: over });
    },
    dispose: () => {
      pairCtx?.dispose();
      pairCtx = null;
    },
  };
}
