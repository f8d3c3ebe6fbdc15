// FLUX transformer hyperparameters (reference `FluxParams`), the real FLUX.1 presets, and the
// list of parameter names and shapes a config expects. Nothing here allocates a tensor: the
// full-size presets describe 12B weights that exist only once a checkpoint is loaded.
import { fluxReferenceSpecs, type NamedShape } from '../../io/names.js';

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

export type ParamSpec = NamedShape;

/**
 * Every parameter a config expects, with reference names and torch shapes ([out, in] for Linear),
 * in the reference `state_dict` order. No allocation.
 */
export function fluxParamSpecs(p: FluxParams): ParamSpec[] {
  validateFluxParams(p);
  // The checkpoint layout is io's knowledge (it also maps the diffusers names); one list serves both.
  return fluxReferenceSpecs(p);
}

/** Total number of parameters of a config (FLUX.1-dev: 11,901,408,320). No allocation. */
export function countFluxParams(p: FluxParams): number {
  let n = 0;
  for (const s of fluxParamSpecs(p)) n += s.shape.reduce((a, b) => a * b, 1);
  return n;
}
