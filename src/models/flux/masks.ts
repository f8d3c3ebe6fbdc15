// Mask hook points of the FLUX transformer: named multiplicative masks, passed to the forward
// as an explicit record (never global state). A mask is a 1-D tensor shared by the batch, the
// tokens and the sampling steps.
//
//   double_blocks.{i}.img_mlp   [mlp_hidden]   image-stream FFN hidden units, after the GELU
//   double_blocks.{i}.txt_mlp   [mlp_hidden]   text-stream FFN hidden units, after the GELU
//   double_blocks.{i}.txt_mod   [6 * hidden]   output of txt_mod.lin, before the 6-way split
//                                              (shift1, scale1, gate1, shift2, scale2, gate2)
//   double_blocks.{i}.heads     [num_heads]    per head of the JOINT text+image attention output,
//                                              before the split into streams and the output projections
//   single_blocks.{i}.mlp       [mlp_hidden]   MLP hidden units of the single block, after the GELU
//   single_blocks.{i}.heads     [num_heads]    per head of the attention output, before linear2
//
// The head masks follow the MCE reference (one mask per double block over the joint attention).
import type { Tensor } from '../../engine/tf.js';
import { type FluxParams, mlpHidden } from './params.js';

/** Named masks; any subset of the hook points may be given. */
export type FluxMasks = Readonly<Record<string, Tensor>>;

export type FluxMaskKind = 'img_mlp' | 'txt_mlp' | 'txt_mod' | 'heads' | 'mlp';

export interface MaskSpec {
  name: string;
  size: number;
  kind: FluxMaskKind;
  block: 'double' | 'single';
  index: number;
}

/** Every hook point of a config with its size, double blocks first. No allocation. */
export function fluxMaskSpecs(p: FluxParams): MaskSpec[] {
  const m = mlpHidden(p);
  const out: MaskSpec[] = [];
  for (let i = 0; i < p.depth; i++) {
    const b = `double_blocks.${i}`;
    out.push({ name: `${b}.img_mlp`, size: m, kind: 'img_mlp', block: 'double', index: i });
    out.push({ name: `${b}.txt_mlp`, size: m, kind: 'txt_mlp', block: 'double', index: i });
    out.push({ name: `${b}.txt_mod`, size: 6 * p.hidden_size, kind: 'txt_mod', block: 'double', index: i });
    out.push({ name: `${b}.heads`, size: p.num_heads, kind: 'heads', block: 'double', index: i });
  }
  for (let i = 0; i < p.depth_single_blocks; i++) {
    const b = `single_blocks.${i}`;
    out.push({ name: `${b}.mlp`, size: m, kind: 'mlp', block: 'single', index: i });
    out.push({ name: `${b}.heads`, size: p.num_heads, kind: 'heads', block: 'single', index: i });
  }
  return out;
}

/** Throws on an unknown mask name or a wrong size, naming the first offender. */
export function validateFluxMasks(p: FluxParams, masks: FluxMasks): void {
  const specs = new Map(fluxMaskSpecs(p).map((s) => [s.name, s]));
  for (const [name, t] of Object.entries(masks)) {
    const s = specs.get(name);
    if (!s) throw new Error(`unknown FLUX mask '${name}' (hook points: double_blocks.{i}.img_mlp|txt_mlp|txt_mod|heads, single_blocks.{i}.mlp|heads)`);
    if (t.rank !== 1 || t.shape[0] !== s.size) {
      throw new Error(`FLUX mask '${name}' must have shape [${s.size}], got [${t.shape.join(', ')}]`);
    }
  }
}
