// Mask hook points of the UNet: named multiplicative masks on the linear outputs of every attention
// and feed-forward layer, passed to the forward as an explicit record (never global state). A mask
// is a 1-D tensor shared by the batch, the positions and the sampling steps.
//
// For each BasicTransformerBlock, with B = its name, e.g.
//   down_blocks.1.attentions.0.transformer_blocks.0      (also mid_block.attentions.0.…, up_blocks.{i}.attentions.{j}.…)
// and A = attn1 (self-attention) or attn2 (cross-attention on the text sequence):
//
//   B.A.heads    [heads]      per head of the attention output (softmax(qk^T)v), before to_out.0.
//                             Folds into the to_out.0.weight columns of that head.
//   B.A.to_q     [inner]      per unit of the to_q output (query).     Folds into to_q.weight rows.
//   B.A.to_k     [inner]      per unit of the to_k output (key).       Folds into to_k.weight rows.
//   B.A.to_v     [inner]      per unit of the to_v output (value).     Folds into to_v.weight rows.
//   B.A.to_out   [dim]        per unit of the to_out.0 output, before the residual add.
//                             Folds into to_out.0.weight rows and to_out.0.bias.
//   B.ff.hidden  [4 * dim]    per GEGLU hidden unit, hidden * gelu(gate), before ff.net.2.
//                             Folds into ff.net.2.weight columns.
//
// inner = dim = the block's channel count (UNet2DConditionModel builds inner_dim = out_channels).
// The MCE groups are `heads` (per head, as in FLUX) and `ff.hidden` (FFN units); the per-unit q/k/v/out
// masks are the finer "linear outputs of attention" hook points of the design.
import { tf, type Tensor } from '../../engine/tf.js';
import { ffInner, headsAt, type UnetParams, upLevels } from './params.js';

/** Named masks; any subset of the hook points may be given. */
export type UnetMasks = Readonly<Record<string, Tensor>>;

export type UnetMaskKind = 'heads' | 'to_q' | 'to_k' | 'to_v' | 'to_out' | 'ff_hidden';

export interface UnetMaskSpec {
  name: string;
  size: number;
  kind: UnetMaskKind;
  /** The BasicTransformerBlock's name (`down_blocks.1.attentions.0.transformer_blocks.0`). */
  block: string;
  /** attn1 (self), attn2 (cross) or ff. */
  layer: 'attn1' | 'attn2' | 'ff';
}

/** Every transformer block of a config with its width and heads, in forward order. No allocation. */
export function unetTransformerBlocks(p: UnetParams): { name: string; dim: number; heads: number }[] {
  const out: { name: string; dim: number; heads: number }[] = [];
  const n = p.block_out_channels.length;
  const add = (prefix: string, dim: number, heads: number): void => {
    for (let k = 0; k < p.transformer_layers_per_block; k++) out.push({ name: `${prefix}.transformer_blocks.${k}`, dim, heads });
  };
  for (let i = 0; i < n; i++) {
    if (p.down_block_types[i] !== 'CrossAttnDownBlock2D') continue;
    for (let j = 0; j < p.layers_per_block; j++) add(`down_blocks.${i}.attentions.${j}`, p.block_out_channels[i]!, headsAt(p, i));
  }
  if (p.mid_block_type) add('mid_block.attentions.0', p.block_out_channels[n - 1]!, headsAt(p, n - 1));
  for (const lv of upLevels(p)) {
    if (!lv.cross) continue;
    // up level i runs at down level n-1-i's resolution and uses its head count (diffusers reverses the list).
    for (let j = 0; j < lv.resnetIn.length; j++) add(`up_blocks.${lv.index}.attentions.${j}`, lv.out, headsAt(p, n - 1 - lv.index));
  }
  return out;
}

