// LoRA files in diffusers / peft naming, mapped onto the reference FLUX weights and merged.
//
// A LoRA module `M` has `M.lora_A.weight` [r, in] and `M.lora_B.weight` [out, r] (peft; also the
// older `M.lora.down.weight` / `M.lora.up.weight`, and `lora_down` / `lora_up`), and optionally a
// scalar `M.alpha`. Its update is delta = scale * B @ A with scale = alpha / r, or 1 when the file
// has no alpha (peft's default when lora_alpha == r; an explicit alpha can be passed instead).
// Module names are diffusers FluxTransformer2DModel modules (`transformer_blocks.0.attn.add_k_proj`)
// behind an optional `transformer.` / `base_model.model.` prefix; reference module names
// (`double_blocks.0.txt_attn.qkv`, optionally behind `diffusion_model.`) also work. A diffusers
// module that is part of a fused reference weight lands in its row slice (add_k_proj -> rows
// [H, 2H) of double_blocks.i.txt_attn.qkv.weight; proj_mlp -> rows [3H, 3H+M) of linear1;
// norm_out.linear -> both halves of the final adaLN weight, swapped).
import { tf, type Tensor } from '../engine/tf.js';
import { SafetensorsFile, SafetensorsError } from './safetensors.js';
import { fluxNameMap, type FluxLayout, type Naming } from './names.js';

/** A LoRA file that does not fit the model: one line. */
export class LoraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraError';
  }
}

function firstFew(xs: readonly string[], n = 5): string {
  return xs.slice(0, n).join(', ') + (xs.length > n ? `, ... (${xs.length - n} more)` : '');
}

/** One LoRA module as found in a file: the tensor names of its parts. */
export interface LoraModuleNames {
  /** The module path without prefix, e.g. `transformer_blocks.0.attn.add_k_proj`. */
  module: string;
  A?: string;
  B?: string;
  alpha?: string;
}

const PREFIX = /^(?:base_model\.model\.)?(?:transformer\.|model\.diffusion_model\.|diffusion_model\.)?/;
const PART = /^(.+?)\.(lora_A|lora_B|lora\.down|lora\.up|lora_down|lora_up)(?:\.default)?\.weight$/;

/** Group a LoRA file's tensor names into modules; names that are not LoRA parts are returned apart. */
export function parseLoraNames(names: Iterable<string>): { modules: LoraModuleNames[]; unknown: string[] } {
  const byModule = new Map<string, LoraModuleNames>();
  const unknown: string[] = [];
  const get = (m: string): LoraModuleNames => {
    let e = byModule.get(m);
    if (!e) byModule.set(m, (e = { module: m }));
    return e;
  };
  for (const name of names) {
    const bare = name.replace(PREFIX, '');
    let r: RegExpMatchArray | null;
    if ((r = bare.match(PART))) {
      const isA = r[2] === 'lora_A' || r[2] === 'lora.down' || r[2] === 'lora_down';
      const e = get(r[1]!);
      if (isA ? e.A : e.B) unknown.push(name);
      else if (isA) e.A = name;
      else e.B = name;
    } else if ((r = bare.match(/^(.+)\.alpha$/))) {
      get(r[1]!).alpha = name;
    } else unknown.push(name);
  }
  return { modules: [...byModule.values()], unknown };
}

/** Where one LoRA module's update goes in the reference weights. */
export interface LoraTarget {
  module: string;
  /** The naming the module name is in. */
  naming: Naming;
  names: { A: string; B: string; alpha?: string };
  rank: number;
  inFeatures: number;
  outFeatures: number;
  alpha: number | null;
  /** alpha / rank, or 1 without alpha. The merge multiplies this by its own strength. */
  scale: number;
  /** Rows [loraRows) of B @ A are added to rows [refRows) of `reference`. */
  pieces: { reference: string; refRows: [number, number]; loraRows: [number, number] }[];
}

export interface LoraPlanOptions {
  /** alpha per module (module path without prefix), from the file's `.alpha` scalars or a peft config. */
  alphas?: ReadonlyMap<string, number> | Record<string, number>;
  /** One alpha for every module that has none in `alphas` (peft lora_alpha). */
  alpha?: number;
}

/**
 * Map every module of a LoRA file (names and shapes only) onto the reference weights of a FLUX
 * layout, checking ranks and shapes. Throws a one-line LoraError listing the first offenders.
 * Allocates nothing: a full-size FLUX.1-dev layout is fine.
 */
