// Weight-name maps between the reference FLUX names (black-forest-labs/flux, what the models use)
// and the diffusers names (FluxTransformer2DModel, AutoencoderKL), as pure functions.
//
// Transformer. Every diffusers tensor is one or two row ranges (dim 0) of one reference tensor, so
// the map is a list of RowLinks. Checked name by name against diffusers
// scripts/convert_flux_to_diffusers.py (convert_flux_transformer_checkpoint_to_diffusers) and the
// guidance_in entries of loaders/single_file_utils.py:
//   time_in / vector_in / guidance_in .in_layer|.out_layer
//       <-> time_text_embed.timestep_embedder|text_embedder|guidance_embedder .linear_1|.linear_2
//   txt_in <-> context_embedder                 img_in <-> x_embedder
//   double_blocks.i.img_mod.lin <-> transformer_blocks.i.norm1.linear
//   double_blocks.i.txt_mod.lin <-> transformer_blocks.i.norm1_context.linear
//   double_blocks.i.img_attn.qkv rows [0,H) [H,2H) [2H,3H) <-> attn.to_q / to_k / to_v
//   double_blocks.i.txt_attn.qkv rows ...                   <-> attn.add_q_proj / add_k_proj / add_v_proj
//   double_blocks.i.img_attn.norm.query_norm|key_norm.scale <-> attn.norm_q|norm_k.weight
//   double_blocks.i.txt_attn.norm.query_norm|key_norm.scale <-> attn.norm_added_q|norm_added_k.weight
//   double_blocks.i.img_attn.proj <-> attn.to_out.0  double_blocks.i.txt_attn.proj <-> attn.to_add_out
//   double_blocks.i.img_mlp.0|2 <-> ff.net.0.proj|ff.net.2   txt_mlp.0|2 <-> ff_context.net.0.proj|net.2
//   single_blocks.i.linear1 rows [0,H) [H,2H) [2H,3H) [3H,3H+M) <-> attn.to_q / to_k / to_v / proj_mlp
//   single_blocks.i.linear2 <-> single_transformer_blocks.i.proj_out
//   single_blocks.i.norm.query_norm|key_norm.scale <-> attn.norm_q|norm_k.weight
//   single_blocks.i.modulation.lin <-> single_transformer_blocks.i.norm.linear
//   final_layer.linear <-> proj_out
//   final_layer.adaLN_modulation.1 rows [0,H) (shift), [H,2H) (scale)
//       <-> norm_out.linear rows [H,2H), [0,H) (diffusers chunks it as scale, shift)
//
// Autoencoder. The reference (ldm) names <-> diffusers AutoencoderKL, as in diffusers
// convert_ldm_vae_checkpoint: down.i.block.j <-> down_blocks.i.resnets.j, nin_shortcut <->
// conv_shortcut, downsample <-> downsamplers.0, up.i <-> up_blocks.(n-1-i) (diffusers counts from
// the lowest resolution), upsample <-> upsamplers.0, mid.block_1|2 <-> mid_block.resnets.0|1,
// mid.attn_1.norm|q|k|v|proj_out <-> mid_block.attentions.0.group_norm|to_q|to_k|to_v|to_out.0 (1x1
// conv [C,C,1,1] <-> linear [C,C]), norm_out <-> conv_norm_out. FLUX's VAE has no quant convs.
//
// Nothing here imports the models layer: a FluxLayout is the part of FluxParams that fixes the names
// and shapes, with the same field names, so a FluxParams can be passed as it is.

export type Naming = 'reference' | 'diffusers';

/** The fields of FluxParams that fix the parameter names and shapes (a FluxParams is one). */
export interface FluxLayout {
  in_channels: number;
  out_channels: number;
  vec_in_dim: number;
  context_in_dim: number;
  hidden_size: number;
  mlp_ratio: number;
  num_heads: number;
  depth: number;
  depth_single_blocks: number;
  qkv_bias: boolean;
  guidance_embed: boolean;
}

export interface NamedShape {
  name: string;
  shape: number[];
}

/** Rows [refRows) of reference tensor `reference` are rows [diffRows) of diffusers tensor `diffusers`. */
export interface RowLink {
  reference: string;
  refRows: [number, number];
  diffusers: string;
  diffRows: [number, number];
}

