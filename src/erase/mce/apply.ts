// Fold masks into FLUX weights (UNet weights: apply-unet.ts), so an erased model is an ordinary checkpoint (DESIGN.md "Mask hook
// points"). Every hook point multiplies a vector that feeds one linear map, so scaling that map's
// input columns (or the producing layer's output rows) by the mask is exact, for binary and for
// continuous masks:
//   double_blocks.i.img_mlp / txt_mlp  columns of *_mlp.2.weight; rows of *_mlp.0.weight and .bias
//                                      zeroed where the mask is 0 (gelu(0) = 0)
//   double_blocks.i.txt_mod            rows of txt_mod.lin.weight and .bias (the modulation channel is dropped:
//                                      shift 0, scale 0, gate 0)
//   double_blocks.i.heads              the head's columns of img_attn.proj.weight and txt_attn.proj.weight
//   single_blocks.i.heads              the head's columns of linear2.weight
//   single_blocks.i.mlp                the unit's column (hidden + j) of linear2.weight; rows 3*hidden + j
//                                      of linear1.weight and .bias zeroed where the mask is 0
// `foldPlan` describes this on reference names; `applyMasksToFile` streams a checkpoint in either
// naming (diffusers tensors are row ranges of reference tensors, io/names.ts) tensor by tensor.
import { SafetensorsFile, SafetensorsWriter } from '../../io/safetensors.js';
import { detectFluxNaming, fluxNameMap, fluxPrefix, inferFluxLayout, type FluxLayout, type Naming } from '../../io/names.js';
import { fluxMaskSpecs } from '../../models/flux/masks.js';
import type { FluxParams } from '../../models/flux/params.js';
import type { HostMasks } from './masks.js';
import { isUnetMaskName, unetFoldPlan } from './apply-unet.js';

/** Scale rows (axis 0) or columns (axis 1) of a reference tensor: scale[i] multiplies row/column i. */
export interface FoldOp {
  tensor: string;
  axis: 0 | 1;
  scale: Float32Array;
}

export class ApplyMasksError extends Error {}

/** The fold operations for masks on a layout (only tensors that change). */
export function foldPlan(l: FluxLayout, masks: Readonly<HostMasks>, opts: { zeroProducers?: boolean } = {}): FoldOp[] {
  const zp = opts.zeroProducers ?? true;
  const H = l.hidden_size;
  const M = Math.trunc(H * l.mlp_ratio);
  const D = H / l.num_heads;
  const specs = new Map(fluxMaskSpecs({ ...l, axes_dim: [], theta: 0 } as unknown as FluxParams).map((s) => [s.name, s]));
  const ops = new Map<string, FoldOp>();
  const op = (tensor: string, axis: 0 | 1, len: number): Float32Array => {
    const key = `${tensor}|${axis}`;
    let o = ops.get(key);
    if (!o) ops.set(key, (o = { tensor, axis, scale: new Float32Array(len).fill(1) }));
    return o.scale;
  };
  const zeroRows = (tensor: string, len: number, offset: number, m: Float32Array): void => {
    const s = op(tensor, 0, len);
    for (let j = 0; j < m.length; j++) if (m[j] === 0) s[offset + j] = 0;
  };
  for (const [name, m] of Object.entries(masks)) {
    const spec = specs.get(name);
    if (!spec) throw new ApplyMasksError(`mask '${name}' is not a hook point of this model`);
    if (spec.size !== m.length) throw new ApplyMasksError(`mask '${name}' has ${m.length} units, the model has ${spec.size}`);
    const b = `${spec.block === 'double' ? 'double_blocks' : 'single_blocks'}.${spec.index}`;
    switch (spec.kind) {
      case 'img_mlp':
      case 'txt_mlp': {
        const c = op(`${b}.${spec.kind}.2.weight`, 1, M);
        for (let j = 0; j < M; j++) c[j]! *= m[j]!;
        if (zp) {
          zeroRows(`${b}.${spec.kind}.0.weight`, M, 0, m);
          zeroRows(`${b}.${spec.kind}.0.bias`, M, 0, m);
        }
        break;
      }
      case 'txt_mod': {
        for (const t of [`${b}.txt_mod.lin.weight`, `${b}.txt_mod.lin.bias`]) {
          const r = op(t, 0, 6 * H);
          for (let j = 0; j < 6 * H; j++) r[j]! *= m[j]!;
        }
        break;
      }
      case 'heads': {
        const targets = spec.block === 'double'
          ? [[`${b}.img_attn.proj.weight`, H], [`${b}.txt_attn.proj.weight`, H]] as const
          : [[`${b}.linear2.weight`, H + M]] as const;
        for (const [t, len] of targets) {
          const c = op(t, 1, len);
          for (let h = 0; h < l.num_heads; h++) for (let d = 0; d < D; d++) c[h * D + d]! *= m[h]!;
        }
        break;
      }
      case 'mlp': {
        const c = op(`${b}.linear2.weight`, 1, H + M);
        for (let j = 0; j < M; j++) c[H + j]! *= m[j]!;
        if (zp) {
          zeroRows(`${b}.linear1.weight`, 3 * H + M, 3 * H, m);
          zeroRows(`${b}.linear1.bias`, 3 * H + M, 3 * H, m);
        }
        break;
      }
    }
  }
  return [...ops.values()];
}

