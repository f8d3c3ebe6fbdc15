// FLUX as a velocity function for the samplers: fixed conditioning (text, pooled vector, ids,
// guidance), precomputed rotary tables, and optional masks or weight overrides per call.
import { tf, type Tensor } from '../engine/tf.js';
import { fluxForward, fluxRope } from '../models/flux/model.js';
import type { FluxMasks } from '../models/flux/masks.js';
import type { FluxParams } from '../models/flux/params.js';
import type { FluxWeights } from '../models/flux/weights.js';
import type { Rope } from '../models/flux/embed.js';
import type { ParamVelocityFn, VelocityFn } from './euler.js';

export interface FluxConditioning {
  img_ids: Tensor;
  txt: Tensor;
  txt_ids: Tensor;
  y: Tensor;
  /**
   * Guidance strength for guidance-distilled (dev-style) models; default 4.0 as the reference
   * `denoise`. Ignored by models without guidance_embed (schnell-style).
   */
  guidance?: number | null;
}

export interface FluxCallOptions {
  masks?: FluxMasks;
  /** Replacements for some weights (same names), e.g. tensors being differentiated. */
  weights?: FluxWeights;
}

/** A FLUX model bound to its conditioning. Call `dispose()` to free the precomputed tables. */
export interface FluxDenoiser {
  readonly cfg: FluxParams;
  /** v(x, t) for the batch at scalar time t. */
  velocity(x: Tensor, t: number, opts?: FluxCallOptions): Tensor;
  /** `velocity` with masks fixed, as a sampler's `VelocityFn`. */
  velocityFn(masks?: FluxMasks): VelocityFn;
  /**
   * A `ParamVelocityFn` whose params are, in order, the named masks and weights in `trainables`
   * (other masks from `fixedMasks`): what eulerSampleGrad differentiates.
   */
  paramVelocityFn(trainables: readonly FluxTrainable[], fixedMasks?: FluxMasks): ParamVelocityFn;
  dispose(): void;
}

/** A tensor that gradients flow to: a mask hook point or a weight, by name. */
export interface FluxTrainable {
  kind: 'mask' | 'weight';
  name: string;
}

export function fluxDenoiser(cfg: FluxParams, weights: FluxWeights, cond: FluxConditioning): FluxDenoiser {
  const batch = cond.txt.shape[0]!;
  const pe: Rope = fluxRope(cfg, cond.img_ids, cond.txt_ids);
  const guidance = cfg.guidance_embed ? tf.fill([batch], cond.guidance ?? 4.0) : null;
  const velocity = (x: Tensor, t: number, opts: FluxCallOptions = {}): Tensor =>
    tf.tidy(() => {
      const w = opts.weights ? { ...weights, ...opts.weights } : weights;
      const inputs = {
        img: x,
        img_ids: cond.img_ids,
        txt: cond.txt,
        txt_ids: cond.txt_ids,
        timesteps: tf.fill([x.shape[0]!], t),
        y: cond.y,
        guidance,
      };
      return fluxForward(cfg, w, inputs, { masks: opts.masks, pe });
    });
  return {
    cfg,
    velocity,
    velocityFn: (masks) => (x, t) => velocity(x, t, { masks }),
    paramVelocityFn: (trainables, fixedMasks = {}) => (x, t, params) => {
      if (params.length !== trainables.length) throw new Error(`flux: expected ${trainables.length} params, got ${params.length}`);
      const masks: Record<string, Tensor> = { ...fixedMasks };
      const over: Record<string, Tensor> = {};
      trainables.forEach((tr, i) => {
        if (tr.kind === 'mask') masks[tr.name] = params[i]!;
        else {
          if (!(tr.name in weights)) throw new Error(`flux: no weight named '${tr.name}'`);
          over[tr.name] = params[i]!;
        }
      });
      return velocity(x, t, { masks, weights: over });
    },
    dispose: () => {
      pe.cos.dispose();
      pe.sin.dispose();
      guidance?.dispose();
    },
  };
}