export function planFluxLora(
  shapes: ReadonlyMap<string, readonly number[]> | Record<string, readonly number[]>,
  layout: FluxLayout,
  opts: LoraPlanOptions = {},
): LoraTarget[] {
  const shapeOf = (n: string): readonly number[] => (shapes instanceof Map ? shapes.get(n) : (shapes as Record<string, readonly number[]>)[n])!;
  const names = shapes instanceof Map ? [...shapes.keys()] : Object.keys(shapes);
  const kohya = names.filter((n) => /^lora_(unet|te\d?)_/.test(n));
  if (kohya.length) throw new LoraError(`kohya-style LoRA names are not supported (diffusers/peft names expected): ${firstFew(kohya, 2)}`);
  const { modules, unknown } = parseLoraNames(names);
  if (unknown.length) throw new LoraError(`not LoRA tensors (expected <module>.lora_A.weight / .lora_B.weight / .alpha): ${firstFew(unknown)}`);
  if (modules.length === 0) throw new LoraError('no LoRA modules found');
  const map = fluxNameMap(layout);
  const refSpecs = map.specs('reference');
  const diffSpecs = map.specs('diffusers');
  const alphaOf = (m: string): number | undefined =>
    opts.alphas instanceof Map ? opts.alphas.get(m) : (opts.alphas as Record<string, number> | undefined)?.[m];
  const halves: string[] = [];
  const unmatched: string[] = [];
  const bad: string[] = [];
  const out: LoraTarget[] = [];
  for (const mod of modules) {
    if (!mod.A || !mod.B) {
      halves.push(`${mod.module} (no ${mod.A ? 'lora_B' : 'lora_A'})`);
      continue;
    }
    const weight = `${mod.module}.weight`;
    let naming: Naming;
    let pieces: LoraTarget['pieces'];
    let rows: number;
    let cols: number;
    const dl = map.byDiffusers.get(weight);
    if (dl) {
      naming = 'diffusers';
      pieces = dl.map((k) => ({ reference: k.reference, refRows: k.refRows, loraRows: k.diffRows }));
      [rows, cols] = diffSpecs.get(weight) as [number, number];
    } else if (refSpecs.has(weight)) {
      naming = 'reference';
      [rows, cols] = refSpecs.get(weight) as [number, number];
      pieces = [{ reference: weight, refRows: [0, rows], loraRows: [0, rows] }];
    } else {
      unmatched.push(mod.module);
      continue;
    }
    const a = shapeOf(mod.A);
    const b = shapeOf(mod.B);
    if (cols === undefined) {
      bad.push(`${mod.module}: target ${weight} is not a matrix`);
      continue;
    }
    if (a.length !== 2 || b.length !== 2 || a[0] !== b[1]) {
      bad.push(`${mod.module}: lora_A [${a.join(', ')}] and lora_B [${b.join(', ')}] do not share a rank`);
      continue;
    }
    if (a[1] !== cols || b[0] !== rows) {
      bad.push(`${mod.module}: B @ A is [${b[0]}, ${a[1]}], the weight is [${rows}, ${cols}]`);
      continue;
    }
    const rank = a[0]!;
    if (mod.alpha && alphaOf(mod.module) === undefined && opts.alpha === undefined) {
      bad.push(`${mod.module}: has an alpha tensor but no alpha value was passed (loadFluxLora reads them)`);
      continue;
    }
    const alpha = alphaOf(mod.module) ?? opts.alpha ?? null;
    out.push({
      module: mod.module,
      naming,
      names: { A: mod.A, B: mod.B, ...(mod.alpha ? { alpha: mod.alpha } : {}) },
      rank,
      inFeatures: cols,
      outFeatures: rows,
      alpha,
      scale: alpha === null ? 1 : alpha / rank,
      pieces,
    });
  }
  const parts: string[] = [];
  if (unmatched.length) parts.push(`${unmatched.length} module(s) not in this FLUX model: ${firstFew(unmatched)}`);
  if (halves.length) parts.push(`${halves.length} incomplete module(s): ${firstFew(halves)}`);
  if (bad.length) parts.push(`${bad.length} shape mismatch(es): ${firstFew(bad, 3)}`);
  if (parts.length) throw new LoraError(`LoRA does not fit the model: ${parts.join('; ')}`);
  return out;
}

/** Weights as plain F32 arrays (what the checkpoint loader returns). */
export interface F32Array2 {
  shape: number[];
  data: Float32Array;
}

/**
 * Add strength * scale * B @ A of every planned module into host weights, in place, row slice by
 * row slice. Returns the reference names that changed.
 */
