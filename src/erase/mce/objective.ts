// The MCE objective on a FLUX model (mce-method.md §1, §3): losses on the sampler's FINAL output
// from a shared initial noise, gradients through EVERY sampling step with per-step recompute
// (engine/checkpoint.ts via sampling/euler.ts eulerSampleGrad) into the mask logits.
//
//   L = mean_{erase items} MSE(F_masked(x_T, c), target) + β · mean_{preserve items} MSE(F_masked(x_T, c), F_orig(x_T, c))
//       [+ w_s · sparsity(λ)]
//
// Erase targets (`target`):
//   neutral  F_orig(x_T, neutral prompt)  (the reference code's same-noise deconcept generation)
//   empty    F_orig(x_T, "")              (the paper's formula)
//   edit     FlowEdit (Kulikov et al., mce-method.md §4.4): the original model's image for the erase
//            prompt, edited toward the neutral prompt along the same sampler (keeps layout and
//            background, changes the concept); final objective only
// `per-step` objective: the per-step family the paper contrasts with. The states x_k of the
// ORIGINAL model's trajectory on each item's own prompt are cached, and at every step the masked
// model's predicted x0 (x_k - t_k v) is pulled toward the original model's predicted x0 for the
// target prompt at the same state; gradients are local to each step (no flow through the sampler).
//
// Classifier-free guidance, when the sampler uses it (cfg != 1), is inside every step: the masks
// act on the conditional and the unconditional branch, and gradients flow through the combination.
import { tf, type Tensor } from '../../engine/tf.js';
import { stepSeed } from '../../engine/checkpoint.js';
import { mixSeed, randnArray } from '../../engine/rng.js';
import { makeImgIds, makeTxtIds, packLatents } from '../../models/flux/pack.js';
import type { FluxMasks } from '../../models/flux/masks.js';
import type { FluxParams } from '../../models/flux/params.js';
import type { FluxWeights } from '../../models/flux/weights.js';
import { eulerSample, eulerSampleGrad, type ParamVelocityFn } from '../../sampling/euler.js';
import { fluxDenoiser } from '../../sampling/flux.js';
import { HARD_CONCRETE_DEFAULTS, expectedL0, type HardConcreteParams } from './hardconcrete.js';
import { masksFromLogits } from './masks.js';
import { guidanceScale, type GuidanceInterval } from '../../sampling/guidance.js';

/** A FLUX model as MCE needs it: weights, a text conditioning function and the latent geometry. */
export interface FluxEraseModel {
  cfg: FluxParams;
  weights: FluxWeights;
  /** Prompts -> FLUX `txt` [B, T, context_in_dim] and `y` [B, vec_in_dim] (new tensors, the caller's). */
  encode(prompts: readonly string[]): { txt: Tensor; y: Tensor };
  /** Unpacked latent shape [C, H, W] (H, W even); packed tokens = H*W/4, channels 4C. */
  latent: readonly [number, number, number];
}

/** How the sampler runs (the same for the original and the masked model). */
export interface SamplerSettings {
  /** Timesteps, 1 -> 0 (fluxSchedule). */
  timesteps: readonly number[];
  /** Classifier-free guidance scale (1 = off); the unconditional prompt is "". */
  cfg: number;
  /** Guide only while t is in this interval (sampling/guidance.ts); absent: every step. */
  cfgInterval?: GuidanceInterval;
  /** Guidance strength for guidance-distilled models (ignored otherwise). */
  guidance?: number;
}

export type EraseTarget = 'neutral' | 'empty' | 'edit';
export type ObjectiveKind = 'final' | 'per-step';

export class NotImplementedError extends Error {}

/** The packed initial noise for a noise seed: randn in the unpacked latent, then packed [1, L, 4C]. */
export function packedNoise(model: FluxEraseModel, seed: number): Tensor {
  const [c, h, w] = model.latent;
  return tf.tidy(() => packLatents(tf.tensor4d(randnArray(c * h * w, seed), [1, c, h, w])));
}

/** The seed of noise number j of a run (the shared noises of the Monte Carlo average). */
export function noiseSeed(runSeed: number, j: number): number {
  return mixSeed(runSeed, 0x6e6f6973, j);
}

