// Shared by flux-small-fwd and flux-small-ckpt4: a small FLUX config (schnell-style: no guidance
// embedder), its inputs and weights (seeded, by reference parameter name, so bench/torch_bench.py
// loads them into its reference-structured twin with load_state_dict(strict=True)), and the matmul
// FLOP count of one forward.
//
// full: hidden 256, 4 heads (head dim 64, axes_dim [16, 24, 24]), 2 double + 4 single blocks,
// mlp_ratio 4, in_channels 64 (a 16-channel 16x16 latent packed 2x2 -> an 8x8 grid of 64 image
// tokens), context_in_dim 256, vec_in_dim 128, qkv_bias, batch 4, 16 text tokens (txt_ids zeros,
// img_ids (0, row, col) of the 8x8 grid). 9.3 M parameters.
import { tf, type Tensor } from '../../engine/tf.js';
import { fluxParamSpecs, mlpHidden, type FluxParams } from '../../models/flux/params.js';
import { makeImgIds, makeTxtIds } from '../../models/flux/pack.js';
import { byName, normalInput, tensorsOf } from '../util.js';
import type { InputArray, WorkloadSize } from '../types.js';

export interface FluxSmallSize {
  cfg: FluxParams;
  batch: number;
  /** Packed image grid (tokens = grid_h * grid_w). */
  grid_h: number;
  grid_w: number;
  txt_len: number;
  /** Euler steps of the checkpointed workload. */
  steps: number;
}

export function fluxSmallSize(size: WorkloadSize): FluxSmallSize {
  const base = { mlp_ratio: 4, theta: 10_000, qkv_bias: true, guidance_embed: false };
  if (size === 'tiny') {
    const cfg: FluxParams = {
      ...base,
      in_channels: 16,
      out_channels: 16,
      vec_in_dim: 16,
      context_in_dim: 24,
      hidden_size: 32,
      num_heads: 2,
      depth: 1,
      depth_single_blocks: 1,
      axes_dim: [4, 6, 6],
    };
    return { cfg, batch: 2, grid_h: 2, grid_w: 2, txt_len: 3, steps: 2 };
  }
  const cfg: FluxParams = {
    ...base,
    in_channels: 64,
    out_channels: 64,
    vec_in_dim: 128,
    context_in_dim: 256,
    hidden_size: 256,
    num_heads: 4,
    depth: 2,
    depth_single_blocks: 4,
    axes_dim: [16, 24, 24],
  };
  return { cfg, batch: 4, grid_h: 8, grid_w: 8, txt_len: 16, steps: 4 };
}

/** Matmul FLOPs (2 per multiply-add) of one forward: every Linear, and q k^T and att v. */
export function fluxForwardFlops(s: FluxSmallSize): number {
  const { cfg: p, batch: B } = s;
  const h = p.hidden_size;
  const m = mlpHidden(p);
  const L = s.grid_h * s.grid_w;
  const T = s.txt_len;
  const N = L + T;
  const lin = (rows: number, inp: number, out: number): number => 2 * rows * inp * out;
  const attn = 2 * 2 * B * N * N * h;
  let f = lin(B * L, p.in_channels, h) + lin(B * T, p.context_in_dim, h);
  f += lin(B, 256, h) + lin(B, h, h) + lin(B, p.vec_in_dim, h) + lin(B, h, h); // time_in, vector_in
  const stream = (rows: number): number => lin(B, h, 6 * h) + lin(rows, h, 3 * h) + lin(rows, h, h) + lin(rows, h, m) + lin(rows, m, h);
  f += p.depth * (stream(B * L) + stream(B * T) + attn);
  f += p.depth_single_blocks * (lin(B, h, 3 * h) + lin(B * N, h, 3 * h + m) + lin(B * N, h + m, h) + attn);
  f += lin(B, h, 2 * h) + lin(B * L, h, p.out_channels);
  return f;
}

/** Conditioning inputs (not differentiated), in this order before the weights. */
export const FLUX_COND = ['txt', 'y'] as const;

/**
 * The inputs: `first` (workload-specific: the latent, timesteps or target), the conditioning txt
 * [B, T, context_in_dim] and y [B, vec_in_dim], then every weight by reference name in state_dict
 * order: Linear weights N(0, 1/fan_in), biases N(0, 0.02^2), QK-norm scales 1 + N(0, 0.1^2).
 */
export function fluxSmallInputs(s: FluxSmallSize, seed: number, first: InputArray[]): { inputs: InputArray[]; weightNames: string[] } {
  const { cfg: p, batch: B } = s;
  const specs = fluxParamSpecs(p);
  const shapes = new Map(specs.map((w) => [w.name, w.shape]));
  const weights = specs.map((w, i) => {
    if (w.name.endsWith('.scale')) return normalInput(w.name, w.shape, seed, 1000 + i, 0.1, 1);
    if (w.name.endsWith('.bias')) return normalInput(w.name, w.shape, seed, 1000 + i, 0.02);
    const fanIn = shapes.get(w.name)![1]!;
    return normalInput(w.name, w.shape, seed, 1000 + i, 1 / Math.sqrt(fanIn));
  });
  const cond = [normalInput('txt', [B, s.txt_len, p.context_in_dim], seed, 100), normalInput('y', [B, p.vec_in_dim], seed, 101)];
  return { inputs: [...first, ...cond, ...weights], weightNames: specs.map((w) => w.name) };
}

/** The `params` handed to torch_bench.py. */
export function fluxSmallParams(s: FluxSmallSize): Record<string, unknown> {
  return { ...s.cfg, batch: s.batch, grid_h: s.grid_h, grid_w: s.grid_w, txt_len: s.txt_len, steps: s.steps };
}

export interface FluxSmallTensors {
  named: Record<string, Tensor>;
  weights: Record<string, Tensor>;
  img_ids: Tensor;
  txt_ids: Tensor;
  dispose(): void;
}

/** Our tensors for the inputs, the weight record, and the position ids. */
export function fluxSmallTensors(s: FluxSmallSize, inputs: readonly InputArray[], weightNames: readonly string[]): FluxSmallTensors {
  const ts = tensorsOf(inputs);
  const named = byName(inputs, ts);
  const weights: Record<string, Tensor> = {};
  for (const n of weightNames) weights[n] = named[n]!;
  const img_ids = makeImgIds(s.batch, s.grid_h, s.grid_w);
  const txt_ids = makeTxtIds(s.batch, s.txt_len);
  return { named, weights, img_ids, txt_ids, dispose: () => tf.dispose([...ts, img_ids, txt_ids]) };
}