/** A tensor as plain data. F16/BF16 may stay as raw Uint16 bit patterns: maps only move rows. */
export interface HostArray {
  shape: number[];
  data: Float32Array | Uint16Array;
}

const mlpOf = (l: FluxLayout): number => Math.trunc(l.hidden_size * l.mlp_ratio);

// ------------------------------------------------------------------ transformer specs

/**
 * Every reference parameter of a FLUX transformer with its torch shape, in state_dict order. This
 * is the one list (models/flux fluxParamSpecs returns it): io sits below models, so it lives here.
 */
export function fluxReferenceSpecs(l: FluxLayout): NamedShape[] {
  const h = l.hidden_size;
  const m = mlpOf(l);
  const hd = h / l.num_heads;
  const out: NamedShape[] = [];
  const lin = (name: string, o: number, i: number, bias = true): void => {
    out.push({ name: `${name}.weight`, shape: [o, i] });
    if (bias) out.push({ name: `${name}.bias`, shape: [o] });
  };
  const embedder = (name: string, i: number): void => {
    lin(`${name}.in_layer`, h, i);
    lin(`${name}.out_layer`, h, h);
  };
  lin('img_in', h, l.in_channels);
  embedder('time_in', 256);
  embedder('vector_in', l.vec_in_dim);
  if (l.guidance_embed) embedder('guidance_in', 256);
  lin('txt_in', h, l.context_in_dim);
  for (let i = 0; i < l.depth; i++) {
    for (const s of ['img', 'txt']) {
      const b = `double_blocks.${i}.${s}`;
      lin(`${b}_mod.lin`, 6 * h, h);
      lin(`${b}_attn.qkv`, 3 * h, h, l.qkv_bias);
      out.push({ name: `${b}_attn.norm.query_norm.scale`, shape: [hd] });
      out.push({ name: `${b}_attn.norm.key_norm.scale`, shape: [hd] });
      lin(`${b}_attn.proj`, h, h);
      lin(`${b}_mlp.0`, m, h);
      lin(`${b}_mlp.2`, h, m);
    }
  }
  for (let i = 0; i < l.depth_single_blocks; i++) {
    const b = `single_blocks.${i}`;
    lin(`${b}.linear1`, 3 * h + m, h);
    lin(`${b}.linear2`, h, h + m);
    out.push({ name: `${b}.norm.query_norm.scale`, shape: [hd] });
    out.push({ name: `${b}.norm.key_norm.scale`, shape: [hd] });
    lin(`${b}.modulation.lin`, 3 * h, h);
  }
  lin('final_layer.linear', l.out_channels, h);
  lin('final_layer.adaLN_modulation.1', 2 * h, h);
  return out;
}

/** Pieces [diffusers name, ref row start, row count, diffusers row start] of one reference tensor. */
type Piece = [string, number, number, number];

/**
 * The diffusers pieces of one reference tensor of a layout, or null when the name is not a FLUX
 * transformer name. `rows` is the reference tensor's leading dimension.
 */