/** Text conditioning cached per prompt (encoded once per run). */
export class PromptCache {
  private readonly map = new Map<string, { txt: Tensor; y: Tensor }>();
  constructor(private readonly model: FluxEraseModel) {}

  /** Encode every prompt not cached yet (in chunks), keeping the tensors. */
  add(prompts: readonly string[], chunk = 32): void {
    const todo = [...new Set(prompts)].filter((p) => !this.map.has(p));
    for (let i = 0; i < todo.length; i += chunk) {
      const part = todo.slice(i, i + chunk);
      const enc = this.model.encode(part);
      part.forEach((p, j) => {
        const txt = tf.keep(enc.txt.slice([j, 0, 0], [1, -1, -1]));
        const y = tf.keep(enc.y.slice([j, 0], [1, -1]));
        this.map.set(p, { txt, y });
      });
      enc.txt.dispose();
      enc.y.dispose();
    }
  }

  /** Batched conditioning for prompts (new tensors). */
  batch(prompts: readonly string[]): { txt: Tensor; y: Tensor } {
    this.add(prompts);
    return tf.tidy(() => ({
      txt: tf.concat(prompts.map((p) => this.map.get(p)!.txt), 0),
      y: tf.concat(prompts.map((p) => this.map.get(p)!.y), 0),
    }));
  }

  dispose(): void {
    for (const v of this.map.values()) tf.dispose([v.txt, v.y]);
    this.map.clear();
  }
}

/**
 * A bound velocity for a batch of prompts: v(x, t, masks), with CFG inside when cfg != 1 (the
 * batch is doubled: conditional then unconditional). Call dispose() when done.
 */
export function batchVelocity(model: FluxEraseModel, cache: PromptCache, prompts: readonly string[], s: SamplerSettings): {
  velocity: (x: Tensor, t: number, masks?: FluxMasks) => Tensor;
  dispose: () => void;
} {
  const n = prompts.length;
  const guided = s.cfg !== 1;
  const all = guided ? [...prompts, ...prompts.map(() => '')] : [...prompts];
  const cond = cache.batch(all);
  const [, h, w] = model.latent;
  const b = all.length;
  const img_ids = makeImgIds(b, h / 2, w / 2);
  const txt_ids = makeTxtIds(b, cond.txt.shape[1]!);
  const den = fluxDenoiser(model.cfg, model.weights, { img_ids, txt: cond.txt, txt_ids, y: cond.y, guidance: s.guidance ?? null });
  return {
    velocity: (x, t, masks) =>
      tf.tidy(() => {
        if (!guided) return den.velocity(x, t, { masks });
        const v = den.velocity(tf.concat([x, x], 0), t, { masks });
        const vc = v.slice([0, 0, 0], [n, -1, -1]);
        const vu = v.slice([n, 0, 0], [n, -1, -1]);
        return tf.add(vu, tf.mul(tf.sub(vc, vu), guidanceScale(s.cfg, t, s.cfgInterval)));
      }),
    dispose: () => {
      den.dispose();
      tf.dispose([cond.txt, cond.y, img_ids, txt_ids]);
    },
  };
}

/** Sample (no tape) from packed noise [B, L, C] for prompts, with optional fixed masks. */
export function sampleFinal(
  model: FluxEraseModel,
  cache: PromptCache,
  prompts: readonly string[],
  noise: Tensor,
  s: SamplerSettings,
  masks?: FluxMasks,
  trajectory = false,
): { final: Tensor; xs?: Tensor[]; x0Preds?: Tensor[] } {
  const bv = batchVelocity(model, cache, prompts, s);
  try {
    return eulerSample((x, t) => bv.velocity(x, t, masks), noise, s.timesteps, { trajectory });
  } finally {
    bv.dispose();
  }
}

/** One training item: a prompt, its shared noise and its cached target(s). */
export interface ObjectiveItem {
  kind: 'erase' | 'preserve';
  prompt: string;
  /** Packed noise [1, L, C]. */
  noise: Tensor;
  /** final objective: the target final output [1, L, C]. */
  target?: Tensor;
  /** per-step objective: the original model's states x_k [1, L, C], k < N ... */
  states?: readonly Tensor[];
  /** ... and the target predicted x0 at each of them. */
  stepTargets?: readonly Tensor[];
}

