// mce-iter: one MCE training iteration (one micro-batch of `mce erase` at its defaults) on a
// flux-emoji-sized FLUX with random weights: 2 erase + 2 preserve items from their shared noises,
// classifier-free guidance inside every step (the batch doubled with the "" prompt), the FLUX
// schedule with time shift at flux-emoji's 6 steps, hard-concrete masks on the FFN units of both
// streams and the text modulation (the trained groups; noise from each step's seed, replayed in the
// recompute), loss Σ w_i MSE(final_i, target_i) (erase 1/2, preserve β/2, β = 0.1), and the
// gradients for every mask logit through every step by checkpointed backprop. Ours: the product
// path, erase/mce/objective.ts objectiveGrad. PyTorch: the same algorithm over its reference FLUX
// twin with the same masks (the uniform noise handed over as an input). Extra: our peak tensor
// memory at 4 and 16 steps (target: flat in the number of steps).
import { tf, type Tensor } from '../../engine/tf.js';
import { fluxMaskSpecs } from '../../models/flux/masks.js';
import { fluxSchedule } from '../../sampling/schedule.js';
import { HARD_CONCRETE_DEFAULTS } from '../../erase/mce/hardconcrete.js';
import { DEFAULT_GROUP_LR, DEFAULT_INIT_LOGIT, groupOf } from '../../erase/mce/masks.js';
import { PromptCache, objectiveGrad, type FluxEraseModel, type ObjectiveItem } from '../../erase/mce/objective.js';
import { normalInput } from '../util.js';
import { fluxForwardFlops, fluxSmallInputs, fluxSmallParams, fluxSmallTensors, type FluxSmallSize } from './flux-small.js';
import type { OursRun, Workload, WorkloadSize } from '../types.js';
import { BETA, ITEMS, RUN_SEED, maskUniforms, mceCheckValues, memoryBySteps } from './mce-common.js';

const CFG = 4;

interface MceIterSize extends FluxSmallSize {
  /** Unpacked latent [C, H, W]: packed grid (H/2) x (W/2), 4C channels. */
  latent: [number, number, number];
}

function mceIterSize(size: WorkloadSize): MceIterSize {
  const base = { mlp_ratio: 4, theta: 10_000, qkv_bias: true, guidance_embed: false };
  // `batch` here is the number of text rows (4 prompts + ""); the model runs on 2 x 4 items (CFG).
  if (size === 'tiny') {
    return {
      cfg: { ...base, in_channels: 16, out_channels: 16, vec_in_dim: 16, context_in_dim: 24, hidden_size: 32, num_heads: 2, depth: 1, depth_single_blocks: 1, axes_dim: [4, 6, 6] },
      batch: ITEMS.length + 1, grid_h: 2, grid_w: 2, txt_len: 3, steps: 2, latent: [4, 4, 4],
    };
  }
  // models/flux-emoji/manifest.json: flux params, latent 8x8x8 (16 packed tokens x 32), text context 16, 6 steps.
  return {
    cfg: { ...base, in_channels: 32, out_channels: 32, vec_in_dim: 128, context_in_dim: 128, hidden_size: 256, num_heads: 4, depth: 2, depth_single_blocks: 4, axes_dim: [16, 24, 24] },
    batch: ITEMS.length + 1, grid_h: 4, grid_w: 4, txt_len: 16, steps: 6, latent: [8, 8, 8],
  };
}

/** The trained hook points at the reference learning rates (FFN of both streams, text modulation), in order. */
function trainedSpecs(s: MceIterSize): { name: string; size: number }[] {
  return fluxMaskSpecs(s.cfg).filter((m) => DEFAULT_GROUP_LR[groupOf(m.name)] > 0);
}