function referencePieces(name: string, rows: number, l: FluxLayout): Piece[] | null {
  const h = l.hidden_size;
  const m = mlpOf(l);
  const whole = (d: string): Piece[] => [[d, 0, rows, 0]];
  let r: RegExpMatchArray | null;
  if ((r = name.match(/^(time_in|vector_in|guidance_in)\.(in_layer|out_layer)\.(weight|bias)$/))) {
    const emb = { time_in: 'timestep_embedder', vector_in: 'text_embedder', guidance_in: 'guidance_embedder' }[r[1] as 'time_in'];
    return whole(`time_text_embed.${emb}.${r[2] === 'in_layer' ? 'linear_1' : 'linear_2'}.${r[3]}`);
  }
  if ((r = name.match(/^txt_in\.(weight|bias)$/))) return whole(`context_embedder.${r[1]}`);
  if ((r = name.match(/^img_in\.(weight|bias)$/))) return whole(`x_embedder.${r[1]}`);
  if ((r = name.match(/^double_blocks\.(\d+)\.(img|txt)_(.+)$/))) {
    const [, i, s, rest] = r as unknown as [string, string, 'img' | 'txt', string];
    const b = `transformer_blocks.${i}.`;
    const img = s === 'img';
    let q: RegExpMatchArray | null;
    if ((q = rest.match(/^mod\.lin\.(weight|bias)$/))) return whole(`${b}${img ? 'norm1' : 'norm1_context'}.linear.${q[1]}`);
    if ((q = rest.match(/^attn\.qkv\.(weight|bias)$/))) {
      const names = img ? ['to_q', 'to_k', 'to_v'] : ['add_q_proj', 'add_k_proj', 'add_v_proj'];
      return names.map((n, k) => [`${b}attn.${n}.${q![1]}`, k * h, h, 0] as Piece);
    }
    if ((q = rest.match(/^attn\.norm\.(query|key)_norm\.scale$/))) {
      const qk = q[1] === 'query' ? 'q' : 'k';
      return whole(`${b}attn.${img ? `norm_${qk}` : `norm_added_${qk}`}.weight`);
    }
    if ((q = rest.match(/^attn\.proj\.(weight|bias)$/))) return whole(`${b}attn.${img ? 'to_out.0' : 'to_add_out'}.${q[1]}`);
    if ((q = rest.match(/^mlp\.(0|2)\.(weight|bias)$/))) {
      return whole(`${b}${img ? 'ff' : 'ff_context'}.net.${q[1] === '0' ? '0.proj' : '2'}.${q[2]}`);
    }
    return null;
  }
  if ((r = name.match(/^single_blocks\.(\d+)\.(.+)$/))) {
    const b = `single_transformer_blocks.${r[1]}.`;
    const rest = r[2]!;
    let q: RegExpMatchArray | null;
    if ((q = rest.match(/^linear1\.(weight|bias)$/))) {
      return [
        [`${b}attn.to_q.${q[1]}`, 0, h, 0],
        [`${b}attn.to_k.${q[1]}`, h, h, 0],
        [`${b}attn.to_v.${q[1]}`, 2 * h, h, 0],
        [`${b}proj_mlp.${q[1]}`, 3 * h, m, 0],
      ];
    }
    if ((q = rest.match(/^linear2\.(weight|bias)$/))) return whole(`${b}proj_out.${q[1]}`);
    if ((q = rest.match(/^norm\.(query|key)_norm\.scale$/))) return whole(`${b}attn.norm_${q[1] === 'query' ? 'q' : 'k'}.weight`);
    if ((q = rest.match(/^modulation\.lin\.(weight|bias)$/))) return whole(`${b}norm.linear.${q[1]}`);
    return null;
  }
  if ((r = name.match(/^final_layer\.linear\.(weight|bias)$/))) return whole(`proj_out.${r[1]}`);
  if ((r = name.match(/^final_layer\.adaLN_modulation\.1\.(weight|bias)$/))) {
    // reference chunks (shift, scale); diffusers AdaLayerNormContinuous chunks (scale, shift)
    return [
      [`norm_out.linear.${r[1]}`, 0, h, h],
      [`norm_out.linear.${r[1]}`, h, h, 0],
    ];
  }
  return null;
}

/** The two namings of one layout: all specs, all links, indexes by name. */
export interface FluxNameMap {
  layout: FluxLayout;
  reference: NamedShape[];
  diffusers: NamedShape[];
  links: RowLink[];
  byReference: Map<string, RowLink[]>;
  byDiffusers: Map<string, RowLink[]>;
  specs(naming: Naming): Map<string, number[]>;
}

const mapCache = new Map<string, FluxNameMap>();