/** Every hook point of a config with its size, in forward order. No allocation. */
export function unetMaskSpecs(p: UnetParams): UnetMaskSpec[] {
  const out: UnetMaskSpec[] = [];
  for (const { name: b, dim, heads } of unetTransformerBlocks(p)) {
    for (const layer of ['attn1', 'attn2'] as const) {
      out.push({ name: `${b}.${layer}.heads`, size: heads, kind: 'heads', block: b, layer });
      for (const k of ['to_q', 'to_k', 'to_v', 'to_out'] as const) out.push({ name: `${b}.${layer}.${k}`, size: dim, kind: k, block: b, layer });
    }
    out.push({ name: `${b}.ff.hidden`, size: ffInner(dim), kind: 'ff_hidden', block: b, layer: 'ff' });
  }
  return out;
}

/** Throws on an unknown mask name or a wrong size, naming the first offender. */
export function validateUnetMasks(p: UnetParams, masks: UnetMasks): void {
  const names = Object.keys(masks);
  if (names.length === 0) return;
  const specs = new Map(unetMaskSpecs(p).map((s) => [s.name, s]));
  for (const name of names) {
    const s = specs.get(name);
    const t = masks[name]!;
    if (!s) throw new Error(`unknown UNet mask '${name}' (hook points: <transformer block>.attn1|attn2.heads|to_q|to_k|to_v|to_out, <transformer block>.ff.hidden)`);
    if (t.rank !== 1 || t.shape[0] !== s.size) throw new Error(`UNet mask '${name}' must have shape [${s.size}], got [${t.shape.join(', ')}]`);
  }
}

/**
 * Fold masks into the weights they scale (see the table above): the result computes exactly what
 * the masked model computes, for binary and continuous masks alike (every hook point is linear in
 * its weight). Returns a new record: folded tensors are new (the caller's to dispose), the others are
 * the input tensors themselves. Validates the masks first.
 */
export function foldUnetMasks(p: UnetParams, weights: Readonly<Record<string, Tensor>>, masks: UnetMasks): Record<string, Tensor> {
  validateUnetMasks(p, masks);
  const specs = new Map(unetMaskSpecs(p).map((s) => [s.name, s]));
  const out: Record<string, Tensor> = { ...weights };
  const fresh = new Set<string>();
  const get = (name: string): Tensor => {
    const t = out[name];
    if (!t) throw new Error(`foldUnetMasks: missing weight '${name}'`);
    return t;
  };
  const set = (name: string, t: Tensor): void => {
    if (fresh.has(name)) out[name]!.dispose();
    out[name] = t;
    fresh.add(name);
  };
  const scaleRows = (name: string, m: Tensor): void => {
    const w = get(name);
    set(name, tf.tidy(() => tf.mul(w, m.reshape([m.shape[0]!, ...w.shape.slice(1).map(() => 1)]))));
  };
  const scaleCols = (name: string, m: Tensor): void => {
    const w = get(name);
    set(name, tf.tidy(() => tf.mul(w, m.reshape([1, m.shape[0]!]))));
  };
  for (const [name, m] of Object.entries(masks)) {
    const s = specs.get(name)!;
    const base = `${s.block}.${s.layer}`;
    switch (s.kind) {
      case 'heads': {
        const w = get(`${base}.to_out.0.weight`);
        const d = w.shape[1]! / s.size;
        const cols = tf.tidy(() => tf.tile(m.reshape([s.size, 1]), [1, d]).reshape([s.size * d]));
        scaleCols(`${base}.to_out.0.weight`, cols);
        cols.dispose();
        break;
      }
      case 'to_q':
      case 'to_k':
      case 'to_v':
        scaleRows(`${base}.${s.kind}.weight`, m);
        if (out[`${base}.${s.kind}.bias`]) scaleRows(`${base}.${s.kind}.bias`, m);
        break;
      case 'to_out':
        scaleRows(`${base}.to_out.0.weight`, m);
        if (out[`${base}.to_out.0.bias`]) scaleRows(`${base}.to_out.0.bias`, m);
        break;
      case 'ff_hidden':
        scaleCols(`${s.block}.ff.net.2.weight`, m);
        break;
    }
  }
  return out;
}
