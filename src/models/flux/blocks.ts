// The FLUX transformer blocks (reference flux/modules/layers.py): modulation, QK-normed rotary
// attention, the double-stream block, the single-stream block and the final AdaLN layer.
// Every block takes silu(vec) precomputed (`svec`, [B, hidden]) since all of them use it,
// and its masks as explicit arguments.
import { tf, type Tensor } from '../../engine/tf.js';
import { attention, gelu, layerNorm, linear, modulate, rmsNorm } from '../../engine/ops.js';
import { applyRope, type Rope } from './embed.js';
import type { FluxMasks } from './masks.js';
import type { FluxWeights } from './weights.js';

/** The weight `name`, or one clear error. */
export function req(w: FluxWeights, name: string): Tensor {
  const t = w[name];
  if (!t) throw new Error(`FLUX weights: missing '${name}'`);
  return t;
}

/** Reference `Modulation`: lin(silu(vec)) [B, n*hidden], optionally masked, split into n [B, 1, hidden]. */
export function modulation(w: FluxWeights, prefix: string, svec: Tensor, n: number, mask?: Tensor): Tensor[] {
  return tf.tidy(() => {
    let out = linear(svec, req(w, `${prefix}.lin.weight`), w[`${prefix}.lin.bias`]);
    if (mask) out = tf.mul(out, mask);
    return tf.split(out.expandDims(1), n, 2);
  });
}

/** "B L (K H D) -> K B H L D" for K = 3: q, k, v [B, H, L, D]. */
function splitHeads(qkv: Tensor, heads: number): Tensor[] {
  const [b, l, c] = qkv.shape as [number, number, number];
  const d = c / 3 / heads;
  return tf.split(qkv, 3, 2).map((t) => t.reshape([b, l, heads, d]).transpose([0, 2, 1, 3]));
}

/** Reference `QKNorm`: RMSNorm per head with `query_norm.scale` / `key_norm.scale`. */
function qkNorm(w: FluxWeights, prefix: string, q: Tensor, k: Tensor): [Tensor, Tensor] {
  return [rmsNorm(q, req(w, `${prefix}.query_norm.scale`)), rmsNorm(k, req(w, `${prefix}.key_norm.scale`))];
}

/**
 * Reference `attention`: rope on q and k, softmax(q k^T / sqrt(D)) v, an optional per-head mask
 * on the output [H], then "B H L D -> B L (H D)".
 */
export function ropeAttention(q: Tensor, k: Tensor, v: Tensor, pe: Rope, headMask?: Tensor): Tensor {
  return tf.tidy(() => {
    let x = attention(applyRope(q, pe), applyRope(k, pe), v);
    const [b, h, l, d] = x.shape as [number, number, number, number];
    if (headMask) x = tf.mul(x, headMask.reshape([1, h, 1, 1]));
    return x.transpose([0, 2, 1, 3]).reshape([b, l, h * d]);
  });
}

/** FFN: Linear, GELU(tanh), mask on the hidden units, Linear (reference `*_mlp` Sequential). */
function mlp(w: FluxWeights, prefix: string, x: Tensor, mask?: Tensor): Tensor {
  return tf.tidy(() => {
    let hdn = gelu(linear(x, req(w, `${prefix}.0.weight`), w[`${prefix}.0.bias`]));
    if (mask) hdn = tf.mul(hdn, mask);
    return linear(hdn, req(w, `${prefix}.2.weight`), w[`${prefix}.2.bias`]);
  });
}

/**
 * Reference `DoubleStreamBlock` number `i`: separate weights per stream, joint attention over
 * concat(txt, img). Masks used: double_blocks.{i}.img_mlp / txt_mlp / txt_mod / heads.
 */