export function mergeLoraHost(
  weights: Record<string, F32Array2>,
  plan: readonly LoraTarget[],
  lora: Record<string, { data: Float32Array }>,
  strength = 1,
): string[] {
  const changed = new Set<string>();
  for (const t of plan) {
    const A = lora[t.names.A]?.data;
    const B = lora[t.names.B]?.data;
    if (!A || !B) throw new LoraError(`LoRA data missing for ${t.module}`);
    const s = strength * t.scale;
    const n = t.inFeatures;
    const r = t.rank;
    for (const p of t.pieces) {
      const w = weights[p.reference];
      if (!w) throw new LoraError(`LoRA target ${p.reference} is not in the weights`);
      if (w.shape[1] !== n) throw new LoraError(`LoRA target ${p.reference} has ${w.shape[1]} columns, the LoRA has ${n}`);
      const W = w.data;
      for (let i = 0; i < p.loraRows[1] - p.loraRows[0]; i++) {
        const bi = (p.loraRows[0] + i) * r;
        const wi = (p.refRows[0] + i) * n;
        for (let k = 0; k < r; k++) {
          const c = s * B[bi + k]!;
          if (c === 0) continue;
          const ak = k * n;
          for (let j = 0; j < n; j++) W[wi + j]! += c * A[ak + j]!;
        }
      }
      changed.add(p.reference);
    }
  }
  return [...changed];
}

/**
 * The same merge on tensors: returns a new record where each changed weight is a new tensor
 * (w + delta placed in its rows); unchanged entries are the same objects. The caller owns (and may
 * dispose) the replaced tensors.
 */
export function mergeLoraTensors(
  weights: Readonly<Record<string, Tensor>>,
  plan: readonly LoraTarget[],
  lora: Record<string, { shape: number[]; data: Float32Array }>,
  strength = 1,
): Record<string, Tensor> {
  const out: Record<string, Tensor> = { ...weights };
  const deltas = new Map<string, Tensor[]>();
  for (const t of plan) {
    const A = lora[t.names.A];
    const B = lora[t.names.B];
    if (!A || !B) throw new LoraError(`LoRA data missing for ${t.module}`);
    for (const p of t.pieces) {
      const w = weights[p.reference];
      if (!w) throw new LoraError(`LoRA target ${p.reference} is not in the weights`);
      const d = tf.tidy(() => {
        const b = tf.tensor2d(B.data, B.shape as [number, number]).slice([p.loraRows[0], 0], [p.loraRows[1] - p.loraRows[0], t.rank]);
        const delta = tf.mul(tf.matMul(b, tf.tensor2d(A.data, A.shape as [number, number])), strength * t.scale);
        return tf.pad(delta, [[p.refRows[0], w.shape[0]! - p.refRows[1]], [0, 0]]);
      });
      deltas.set(p.reference, [...(deltas.get(p.reference) ?? []), d]);
    }
  }
  for (const [name, ds] of deltas) {
    out[name] = tf.tidy(() => tf.addN([weights[name]!, ...ds]));
    tf.dispose(ds);
  }
  return out;
}

/** A LoRA file read into F32 arrays, with its plan for a layout. */
export interface LoadedLora {
  path: string;
  plan: LoraTarget[];
  tensors: Record<string, { shape: number[]; data: Float32Array }>;
}

/**
 * Read a LoRA safetensors file (any float dtype; BF16/F16 become F32), map it onto a FLUX layout and
 * read its alpha scalars. Errors are one line starting with the path.
 */
export async function loadFluxLora(path: string, layout: FluxLayout, opts: { alpha?: number } = {}): Promise<LoadedLora> {
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(path);
  } catch (e) {
    throw new LoraError((e as Error).message);
  }
  try {
    const shapes = new Map([...f.entries].map(([n, e]) => [n, e.shape]));
    const { modules } = parseLoraNames(shapes.keys());
    const alphas = new Map<string, number>();
    for (const m of modules) {
      if (!m.alpha) continue;
      const v = await f.readFloat32(m.alpha);
      if (v.length !== 1 || !Number.isFinite(v[0])) throw new LoraError(`${path}: ${m.alpha} is not a finite scalar`);
      alphas.set(m.module, v[0]!);
    }
    let plan: LoraTarget[];
    try {
      plan = planFluxLora(shapes, layout, { alphas, ...(opts.alpha !== undefined ? { alpha: opts.alpha } : {}) });
    } catch (e) {
      throw new LoraError(`${path}: ${(e as Error).message}`);
    }
    const tensors: LoadedLora['tensors'] = {};
    for (const t of plan) {
      for (const n of [t.names.A, t.names.B]) tensors[n] = { shape: [...f.entry(n).shape], data: await f.readFloat32(n) };
    }
    return { path, plan, tensors };
  } catch (e) {
    throw e instanceof SafetensorsError ? new LoraError(e.message) : e;
  } finally {
    await f.close();
  }
}