/**
 * An optional regulariser on the logits, mean over units:
 *   l1    sigmoid(λ)           } push units toward masked: prune the model (the reference's unused
 *   l0    P(m > 0)             }   calculate_reg_loss, mce-method.md §1)
 *   edit  1 - P(m > 0) = P(m = 0): the expected fraction masked, to keep the edit small. Under
 *         Adam any weight (0.01 to 3 tried) lifts the logits the loss leaves idle into the dead zone
 *         above 3.09, where the loss gradient is zero, and nothing is erased (docs/erasure.md)
 */
export interface SparsityTerm {
  kind: 'none' | 'l1' | 'l0' | 'edit';
  /** Weight of the term (0 = off). */
  weight: number;
}

export interface ObjectiveSettings {
  sampler: SamplerSettings;
  objective: ObjectiveKind;
  beta: number;
  sparsity?: SparsityTerm;
  hc?: HardConcreteParams;
}

export interface ObjectiveResult {
  loss: number;
  terms: { erase: number; preserve: number; sparsity: number };
  /** d loss / d logits, in the order of `names`. */
  grads: Tensor[];
}

/** Mean squared error per item of a [B, ...] pair -> [B]. */
function itemMse(a: Tensor, b: Tensor): Tensor {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(a, b)).reshape([a.shape[0]!, -1]), 1));
}

/** Per-item loss weights: 1/nErase for erase items, β/nPreserve for preserve items. */
function itemWeights(items: readonly ObjectiveItem[], beta: number): Float32Array {
  const ne = items.filter((i) => i.kind === 'erase').length;
  const np = items.length - ne;
  return Float32Array.from(items, (i) => (i.kind === 'erase' ? 1 / ne : beta / np));
}

/** The sparsity term on the logits (SparsityTerm) and its gradient. */
export function sparsityTerm(logits: readonly Tensor[], sp: SparsityTerm | undefined, hc: HardConcreteParams): { value: number; grads: Tensor[] | null } {
  if (!sp || sp.kind === 'none' || sp.weight === 0 || logits.length === 0) return { value: 0, grads: null };
  const total = logits.reduce((a, l) => a + l.size, 0);
  const perUnit = (l: Tensor): Tensor => (sp.kind === 'l1' ? tf.sigmoid(l) : sp.kind === 'l0' ? expectedL0(l, hc) : tf.sub(1, expectedL0(l, hc)));
  const f = (...ls: Tensor[]): Tensor => tf.mul(tf.addN(ls.map((l) => tf.sum(perUnit(l)))), sp.weight / total);
  const { value, grads } = tf.engine().gradients(() => f(...logits) as tf.Scalar, [...logits], undefined, true);
  const v = value.dataSync()[0]!;
  value.dispose();
  return { value: v, grads: grads.map((g, i) => g ?? tf.zerosLike(logits[i]!)) };
}

/**
 * Loss and gradients for one micro-batch: all items in one batch through the masked sampler with
 * hard-concrete masks (noise from `seed`'s step seeds, replayed in the recompute).
 */