export function doubleBlock(
  w: FluxWeights,
  i: number,
  heads: number,
  img: Tensor,
  txt: Tensor,
  svec: Tensor,
  pe: Rope,
  masks: FluxMasks,
): [Tensor, Tensor] {
  const p = `double_blocks.${i}`;
  const out = tf.tidy(() => {
    const [iShift1, iScale1, iGate1, iShift2, iScale2, iGate2] = modulation(w, `${p}.img_mod`, svec, 6);
    const [tShift1, tScale1, tGate1, tShift2, tScale2, tGate2] = modulation(w, `${p}.txt_mod`, svec, 6, masks[`${p}.txt_mod`]);

    const imgMod = modulate(layerNorm(img, 1e-6), iShift1!, iScale1!);
    const [iq, ik, iv] = splitHeads(linear(imgMod, req(w, `${p}.img_attn.qkv.weight`), w[`${p}.img_attn.qkv.bias`]), heads);
    const [iqn, ikn] = qkNorm(w, `${p}.img_attn.norm`, iq!, ik!);

    const txtMod = modulate(layerNorm(txt, 1e-6), tShift1!, tScale1!);
    const [tq, tk, tv] = splitHeads(linear(txtMod, req(w, `${p}.txt_attn.qkv.weight`), w[`${p}.txt_attn.qkv.bias`]), heads);
    const [tqn, tkn] = qkNorm(w, `${p}.txt_attn.norm`, tq!, tk!);

    const q = tf.concat([tqn, iqn], 2);
    const k = tf.concat([tkn, ikn], 2);
    const v = tf.concat([tv!, iv!], 2);
    const attn = ropeAttention(q, k, v, pe, masks[`${p}.heads`]);
    const lt = txt.shape[1]!;
    const [txtAttn, imgAttn] = tf.split(attn, [lt, img.shape[1]!], 1);

    let im = tf.add(img, tf.mul(iGate1!, linear(imgAttn!, req(w, `${p}.img_attn.proj.weight`), w[`${p}.img_attn.proj.bias`])));
    const imgIn2 = modulate(layerNorm(im, 1e-6), iShift2!, iScale2!);
    im = tf.add(im, tf.mul(iGate2!, mlp(w, `${p}.img_mlp`, imgIn2, masks[`${p}.img_mlp`])));

    let tx = tf.add(txt, tf.mul(tGate1!, linear(txtAttn!, req(w, `${p}.txt_attn.proj.weight`), w[`${p}.txt_attn.proj.bias`])));
    const txtIn2 = modulate(layerNorm(tx, 1e-6), tShift2!, tScale2!);
    tx = tf.add(tx, tf.mul(tGate2!, mlp(w, `${p}.txt_mlp`, txtIn2, masks[`${p}.txt_mlp`])));
    return [im, tx];
  });
  return [out[0]!, out[1]!];
}

/**
 * Reference `SingleStreamBlock` number `i` on x = concat(txt, img) [B, L, hidden]: linear1 gives
 * qkv and the MLP input in parallel, linear2 maps concat(attn, gelu(mlp)) back.
 * Masks used: single_blocks.{i}.mlp / heads.
 */
export function singleBlock(
  w: FluxWeights,
  i: number,
  heads: number,
  mlpHidden: number,
  x: Tensor,
  svec: Tensor,
  pe: Rope,
  masks: FluxMasks,
): Tensor {
  const p = `single_blocks.${i}`;
  return tf.tidy(() => {
    const hidden = x.shape[2]!;
    const [shift, scale, gate] = modulation(w, `${p}.modulation`, svec, 3);
    const xMod = modulate(layerNorm(x, 1e-6), shift!, scale!);
    const [qkv, mlpIn] = tf.split(linear(xMod, req(w, `${p}.linear1.weight`), w[`${p}.linear1.bias`]), [3 * hidden, mlpHidden], 2);
    const [q, k, v] = splitHeads(qkv!, heads);
    const [qn, kn] = qkNorm(w, `${p}.norm`, q!, k!);
    const attn = ropeAttention(qn, kn, v!, pe, masks[`${p}.heads`]);
    let act = gelu(mlpIn!);
    const m = masks[`${p}.mlp`];
    if (m) act = tf.mul(act, m);
    const out = linear(tf.concat([attn, act], 2), req(w, `${p}.linear2.weight`), w[`${p}.linear2.bias`]);
    return tf.add(x, tf.mul(gate!, out));
  });
}

/** Reference `LastLayer`: shift, scale = adaLN_modulation(vec); linear(modulate(norm_final(x))). */
export function lastLayer(w: FluxWeights, x: Tensor, svec: Tensor): Tensor {
  return tf.tidy(() => {
    const mod = linear(svec, req(w, 'final_layer.adaLN_modulation.1.weight'), w['final_layer.adaLN_modulation.1.bias']);
    const [shift, scale] = tf.split(mod.expandDims(1), 2, 2);
    const y = modulate(layerNorm(x, 1e-6), shift!, scale!);
    return linear(y, req(w, 'final_layer.linear.weight'), w['final_layer.linear.bias']);
  });
}