export const mceIter: Workload = {
  name: 'mce-iter',
  description: 'one MCE iteration: flux-emoji-sized FLUX, 2 erase + 2 preserve items, CFG 4 inside each of 6 steps, hard-concrete FFN + txt_mod masks, final-output loss, checkpointed backprop to the mask logits',
  reps: 6,
  judge(r) {
    const by = r['peak_mb_by_steps'] as Record<string, number> | null | undefined;
    const ratioOk = r.ratio === null ? null : r.ratio <= 1.5;
    const flatOk = by && by['4'] !== undefined && by['16'] !== undefined ? by['16']! <= 1.1 * by['4']! : null;
    const met = ratioOk === false || flatOk === false ? false : ratioOk === null || flatOk === null ? null : true;
    return { text: 'ours <= 1.5x PyTorch time; peak memory at 16 steps within 10% of 4 steps', met };
  },
  prepare(size) {
    const s = mceIterSize(size);
    const { cfg } = s;
    const tokens = s.grid_h * s.grid_w;
    const seed = 0x1ce;
    const timesteps = fluxSchedule(s.steps, { imageSeqLen: tokens, shift: true });
    const specs = trainedSpecs(s);
    const { inputs, weightNames } = fluxSmallInputs(s, seed, [
      normalInput('x0', [ITEMS.length, tokens, cfg.in_channels], seed, 0),
      normalInput('target', [ITEMS.length, tokens, cfg.out_channels], seed, 1),
      maskUniforms(trainedSpecs(s), s.steps),
    ]);
    // Counted as the other checkpointed workloads: 4 forwards per step (2 x 4 items). The backward here
    // takes no weight gradients (~1 forward, not 2), so the real matmul work is ~3 forwards.
    return {
      flops: 4 * s.steps * fluxForwardFlops({ ...s, batch: 2 * ITEMS.length }),
      params: {
        ...fluxSmallParams(s), schedule: timesteps, cfg: CFG, beta: BETA, items: ITEMS, init_logit: DEFAULT_INIT_LOGIT,
        masks: specs, hard_concrete: HARD_CONCRETE_DEFAULTS,
      },
      inputs,
      setup(): OursRun {
        const t = fluxSmallTensors(s, inputs, weightNames);
        const prompts = ITEMS.map((_, i) => `p${i}`);
        const rowOf = new Map([...prompts, ''].map((p, i) => [p, i]));
        const model: FluxEraseModel = {
          cfg,
          weights: t.weights,
          latent: s.latent,
          encode: (ps) => tf.tidy(() => {
            const idx = tf.tensor1d(ps.map((p) => rowOf.get(p)!), 'int32');
            return { txt: tf.gather(t.named['txt']!, idx), y: tf.gather(t.named['y']!, idx) };
          }),
        };
        const cache = new PromptCache(model);
        cache.add([...prompts, '']);
        const names = specs.map((m) => m.name);
        const logits = specs.map((m) => tf.fill([m.size], DEFAULT_INIT_LOGIT));
        const split = (name: string): Tensor[] => tf.split(t.named[name]!, ITEMS.length, 0);
        const noises = split('x0');
        const targets = split('target');
        const items: ObjectiveItem[] = ITEMS.map((kind, i) => ({ kind, prompt: prompts[i]!, noise: noises[i]!, target: targets[i]! }));
        const run = (ts: readonly number[]) =>
          objectiveGrad(model, cache, names, logits, items, { sampler: { timesteps: ts, cfg: CFG }, objective: 'final', beta: BETA }, RUN_SEED);
        return {
          step: () => tf.dispose(run(timesteps).grads),
          checked: () => mceCheckValues(run(timesteps), names, ['ffn', 'txt_mod']),
          extra: (o) => memoryBySteps((n) => run(fluxSchedule(n, { imageSeqLen: tokens, shift: true })), size === 'tiny' ? [2, 4] : [4, 16], s.steps, o),
          dispose: () => {
            cache.dispose();
            tf.dispose([...logits, ...noises, ...targets]);
            t.dispose();
          },
        };
      },
    };
  },
};