/** The complete name map of a layout (cached; pure data, no tensors). */
export function fluxNameMap(l: FluxLayout): FluxNameMap {
  const key = JSON.stringify([
    l.in_channels, l.out_channels, l.vec_in_dim, l.context_in_dim, l.hidden_size, l.mlp_ratio, l.num_heads,
    l.depth, l.depth_single_blocks, l.qkv_bias, l.guidance_embed,
  ]);
  const hit = mapCache.get(key);
  if (hit) return hit;
  const reference = fluxReferenceSpecs(l);
  const links: RowLink[] = [];
  const byReference = new Map<string, RowLink[]>();
  const byDiffusers = new Map<string, RowLink[]>();
  const diffShapes = new Map<string, number[]>();
  for (const s of reference) {
    const pieces = referencePieces(s.name, s.shape[0]!, l);
    if (!pieces) throw new Error(`internal: no diffusers name for ${s.name}`);
    const own: RowLink[] = [];
    for (const [d, start, n, dstart] of pieces) {
      const link: RowLink = { reference: s.name, refRows: [start, start + n], diffusers: d, diffRows: [dstart, dstart + n] };
      links.push(link);
      own.push(link);
      const list = byDiffusers.get(d) ?? [];
      list.push(link);
      byDiffusers.set(d, list);
      const rows = Math.max(diffShapes.get(d)?.[0] ?? 0, dstart + n);
      diffShapes.set(d, [rows, ...s.shape.slice(1)]);
    }
    byReference.set(s.name, own);
  }
  const diffusers = [...diffShapes].map(([name, shape]) => ({ name, shape }));
  const refMap = new Map(reference.map((s) => [s.name, s.shape]));
  const diffMap = new Map(diffShapes);
  const map: FluxNameMap = {
    layout: { ...l },
    reference,
    diffusers,
    links,
    byReference,
    byDiffusers,
    specs: (n) => (n === 'reference' ? refMap : diffMap),
  };
  mapCache.set(key, map);
  return map;
}

/** Expected names and shapes of a layout in one naming. */
export function fluxSpecs(l: FluxLayout, naming: Naming): NamedShape[] {
  const m = fluxNameMap(l);
  return naming === 'reference' ? m.reference : m.diffusers;
}

/**
 * The reference row ranges that one diffusers tensor (or module: pass the `.weight` name) occupies,
 * or null when the name is not in the layout.
 */
export function diffusersToReferenceLinks(diffusersName: string, l: FluxLayout): RowLink[] | null {
  return fluxNameMap(l).byDiffusers.get(diffusersName) ?? null;
}

/** The diffusers row ranges of one reference tensor, or null when the name is not in the layout. */
export function referenceToDiffusersLinks(referenceName: string, l: FluxLayout): RowLink[] | null {
  return fluxNameMap(l).byReference.get(referenceName) ?? null;
}

// ------------------------------------------------------------------ naming detection, layout inference

const REF_MARK = /^(double_blocks\.|single_blocks\.|img_in\.|txt_in\.|time_in\.|vector_in\.|guidance_in\.|final_layer\.)/;
const DIFF_MARK = /^(transformer_blocks\.|single_transformer_blocks\.|x_embedder\.|context_embedder\.|time_text_embed\.|norm_out\.|proj_out\.)/;

/** Prefixes wrappers put in front of transformer names (ComfyUI / ldm checkpoints, diffusers pipelines). */
export const FLUX_PREFIXES = ['model.diffusion_model.', 'diffusion_model.', 'transformer.'] as const;

/** The prefix shared by the FLUX names, if any ('' when none). */
export function fluxPrefix(names: Iterable<string>): string {
  const counts = new Map<string, number>();
  for (const n of names) for (const p of FLUX_PREFIXES) if (n.startsWith(p)) { counts.set(p, (counts.get(p) ?? 0) + 1); break; }
  let best = '';
  let bestN = 0;
  for (const [p, c] of counts) if (c > bestN) { best = p; bestN = c; }
  return best;
}

/** Which naming a set of (unprefixed) transformer names uses, or null when it is neither. */
export function detectFluxNaming(names: Iterable<string>): Naming | null {
  let ref = 0;
  let diff = 0;
  for (const n of names) {
    if (REF_MARK.test(n)) ref++;
    else if (DIFF_MARK.test(n)) diff++;
  }
  if (ref === 0 && diff === 0) return null;
  return ref >= diff ? 'reference' : 'diffusers';
}

/**
 * The layout a set of names and shapes describes (either naming, unprefixed). Throws one line when
 * the tensors that fix it are missing.
 */
