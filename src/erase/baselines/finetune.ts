// Fine-tuning some of a model's weights to match per-step targets, the shared core of ESD and CA:
// each step a batch (latent state x at a sampler step, text conditioning, target prediction) is
// made without a tape (frozen original model), then MSE(prediction with the trainable weights,
// target) is minimised with AdamW through the seeded, resumable train loop (train/loop.ts).
// A trainable part is a whole weight or a row range of it (FLUX's K/V rows of txt_attn.qkv);
// the rows outside the range stay the original's.
import { tf, type Tensor } from '../../engine/tf.js';
import type { Rng } from '../../engine/rng.js';
import { train, type TrainResult } from '../../train/loop.js';
import { AdamW, type Params } from '../../train/optim.js';
import type { ProgressOptions } from '../../train/progress.js';
import type { BaselineModel } from './family.js';

/** A weight, or rows [from, to) of it, to train. */
export interface TrainablePart {
  weight: string;
  rows?: readonly [number, number];
}

/** One step's data: states x [B, ...] at time t, their conditioning, and the target prediction. */
export interface FinetuneBatch {
  x: Tensor;
  t: number;
  txt: Tensor;
  y?: Tensor | undefined;
  target: Tensor;
  /** Loss weight of each batch row (default 1 each): loss = sum_r w_r MSE_r / B. */
  rowWeights?: readonly number[];
}

export interface FinetuneOptions {
  parts: readonly TrainablePart[];
  iters: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /**
   * Make step `step`'s batch from the seeded stream (pure in rng, step and the weights). `current`
   * holds the trainable weights as they are now (full tensors by name, no tape; the caller must not
   * dispose them), for methods whose data depends on the model being trained (EAP).
   */
  makeBatch: (rng: Rng, step: number, current: Record<string, Tensor>) => FinetuneBatch;
  progress?: Omit<ProgressOptions, 'total' | 'start' | 'elapsedOffset'> | false;
  /** Checkpoint folder (resume after a kill); none by default. */
  dir?: string;
  /** Run configuration hashed into checkpoints. */
  config?: unknown;
}

export interface FinetuneResult {
  /** The trained weights, whole tensors (host float32), by name. */
  weights: Record<string, Float32Array>;
  /** Loss per step. */
  losses: number[];
  train: TrainResult;
  /** Parameters trained. */
  trainedParams: number;
}

const key = (p: TrainablePart): string => (p.rows ? `${p.weight}[${p.rows[0]}:${p.rows[1]}]` : p.weight);

function partSlice(model: BaselineModel, p: TrainablePart): Tensor {
  const w = model.weights[p.weight];
  if (!w) throw new Error(`fine-tune: no weight named '${p.weight}'`);
  if (!p.rows) return w.clone();
  return w.slice([p.rows[0], ...w.shape.slice(1).map(() => 0)], [p.rows[1] - p.rows[0], ...w.shape.slice(1).map(() => -1)]);
}

/** The full weight with the trainable rows in place (inside a tape: gradients reach the variable). */
function assemble(model: BaselineModel, p: TrainablePart, v: Tensor): Tensor {
  if (!p.rows) return v;
  const w = model.weights[p.weight]!;
  const rest = w.shape.slice(1).map(() => -1);
  const zeros = w.shape.slice(1).map(() => 0);
  const parts: Tensor[] = [];
  if (p.rows[0] > 0) parts.push(w.slice([0, ...zeros], [p.rows[0], ...rest]));
  parts.push(v);
  if (p.rows[1] < w.shape[0]!) parts.push(w.slice([p.rows[1], ...zeros], [-1, ...rest]));
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
}

export async function finetune(model: BaselineModel, o: FinetuneOptions): Promise<FinetuneResult> {
  const params: Params = {};
  for (const p of o.parts) {
    const init = partSlice(model, p);
    params[key(p)] = tf.variable(init, true);
    init.dispose();
  }
  const optimizer = new AdamW(params, { lr: o.lr, weightDecay: o.weightDecay });
  const losses: number[] = [];
  try {
    const result = await train<FinetuneBatch>({
      params,
      optimizer,
      steps: o.iters,
      seed: o.seed,
      config: o.config,
      dir: o.dir,
      batchFn: (ctx, rng) => {
        const current = tf.tidy(() => {
          const c: Record<string, Tensor> = {};
          for (const p of o.parts) c[p.weight] = assemble(model, p, params[key(p)]!);
          return c;
        });
        try {
          return o.makeBatch(rng, ctx.step, current);
        } finally {
          for (const p of o.parts) if (current[p.weight] !== params[key(p)]) current[p.weight]!.dispose();
        }
      },
      lossFn: (ps, b) => {
        const over: Record<string, Tensor> = {};
        for (const p of o.parts) over[p.weight] = assemble(model, p, ps[key(p)]!);
        const pred = model.predict(b.x, b.t, { txt: b.txt, y: b.y ?? null }, over);
        const sq = tf.square(tf.sub(pred, b.target));
        if (!b.rowWeights) return tf.mean(sq) as tf.Scalar;
        const perRow = tf.mean(sq.reshape([sq.shape[0]!, -1]), 1);
        return tf.div(tf.sum(tf.mul(perRow, tf.tensor1d([...b.rowWeights]))), sq.shape[0]!) as tf.Scalar;
      },
      onStep: (info) => {
        losses.push(info.loss);
      },
      state: { save: () => losses, load: (s) => losses.splice(0, losses.length, ...(s as number[])) },
      progress: o.progress,
    });
    const weights: Record<string, Float32Array> = {};
    let trainedParams = 0;
    for (const p of o.parts) {
      const full = tf.tidy(() => assemble(model, p, params[key(p)]!));
      weights[p.weight] = full.dataSync() as Float32Array;
      if (full !== params[key(p)]) full.dispose();
      trainedParams += params[key(p)]!.size;
    }
    return { weights, losses, train: result, trainedParams };
  } finally {
    optimizer.dispose();
    tf.dispose(Object.values(params));
  }
}
