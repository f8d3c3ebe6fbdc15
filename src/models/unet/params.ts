// SD-style UNet hyperparameters (diffusers `UNet2DConditionModel` config field names), presets, and
// the list of parameter names and shapes a config expects, in diffusers state_dict order with torch
// layouts. Nothing here allocates a tensor.
//
// Supported subset of UNet2DConditionModel: the SD 1.x / 2.x architecture.
//   conv_in -> time_proj (sinusoidal, no params) -> time_embedding (linear_1, SiLU, linear_2)
//   down_blocks.{i}: CrossAttnDownBlock2D | DownBlock2D (resnets, attentions, downsamplers.0)
//   mid_block: UNetMidBlock2DCrossAttn (resnets.0, attentions.0, resnets.1) or none
//   up_blocks.{i}: CrossAttnUpBlock2D | UpBlock2D (layers_per_block + 1 resnets on the skips, upsamplers.0)
//   conv_norm_out (GroupNorm) -> SiLU -> conv_out
// ResnetBlock2D: norm1, SiLU, conv1, + time_emb_proj(SiLU(temb)), norm2, SiLU, conv2, conv_shortcut (1x1)
// when channels change. Transformer2DModel: norm (GroupNorm, eps 1e-6), proj_in, transformer_blocks.{k}
// (BasicTransformerBlock: norm1/attn1 self, norm2/attn2 cross, norm3/ff GEGLU), proj_out, residual.
// Not supported (not in SD 1.x/2.x): class/addition embeddings, time_cond_proj, attention masks,
// resnet_time_scale_shift "scale_shift", dual cross attention, upcast/only-cross attention.

export type UnetDownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UnetUpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

/** The UNet2DConditionModel config fields this implementation reads (same names). */
export interface UnetParams {
  /** Spatial size (H = W) the model is trained at; informational, any multiple of 2^(levels-1) runs. */
  sample_size: number;
  in_channels: number;
  out_channels: number;
  /** Channels per resolution level, highest resolution first. */
  block_out_channels: number[];
  /** ResNet blocks per down level (up levels have one more). */
  layers_per_block: number;
  down_block_types: UnetDownBlockType[];
  /** Lowest resolution first (diffusers order). */
  up_block_types: UnetUpBlockType[];
  /** UNetMidBlock2DCrossAttn, or null for no mid block. */
  mid_block_type: 'UNetMidBlock2DCrossAttn' | null;
  /** Width of the text encoder's token sequence (`encoder_hidden_states` [B, T, cross_attention_dim]). */
  cross_attention_dim: number;
  /**
   * Attention heads per level (one number for all levels). NOTE: diffusers' SD configs store the
   * head COUNT in a field called `attention_head_dim` (a historical naming quirk: SD 1.5 has 8, SD 2.x
   * [5, 10, 20, 20]); a config reader maps it here. Head dim = channels / heads.
   */
  num_attention_heads: number | number[];
  /** BasicTransformerBlocks per Transformer2DModel. */
  transformer_layers_per_block: number;
  norm_num_groups: number;
  norm_eps: number;
  /** proj_in / proj_out as Linear [inner, C] (SD 2.x) or as 1x1 Conv2d [inner, C, 1, 1] (SD 1.x). */
  use_linear_projection: boolean;
  /** Timestep embedding: cos half first (SD: true) and the frequency shift (SD: 0). */
  flip_sin_to_cos: boolean;
  freq_shift: number;
}

/** Stable Diffusion 1.x (v1.4 / v1.5): 859,520,964 parameters. For names and shapes; never allocated here. */
export const SD15_UNET: Readonly<UnetParams> = Object.freeze({
  sample_size: 64,
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 768,
  num_attention_heads: 8,
  transformer_layers_per_block: 1,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  use_linear_projection: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
} as UnetParams);

/** Stable Diffusion 2.x (768-v and base): 865,910,724 parameters. */
export const SD21_UNET: Readonly<UnetParams> = Object.freeze({
  ...SD15_UNET,
  sample_size: 96,
  cross_attention_dim: 1024,
  num_attention_heads: [5, 10, 20, 20],
  use_linear_projection: true,
} as UnetParams);

/**
 * sd-emoji, latent space (the default): the 8x8 latent of the emoji-world autoencoder (32x32 images,
 * f = 4, 8 latent channels) and the 128-wide text sequence of the world's text encoder, as in
 * configs/flux-emoji*.json when this was written (override in/out_channels and cross_attention_dim
 * if those change). Two levels (8x8 and 4x4, 64 and 128 channels), one ResNet per level,
 * cross-attention at both levels and in the mid block. 4.29M parameters. Measured on the 2-core dev
 * machine (native backend, under load): batch 16 forward about 0.16-0.3 s, forward + backward about 0.6 s.
 */