export function inferFluxLayout(shapes: ReadonlyMap<string, readonly number[]> | Record<string, readonly number[]>, naming: Naming): FluxLayout {
  const get = (n: string): readonly number[] | undefined => (shapes instanceof Map ? shapes.get(n) : (shapes as Record<string, readonly number[]>)[n]);
  const names = shapes instanceof Map ? [...shapes.keys()] : Object.keys(shapes);
  const R = naming === 'reference';
  const need = (n: string, dim: number): number => {
    const s = get(n);
    if (!s || s.length <= dim) throw new Error(`cannot infer the FLUX config: no tensor '${n}'`);
    return s[dim]!;
  };
  const count = (re: RegExp): number => {
    let mx = -1;
    for (const n of names) {
      const r = n.match(re);
      if (r) mx = Math.max(mx, Number(r[1]));
    }
    return mx + 1;
  };
  const hidden = need(R ? 'img_in.weight' : 'x_embedder.weight', 0);
  const depth = count(R ? /^double_blocks\.(\d+)\./ : /^transformer_blocks\.(\d+)\./);
  const depthSingle = count(R ? /^single_blocks\.(\d+)\./ : /^single_transformer_blocks\.(\d+)\./);
  let mlp: number;
  if (depth > 0) mlp = need(R ? 'double_blocks.0.img_mlp.0.weight' : 'transformer_blocks.0.ff.net.0.proj.weight', 0);
  else if (depthSingle > 0) mlp = R ? need('single_blocks.0.linear1.weight', 0) - 3 * hidden : need('single_transformer_blocks.0.proj_mlp.weight', 0);
  else mlp = 4 * hidden;
  let headDim: number;
  if (depth > 0) headDim = need(R ? 'double_blocks.0.img_attn.norm.query_norm.scale' : 'transformer_blocks.0.attn.norm_q.weight', 0);
  else if (depthSingle > 0) headDim = need(R ? 'single_blocks.0.norm.query_norm.scale' : 'single_transformer_blocks.0.attn.norm_q.weight', 0);
  else throw new Error('cannot infer the FLUX config: no transformer blocks');
  const qkvBias = depth > 0 ? get(R ? 'double_blocks.0.img_attn.qkv.bias' : 'transformer_blocks.0.attn.to_q.bias') !== undefined : true;
  return {
    in_channels: need(R ? 'img_in.weight' : 'x_embedder.weight', 1),
    out_channels: need(R ? 'final_layer.linear.weight' : 'proj_out.weight', 0),
    vec_in_dim: need(R ? 'vector_in.in_layer.weight' : 'time_text_embed.text_embedder.linear_1.weight', 1),
    context_in_dim: need(R ? 'txt_in.weight' : 'context_embedder.weight', 1),
    hidden_size: hidden,
    mlp_ratio: mlp / hidden,
    num_heads: hidden / headDim,
    depth,
    depth_single_blocks: depthSingle,
    qkv_bias: qkvBias,
    guidance_embed: get(R ? 'guidance_in.in_layer.weight' : 'time_text_embed.guidance_embedder.linear_1.weight') !== undefined,
  };
}

// ------------------------------------------------------------------ conversion

function rowSize(shape: readonly number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

function sameType(like: Float32Array | Uint16Array, n: number): Float32Array | Uint16Array {
  return like instanceof Float32Array ? new Float32Array(n) : new Uint16Array(n);
}

export interface ConvertResult<T> {
  tensors: Record<string, T>;
  /** Source names the map does not know. */
  unknown: string[];
  /** Target names only partly covered by the source (some pieces missing). */
  incomplete: string[];
}

/**
 * Convert the shapes of a record from one naming to the other (no data). Useful to check a
 * checkpoint's header before reading it.
 */
export function convertFluxShapes(
  shapes: Record<string, readonly number[]>,
  from: Naming,
  to: Naming,
  l: FluxLayout,
): ConvertResult<number[]> {
  const res = convertFlux(
    Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, { shape: [...s], data: null }])),
    from,
    to,
    l,
  );
  return { tensors: Object.fromEntries(Object.entries(res.tensors).map(([k, t]) => [k, t.shape])), unknown: res.unknown, incomplete: res.incomplete };
}

