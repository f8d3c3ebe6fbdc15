// MCE on an SD-style UNet with DDIM (mce-method.md §7): the same objective as objective.ts — losses
// on the final DDIM output from a shared x_T, gradients through every step with per-step recompute
// (sampling/ddim.ts ddimSampleGrad), classifier-free guidance inside each step (masks act on both
// branches) — on the UNet hook points (models/unet/masks.ts): attention heads, the linear outputs
// to_q / to_k / to_v / to_out of self- and cross-attention, and the GEGLU hidden units.
// The per-step variant pulls the masked model's x0 prediction toward the original's at the
// original trajectory's states, as for FLUX.
import { tf, type Tensor } from '../../engine/tf.js';
import { stepSeed } from '../../engine/checkpoint.js';
import { randnArray } from '../../engine/rng.js';
import { unetDenoiser, type UnetParams, type UnetWeights, type UnetMasks } from '../../models/unet/index.js';
import { ddimSample, ddimSampleGrad, guidedParamEps, predictX0, type ParamEpsFn } from '../../sampling/ddim.js';
import type { DdimPlan } from '../../sampling/diffusion-schedule.js';
import { HARD_CONCRETE_DEFAULTS } from './hardconcrete.js';
import { masksFromLogits } from './masks.js';
import {
  noiseSeed, sparsityTerm, type ObjectiveItem, type ObjectiveKind, type ObjectiveResult, type SampleSpec, type SparsityTerm,
} from './objective.js';
import type { HardConcreteParams } from './hardconcrete.js';
import { guidanceScale, type GuidanceInterval } from '../../sampling/guidance.js';

/** An SD-style UNet as MCE needs it. */
export interface UnetEraseModel {
  kind: 'unet';
  cfg: UnetParams;
  weights: UnetWeights;
  /** Prompts -> text sequence [B, T, cross_attention_dim] (new tensor). */
  encode(prompts: readonly string[]): Tensor;
  /** Latent shape [C, H, W]. */
  latent: readonly [number, number, number];
}

export interface DdimSettings {
  plan: DdimPlan;
  /** CFG scale (1 = off); the unconditional prompt is "". */
  cfg: number;
  /** Guide only while timestep / 1000 is in this interval (sampling/guidance.ts); absent: every step. */
  cfgInterval?: GuidanceInterval;
}

export class UnetPromptCache {
  private readonly map = new Map<string, Tensor>();
  constructor(private readonly model: UnetEraseModel) {}
  add(prompts: readonly string[]): void {
    const todo = [...new Set(prompts)].filter((p) => !this.map.has(p));
    for (let i = 0; i < todo.length; i += 32) {
      const part = todo.slice(i, i + 32);
      const enc = this.model.encode(part);
      part.forEach((p, j) => this.map.set(p, tf.keep(enc.slice([j, 0, 0], [1, -1, -1]))));
      enc.dispose();
    }
  }
  batch(prompts: readonly string[]): Tensor {
    this.add(prompts);
    return tf.tidy(() => tf.concat(prompts.map((p) => this.map.get(p)!), 0));
  }
  dispose(): void {
    tf.dispose([...this.map.values()]);
    this.map.clear();
  }
}

export function unetNoise(model: UnetEraseModel, seed: number): Tensor {
  const [c, h, w] = model.latent;
  return tf.tensor4d(randnArray(c * h * w, seed), [1, c, h, w]);
}

/** A ParamEpsFn for a batch of prompts with CFG inside (when cfg != 1) and masks from `maskFn`. */
function boundEps(model: UnetEraseModel, cache: UnetPromptCache, prompts: readonly string[], s: DdimSettings) {
  const guided = s.cfg !== 1;
  const context = cache.batch(prompts);
  const uncond = guided ? cache.batch(prompts.map(() => '')) : null;
  const den = unetDenoiser(model.cfg, model.weights, { context, uncond });
  const eps = (x: Tensor, t: number, masks?: UnetMasks): Tensor =>
    tf.tidy(() => {
      if (!guided) return den.eps(x, t, { masks });
      const out = den.pairEps(tf.concat([x, x], 0), t, { masks });
      const [u, c] = tf.split(out, 2, 0) as [Tensor, Tensor];
      return tf.add(u, tf.mul(tf.sub(c, u), guidanceScale(s.cfg, t / 1000, s.cfgInterval)));
    });
  return {
    eps,
    dispose: () => {
      den.dispose();
      tf.dispose([context, ...(uncond ? [uncond] : [])]);
    },
  };
}

export function unetSample(model: UnetEraseModel, cache: UnetPromptCache, prompts: readonly string[], x0: Tensor, s: DdimSettings, masks?: UnetMasks, trajectory = false) {
  const b = boundEps(model, cache, prompts, s);
  try {
    return ddimSample((x, t) => b.eps(x, t, masks), x0, s.plan, { trajectory });
  } finally {
    b.dispose();
  }
}

function itemMse(a: Tensor, b: Tensor): Tensor {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(a, b)).reshape([a.shape[0]!, -1]), 1));
}