export const SD_EMOJI_LATENT8: Readonly<UnetParams> = Object.freeze({
  sample_size: 8,
  in_channels: 8,
  out_channels: 8,
  block_out_channels: [64, 128],
  layers_per_block: 1,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 128,
  num_attention_heads: [2, 4],
  transformer_layers_per_block: 1,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
} as UnetParams);

/**
 * sd-emoji, pixel space: 32x32 RGB without an autoencoder. Two levels (32x32 plain ResNets with 64
 * channels, 16x16 with 128 channels and cross-attention, mid block at 16x16). Far more compute per
 * sample than the latent preset (measured on the 2-core dev machine, batch 16, forward + backward:
 * about 12 s here against 0.6 s); for when no autoencoder is wanted.
 */
export const SD_EMOJI_PIXEL32: Readonly<UnetParams> = Object.freeze({
  sample_size: 32,
  in_channels: 3,
  out_channels: 3,
  block_out_channels: [64, 128],
  layers_per_block: 1,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 128,
  num_attention_heads: [2, 4],
  transformer_layers_per_block: 1,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
} as UnetParams);

export const UNET_PRESETS: Readonly<Record<string, Readonly<UnetParams>>> = Object.freeze({
  'sd15': SD15_UNET,
  'sd21': SD21_UNET,
  'sd-emoji-latent8': SD_EMOJI_LATENT8,
  'sd-emoji-pixel32': SD_EMOJI_PIXEL32,
});

/** Heads at level i (the mid block uses the last level's). */
export function headsAt(p: UnetParams, level: number): number {
  const h = p.num_attention_heads;
  return Array.isArray(h) ? h[level]! : h;
}

/** Dimension of the time embedding (4 x block_out_channels[0], SD's time_embed_dim). */
export function timeEmbedDim(p: UnetParams): number {
  return 4 * p.block_out_channels[0]!;
}

/** Width of the GEGLU hidden layer of a transformer block of width `dim` (diffusers FeedForward mult 4). */
export function ffInner(dim: number): number {
  return 4 * dim;
}

/** Spatial size must be a multiple of this. */
export function spatialMultiple(p: UnetParams): number {
  return 2 ** (p.block_out_channels.length - 1);
}

/** Throws one clear line when the config is inconsistent or outside the supported subset. */
export function validateUnetParams(p: UnetParams): void {
  const bad = (what: string): never => {
    throw new Error(`invalid UnetParams: ${what}`);
  };
  const posInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0;
  for (const k of ['sample_size', 'in_channels', 'out_channels', 'layers_per_block', 'cross_attention_dim', 'transformer_layers_per_block', 'norm_num_groups'] as const) {
    if (!posInt(p[k])) bad(`${k} must be a positive integer, got ${String(p[k])}`);
  }
  const n = p.block_out_channels?.length ?? 0;
  if (n < 1) bad('block_out_channels must be a non-empty list');
  for (const c of p.block_out_channels) if (!posInt(c)) bad(`block_out_channels entries must be positive integers, got ${c}`);
  if (p.down_block_types.length !== n) bad(`down_block_types has ${p.down_block_types.length} entries, block_out_channels ${n}`);
  if (p.up_block_types.length !== n) bad(`up_block_types has ${p.up_block_types.length} entries, block_out_channels ${n}`);
  for (const t of p.down_block_types) if (t !== 'CrossAttnDownBlock2D' && t !== 'DownBlock2D') bad(`unsupported down block type '${String(t)}'`);
  for (const t of p.up_block_types) if (t !== 'CrossAttnUpBlock2D' && t !== 'UpBlock2D') bad(`unsupported up block type '${String(t)}'`);
  if (p.mid_block_type !== null && p.mid_block_type !== 'UNetMidBlock2DCrossAttn') bad(`unsupported mid_block_type '${String(p.mid_block_type)}'`);
  if (Array.isArray(p.num_attention_heads) && p.num_attention_heads.length !== n) {
    bad(`num_attention_heads has ${p.num_attention_heads.length} entries, block_out_channels ${n}`);
  }
  for (let i = 0; i < n; i++) {
    const c = p.block_out_channels[i]!;
    const h = headsAt(p, i);
    if (!posInt(h)) bad(`num_attention_heads must be positive integers, got ${String(h)}`);
    if (c % h !== 0) bad(`block_out_channels[${i}] = ${c} is not divisible by ${h} heads`);
    if (c % p.norm_num_groups !== 0) bad(`block_out_channels[${i}] = ${c} is not divisible by norm_num_groups ${p.norm_num_groups}`);
  }
  // Up-block resnets see concat(h, skip); their GroupNorm needs those widths divisible too.
  for (const s of unetParamSpecsUnchecked(p)) {
    if (/norm1\.weight$/.test(s.name) && s.shape[0]! % p.norm_num_groups !== 0) {
      bad(`${s.name.replace(/\.weight$/, '')} has ${s.shape[0]} channels, not divisible by norm_num_groups ${p.norm_num_groups}`);
    }
  }
  if (!(p.norm_eps > 0)) bad('norm_eps must be positive');
  if (!Number.isFinite(p.freq_shift)) bad('freq_shift must be finite');
  if (typeof p.use_linear_projection !== 'boolean' || typeof p.flip_sin_to_cos !== 'boolean') bad('use_linear_projection and flip_sin_to_cos must be booleans');
}

