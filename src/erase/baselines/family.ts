// One view of a text-to-image model for the baselines (ESD, CA, UCE, SLD), whatever its family:
// a prediction function (FLUX velocity or UNet noise) of (x, t, text conditioning, weight
// overrides), and a sampler (FLUX Euler on the time-shifted schedule, or DDIM) cut into steps, so
// a method can run the model to any step, noise a clean latent to a step's time, and train weights
// by name. The baselines never look inside the families beyond this.
import { tf, type Tensor } from '../../engine/tf.js';
import { randnBatch } from '../../engine/rng.js';
import { makeImgIds, makeTxtIds, packLatents } from '../../models/flux/pack.js';
import type { FluxParams } from '../../models/flux/params.js';
import { unetDenoiser, type UnetParams } from '../../models/unet/index.js';
import { ddimUpdate } from '../../sampling/ddim.js';
import { ddimPlan } from '../../sampling/diffusion-schedule.js';
import { eulerUpdate } from '../../sampling/euler.js';
import { fluxDenoiser } from '../../sampling/flux.js';
import { fluxSchedule } from '../../sampling/schedule.js';
import type { TextEncoder } from '../../models/text/encoder.js';

export type Family = 'flow' | 'diffusion';

/** Text conditioning of a batch: the token sequence and (FLUX only) the pooled vector. */
export interface Cond {
  txt: Tensor;
  y: Tensor | null;
}

/** A sampler run of `steps` steps: step k goes from time `times[k]` to the next. */
export interface Sampler {
  steps: number;
  /** The model's time argument at step k (FLUX: t in [0, 1]; DDIM: the integer timestep). */
  times: readonly number[];
  /** One sampler update from step k's state with the model's prediction there. */
  update(x: Tensor, pred: Tensor, k: number): Tensor;
  /** A clean latent noised to step k's time (FLUX: (1 - t) x0 + t eps; DDIM: q(x_t | x_0)). */
  addNoise(x0: Tensor, eps: Tensor, k: number): Tensor;
}

export interface BaselineModel {
  family: Family;
  /** The denoiser's weights by name (reference FLUX names, or diffusers UNet names). */
  weights: Record<string, Tensor>;
  /** FLUX or UNet parameters. */
  params: FluxParams | UnetParams;
  /** Prompts -> conditioning (new tensors, the caller's). */
  encode(prompts: readonly string[]): Cond;
  /** The EOT position of a prompt in the token sequence (UCE aligns tokens from the last word on). */
  eot(prompt: string): number;
  /** Unpacked latent shape [C, H, W]. */
  latent: readonly [number, number, number];
  /** The real text encoder behind `encode` (vocabulary, tokenizer, weights), when the model has one; attacks search its token space. */
  text?: TextEncoder;
  /** Prediction for the batch x under cond at time t, with some weights replaced (same names). */
  predict(x: Tensor, t: number, cond: Cond, over?: Record<string, Tensor>): Tensor;
  /** Initial noise for n images: image i from randn(mixSeed(seed, i)), as the generators draw it. */
  noise(seed: number, n?: number): Tensor;
  sampler(steps: number): Sampler;
}

/** The parts of a loaded family model the view needs. */
export interface FamilyParts {
  weights: Record<string, Tensor>;
  encode(prompts: readonly string[]): { txt: Tensor; y: Tensor };
  eot(prompt: string): number;
  latent: readonly [number, number, number];
  text?: TextEncoder;
}

function seededNoise(latent: readonly [number, number, number], seed: number, n: number): Tensor {
  const [c, h, w] = latent;
  const per = c * h * w;
  return tf.tensor4d(randnBatch(n, per, seed), [n, c, h, w]);
}