/** Cached shared noises and original-model targets (final outputs, or per-step states and x0 predictions). */
export function unetBuildItems(model: UnetEraseModel, cache: UnetPromptCache, samples: readonly SampleSpec[], st: { sampler: DdimSettings; objective: ObjectiveKind }, runSeed: number, chunk = 16): ObjectiveItem[] {
  const noises = new Map<number, Tensor>();
  const noiseOf = (j: number): Tensor => {
    let t = noises.get(j);
    if (!t) noises.set(j, (t = unetNoise(model, noiseSeed(runSeed, j))));
    return t;
  };
  const items: ObjectiveItem[] = [];
  for (let i = 0; i < samples.length; i += chunk) {
    const part = samples.slice(i, i + chunk);
    const x0 = tf.concat(part.map((s) => noiseOf(s.noise)), 0);
    const sl = (t: Tensor, j: number): Tensor => tf.keep(t.slice([j, 0, 0, 0], [1, -1, -1, -1]));
    if (st.objective === 'final') {
      const { final } = unetSample(model, cache, part.map((s) => s.targetPrompt), x0, st.sampler);
      part.forEach((s, j) => items.push({ kind: s.kind, prompt: s.prompt, noise: noiseOf(s.noise), target: sl(final, j) }));
      final.dispose();
    } else {
      const run = unetSample(model, cache, part.map((s) => s.prompt), x0, st.sampler, undefined, true);
      const b = boundEps(model, cache, part.map((s) => s.targetPrompt), st.sampler);
      const states: Tensor[][] = part.map(() => []);
      const targets: Tensor[][] = part.map(() => []);
      st.sampler.plan.timesteps.forEach((t, k) => {
        const xk = run.xs![k]!;
        const pred = tf.tidy(() => predictX0(xk, b.eps(xk, t), st.sampler.plan.alphas[k]!));
        part.forEach((_, j) => {
          states[j]!.push(sl(xk, j));
          targets[j]!.push(sl(pred, j));
        });
        pred.dispose();
      });
      b.dispose();
      tf.dispose([...run.xs!, ...run.x0Preds!]);
      part.forEach((s, j) => items.push({ kind: s.kind, prompt: s.prompt, noise: noiseOf(s.noise), states: states[j], stepTargets: targets[j] }));
    }
    x0.dispose();
  }
  return items;
}

export interface UnetObjectiveSettings {
  sampler: DdimSettings;
  objective: ObjectiveKind;
  beta: number;
  sparsity?: SparsityTerm;
  hc?: HardConcreteParams;
}

/** Loss and gradients of one micro-batch on the UNet (see objective.ts objectiveGrad). */
export function unetObjectiveGrad(
  model: UnetEraseModel,
  cache: UnetPromptCache,
  names: readonly string[],
  logits: readonly Tensor[],
  items: readonly ObjectiveItem[],
  st: UnetObjectiveSettings,
  seed: number,
): ObjectiveResult {
  const hc = st.hc ?? HARD_CONCRETE_DEFAULTS;
  const ne = items.filter((i) => i.kind === 'erase').length;
  const np = items.length - ne;
  const w = Float32Array.from(items, (i) => (i.kind === 'erase' ? 1 / ne : st.beta / np));
  const b = boundEps(model, cache, items.map((i) => i.prompt), st.sampler);
  const eps: ParamEpsFn = (x, t, params, s) => tf.tidy(() => b.eps(x, t, masksFromLogits(names, params, { mode: 'hard-concrete', seed: s, hc })));
  let erase = 0;
  let preserve = 0;
  const split = (mse: ArrayLike<number>): void => {
    for (let i = 0; i < items.length; i++) {
      if (items[i]!.kind === 'erase') erase += mse[i]! * w[i]!;
      else if (st.beta > 0) preserve += (mse[i]! * w[i]!) / st.beta;
    }
  };
  let grads: Tensor[];
  const wt = tf.tensor1d(w);
  try {
    if (st.objective === 'final') {
      const x0 = tf.concat(items.map((i) => i.noise), 0);
      const target = tf.concat(items.map((i) => i.target!), 0);
      const lossOf = (f: Tensor): Tensor => tf.sum(tf.mul(itemMse(f, target), wt));
      const run = ddimSampleGrad(eps, x0, logits, st.sampler.plan, (final) => tf.grad(lossOf)(final), seed);
      const mse = itemMse(run.final, target);
      split(mse.dataSync());
      grads = run.params;
      tf.dispose([run.final, run.x0, mse, x0, target]);
    } else {
      const plan = st.sampler.plan;
      const n = plan.timesteps.length;
      let acc: Tensor[] = logits.map((l) => tf.zerosLike(l));
      const mseSum = new Float32Array(items.length);
      for (let k = 0; k < n; k++) {
        const xk = tf.concat(items.map((i) => i.states![k]!), 0);
        const tk = tf.concat(items.map((i) => i.stepTargets![k]!), 0);
        const s = stepSeed(seed, k);
        const out = tf.tidy(() => {
          let mseK: Tensor | null = null;
          const { value, grads: g } = tf.engine().gradients(() => {
            const pred = predictX0(xk, eps(xk, plan.timesteps[k]!, logits, s), plan.alphas[k]!);
            mseK = tf.keep(itemMse(pred, tk));
            return tf.div(tf.sum(tf.mul(mseK, wt)), n) as tf.Scalar;
          }, [...logits], undefined, true);
          value.dispose();
          return [mseK!, ...acc.map((a, i) => (g[i] ? tf.add(a, g[i]!) : a.clone()))];
        });
        const m = out[0]!.dataSync();
        for (let i = 0; i < items.length; i++) mseSum[i]! += m[i]! / n;
        tf.dispose([out[0]!, ...acc, xk, tk]);
        acc = out.slice(1);
      }
      split(mseSum);
      grads = acc;
    }
  } finally {
    wt.dispose();
    b.dispose();
  }
  const sp = sparsityTerm(logits, st.sparsity, hc);
  if (sp.grads) {
    const sum = grads.map((g, i) => tf.add(g, sp.grads![i]!));
    tf.dispose([...grads, ...sp.grads]);
    grads = sum;
  }
  return { loss: erase + st.beta * preserve + sp.value, terms: { erase, preserve, sparsity: sp.value }, grads };
}