/**
 * Convert a record of tensors between namings: splits fused tensors, concatenates pieces and swaps
 * the final-layer shift/scale halves, all along dim 0. Pure: the input is not modified; data is
 * copied. Same naming in and out returns a shallow copy.
 */
export function convertFluxNames(record: Record<string, HostArray>, from: Naming, to: Naming, l: FluxLayout): ConvertResult<HostArray> {
  return convertFlux(record, from, to, l) as ConvertResult<HostArray>;
}

function convertFlux(
  record: Record<string, { shape: number[]; data: Float32Array | Uint16Array | null }>,
  from: Naming,
  to: Naming,
  l: FluxLayout,
): ConvertResult<{ shape: number[]; data: Float32Array | Uint16Array | null }> {
  type T = { shape: number[]; data: Float32Array | Uint16Array | null };
  if (from === to) return { tensors: { ...record }, unknown: [], incomplete: [] };
  const map = fluxNameMap(l);
  const srcIndex = from === 'reference' ? map.byReference : map.byDiffusers;
  const dstIndex = to === 'reference' ? map.byReference : map.byDiffusers;
  const srcOf = (k: RowLink): string => (from === 'reference' ? k.reference : k.diffusers);
  const dstOf = (k: RowLink): string => (to === 'reference' ? k.reference : k.diffusers);
  const srcRows = (k: RowLink): [number, number] => (from === 'reference' ? k.refRows : k.diffRows);
  const dstRows = (k: RowLink): [number, number] => (to === 'reference' ? k.refRows : k.diffRows);
  const unknown = Object.keys(record).filter((n) => !srcIndex.has(n));
  const targets = new Set<string>();
  for (const n of Object.keys(record)) for (const k of srcIndex.get(n) ?? []) targets.add(dstOf(k));
  const tensors: Record<string, T> = {};
  const incomplete: string[] = [];
  for (const target of targets) {
    const links = dstIndex.get(target)!;
    if (!links.every((k) => record[srcOf(k)])) {
      incomplete.push(target);
      continue;
    }
    const first = record[srcOf(links[0]!)]!;
    const rows = Math.max(...links.map((k) => dstRows(k)[1]));
    const shape = [rows, ...first.shape.slice(1)];
    const rs = rowSize(first.shape);
    let data: Float32Array | Uint16Array | null = null;
    if (first.data) {
      data = sameType(first.data, rows * rs);
      for (const k of links) {
        const src = record[srcOf(k)]!;
        if (rowSize(src.shape) !== rs || !src.data || src.data.constructor !== data.constructor) {
          throw new Error(`cannot assemble '${target}': its pieces differ in row size or element type`);
        }
        const [a, b] = srcRows(k);
        if (b > src.shape[0]!) throw new Error(`'${srcOf(k)}' has ${src.shape[0]} rows, the layout needs at least ${b}`);
        data.set(src.data.subarray(a * rs, b * rs), dstRows(k)[0] * rs);
      }
    }
    tensors[target] = { shape, data };
  }
  return { tensors, unknown, incomplete };
}

// ------------------------------------------------------------------ autoencoder names

/** The AutoencoderKL name of a reference autoencoder name (ch_mult has `levels` entries), or null. */
export function aeReferenceToDiffusers(name: string, levels: number): string | null {
  const res = (s: string): string => s.replace(/^nin_shortcut\./, 'conv_shortcut.');
  let r: RegExpMatchArray | null;
  if ((r = name.match(/^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/))) return name;
  if ((r = name.match(/^(encoder|decoder)\.norm_out\.(weight|bias)$/))) return `${r[1]}.conv_norm_out.${r[2]}`;
  if ((r = name.match(/^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/))) return `encoder.down_blocks.${r[1]}.resnets.${r[2]}.${res(r[3]!)}`;
  if ((r = name.match(/^encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)$/))) return `encoder.down_blocks.${r[1]}.downsamplers.0.conv.${r[2]}`;
  if ((r = name.match(/^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/))) return `decoder.up_blocks.${levels - 1 - Number(r[1])}.resnets.${r[2]}.${res(r[3]!)}`;
  if ((r = name.match(/^decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$/))) return `decoder.up_blocks.${levels - 1 - Number(r[1])}.upsamplers.0.conv.${r[2]}`;
  if ((r = name.match(/^(encoder|decoder)\.mid\.block_(1|2)\.(.+)$/))) return `${r[1]}.mid_block.resnets.${Number(r[2]) - 1}.${res(r[3]!)}`;
  if ((r = name.match(/^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/))) {
    const m = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' }[r[2] as 'norm'];
    return `${r[1]}.mid_block.attentions.0.${m}.${r[3]}`;
  }
  return null;
}