export function objectiveGrad(
  model: FluxEraseModel,
  cache: PromptCache,
  names: readonly string[],
  logits: readonly Tensor[],
  items: readonly ObjectiveItem[],
  st: ObjectiveSettings,
  seed: number,
): ObjectiveResult {
  const hc = st.hc ?? HARD_CONCRETE_DEFAULTS;
  const prompts = items.map((i) => i.prompt);
  const w = itemWeights(items, st.beta);
  const isErase = items.map((i) => i.kind === 'erase');
  const bv = batchVelocity(model, cache, prompts, st.sampler);
  const v: ParamVelocityFn = (x, t, params, s) =>
    tf.tidy(() => bv.velocity(x, t, masksFromLogits(names, params, { mode: 'hard-concrete', seed: s, hc })));
  let erase = 0;
  let preserve = 0;
  let grads: Tensor[];
  const split = (mse: Float32Array): void => {
    erase = 0;
    preserve = 0;
    mse.forEach((m, i) => {
      if (isErase[i]) erase += m * w[i]!;
      else preserve += (m * w[i]!) / (st.beta || 1);
    });
    if (st.beta === 0) preserve = 0;
  };
  try {
    const wt = tf.tensor1d(w);
    if (st.objective === 'final') {
      const x0 = tf.concat(items.map((i) => i.noise), 0);
      const target = tf.concat(items.map((i) => {
        if (!i.target) throw new Error('objective: an item has no cached final target');
        return i.target;
      }), 0);
      const lossOf = (f: Tensor): Tensor => tf.sum(tf.mul(itemMse(f, target), wt));
      const run = eulerSampleGrad(v, x0, logits, st.sampler.timesteps, (final) => tf.grad(lossOf)(final), seed);
      const mse = itemMse(run.final, target);
      split(mse.dataSync() as Float32Array);
      grads = run.params;
      tf.dispose([run.final, run.x0, mse, x0, target]);
    } else {
      const ts = st.sampler.timesteps;
      const n = ts.length - 1;
      let acc: Tensor[] = logits.map((l) => tf.zerosLike(l));
      const mseSum = new Float32Array(items.length);
      for (let k = 0; k < n; k++) {
        const t = ts[k]!;
        const xk = tf.concat(items.map((i) => i.states![k]!), 0);
        const tk = tf.concat(items.map((i) => i.stepTargets![k]!), 0);
        const s = stepSeed(seed, k);
        const out = tf.tidy(() => {
          let mseK: Tensor | null = null;
          const { value, grads: g } = tf.engine().gradients(() => {
            const vel = v(xk, t, logits, s);
            const pred = tf.sub(xk, tf.mul(vel, t));
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
    wt.dispose();
  } finally {
    bv.dispose();
  }
  const sp = sparsityTerm(logits, st.sparsity, hc);
  if (sp.grads) {
    const sum = grads.map((g, i) => tf.add(g, sp.grads![i]!));
    tf.dispose([...grads, ...sp.grads]);
    grads = sum;
  }
  const loss = erase + st.beta * preserve + sp.value;
  return { loss, terms: { erase, preserve, sparsity: sp.value }, grads };
}

/** A sample of the training set: which prompt, which shared noise, what it is pulled toward. */
export interface SampleSpec {
  kind: 'erase' | 'preserve';
  prompt: string;
  /** The prompt whose original output is the target (neutral / "" / the prompt itself). */
  targetPrompt: string;
  /** Index of the shared noise. */
  noise: number;
  /** FlowEdit target: edit the original model's image for `prompt` toward `targetPrompt`. */
  edit?: boolean;
}

export interface FlowEditOptions {
  /** Skip this many first steps of the schedule (the reference skips 4 of 28: n_max = 24). Default: round(0.15 N), at least 1 when N > 1. */
  skip?: number;
  /** Seed of the fresh noise drawn at every edit step. */
  seed: number;
}

/**
 * FlowEdit (inversion-free editing along the flow): from the source image xSrc [B, L, C] (packed,
 * t = 0), for each remaining step i: z_src = (1 - t_i) x_src + t_i eps_i, z_tar = z_edit + z_src - x_src,
 * z_edit += (t_{i+1} - t_i) (v(z_tar, tar) - v(z_src, src)). Returns z_edit (a new tensor).
 */
export function flowEdit(
  model: FluxEraseModel,
  cache: PromptCache,
  srcPrompts: readonly string[],
  tarPrompts: readonly string[],
  xSrc: Tensor,
  s: SamplerSettings,
  opts: FlowEditOptions,
): Tensor {
  const ts = s.timesteps;
  const n = ts.length - 1;
  const skip = opts.skip ?? (n > 1 ? Math.max(1, Math.round(0.15 * n)) : 0);
  const src = batchVelocity(model, cache, srcPrompts, s);
  const tar = batchVelocity(model, cache, tarPrompts, s);
  let z = xSrc.clone();
  try {
    for (let i = skip; i < n; i++) {
      const t = ts[i]!;
      const dt = ts[i + 1]! - t;
      const eps = tf.tensor(randnArray(xSrc.size, mixSeed(opts.seed, 0x666c6f77, i)), xSrc.shape);
      const next = tf.tidy(() => {
        const zSrc = tf.add(tf.mul(xSrc, 1 - t), tf.mul(eps, t));
        const zTar = tf.add(z, tf.sub(zSrc, xSrc));
        const dv = tf.sub(tar.velocity(zTar, t), src.velocity(zSrc, t));
        return tf.add(z, tf.mul(dv, dt));
      });
      eps.dispose();
      z.dispose();
      z = next;
    }
    return z;
  } finally {
    src.dispose();
    tar.dispose();
  }
}

/**
 * Build the cached items of a training set once per run: the shared noises and the original
 * model's targets (final outputs, or per-step states and predicted x0), batched in chunks.
 */
export function buildItems(
  model: FluxEraseModel,
  cache: PromptCache,
  samples: readonly SampleSpec[],
  st: { sampler: SamplerSettings; objective: ObjectiveKind },
  runSeed: number,
  chunk = 16,
  onChunk?: (done: number, total: number) => void,
): ObjectiveItem[] {
  if (st.objective !== 'final' && samples.some((s) => s.edit)) {
    throw new NotImplementedError('FlowEdit targets work with the final objective only (per-step has no edited trajectory)');
  }
  const noises = new Map<number, Tensor>();
  const noiseOf = (j: number): Tensor => {
    let t = noises.get(j);
    if (!t) noises.set(j, (t = packedNoise(model, noiseSeed(runSeed, j))));
    return t;
  };
  const items: ObjectiveItem[] = [];
  for (let i = 0; i < samples.length; i += chunk) {
    const part = samples.slice(i, i + chunk);
    const x0 = tf.concat(part.map((s) => noiseOf(s.noise)), 0);
    if (st.objective === 'final') {
      const edit = part.some((s) => s.edit);
      if (edit && !part.every((s) => s.edit)) throw new Error('buildItems: FlowEdit and plain samples cannot share a chunk');
      let final: Tensor;
      if (edit) {
        const srcImg = sampleFinal(model, cache, part.map((s) => s.prompt), x0, st.sampler).final;
        final = flowEdit(model, cache, part.map((s) => s.prompt), part.map((s) => s.targetPrompt), srcImg, st.sampler, { seed: mixSeed(runSeed, 0x65646974, i) });
        srcImg.dispose();
      } else {
        final = sampleFinal(model, cache, part.map((s) => s.targetPrompt), x0, st.sampler).final;
      }
      part.forEach((s, j) => items.push({ kind: s.kind, prompt: s.prompt, noise: noiseOf(s.noise), target: tf.keep(final.slice([j, 0, 0], [1, -1, -1])) }));
      final.dispose();
    } else {
      // States from the original model on each sample's own prompt; targets: the original model's
      // predicted x0 for the target prompt at those states.
      const run = sampleFinal(model, cache, part.map((s) => s.prompt), x0, st.sampler, undefined, true);
      const bv = batchVelocity(model, cache, part.map((s) => s.targetPrompt), st.sampler);
      const ts = st.sampler.timesteps;
      const states: Tensor[][] = part.map(() => []);
      const targets: Tensor[][] = part.map(() => []);
      for (let k = 0; k + 1 < ts.length; k++) {
        const xk = run.xs![k]!;
        const pred = tf.tidy(() => tf.sub(xk, tf.mul(bv.velocity(xk, ts[k]!), ts[k]!)));
        part.forEach((_, j) => {
          states[j]!.push(tf.keep(xk.slice([j, 0, 0], [1, -1, -1])));
          targets[j]!.push(tf.keep(pred.slice([j, 0, 0], [1, -1, -1])));
        });
        pred.dispose();
      }
      bv.dispose();
      tf.dispose([...run.xs!, ...run.x0Preds!]);
      part.forEach((s, j) => items.push({ kind: s.kind, prompt: s.prompt, noise: noiseOf(s.noise), states: states[j], stepTargets: targets[j] }));
    }
    x0.dispose();
    onChunk?.(Math.min(i + chunk, samples.length), samples.length);
  }
  return items;
}

/** Dispose the cached tensors of items (noises are shared; each is disposed once). */
export function disposeItems(items: readonly ObjectiveItem[]): void {
  const seen = new Set<Tensor>();
  for (const i of items) for (const t of [i.noise, i.target, ...(i.states ?? []), ...(i.stepTargets ?? [])]) if (t && !seen.has(t)) seen.add(t);
  tf.dispose([...seen]);
}
