// Gradient search over a prompt's free slots, shared by P4D, UnlearnDiffAtk (hard prompts) and
// concept inversion (a soft token):
//   hard (PEZ, Wen et al. 2023; P4D and UnlearnDiffAtk build on it): keep continuous slot vectors,
//        and every iteration project them onto the nearest vocabulary rows, take the loss and its
//        gradient AT the projection, and apply that gradient to the continuous vectors (AdamW).
//        The result is the projected prompt with the lowest loss seen (as P4D keeps its best);
//        with `select`, by that score instead: each iteration's loss is on its own random batch,
//        so the lowest of them mostly picks the luckiest batch, not the best prompt.
//   soft (textual inversion): optimise the vectors themselves; the result is the last vectors.
// Deterministic: the initial tokens come from the seed, the attack's loss draws its own batches
// from (seed, iteration).
import { tf, type Tensor } from '../engine/tf.js';
import { Rng, mixSeed } from '../engine/rng.js';
import { AdamW } from '../train/optim.js';
import { disposeCond, type BaselineModel, type Cond } from '../erase/baselines/family.js';
import { nearestRows, rowEmbeddings, slotCond, textEncoderOf, type SlotLayout } from './embeddings.js';

export interface SlotSearch {
  model: BaselineModel;
  layout: SlotLayout;
  /** Rows the hard prompt may use (hard mode), and from which random initial tokens are drawn. */
  allowed: Int32Array;
  mode: 'hard' | 'soft';
  iters: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** Conditioning rows per loss evaluation (the slot prompt repeated). */
  batch: number;
  /** Initial slot rows (default: seeded random rows of `allowed`). */
  init?: Int32Array;
  /** The attack's objective for the conditioning at iteration `it` (called inside the tape). */
  loss: (cond: Cond, it: number) => tf.Scalar;
  /** Hard mode: score of projected slot vectors [S, D] on fixed draws (lower is better; each distinct prompt scored once). */
  select?: (vecs: Tensor) => number;
  /** Called after every iteration (progress lines). */
  onStep?: (it: number, loss: number) => void;
}

export interface SlotSearchResult {
  /** Hard mode: the best projected rows. Soft mode: the nearest rows of the final vectors (for display). */
  rows: Int32Array;
  /** Soft mode: the learned vectors [S * D]; hard mode: the rows' embeddings. */
  vectors: Float32Array;
  /** Loss of the result (hard: its `select` score, else the best iteration's loss; soft: the last iteration's). */
  loss: number;
  /** Loss per iteration (hard: at the projection). */
  losses: number[];
}

/** Seeded random rows of `allowed`, one per slot. */
export function randomRows(allowed: Int32Array, n: number, seed: number): Int32Array {
  const rng = new Rng(mixSeed(seed, 0x696e6974));
  return Int32Array.from({ length: n }, () => allowed[rng.int(allowed.length)]!);
}

export function optimiseSlots(o: SlotSearch): SlotSearchResult {
  const enc = textEncoderOf(o.model);
  const s = o.layout.slots.length;
  const init = o.init ?? randomRows(o.allowed, s, o.seed);
  const start = rowEmbeddings(enc, init);
  const soft = tf.variable(start, true);
  start.dispose();
  const opt = new AdamW({ slots: soft }, { lr: o.lr, weightDecay: o.weightDecay });
  const losses: number[] = [];
  let best = { rows: init, loss: Infinity };
  const scored = new Map<string, number>();
  const scoreOf = (rows: Int32Array): number => {
    const key = rows.join(',');
    let v = scored.get(key);
    if (v === undefined) {
      const vecs = rowEmbeddings(enc, rows);
      v = o.select!(vecs);
      vecs.dispose();
      scored.set(key, v);
    }
    return v;
  };
  const lossOf = (it: number) => (vecs: Tensor): tf.Scalar => {
    const cond = slotCond(o.model, o.layout, vecs, o.batch);
    const l = o.loss(cond, it);
    disposeCond(cond);
    return l;
  };
  try {
    for (let it = 0; it < o.iters; it++) {
      const rows = o.mode === 'hard' ? nearestRows(enc, soft, o.allowed) : null;
      const at = rows ? rowEmbeddings(enc, rows) : soft;
      const { value, grads } = tf.valueAndGrads(lossOf(it))([at]);
      const loss = value.dataSync()[0]!;
      value.dispose();
      if (at !== soft) at.dispose();
      opt.step({ slots: grads[0]! });
      tf.dispose(grads);
      losses.push(loss);
      if (rows) {
        const score = o.select ? scoreOf(rows) : loss;
        if (score < best.loss) best = { rows, loss: score };
      }
      o.onStep?.(it, loss);
    }
    if (o.mode === 'hard') {
      const e = rowEmbeddings(enc, best.rows);
      const vectors = e.dataSync() as Float32Array;
      e.dispose();
      return { rows: best.rows, vectors, loss: best.loss, losses };
    }
    return { rows: nearestRows(enc, soft, o.allowed), vectors: soft.dataSync() as Float32Array, loss: losses[losses.length - 1] ?? NaN, losses };
  } finally {
    opt.dispose();
    soft.dispose();
  }
}
