// The UNet forward (diffusers UNet2DConditionModel.forward for the SD 1.x / 2.x architecture), as a
// plain function of (config, weights, inputs, masks). It predicts the noise epsilon.
import { tf, type Tensor } from '../../engine/tf.js';
import { silu } from '../../engine/ops.js';
import { conv2d, downsample, groupNormNHWC, req, resnetBlock, timeEmbeddingMlp, timestepEmbedding, transformer2d, upsample } from './blocks.js';
import { type UnetMasks, validateUnetMasks } from './masks.js';
import { headsAt, spatialMultiple, type UnetParams, upLevels } from './params.js';
import type { UnetWeights } from './weights.js';

/** Layout of `sample` and of the output: NCHW (diffusers, the default) or NHWC (no transposes). */
export type UnetLayout = 'NCHW' | 'NHWC';

export interface UnetInputs {
  /** Noisy sample [B, in_channels, H, W] (NCHW) or [B, H, W, in_channels] (NHWC); H, W multiples of 2^(levels-1). */
  sample: Tensor;
  /** Diffusion timesteps [B] (integers 0..999 for the SD schedule; any float works). */
  timesteps: Tensor;
  /** Text encoder token sequence [B, T, cross_attention_dim] (`encoder_hidden_states`). */
  context: Tensor;
}

export interface UnetForwardOptions {
  /** Multiplicative masks at the hook points (see masks.ts). */
  masks?: UnetMasks;
  /** Layout of sample and output; default 'NCHW'. */
  layout?: UnetLayout;
}

function checkInputs(cfg: UnetParams, inp: UnetInputs, layout: UnetLayout): void {
  const x = inp.sample;
  if (x.rank !== 4) throw new Error(`UNet forward: sample must be 4-D (${layout}), got [${x.shape.join(', ')}]`);
  const [b, c, h, w] = layout === 'NCHW' ? x.shape : [x.shape[0], x.shape[3], x.shape[1], x.shape[2]];
  if (c !== cfg.in_channels) throw new Error(`UNet forward: sample has ${c} channels, the model takes ${cfg.in_channels} (layout ${layout})`);
  const m = spatialMultiple(cfg);
  if (h! % m !== 0 || w! % m !== 0) throw new Error(`UNet forward: H and W must be multiples of ${m}, got ${h}x${w}`);
  if (inp.timesteps.rank !== 1 || inp.timesteps.shape[0] !== b) throw new Error(`UNet forward: timesteps must be [${b}], got [${inp.timesteps.shape.join(', ')}]`);
  const ctx = inp.context;
  if (ctx.rank !== 3 || ctx.shape[0] !== b || ctx.shape[2] !== cfg.cross_attention_dim) {
    throw new Error(`UNet forward: context must be [${b}, T, ${cfg.cross_attention_dim}], got [${ctx.shape.join(', ')}]`);
  }
}

/**
 * The UNet's noise prediction, same shape and layout as `sample`, with optional masks.
 * Pure: the same weights serve masked and unmasked calls side by side.
 */
export function unetForward(cfg: UnetParams, w: UnetWeights, inputs: UnetInputs, opts: UnetForwardOptions = {}): Tensor {
  const masks = opts.masks ?? {};
  const layout = opts.layout ?? 'NCHW';
  validateUnetMasks(cfg, masks);
  checkInputs(cfg, inputs, layout);
  const norm = { groups: cfg.norm_num_groups, eps: cfg.norm_eps };
  const tl = cfg.transformer_layers_per_block;
  const n = cfg.block_out_channels.length;
  return tf.tidy(() => {
    const ctx = inputs.context;
    const temb = timeEmbeddingMlp(w, timestepEmbedding(inputs.timesteps, cfg.block_out_channels[0]!, cfg.flip_sin_to_cos, cfg.freq_shift));
    const stemb = silu(temb);
    const x = layout === 'NCHW' ? tf.transpose(inputs.sample, [0, 2, 3, 1]) : inputs.sample;
    let h = conv2d(x, req(w, 'conv_in.weight'), w['conv_in.bias']);
    const skips: Tensor[] = [h];
    for (let i = 0; i < n; i++) {
      const b = `down_blocks.${i}`;
      const cross = cfg.down_block_types[i] === 'CrossAttnDownBlock2D';
      for (let j = 0; j < cfg.layers_per_block; j++) {
        h = resnetBlock(w, `${b}.resnets.${j}`, h, stemb, norm);
        if (cross) h = transformer2d(w, `${b}.attentions.${j}`, h, ctx, headsAt(cfg, i), tl, norm.groups, masks);
        skips.push(h);
      }
      if (i !== n - 1) {
        h = downsample(w, `${b}.downsamplers.0`, h);
        skips.push(h);
      }
    }
    if (cfg.mid_block_type) {
      h = resnetBlock(w, 'mid_block.resnets.0', h, stemb, norm);
      h = transformer2d(w, 'mid_block.attentions.0', h, ctx, headsAt(cfg, n - 1), tl, norm.groups, masks);
      h = resnetBlock(w, 'mid_block.resnets.1', h, stemb, norm);
    }
    for (const lv of upLevels(cfg)) {
      const b = `up_blocks.${lv.index}`;
      for (let j = 0; j < lv.resnetIn.length; j++) {
        h = tf.concat([h, skips.pop()!], 3);
        h = resnetBlock(w, `${b}.resnets.${j}`, h, stemb, norm);
        if (lv.cross) h = transformer2d(w, `${b}.attentions.${j}`, h, ctx, headsAt(cfg, n - 1 - lv.index), tl, norm.groups, masks);
      }
      if (lv.upsample) h = upsample(w, `${b}.upsamplers.0`, h);
    }
    h = groupNormNHWC(h, req(w, 'conv_norm_out.weight'), req(w, 'conv_norm_out.bias'), norm.groups, norm.eps, true);
    const out = conv2d(h, req(w, 'conv_out.weight'), w['conv_out.bias']);
    return layout === 'NCHW' ? tf.transpose(out, [0, 3, 1, 2]) : out;
  });
}
