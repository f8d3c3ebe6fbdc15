// FLUX transformer hyperparameters (reference `FluxParams`), the real FLUX.1 presets, and the
// list of parameter names and shapes a config expects. Nothing here allocates a tensor: the
// full-size presets describe 12B weights that exist only once a checkpoint is loaded.

/** The reference `flux.model.FluxParams`, same field names. */
export interface FluxParams {
  in_channels: number;
  out_channels: number;
  vec_in_dim: number;
  context_in_dim: number;
  hidden_size: number;
  mlp_ratio: number;
  num_heads: number;
  depth: number;
  depth_single_blocks: number;
  axes_dim: number[];
  theta: number;
  qkv_bias: boolean;
  guidance_embed: boolean;
}

/** FLUX.1-dev (guidance-distilled: has `guidance_in`). */
export const FLUX_DEV: Readonly<FluxParams> = Object.freeze({
  in_channels: 64,
  out_channels: 64,
  vec_in_dim: 768,
  context_in_dim: 4096,
  hidden_size: 3072,
  mlp_ratio: 4.0,
  num_heads: 24,
  depth: 19,
  depth_single_blocks: 38,
  axes_dim: [16, 56, 56],
  theta: 10_000,
  qkv_bias: true,
  guidance_embed: true,
});

/** FLUX.1-schnell (timestep-distilled: no guidance embedder). */
export const FLUX_SCHNELL: Readonly<FluxParams> = Object.freeze({ ...FLUX_DEV, guidance_embed: false });

export const FLUX_PRESETS: Readonly<Record<string, Readonly<FluxParams>>> = Object.freeze({
  'flux-dev': FLUX_DEV,
  'flux-schnell': FLUX_SCHNELL,
});

/** Width of the FFN hidden layer (reference: int(hidden_size * mlp_ratio)). */
export function mlpHidden(p: FluxParams): number {
  return Math.trunc(p.hidden_size * p.mlp_ratio);
}

/** Per-head width. */
export function headDim(p: FluxParams): number {
  return p.hidden_size / p.num_heads;
}

/** Throws a one-line error when the config is inconsistent (the reference's own checks, and more). */
export function validateFluxParams(p: FluxParams): void {
  const ints: (keyof FluxParams)[] = [
    'in_channels', 'out_channels', 'vec_in_dim', 'context_in_dim', 'hidden_size', 'num_heads', 'depth',
    'depth_single_blocks', 'theta',
  ];
  for (const k of ints) {
    const v = p[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`FluxParams.${k} must be a non-negative integer, got ${String(v)}`);
  }
  if (p.num_heads < 1 || p.hidden_size % p.num_heads !== 0) {
    throw new Error(`FluxParams: hidden_size ${p.hidden_size} must be divisible by num_heads ${p.num_heads}`);
  }
  const pe = headDim(p);
  const sum = p.axes_dim.reduce((a, b) => a + b, 0);
  if (sum !== pe) throw new Error(`FluxParams: axes_dim [${p.axes_dim.join(', ')}] must sum to the head dim ${pe}`);
  if (p.axes_dim.some((d) => d % 2 !== 0)) throw new Error(`FluxParams: every axes_dim entry must be even`);
  if (!(p.mlp_ratio > 0)) throw new Error(`FluxParams.mlp_ratio must be positive`);
}

export interface ParamSpec {
  name: string;
  shape: number[];
}

/**
 * Every parameter a config expects, with reference names and torch shapes ([out, in] for Linear),
 * in the reference `state_dict` order. No allocation.
 */
export function fluxParamSpecs(p: FluxParams): ParamSpec[] {
  validateFluxParams(p);
  const h = p.hidden_size;
  const m = mlpHidden(p);
  const hd = headDim(p);
  const out: ParamSpec[] = [];
  const lin = (name: string, outDim: number, inDim: number, bias = true): void => {
    out.push({ name: `${name}.weight`, shape: [outDim, inDim] });
    if (bias) out.push({ name: `${name}.bias`, shape: [outDim] });
  };
  const embedder = (name: string, inDim: number): void => {
    lin(`${name}.in_layer`, h, inDim);
    lin(`${name}.out_layer`, h, h);
  };
  lin('img_in', h, p.in_channels);
  embedder('time_in', 256);
  embedder('vector_in', p.vec_in_dim);
  if (p.guidance_embed) embedder('guidance_in', 256);
  lin('txt_in', h, p.context_in_dim);
  for (let i = 0; i < p.depth; i++) {
    for (const s of ['img', 'txt']) {
      const b = `double_blocks.${i}.${s}`;
      lin(`${b}_mod.lin`, 6 * h, h);
      lin(`${b}_attn.qkv`, 3 * h, h, p.qkv_bias);
      out.push({ name: `${b}_attn.norm.query_norm.scale`, shape: [hd] });
      out.push({ name: `${b}_attn.norm.key_norm.scale`, shape: [hd] });
      lin(`${b}_attn.proj`, h, h);
      lin(`${b}_mlp.0`, m, h);
      lin(`${b}_mlp.2`, h, m);
    }
  }
  for (let i = 0; i < p.depth_single_blocks; i++) {
    const b = `single_blocks.${i}`;
    lin(`${b}.linear1`, 3 * h + m, h);
    lin(`${b}.linear2`, h, h + m);
    out.push({ name: `${b}.norm.query_norm.scale`, shape: [hd] });
    out.push({ name: `${b}.norm.key_norm.scale`, shape: [hd] });
    lin(`${b}.modulation.lin`, 3 * h, h);
  }
  lin('final_layer.linear', p.out_channels, h);
  lin('final_layer.adaLN_modulation.1', 2 * h, h);
  return out;
}

/** Total number of parameters of a config (FLUX.1-dev: 11,901,408,320). No allocation. */
export function countFluxParams(p: FluxParams): number {
  let n = 0;
  for (const s of fluxParamSpecs(p)) n += s.shape.reduce((a, b) => a * b, 1);
  return n;
}