/** A FLUX model (flux-emoji's transformer and text encoder, or a test model). */
export function fluxBaselineModel(cfg: FluxParams, parts: FamilyParts, opts: { shift?: boolean } = {}): BaselineModel {
  const [, h, w] = parts.latent;
  const tokens = (h / 2) * (w / 2);
  return {
    family: 'flow',
    weights: parts.weights,
    params: cfg,
    encode: (prompts) => parts.encode(prompts),
    eot: parts.eot,
    latent: parts.latent,
    ...(parts.text ? { text: parts.text } : {}),
    predict: (x, t, cond, over) =>
      tf.tidy(() => {
        const b = x.shape[0]!;
        const img_ids = makeImgIds(b, h / 2, w / 2);
        const txt_ids = makeTxtIds(b, cond.txt.shape[1]!);
        const den = fluxDenoiser(cfg, parts.weights, { img_ids, txt: cond.txt, txt_ids, y: cond.y! });
        const v = den.velocity(x, t, { weights: over });
        den.dispose();
        return v;
      }),
    noise: (seed, n = 1) => tf.tidy(() => packLatents(seededNoise(parts.latent, seed, n))),
    sampler: (steps) => {
      const ts = fluxSchedule(steps, { imageSeqLen: tokens, shift: opts.shift ?? true });
      return {
        steps,
        times: ts.slice(0, steps),
        update: (x, v, k) => eulerUpdate(x, v, ts[k]!, ts[k + 1]!),
        addNoise: (x0, eps, k) => tf.tidy(() => tf.add(tf.mul(x0, 1 - ts[k]!), tf.mul(eps, ts[k]!))),
      };
    },
  };
}

/** An SD-style UNet (sd-emoji, or a test model); `y` of the text encoder is not used. */
export function unetBaselineModel(cfg: UnetParams, parts: FamilyParts): BaselineModel {
  return {
    family: 'diffusion',
    weights: parts.weights,
    params: cfg,
    encode: (prompts) => {
      const e = parts.encode(prompts);
      e.y.dispose();
      return { txt: e.txt, y: null };
    },
    eot: parts.eot,
    latent: parts.latent,
    ...(parts.text ? { text: parts.text } : {}),
    predict: (x, t, cond, over) =>
      tf.tidy(() => {
        const den = unetDenoiser(cfg, parts.weights, { context: cond.txt });
        const e = den.eps(x, t, { weights: over });
        den.dispose();
        return e;
      }),
    noise: (seed, n = 1) => seededNoise(parts.latent, seed, n),
    sampler: (steps) => {
      const plan = ddimPlan(steps);
      return {
        steps,
        times: plan.timesteps,
        update: (x, eps, k) => {
          const [next, x0] = ddimUpdate(x, eps, plan.alphas[k]!, plan.alphasPrev[k]!);
          x0.dispose();
          return next;
        },
        addNoise: (x0, eps, k) => tf.tidy(() => tf.add(tf.mul(x0, Math.sqrt(plan.alphas[k]!)), tf.mul(eps, Math.sqrt(1 - plan.alphas[k]!)))),
      };
    },
  };
}

/** Conditioning of a batch repeated or joined: [a; b] along the batch. */
export function concatCond(a: Cond, b: Cond): Cond {
  return { txt: tf.concat([a.txt, b.txt], 0), y: a.y && b.y ? tf.concat([a.y, b.y], 0) : null };
}

export function disposeCond(c: Cond): void {
  tf.dispose(c.y ? [c.txt, c.y] : [c.txt]);
}

/**
 * Classifier-free guided prediction (cfg 1 = conditional only): one forward over [x; x] with
 * [cond; uncond], then u + cfg (c - u).
 */
export function guidedPredict(model: BaselineModel, x: Tensor, t: number, cond: Cond, uncond: Cond, cfg: number, over?: Record<string, Tensor>): Tensor {
  if (cfg === 1) return model.predict(x, t, cond, over);
  return tf.tidy(() => {
    const both = concatCond(cond, uncond);
    const out = model.predict(tf.concat([x, x], 0), t, both, over);
    disposeCond(both);
    const [c, u] = tf.split(out, 2, 0) as [Tensor, Tensor];
    return tf.add(u, tf.mul(tf.sub(c, u), cfg));
  });
}

/**
 * Run the sampler from x for steps [0, k) with a guided prediction (no tape): the state at step k.
 * The input is not disposed.
 */
export function sampleTo(model: BaselineModel, s: Sampler, x: Tensor, k: number, cond: Cond, uncond: Cond, cfg: number, over?: Record<string, Tensor>): Tensor {
  let cur = x.clone();
  for (let j = 0; j < k; j++) {
    const prev = cur;
    cur = tf.tidy(() => s.update(prev, guidedPredict(model, prev, s.times[j]!, cond, uncond, cfg, over), j));
    prev.dispose();
  }
  return cur;
}

/** Batch conditioning repeated n times (the same prompt for every image). */
export function repeatCond(model: BaselineModel, prompt: string, n: number): Cond {
  return model.encode(Array.from({ length: n }, () => prompt));
}