/**
 * Apply fold ops to one stored tensor (float32 data, row-major `shape`), given which reference rows
 * it holds: `links` maps stored rows [diffRows) to reference rows [refRows) of `reference`.
 */
export function foldTensor(
  data: Float32Array,
  shape: readonly number[],
  links: readonly { reference: string; refRows: readonly [number, number]; diffRows: readonly [number, number] }[],
  ops: ReadonlyMap<string, FoldOp[]>,
): boolean {
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  let changed = false;
  for (const k of links) {
    for (const o of ops.get(k.reference) ?? []) {
      changed = true;
      for (let r = k.diffRows[0]; r < k.diffRows[1]; r++) {
        const refRow = k.refRows[0] + (r - k.diffRows[0]);
        const base = r * cols;
        if (o.axis === 0) {
          const s = o.scale[refRow]!;
          if (s !== 1) for (let c = 0; c < cols; c++) data[base + c]! *= s;
        } else {
          if (o.scale.length !== cols) throw new ApplyMasksError(`internal: column scale of ${o.tensor} has ${o.scale.length} entries for ${cols} columns`);
          for (let c = 0; c < cols; c++) data[base + c]! *= o.scale[c]!;
        }
      }
    }
  }
  return changed;
}

export interface ApplyResult {
  naming: Naming;
  prefix: string;
  tensors: number;
  changed: number;
}

/**
 * Fold masks into a checkpoint file, streaming: one tensor in memory at a time. FLUX masks fold
 * into a FLUX transformer (reference or diffusers names); UNet masks (apply-unet.ts) into a
 * diffusers-named UNet. The output keeps the input's names, dtypes, order-independent layout and
 * metadata (plus an mce note). Tensors the masks do not touch are copied byte for byte.
 */
/** `onTensor(done, total)` after each tensor is written: a full FLUX.1 file takes minutes to stream. */
export async function applyMasksToFile(
  input: string,
  masks: Readonly<HostMasks>,
  output: string,
  metadata: Record<string, string> = {},
  onTensor?: (done: number, total: number) => void,
): Promise<ApplyResult> {
  const f = await SafetensorsFile.open(input);
  let w: SafetensorsWriter | null = null;
  try {
    const unet = Object.keys(masks).some(isUnetMaskName);
    const { naming, prefix, plan, linksOf } = unet ? unetLinks(f, masks) : fluxLinks(f, input, masks);
    const ops = new Map<string, FoldOp[]>();
    // An all-ones scale changes nothing: such tensors are copied as they are (and not counted as changed).
    for (const o of plan) if (o.scale.some((v) => v !== 1)) ops.set(o.tensor, [...(ops.get(o.tensor) ?? []), o]);
    w = await SafetensorsWriter.create(output, f.names.map((n) => ({ name: n, dtype: f.entry(n).dtype, shape: f.entry(n).shape })), {
      ...f.metadata,
      mce_masks_applied: 'true',
      ...metadata,
    });
    let changed = 0;
    for (const [i, full] of f.names.entries()) {
      const e = f.entry(full);
      const links = linksOf(full, e.shape[0] ?? 1);
      const touched = links.some((k) => ops.has(k.reference));
      if (!touched) {
        await w.write(full, await f.readRaw(full));
        onTensor?.(i + 1, f.names.length);
        continue;
      }
      if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') throw new ApplyMasksError(`${input}: '${full}' is ${e.dtype}; masks fold into float tensors only`);
      const data = await f.readFloat32(full);
      foldTensor(data, e.shape.length === 1 ? [e.shape[0]!, 1] : e.shape, links, ops);
      await w.write(full, data);
      changed++;
      onTensor?.(i + 1, f.names.length);
    }
    await w.finish();
    w = null;
    return { naming, prefix, tensors: f.names.length, changed };
  } finally {
    if (w) await w.abort();
    await f.close();
  }
}