export interface UnetParamSpec {
  name: string;
  shape: number[];
}

/** One ResnetBlock2D's parameters. */
function resnetSpecs(out: UnetParamSpec[], prefix: string, cin: number, cout: number, temb: number): void {
  out.push({ name: `${prefix}.norm1.weight`, shape: [cin] }, { name: `${prefix}.norm1.bias`, shape: [cin] });
  out.push({ name: `${prefix}.conv1.weight`, shape: [cout, cin, 3, 3] }, { name: `${prefix}.conv1.bias`, shape: [cout] });
  out.push({ name: `${prefix}.time_emb_proj.weight`, shape: [cout, temb] }, { name: `${prefix}.time_emb_proj.bias`, shape: [cout] });
  out.push({ name: `${prefix}.norm2.weight`, shape: [cout] }, { name: `${prefix}.norm2.bias`, shape: [cout] });
  out.push({ name: `${prefix}.conv2.weight`, shape: [cout, cout, 3, 3] }, { name: `${prefix}.conv2.bias`, shape: [cout] });
  if (cin !== cout) out.push({ name: `${prefix}.conv_shortcut.weight`, shape: [cout, cin, 1, 1] }, { name: `${prefix}.conv_shortcut.bias`, shape: [cout] });
}

/** One Transformer2DModel's parameters (inner dim = channels, as UNet2DConditionModel builds it). */
function transformerSpecs(out: UnetParamSpec[], prefix: string, p: UnetParams, c: number): void {
  const inner = c;
  const proj = (name: string, o: number, i: number): void => {
    out.push({ name: `${prefix}.${name}.weight`, shape: p.use_linear_projection ? [o, i] : [o, i, 1, 1] });
    out.push({ name: `${prefix}.${name}.bias`, shape: [o] });
  };
  out.push({ name: `${prefix}.norm.weight`, shape: [c] }, { name: `${prefix}.norm.bias`, shape: [c] });
  proj('proj_in', inner, c);
  for (let k = 0; k < p.transformer_layers_per_block; k++) {
    const b = `${prefix}.transformer_blocks.${k}`;
    const ln = (n: string): void => {
      out.push({ name: `${b}.${n}.weight`, shape: [inner] }, { name: `${b}.${n}.bias`, shape: [inner] });
    };
    const attn = (n: string, ctx: number): void => {
      out.push({ name: `${b}.${n}.to_q.weight`, shape: [inner, inner] });
      out.push({ name: `${b}.${n}.to_k.weight`, shape: [inner, ctx] });
      out.push({ name: `${b}.${n}.to_v.weight`, shape: [inner, ctx] });
      out.push({ name: `${b}.${n}.to_out.0.weight`, shape: [inner, inner] }, { name: `${b}.${n}.to_out.0.bias`, shape: [inner] });
    };
    ln('norm1');
    attn('attn1', inner);
    ln('norm2');
    attn('attn2', p.cross_attention_dim);
    ln('norm3');
    const f = ffInner(inner);
    out.push({ name: `${b}.ff.net.0.proj.weight`, shape: [2 * f, inner] }, { name: `${b}.ff.net.0.proj.bias`, shape: [2 * f] });
    out.push({ name: `${b}.ff.net.2.weight`, shape: [inner, f] }, { name: `${b}.ff.net.2.bias`, shape: [inner] });
  }
  proj('proj_out', c, inner);
}

/** Channel plan of one up level (diffusers UNet2DConditionModel.__init__). */
export interface UpLevel {
  /** Index into up_blocks (0 = lowest resolution). */
  index: number;
  /** Output channels of the level. */
  out: number;
  /** Input channels of each resnet (h from below or the previous resnet, plus the skip). */
  resnetIn: number[];
  /** Skip channels consumed by each resnet. */
  skip: number[];
  cross: boolean;
  upsample: boolean;
}