/** The reference name of an AutoencoderKL name (also the older query/key/value/proj_attn names), or null. */
export function aeDiffusersToReference(name: string, levels: number): string | null {
  const res = (s: string): string => s.replace(/^conv_shortcut\./, 'nin_shortcut.');
  let r: RegExpMatchArray | null;
  if ((r = name.match(/^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/))) return name;
  if ((r = name.match(/^(encoder|decoder)\.conv_norm_out\.(weight|bias)$/))) return `${r[1]}.norm_out.${r[2]}`;
  if ((r = name.match(/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/))) return `encoder.down.${r[1]}.block.${r[2]}.${res(r[3]!)}`;
  if ((r = name.match(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)$/))) return `encoder.down.${r[1]}.downsample.conv.${r[2]}`;
  if ((r = name.match(/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/))) return `decoder.up.${levels - 1 - Number(r[1])}.block.${r[2]}.${res(r[3]!)}`;
  if ((r = name.match(/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)$/))) return `decoder.up.${levels - 1 - Number(r[1])}.upsample.conv.${r[2]}`;
  if ((r = name.match(/^(encoder|decoder)\.mid_block\.resnets\.(0|1)\.(.+)$/))) return `${r[1]}.mid.block_${Number(r[2]) + 1}.${res(r[3]!)}`;
  if ((r = name.match(/^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0|query|key|value|proj_attn)\.(weight|bias)$/))) {
    const m = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out', query: 'q', key: 'k', value: 'v', proj_attn: 'proj_out' }[r[2] as 'to_q'];
    return `${r[1]}.mid.attn_1.${m}.${r[3]}`;
  }
  return null;
}

/** Whether a reference AE name is a mid-attention 1x1 conv weight (a [C,C] linear in diffusers). */
function isAeAttnWeight(refName: string): boolean {
  return /\.mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(refName);
}

/**
 * Rename an autoencoder record between namings; attention weights are reshaped between
 * [C, C, 1, 1] (reference 1x1 conv) and [C, C] (diffusers linear). Data is shared, not copied.
 */
export function convertAeNames<T extends { shape: number[] }>(
  record: Record<string, T>,
  from: Naming,
  to: Naming,
  levels: number,
): { tensors: Record<string, T>; unknown: string[] } {
  if (from === to) return { tensors: { ...record }, unknown: [] };
  const tensors: Record<string, T> = {};
  const unknown: string[] = [];
  for (const [name, t] of Object.entries(record)) {
    const ref = from === 'reference' ? name : aeDiffusersToReference(name, levels);
    const target = from === 'reference' ? aeReferenceToDiffusers(name, levels) : ref;
    if (!ref || !target) {
      unknown.push(name);
      continue;
    }
    let shape = t.shape;
    if (isAeAttnWeight(ref)) shape = to === 'diffusers' ? t.shape.slice(0, 2) : [...t.shape.slice(0, 2), 1, 1];
    tensors[target] = { ...t, shape };
  }
  return { tensors, unknown };
}

/** Which naming a set of autoencoder names uses, or null. */
export function detectAeNaming(names: Iterable<string>): Naming | null {
  let ref = 0;
  let diff = 0;
  for (const n of names) {
    if (/^(encoder|decoder)\.(down|up|mid)\./.test(n) || /^(encoder|decoder)\.norm_out\./.test(n)) ref++;
    else if (/^(encoder|decoder)\.(down_blocks|up_blocks|mid_block|conv_norm_out)\./.test(n)) diff++;
  }
  if (ref === 0 && diff === 0) return null;
  return ref >= diff ? 'reference' : 'diffusers';
}