type Links = { reference: string; refRows: [number, number]; diffRows: [number, number] }[];
interface FileFold {
  naming: Naming;
  prefix: string;
  plan: FoldOp[];
  /** Which reference rows a stored tensor (by its full name, with `rows` rows) holds. */
  linksOf(full: string, rows: number): Links;
}

/** A FLUX transformer in either naming, optionally under a prefix. */
function fluxLinks(f: SafetensorsFile, input: string, masks: Readonly<HostMasks>): FileFold {
  const prefix = fluxPrefix(f.names);
  const names = f.names.filter((n) => !prefix || n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  const naming = detectFluxNaming(names);
  if (!naming) throw new ApplyMasksError(`${input}: not a FLUX transformer checkpoint (neither reference nor diffusers names)`);
  const shapes = new Map(names.map((n) => [n, f.entry(prefix + n).shape]));
  let layout: FluxLayout;
  try {
    layout = inferFluxLayout(shapes, naming);
  } catch (e) {
    throw new ApplyMasksError(`${input}: ${(e as Error).message}`);
  }
  const map = fluxNameMap(layout);
  return {
    naming,
    prefix,
    plan: foldPlan(layout, masks),
    linksOf(full, rows) {
      if (prefix && !full.startsWith(prefix)) return [];
      const name = full.slice(prefix.length);
      if (naming === 'reference') return [{ reference: name, refRows: [0, rows], diffRows: [0, rows] }];
      return map.byDiffusers.get(name) ?? [];
    },
  };
}

/** A diffusers-named UNet: every tensor is its own reference. */
function unetLinks(f: SafetensorsFile, masks: Readonly<HostMasks>): FileFold {
  return {
    naming: 'diffusers',
    prefix: '',
    plan: unetFoldPlan(new Map(f.names.map((n) => [n, f.entry(n).shape])), masks),
    linksOf: (full, rows) => [{ reference: full, refRows: [0, rows], diffRows: [0, rows] }],
  };
}

/** Fold masks into in-memory reference-named weights (host arrays); returns new arrays for changed tensors. */
export function foldIntoWeights(
  l: FluxLayout,
  weights: Readonly<Record<string, { shape: number[]; data: Float32Array }>>,
  masks: Readonly<HostMasks>,
): Record<string, { shape: number[]; data: Float32Array }> {
  const plan = foldPlan(l, masks);
  const ops = new Map<string, FoldOp[]>();
  for (const o of plan) ops.set(o.tensor, [...(ops.get(o.tensor) ?? []), o]);
  const out: Record<string, { shape: number[]; data: Float32Array }> = { ...weights };
  for (const name of ops.keys()) {
    const t = weights[name];
    if (!t) throw new ApplyMasksError(`weights: missing '${name}'`);
    const data = Float32Array.from(t.data);
    const shape = t.shape.length === 1 ? [t.shape[0]!, 1] : t.shape;
    foldTensor(data, shape, [{ reference: name, refRows: [0, t.shape[0]!], diffRows: [0, t.shape[0]!] }], ops);
    out[name] = { shape: t.shape, data };
  }
  return out;
}