/** The up path's channel plan (no allocation). */
export function upLevels(p: UnetParams): UpLevel[] {
  const rev = [...p.block_out_channels].reverse();
  const n = rev.length;
  let outCh = rev[0]!;
  const levels: UpLevel[] = [];
  for (let i = 0; i < n; i++) {
    const prev = outCh;
    outCh = rev[i]!;
    const inCh = rev[Math.min(i + 1, n - 1)]!;
    const layers = p.layers_per_block + 1;
    const resnetIn: number[] = [];
    const skip: number[] = [];
    for (let j = 0; j < layers; j++) {
      const s = j === layers - 1 ? inCh : outCh;
      const r = j === 0 ? prev : outCh;
      skip.push(s);
      resnetIn.push(r + s);
    }
    levels.push({ index: i, out: outCh, resnetIn, skip, cross: p.up_block_types[i] === 'CrossAttnUpBlock2D', upsample: i !== n - 1 });
  }
  return levels;
}

function unetParamSpecsUnchecked(p: UnetParams): UnetParamSpec[] {
  const out: UnetParamSpec[] = [];
  const c0 = p.block_out_channels[0]!;
  const temb = timeEmbedDim(p);
  out.push({ name: 'conv_in.weight', shape: [c0, p.in_channels, 3, 3] }, { name: 'conv_in.bias', shape: [c0] });
  out.push({ name: 'time_embedding.linear_1.weight', shape: [temb, c0] }, { name: 'time_embedding.linear_1.bias', shape: [temb] });
  out.push({ name: 'time_embedding.linear_2.weight', shape: [temb, temb] }, { name: 'time_embedding.linear_2.bias', shape: [temb] });
  const n = p.block_out_channels.length;
  let outCh = c0;
  for (let i = 0; i < n; i++) {
    const inCh = outCh;
    outCh = p.block_out_channels[i]!;
    const b = `down_blocks.${i}`;
    // Registration order of CrossAttnDownBlock2D: attentions, resnets, downsamplers.
    if (p.down_block_types[i] === 'CrossAttnDownBlock2D') {
      for (let j = 0; j < p.layers_per_block; j++) transformerSpecs(out, `${b}.attentions.${j}`, p, outCh);
    }
    for (let j = 0; j < p.layers_per_block; j++) resnetSpecs(out, `${b}.resnets.${j}`, j === 0 ? inCh : outCh, outCh, temb);
    if (i !== n - 1) out.push({ name: `${b}.downsamplers.0.conv.weight`, shape: [outCh, outCh, 3, 3] }, { name: `${b}.downsamplers.0.conv.bias`, shape: [outCh] });
  }
  // UNet2DConditionModel registers up_blocks (as an empty ModuleList) before mid_block.
  for (const lv of upLevels(p)) {
    const b = `up_blocks.${lv.index}`;
    if (lv.cross) lv.resnetIn.forEach((_, j) => transformerSpecs(out, `${b}.attentions.${j}`, p, lv.out));
    lv.resnetIn.forEach((cin, j) => resnetSpecs(out, `${b}.resnets.${j}`, cin, lv.out, temb));
    if (lv.upsample) out.push({ name: `${b}.upsamplers.0.conv.weight`, shape: [lv.out, lv.out, 3, 3] }, { name: `${b}.upsamplers.0.conv.bias`, shape: [lv.out] });
  }
  if (p.mid_block_type) {
    const c = p.block_out_channels[n - 1]!;
    transformerSpecs(out, 'mid_block.attentions.0', p, c);
    resnetSpecs(out, 'mid_block.resnets.0', c, c, temb);
    resnetSpecs(out, 'mid_block.resnets.1', c, c, temb);
  }
  out.push({ name: 'conv_norm_out.weight', shape: [c0] }, { name: 'conv_norm_out.bias', shape: [c0] });
  out.push({ name: 'conv_out.weight', shape: [p.out_channels, c0, 3, 3] }, { name: 'conv_out.bias', shape: [p.out_channels] });
  return out;
}

/**
 * Every parameter a config expects, with diffusers UNet2DConditionModel names and torch shapes
 * ([out, in, kh, kw] conv, [out, in] linear), in state_dict order. No allocation.
 */
export function unetParamSpecs(p: UnetParams): UnetParamSpec[] {
  validateUnetParams(p);
  return unetParamSpecsUnchecked(p);
}

/** Total parameter count of a config (SD 1.5: 859,520,964). No allocation. */
export function countUnetParams(p: UnetParams): number {
  let n = 0;
  for (const s of unetParamSpecs(p)) n += s.shape.reduce((a, b) => a * b, 1);
  return n;
}
