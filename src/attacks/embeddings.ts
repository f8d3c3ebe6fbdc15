// Prompts as input token embeddings, for the attacks that optimise a prompt by gradient (P4D,
// UnlearnDiffAtk, concept inversion). A prompt with free slots is a layout: fixed token rows
// (SOT, the words around the slots, EOT, padding) and the positions of the slots. Filling the slots
// with embedding vectors and running the text encoder from embeddings (the same forward as
// textEncoderForward, models/text/encoder.ts) gives a conditioning that is differentiable in the
// slot vectors. Hard prompts come from PEZ's projection (Wen et al. 2023, used by P4D and
// UnlearnDiffAtk): each slot's continuous vector is replaced by the vocabulary row nearest in cosine.
import { tf, type Tensor } from '../engine/tf.js';
import { textEncoderFromEmbeddings, type TextEncoder } from '../models/text/encoder.js';
import { ClipTokenizer } from '../models/text/tokenizer.js';
import type { BaselineModel, Cond } from '../erase/baselines/family.js';

/** A prompt with free slots, in embedding rows. */
export interface SlotLayout {
  /** Embedding rows [T] of the fixed tokens (slots hold row 0 here). */
  rows: Int32Array;
  /** Positions of the slots in the sequence, ascending. */
  slots: number[];
  /** The EOT position. */
  eot: number;
  /** The words before and after the slots (for writing the prompt back as text). */
  before: string;
  after: string;
}

/** The model's real text encoder (attacks that search its token space need one). */
export function textEncoderOf(model: BaselineModel): TextEncoder {
  if (!model.text) throw new Error('this attack needs the model\'s real text encoder (a bundle model; the test hash encoders have none)');
  return model.text;
}

/** The rows of a text's tokens between SOT and EOT. */
function textRows(enc: TextEncoder, text: string): number[] {
  if (text.trim() === '') return [];
  const r = enc.tokenizer.one(text);
  return Array.from(r.rows.subarray(1, r.eot));
}

/**
 * SOT, `before`'s tokens, `slots` free slots, `after`'s tokens, EOT, padding. `after` is cut from
 * its end when the whole does not fit the context (the slots and `before` always fit, or it throws).
 */
export function slotLayout(enc: TextEncoder, before: string, slots: number, after: string): SlotLayout {
  const t = enc.params.context_length;
  const pre = textRows(enc, before);
  const full = textRows(enc, after);
  const room = t - 2 - pre.length - slots;
  if (room < 0) throw new Error(`a prompt of ${pre.length} tokens and ${slots} free slots does not fit the text encoder's ${t} tokens`);
  const post = full.slice(0, room);
  const tok = enc.tokenizer.one('');
  const rows = new Int32Array(t);
  rows[0] = tok.rows[0]!;
  const seq = [...pre, ...Array<number>(slots).fill(0), ...post];
  rows.set(seq, 1);
  const eot = 1 + seq.length;
  rows[eot] = tok.rows[tok.eot]!;
  const slotPos = Array.from({ length: slots }, (_, i) => 1 + pre.length + i);
  return { rows, slots: slotPos, eot, before, after: post.length === full.length ? after : rowsText(enc, post) };
}

/** The layout's token embeddings [B, T, D] with the slots filled by `slotVecs` [S, D] (differentiable in them). */
export function fillSlots(enc: TextEncoder, layout: SlotLayout, slotVecs: Tensor, batch = 1): Tensor {
  return tf.tidy(() => {
    const table = enc.weights['token_embedding.weight']!;
    const t = layout.rows.length;
    const fixed = tf.gather(table, tf.tensor1d(layout.rows, 'int32'));
    // One-hot placement keeps the slots differentiable without a scatter: x = fixed * keep + P v.
    const place = new Float32Array(t * layout.slots.length);
    const keep = new Float32Array(t).fill(1);
    layout.slots.forEach((p, i) => {
      place[p * layout.slots.length + i] = 1;
      keep[p] = 0;
    });
    const x = tf.add(tf.mul(fixed, tf.tensor2d(keep, [t, 1])), tf.matMul(tf.tensor2d(place, [t, layout.slots.length]), slotVecs));
    return tf.tile(x.expandDims(0), [batch, 1, 1]);
  });
}

/** Token embeddings [B, T, D] (before the positional embedding) and EOT positions -> the model's conditioning. */
export function condFromEmbeddings(model: BaselineModel, tokens: Tensor, eot: Int32Array): Cond {
  const enc = textEncoderOf(model);
  const out = textEncoderFromEmbeddings(enc.params, enc.weights, tokens, eot);
  if (model.family === 'flow') return out;
  out.y.dispose();
  return { txt: out.txt, y: null };
}

/** The conditioning of a layout with its slots filled, repeated `batch` times. */
export function slotCond(model: BaselineModel, layout: SlotLayout, slotVecs: Tensor, batch = 1): Cond {
  const enc = textEncoderOf(model);
  const x = fillSlots(enc, layout, slotVecs, batch);
  const c = condFromEmbeddings(model, x, new Int32Array(batch).fill(layout.eot));
  x.dispose();
  return c;
}

let tokenizer: ClipTokenizer | undefined;
const clip = (): ClipTokenizer => (tokenizer ??= ClipTokenizer.load());

/** The CLIP BPE id of an embedding row (row 0 is padding / unknown: -1). */
export function clipIdOf(enc: TextEncoder, row: number): number {
  return row >= 1 ? enc.vocab[row - 1]! : -1;
}

/** The table rows `rows` as a [R, D] tensor. */
export function rowEmbeddings(enc: TextEncoder, rows: ArrayLike<number>): Tensor {
  return tf.tidy(() => tf.gather(enc.weights['token_embedding.weight']!, tf.tensor1d(Int32Array.from(rows), 'int32')));
}

/** PEZ projection: for each vector of `vecs` [S, D], the row among `allowed` of highest cosine similarity. */
export function nearestRows(enc: TextEncoder, vecs: Tensor, allowed: Int32Array): Int32Array {
  const idx = tf.tidy(() => {
    const table = rowEmbeddings(enc, allowed);
    const unit = (m: Tensor) => tf.div(m, tf.add(tf.norm(m, 2, 1, true), 1e-12));
    return tf.argMax(tf.matMul(unit(vecs), unit(table), false, true), 1);
  });
  const best = idx.dataSync();
  idx.dispose();
  return Int32Array.from(best, (i) => allowed[i]!);
}

/** Rows as text (CLIP's decode, specials dropped, spaces tidied). */
export function rowsText(enc: TextEncoder, rows: ArrayLike<number>): string {
  const ids = Array.from(rows, (r) => clipIdOf(enc, r)).filter((id) => id >= 0);
  return clip().decode(ids, { skipSpecial: true }).replace(/\s+/g, ' ').trim();
}

/** The layout written as a prompt with hard slot tokens. */
export function layoutText(enc: TextEncoder, layout: SlotLayout, slotRows: ArrayLike<number>): string {
  return [layout.before, rowsText(enc, slotRows), layout.after].filter((s) => s.trim() !== '').join(' ').replace(/\s+/g, ' ').trim();
}
