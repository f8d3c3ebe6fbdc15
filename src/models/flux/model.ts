// The FLUX transformer forward (reference flux/model.py `Flux.forward`), as a plain function of
// (config, weights, inputs, masks). It predicts the flow-matching velocity for packed latents.
import { tf, type Tensor } from '../../engine/tf.js';
import { linear, silu } from '../../engine/ops.js';
import { doubleBlock, lastLayer, req, singleBlock } from './blocks.js';
import { mlpEmbedder, ropeND, timestepEmbedding, type Rope } from './embed.js';
import { type FluxMasks, validateFluxMasks } from './masks.js';
import { type FluxParams, mlpHidden } from './params.js';
import type { FluxWeights } from './weights.js';

export interface FluxInputs {
  /** Packed image latents [B, L, in_channels]. */
  img: Tensor;
  /** Image token positions [B, L, n_axes]. */
  img_ids: Tensor;
  /** Text embeddings [B, T, context_in_dim]. */
  txt: Tensor;
  /** Text token positions [B, T, n_axes] (zeros in FLUX). */
  txt_ids: Tensor;
  /** Timesteps in [0, 1], [B]. */
  timesteps: Tensor;
  /** Pooled vector conditioning [B, vec_in_dim]. */
  y: Tensor;
  /** Guidance strength [B]; required when the config has guidance_embed, ignored otherwise. */
  guidance?: Tensor | null;
}

export interface FluxForwardOptions {
  /** Multiplicative masks at the hook points (see masks.ts). */
  masks?: FluxMasks;
  /** Precomputed rotary tables for concat(txt_ids, img_ids) (see `fluxRope`); saves work across steps. */
  pe?: Rope;
}

/** The rotary tables for a forward: rope over concat(txt_ids, img_ids) along the tokens. */
export function fluxRope(cfg: FluxParams, imgIds: Tensor, txtIds: Tensor): Rope {
  const ids = tf.concat([txtIds, imgIds], 1);
  const pe = ropeND(ids, cfg.axes_dim, cfg.theta);
  ids.dispose();
  return pe;
}

export interface FluxActivations {
  /** Velocity prediction [B, L, out_channels]. */
  out: Tensor;
  /**
   * Block outputs: `double_blocks.{i}.img` [B, L, hidden], `double_blocks.{i}.txt` [B, T, hidden],
   * `single_blocks.{i}` [B, T + L, hidden] (text tokens first).
   */
  acts: Record<string, Tensor>;
}

function forward(cfg: FluxParams, w: FluxWeights, inp: FluxInputs, opts: FluxForwardOptions, keep: boolean): FluxActivations {
  const masks = opts.masks ?? {};
  validateFluxMasks(cfg, masks);
  if (inp.img.rank !== 3 || inp.txt.rank !== 3) throw new Error('FLUX forward: img and txt must have 3 dimensions');
  if (cfg.guidance_embed && !inp.guidance) throw new Error("FLUX forward: this guidance-distilled model needs a guidance strength");
  const names: string[] = [];
  const flat = tf.tidy(() => {
    const kept: Tensor[] = [];
    const pe = opts.pe ?? fluxRope(cfg, inp.img_ids, inp.txt_ids);
    let img = linear(inp.img, req(w, 'img_in.weight'), w['img_in.bias']);
    let vec = mlpEmbedder(w, 'time_in', timestepEmbedding(inp.timesteps, 256));
    if (cfg.guidance_embed) vec = tf.add(vec, mlpEmbedder(w, 'guidance_in', timestepEmbedding(inp.guidance!, 256)));
    vec = tf.add(vec, mlpEmbedder(w, 'vector_in', inp.y));
    const svec = silu(vec);
    let txt = linear(inp.txt, req(w, 'txt_in.weight'), w['txt_in.bias']);
    for (let i = 0; i < cfg.depth; i++) {
      [img, txt] = doubleBlock(w, i, cfg.num_heads, img, txt, svec, pe, masks);
      if (keep) {
        names.push(`double_blocks.${i}.img`, `double_blocks.${i}.txt`);
        kept.push(img, txt);
      }
    }
    const lt = txt.shape[1]!;
    let x = tf.concat([txt, img], 1);
    const m = mlpHidden(cfg);
    for (let i = 0; i < cfg.depth_single_blocks; i++) {
      x = singleBlock(w, i, cfg.num_heads, m, x, svec, pe, masks);
      if (keep) {
        names.push(`single_blocks.${i}`);
        kept.push(x);
      }
    }
    const imgOut = x.slice([0, lt, 0], [-1, -1, -1]);
    return [lastLayer(w, imgOut, svec), ...kept];
  });
  const acts: Record<string, Tensor> = {};
  names.forEach((n, i) => (acts[n] = flat[i + 1]!));
  return { out: flat[0]!, acts };
}

/**
 * The FLUX velocity prediction [B, L, out_channels] for packed latents (reference `Flux.forward`),
 * with optional masks. Pure: the same weights serve masked and unmasked calls side by side.
 */
export function fluxForward(cfg: FluxParams, weights: FluxWeights, inputs: FluxInputs, opts: FluxForwardOptions = {}): Tensor {
  return forward(cfg, weights, inputs, opts, false).out;
}

/** `fluxForward` that also returns every block's output (for conformance checks and inspection). */
export function fluxForwardWithActivations(
  cfg: FluxParams,
  weights: FluxWeights,
  inputs: FluxInputs,
  opts: FluxForwardOptions = {},
): FluxActivations {
  return forward(cfg, weights, inputs, opts, true);
}
